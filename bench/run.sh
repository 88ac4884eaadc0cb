#!/usr/bin/env bash
# The benchmark of issue 8, end to end on this machine: the mock upstream, sluice and nginx
# (Debian's, proxy_pass with upstream keep-alive and proxy_buffering off, as many workers as
# sluice has threads) are started here and torn down at exit; every figure is printed next to
# its baseline measured in the same run, with the issue's targets marked met / not met, and
# everything goes to build/bench/results.json.
#
#   1. chat: 1 KiB request / ~1 KiB answer, zero-latency mock. Closed loop (wrk, max req/s)
#      and open loop at half of nginx's max rate (bench/open_loop.mjs: p50/p99).
#   2. streaming: 1,000 concurrent streams of 200 tokens, 10 ms apart (bench/stream_client.mjs:
#      time to first token, inter-token gaps; CPU seconds and peak RSS of the proxy).
#   3. large prompts: 200 KiB request bodies at 64 connections (wrk).
#   4. plugins: scenario 1 with 0, 1 no-op and 3 example plugins chained; the engine's call cost
#      (wasm_call_bench) next to it.
#   5. routing: scenario 1 over 16 mock endpoints under each balancing policy, and nginx
#      round-robin over the same 16; then balancer_bench (policies alone, no servers).
#   6. memory: idle RSS with and without plugins, RSS at 10,000 idle keep-alive connections,
#      RSS while relaying the 1,000 streams of scenario 2.
#
# Usage: bench/run.sh [duration_s] [connections] [threads]     (defaults 10, 64, 1)
# Environment: SLUICE_BIN (default build/sluice; plugins/ and tests/ are looked up next to it),
#   BENCH_OUT (default build/bench), BENCH_QUICK=1 (2 s per run, 2,000 idle connections: a smoke
#   test of the harness, not a measurement), BENCH_STREAMS, BENCH_IDLE_CONNS.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SLUICE_BIN:-$REPO/build/sluice}"
[[ -x "$BIN" ]] || { echo "bench: $BIN is missing (make build, or set SLUICE_BIN)" >&2; exit 1; }
BUILD="$(cd "$(dirname "$BIN")" && pwd)"
BIN="$BUILD/$(basename "$BIN")"
OUT="${BENCH_OUT:-$REPO/build/bench}"
QUICK="${BENCH_QUICK:-0}"
if [[ $QUICK == 1 ]]; then DEFAULT_DURATION=2; else DEFAULT_DURATION=10; fi
DURATION="${1:-$DEFAULT_DURATION}"
CONNECTIONS="${2:-64}"
THREADS="${3:-1}"
MOCK_THREADS=1
WRK_THREADS=1
STREAMS="${BENCH_STREAMS:-1000}"
STREAM_TOKENS=200
TOKEN_DELAY_MS=10
IDLE_CONNS="${BENCH_IDLE_CONNS:-$([[ $QUICK == 1 ]] && echo 2000 || echo 10000)}"
ANSWER_TOKENS=110        # the mock's answer to the 1 KiB request is then ~1 KiB
ENDPOINTS=16
POLICIES=(round_robin random power_of_two least_load consistent_hash cache_aware)
NOOP_CALLBACKS=8         # what the no-op module runs per request: context_create, request
                         # headers and body, response headers and body, done, log, delete
CLK_TCK="$(getconf CLK_TCK)"

for tool in wrk nginx node curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (make deps)" >&2; exit 1; }
done

# Each idle connection costs one descriptor in the client and one in the gateway.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $(ulimit -n) != unlimited ]] && (( $(ulimit -n) < IDLE_CONNS + 1024 )); then
  IDLE_CONNS=$(( $(ulimit -n) > 1124 ? $(ulimit -n) - 1024 : 100 ))
  echo "bench: ulimit -n is $(ulimit -n): idle connections lowered to $IDLE_CONNS" >&2
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so that an interrupted run still stops what it started
mkdir -p "$OUT"
RECORDS="$WORK/results.jsonl"
: >"$RECORDS"
T_START=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Helpers

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: port $1 did not open" >&2
  exit 1
}
stop() {  # PID: stops one process this script started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
children() { cat "/proc/$1/task/$1/children" 2>/dev/null | tr ' ' '\n' | grep . | paste -sd, -; }
jstr() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
# put PATH JSON: one record of results.json (dotted path; the last record of a path wins).
put() { printf '{"path":"%s","value":%s}\n' "$1" "$(tr -d '\n' <<<"$2")" >>"$RECORDS"; }
# jget FILE EXPR: a field of a JSON file (EXPR in JavaScript, on `o`).
jget() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=eval(process.argv[2]); console.log(v ?? "")' "$1" "$2"; }
quote() { printf '%q ' "$@" | sed 's/ $//'; }  # a command line as it can be pasted
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
header() { printf '\n== %s\n' "$1"; }

# target KEY LABEL VALUE OP LIMIT UNIT: prints the figure next to the issue's goal and records it.
target() {
  local met
  met=$(awk -v v="$3" -v l="$5" -v op="$4" 'BEGIN {
    if (v == "" || v == "nan" || v == "null") { print "unknown"; exit }
    ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
    print ok ? "met" : "NOT met" }')
  printf '   target: %-44s %10s %-6s (goal %s %s %s)  %s\n' "$2" "$3" "$6" "$4" "$5" "$6" "$met"
  put "targets.$1" "{\"label\":$(jstr "$2"),\"value\":${3:-null},\"goal\":$(jstr "$4 $5 $6"),\"met\":$([[ $met == met ]] && echo true || echo false)}"
  TARGET_LINES+=("$(printf '%-44s %10s %-6s goal %s %s %s  %s' "$2" "$3" "$6" "$4" "$5" "$6" "$met")")
}
TARGET_LINES=()

# wrk_run KEY NAME PORT: closed loop with bench/chat.lua (BENCH_BODY_BYTES, BENCH_MOCK_TOKENS,
# BENCH_SESSIONS from the environment); prints a row, records it, leaves req/s in RPS[KEY.NAME].
declare -A RPS
wrk_run() {
  local cmd=(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$REPO/bench/chat.lua"
    -H "authorization: Bearer bench-key" "http://127.0.0.1:$3/v1/chat/completions")
  local out
  out=$("${cmd[@]}")
  local row
  row=$(awk '
    function ms(x) {
      if (x ~ /us$/) return substr(x, 1, length(x) - 2) / 1000
      if (x ~ /ms$/) return substr(x, 1, length(x) - 2) + 0
      if (x ~ /s$/) return substr(x, 1, length(x) - 1) * 1000
      return x + 0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
    END { printf "%.2f %.3f %.3f %d %d", rps, p50, p99, bad, errs }' <<<"$out")
  local rps p50 p99 bad errs
  read -r rps p50 p99 bad errs <<<"$row"
  RPS[$1.$2]=$rps
  printf '   %-22s %12s %10s %10s %8s\n' "$2" "$rps" "$p50" "$p99" "$((bad + errs))"
  put "$1.closed_loop.$2" "{\"rps\":$rps,\"p50_ms\":$p50,\"p99_ms\":$p99,\"non2xx\":$bad,\"socket_errors\":$errs}"
  put "$1.commands.wrk" "$(jstr "BENCH_BODY_BYTES=${BENCH_BODY_BYTES:-1024} BENCH_MOCK_TOKENS=${BENCH_MOCK_TOKENS:-} BENCH_SESSIONS=${BENCH_SESSIONS:-0} $(quote "${cmd[@]}")")"
}
wrk_header() { printf '   %-22s %12s %10s %10s %8s\n' target "req/s" "p50 ms" "p99 ms" errors; }
# ratio KEY LABEL A B: A/B printed and recorded under KEY.ratios.
ratio() {
  local r=null
  # A run that failed outright (0 req/s) has no ratio rather than a division by zero.
  if awk -v b="$4" 'BEGIN { exit !(b + 0 > 0) }'; then r=$(calc "$3 / $4" 3); fi
  printf '   %-40s %s\n' "$2" "$r"
  put "$1.ratios.$(tr ' /' '__' <<<"$2" | tr -cd 'A-Za-z0-9_')" "$r"
  LAST_RATIO=$r
}

# start_gateway NAME BODY: a sluice with the common settings and BODY (providers, routes,
# plugins); its port and PID are left in GATEWAY_PORT / GATEWAY_PID (not printed: a command
# substitution would lose the PID kept for cleanup).
start_gateway() {
  GATEWAY_PORT=$(free_port)
  cat >"$WORK/$1.yaml" <<YAML
listen: 127.0.0.1:$GATEWAY_PORT
threads: $THREADS
access_log: "off"
log_level: warn
$2
YAML
  "$BIN" run --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=("$GATEWAY_PID")
  wait_port "$GATEWAY_PORT"
}
warm() {  # PORT: one request, so lazily built state exists before RSS is read
  curl -sf -o /dev/null -H 'content-type: application/json' -H 'authorization: Bearer bench-key' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$1/v1/chat/completions" || echo "bench: warm-up request to port $1 failed" >&2
}

# ---------------------------------------------------------------------------------------------
# Processes: the mock, nginx, sluice plain / one no-op plugin / three example plugins.

MOCK_PORT=$(free_port)
"$BIN" mock --listen "127.0.0.1:$MOCK_PORT" --threads "$MOCK_THREADS" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
wait_port "$MOCK_PORT"

PLAIN="providers:
  - {id: mock, type: openai, endpoints: [\"http://127.0.0.1:$MOCK_PORT\"]}
routes:
  - {models: [\"*\"], provider: mock}"
NOOP="$BUILD/tests/wasm/noop.wasm"
PLUGINS="$BUILD/plugins"
HAVE_PLUGINS=0
[[ -f "$NOOP" && -f "$PLUGINS/auth.wasm" && -f "$PLUGINS/logging.wasm" && -f "$PLUGINS/ratelimit.wasm" ]] && HAVE_PLUGINS=1

start_gateway sluice "$PLAIN"
GW_PORT=$GATEWAY_PORT; GW_PID=$GATEWAY_PID
if [[ $HAVE_PLUGINS == 1 ]]; then
  start_gateway noop "$PLAIN
plugins:
  - {name: noop, path: $NOOP}"
  NOOP_PORT=$GATEWAY_PORT; NOOP_PID=$GATEWAY_PID
  start_gateway three "$PLAIN
plugins:
  - {name: auth, path: $PLUGINS/auth.wasm, config: {keys: [bench-key]}, expose_credentials: true}
  - {name: logging, path: $PLUGINS/logging.wasm}
  - {name: ratelimit, path: $PLUGINS/ratelimit.wasm, config: {requests_per_minute: 100000000, header: authorization}, expose_credentials: true}"
  THREE_PORT=$GATEWAY_PORT; THREE_PID=$GATEWAY_PID
fi

NGINX_PORT=$(free_port); NGINX16_PORT=$(free_port)
ENDPOINT_PORTS=()
for _ in $(seq "$ENDPOINTS"); do ENDPOINT_PORTS+=("$(free_port)"); done
# client_body_buffer_size: keeps scenario 3's 200 KiB bodies in memory, as sluice does, rather
# than in a temporary file per request (nginx's default above 16 KiB).
# Not root: nginx cannot write its compiled-in temporary directories (/var/lib/nginx), so
# they go to the work directory (as root its workers run as nobody and keep the defaults).
NGINX_TEMP=""
if [[ $EUID -ne 0 ]]; then
  for d in client_body proxy fastcgi uwsgi scgi; do NGINX_TEMP+="  ${d}_temp_path $WORK/nginx-$d;"$'\n'; done
fi
cat >"$WORK/nginx.conf" <<NGINX
worker_processes $THREADS;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_buffer_size 256k;
  keepalive_requests 1000000;   # default 1000: wrk and the open loop would reconnect
$NGINX_TEMP  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; keepalive_requests 1000000; }
  upstream mock16 {
$(for p in "${ENDPOINT_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done)
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
  server {
    listen 127.0.0.1:$NGINX16_PORT;
    location / {
      proxy_pass http://mock16;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT"
NGINX_WORKERS=$(children "$NGINX_PID")

# Idle RSS (scenario 6) now, before any load has grown the heaps.
for port in "$GW_PORT" ${NOOP_PORT:-} ${THREE_PORT:-} "$NGINX_PORT"; do warm "$port"; done
sleep 0.5
IDLE_PLAIN=$(rss_kib "$GW_PID")
IDLE_NOOP=$([[ $HAVE_PLUGINS == 1 ]] && rss_kib "$NOOP_PID" || echo 0)
IDLE_THREE=$([[ $HAVE_PLUGINS == 1 ]] && rss_kib "$THREE_PID" || echo 0)
IDLE_NGINX=0
for w in ${NGINX_WORKERS//,/ }; do IDLE_NGINX=$((IDLE_NGINX + $(rss_kib "$w"))); done

# ---------------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
echo "machine: $(nproc) cores ($CPU_MODEL), $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "commit $COMMIT$([[ $DIRTY == true ]] && echo ' (uncommitted changes)'), $(date -u +%Y-%m-%dT%H:%M:%SZ)$([[ $QUICK == 1 ]] && echo ', BENCH_QUICK: smoke test, not a measurement')"
echo "threads: sluice $THREADS, nginx workers $THREADS, mock $MOCK_THREADS, wrk $WRK_THREADS × $CONNECTIONS connections, ${DURATION}s per run"
put date "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
put commit "$(jstr "$COMMIT")"
put dirty "$DIRTY"
put quick "$([[ $QUICK == 1 ]] && echo true || echo false)"
put machine "{\"nproc\":$(nproc),\"cpu\":$(jstr "$CPU_MODEL"),\"kernel\":$(jstr "$(uname -r)"),\"mem_kib\":$(awk '/MemTotal/ {print $2}' /proc/meminfo)}"
put threads "{\"sluice\":$THREADS,\"nginx_workers\":$THREADS,\"mock\":$MOCK_THREADS,\"wrk\":$WRK_THREADS,\"wrk_connections\":$CONNECTIONS,\"duration_s\":$DURATION}"
put versions "{\"wrk\":$(jstr "$(wrk -v 2>&1 | head -1)"),\"nginx\":$(jstr "$(nginx -v 2>&1)"),\"node\":$(jstr "$(node --version)")}"
put commands.sluice "$(jstr "$BIN run --config <generated, see bench/run.sh start_gateway>")"
put commands.mock "$(jstr "$BIN mock --listen 127.0.0.1:PORT --threads $MOCK_THREADS")"
put commands.nginx "$(jstr "nginx -c <generated: worker_processes $THREADS; proxy_pass, upstream keepalive 256, proxy_buffering off>")"

# ---------------------------------------------------------------------------------------------
header "1. chat completions: 1 KiB request, ~1 KiB answer, zero-latency mock"
export BENCH_BODY_BYTES=1024 BENCH_MOCK_TOKENS=$ANSWER_TOKENS BENCH_SESSIONS=0
echo "   closed loop (wrk, max rate)"
wrk_header
wrk_run s1 direct "$MOCK_PORT"
wrk_run s1 nginx "$NGINX_PORT"
wrk_run s1 sluice "$GW_PORT"
ratio s1 "sluice/nginx" "${RPS[s1.sluice]}" "${RPS[s1.nginx]}"; S1_RATIO=$LAST_RATIO
ratio s1 "sluice/direct" "${RPS[s1.sluice]}" "${RPS[s1.direct]}"
ratio s1 "nginx/direct" "${RPS[s1.nginx]}" "${RPS[s1.direct]}"
target s1_throughput "throughput sluice/nginx" "$S1_RATIO" ">=" 1.0 "×"

OPEN_RATE=$(calc "${RPS[s1.nginx]} / 2" 0)
echo "   open loop at $OPEN_RATE req/s (half of nginx's max), $CONNECTIONS connections (bench/open_loop.mjs)"
printf '   %-22s %12s %10s %10s %8s\n' target "achieved/s" "p50 µs" "p99 µs" errors
declare -A OPEN_P99
for pair in "direct:$MOCK_PORT" "nginx:$NGINX_PORT" "sluice:$GW_PORT"; do
  name=${pair%%:*}; port=${pair#*:}
  cmd=(node "$REPO/bench/open_loop.mjs" --url "http://127.0.0.1:$port/v1/chat/completions"
    --rate "$OPEN_RATE" --duration "$DURATION" --warmup 1 --connections "$CONNECTIONS"
    --body-bytes 1024 --header "x-mock-tokens: $ANSWER_TOKENS")
  "${cmd[@]}" >"$WORK/open-$name.json"
  OPEN_P99[$name]=$(jget "$WORK/open-$name.json" o.latency_us.p99)
  achieved=$(jget "$WORK/open-$name.json" o.achieved_rate)
  # Below 95 % of the rate, the target could not keep up: its latencies are queueing.
  (( achieved * 100 < OPEN_RATE * 95 )) && achieved="$achieved(sat)"
  printf '   %-22s %12s %10s %10s %8s\n' "$name" "$achieved" \
    "$(jget "$WORK/open-$name.json" o.latency_us.p50)" "${OPEN_P99[$name]}" \
    "$(jget "$WORK/open-$name.json" 'o.errors + o.non2xx')"
  put "s1.open_loop.$name" "$(cat "$WORK/open-$name.json")"
done
put s1.commands.open_loop "$(jstr "$(quote "${cmd[@]}")")"
S1_ADDED=$(calc "${OPEN_P99[sluice]} - ${OPEN_P99[direct]}" 1)
NGINX_ADDED=$(calc "${OPEN_P99[nginx]} - ${OPEN_P99[direct]}" 1)
echo "   added p99 over direct: sluice $S1_ADDED µs, nginx $NGINX_ADDED µs"
put s1.open_loop.added_p99_us "{\"sluice\":$S1_ADDED,\"nginx\":$NGINX_ADDED}"
target s1_added_p99 "added p99 over direct at half nginx's max" "$S1_ADDED" "<=" 200 "µs"

# ---------------------------------------------------------------------------------------------
header "2. streaming: $STREAMS concurrent streams × $STREAM_TOKENS tokens, one per $TOKEN_DELAY_MS ms"
# A fresh gateway, so its RSS before the streams is that of an idle process.
start_gateway stream "$PLAIN"
STREAM_PORT=$GATEWAY_PORT; STREAM_PID=$GATEWAY_PID
warm "$STREAM_PORT"
printf '   %-8s %8s %9s %9s %9s %9s %9s %10s %10s\n' target ok "ttft p50" "ttft p99" "gap p50" "gap p99" "gap max" "CPU s" "peak RSS"
declare -A ST
for spec in "direct:$MOCK_PORT:$MOCK_PID" "nginx:$NGINX_PORT:$NGINX_WORKERS" "sluice:$STREAM_PORT:$STREAM_PID"; do
  IFS=: read -r name port pids <<<"$spec"
  cmd=(node "$REPO/bench/stream_client.mjs" --url "http://127.0.0.1:$port/v1/chat/completions"
    --streams "$STREAMS" --tokens "$STREAM_TOKENS" --delay-ms "$TOKEN_DELAY_MS" --ramp-ms 500
    --pids "$pids" --clk-tck "$CLK_TCK")
  "${cmd[@]}" >"$WORK/stream-$name.json"
  f="$WORK/stream-$name.json"
  for k in ttft_ms.p50 ttft_ms.p99 gap_ms.p50 gap_ms.p99 gap_ms.max process.cpu_s process.rss_peak_kib process.rss_before_kib completed; do
    ST[$name.$k]=$(jget "$f" "o.$k")
  done
  printf '   %-8s %8s %9s %9s %9s %9s %9s %10s %10s\n' "$name" "${ST[$name.completed]}" \
    "${ST[$name.ttft_ms.p50]}" "${ST[$name.ttft_ms.p99]}" "${ST[$name.gap_ms.p50]}" \
    "${ST[$name.gap_ms.p99]}" "${ST[$name.gap_ms.max]}" "${ST[$name.process.cpu_s]}" \
    "$(calc "${ST[$name.process.rss_peak_kib]} / 1024" 1)M"
  put "s2.$name" "$(cat "$f")"
done
put s2.commands.stream_client "$(jstr "$(quote "${cmd[@]}")")"
echo "   (times in ms; CPU s and RSS are the mock's for direct, nginx's workers', sluice's)"
TTFT50=$(calc "${ST[sluice.ttft_ms.p50]} - ${ST[direct.ttft_ms.p50]}" 3)
TTFT99=$(calc "${ST[sluice.ttft_ms.p99]} - ${ST[direct.ttft_ms.p99]}" 3)
GAP99=$(calc "${ST[sluice.gap_ms.p99]} - ${ST[direct.gap_ms.p99]}" 3)
NG_TTFT99=$(calc "${ST[nginx.ttft_ms.p99]} - ${ST[direct.ttft_ms.p99]}" 3)
NG_GAP99=$(calc "${ST[nginx.gap_ms.p99]} - ${ST[direct.gap_ms.p99]}" 3)
CPU_PER_1K=$(calc "${ST[sluice.process.cpu_s]} * 1000 / $STREAMS" 3)
NG_CPU_PER_1K=$(calc "${ST[nginx.process.cpu_s]} * 1000 / $STREAMS" 3)
PER_STREAM=$(calc "(${ST[sluice.process.rss_peak_kib]} - ${ST[sluice.process.rss_before_kib]}) * 1024 / $STREAMS" 0)
NG_PER_STREAM=$(calc "(${ST[nginx.process.rss_peak_kib]} - ${ST[nginx.process.rss_before_kib]}) * 1024 / $STREAMS" 0)
printf '   %-40s %12s %12s\n' "" sluice nginx
printf '   %-40s %12s %12s\n' "added TTFT p50 over direct (ms)" "$TTFT50" "$(calc "${ST[nginx.ttft_ms.p50]} - ${ST[direct.ttft_ms.p50]}" 3)"
printf '   %-40s %12s %12s\n' "added TTFT p99 over direct (ms)" "$TTFT99" "$NG_TTFT99"
printf '   %-40s %12s %12s\n' "added inter-token gap p99 (ms)" "$GAP99" "$NG_GAP99"
printf '   %-40s %12s %12s\n' "CPU seconds per 1,000 streams" "$CPU_PER_1K" "$NG_CPU_PER_1K"
printf '   %-40s %12s %12s\n' "RSS growth per stream (bytes)" "$PER_STREAM" "$NG_PER_STREAM"
put s2.added "{\"sluice\":{\"ttft_p50_ms\":$TTFT50,\"ttft_p99_ms\":$TTFT99,\"gap_p99_ms\":$GAP99,\"cpu_s_per_1000_streams\":$CPU_PER_1K,\"bytes_per_stream\":$PER_STREAM},\"nginx\":{\"ttft_p99_ms\":$NG_TTFT99,\"gap_p99_ms\":$NG_GAP99,\"cpu_s_per_1000_streams\":$NG_CPU_PER_1K,\"bytes_per_stream\":$NG_PER_STREAM}}"
if [[ -n "${ST[nginx.process.cpu_s]}" && "${ST[nginx.process.cpu_s]}" != 0 ]]; then
  ratio s2 "cpu sluice/nginx" "${ST[sluice.process.cpu_s]}" "${ST[nginx.process.cpu_s]}"
fi
target s2_ttft_p99 "added time to first token p99" "$TTFT99" "<=" 1 "ms"
target s2_memory "memory per stream" "$(calc "$PER_STREAM / 1024" 1)" "<=" 16 "KiB"
stop "$STREAM_PID"

# ---------------------------------------------------------------------------------------------
header "3. large prompts: 200 KiB request bodies, $CONNECTIONS connections"
export BENCH_BODY_BYTES=204800 BENCH_MOCK_TOKENS=16
wrk_header
wrk_run s3 direct "$MOCK_PORT"
wrk_run s3 nginx "$NGINX_PORT"
wrk_run s3 sluice "$GW_PORT"
ratio s3 "sluice/nginx" "${RPS[s3.sluice]}" "${RPS[s3.nginx]}"
ratio s3 "sluice/direct" "${RPS[s3.sluice]}" "${RPS[s3.direct]}"
ratio s3 "nginx/direct" "${RPS[s3.nginx]}" "${RPS[s3.direct]}"
echo "   request bytes through sluice: $(calc "${RPS[s3.sluice]} * 204800 / 1048576" 0) MiB/s"

# ---------------------------------------------------------------------------------------------
header "4. plugins: scenario 1 with 0, 1 no-op and 3 example plugins (auth, logging, ratelimit)"
export BENCH_BODY_BYTES=1024 BENCH_MOCK_TOKENS=$ANSWER_TOKENS
if [[ $HAVE_PLUGINS == 1 ]]; then
  wrk_header
  wrk_run s4 none "$GW_PORT"
  wrk_run s4 noop "$NOOP_PORT"
  wrk_run s4 three "$THREE_PORT"
  ratio s4 "noop/none" "${RPS[s4.noop]}" "${RPS[s4.none]}"
  ratio s4 "three/none" "${RPS[s4.three]}" "${RPS[s4.none]}"; THREE_RATIO=$LAST_RATIO
  # Per request and thread: the extra time per request at full load, 1/rps per thread.
  NOOP_US=$(calc "($THREADS / ${RPS[s4.noop]} - $THREADS / ${RPS[s4.none]}) * 1e6" 1)
  THREE_US=$(calc "($THREADS / ${RPS[s4.three]} - $THREADS / ${RPS[s4.none]}) * 1e6" 1)
  PER_CALLBACK=$(calc "$NOOP_US / $NOOP_CALLBACKS" 2)
  echo "   added per request: no-op plugin $NOOP_US µs ($NOOP_CALLBACKS callbacks: $PER_CALLBACK µs each), three plugins $THREE_US µs"
  put s4.added_us_per_request "{\"noop\":$NOOP_US,\"three\":$THREE_US,\"noop_per_callback\":$PER_CALLBACK,\"noop_callbacks\":$NOOP_CALLBACKS}"
  CALL_BENCH="$BUILD/tests/unit/wasm/wasm_call_bench"
  if [[ -x "$CALL_BENCH" ]]; then
    "$CALL_BENCH" --benchmark_filter='BM_HostToWasm_Nop$|BM_WasmToHost_Nop' --benchmark_min_time=0.2 \
      --benchmark_format=json >"$WORK/call.json" 2>/dev/null
    HOST_TO_WASM=$(jget "$WORK/call.json" 'o.benchmarks.find(b => b.name == "BM_HostToWasm_Nop").cpu_time.toFixed(0)')
    WASM_TO_HOST=$(jget "$WORK/call.json" '(o.benchmarks.find(b => b.name.startsWith("BM_WasmToHost_Nop")).cpu_time / 1000).toFixed(1)')
    echo "   engine alone (wasm_call_bench): host→wasm call $HOST_TO_WASM ns, wasm→host call $WASM_TO_HOST ns"
    put s4.engine_ns "{\"host_to_wasm\":$HOST_TO_WASM,\"wasm_to_host\":$WASM_TO_HOST}"
  fi
  target s4_three "throughput with 3 example plugins / none" "$THREE_RATIO" ">=" 0.85 "×"
  target s4_callback "one plugin callback (no-op: added / $NOOP_CALLBACKS)" "$PER_CALLBACK" "<=" 2 "µs"
else
  echo "   skipped: no $NOOP or $PLUGINS/{auth,logging,ratelimit}.wasm (make build)"
fi

# ---------------------------------------------------------------------------------------------
header "5. routing: scenario 1 over $ENDPOINTS mock endpoints (one mock process each, 1 thread)"
# 16 single-threaded mocks on a 2-core machine: each gets 1/16 of the load, so together they
# are no slower than the single mock of scenario 1 (see its direct figure).
ENDPOINT_PIDS=()
for p in "${ENDPOINT_PORTS[@]}"; do
  "$BIN" mock --listen "127.0.0.1:$p" --threads 1 >/dev/null 2>&1 &
  ENDPOINT_PIDS+=($!); PIDS+=($!)
done
for p in "${ENDPOINT_PORTS[@]}"; do wait_port "$p"; done
ENDPOINT_URLS=$(printf '"http://127.0.0.1:%s", ' "${ENDPOINT_PORTS[@]}")
ENDPOINT_URLS="[${ENDPOINT_URLS%, }]"
# Random session ids out of 1,024: the key of consistent_hash (else every request has the same key).
export BENCH_SESSIONS=1024
echo "   wrk sends x-session-id: one of 1,024 at random (consistent_hash is keyed by it)"
wrk_header
wrk_run s5 nginx_round_robin "$NGINX16_PORT"
ADMIN_TOKEN=bench-admin-token-0123456789
declare -A SPREAD
for policy in "${POLICIES[@]}"; do
  ADMIN_PORT=$(free_port)
  start_gateway "route-$policy" "admin: {listen: \"127.0.0.1:$ADMIN_PORT\", token: $ADMIN_TOKEN}
providers:
  - {id: mock, type: openai, endpoints: $ENDPOINT_URLS}
routes:
  - {models: [\"*\"], provider: mock, policy: $policy, consistent_hash: {header: x-session-id}}"
  wrk_run s5 "$policy" "$GATEWAY_PORT"
  # How the policy spread the requests: the admin API's attempts per endpoint.
  curl -sf -H "authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/workers" \
    >"$WORK/workers-$policy.json" || echo '{"workers":[]}' >"$WORK/workers-$policy.json"
  SPREAD[$policy]=$(jget "$WORK/workers-$policy.json" '(() => {
    const a = o.workers.map((w) => w.attempts), total = a.reduce((x, y) => x + y, 0);
    return JSON.stringify({ endpoints: a.length, used: a.filter((x) => x > 0).length,
      max_attempts: Math.max(...a), min_attempts: Math.min(...a),
      busiest_share: total ? Math.round((Math.max(...a) / total) * 1000) / 1000 : null });
  })()')
  put "s5.spread.$policy" "${SPREAD[$policy]}"
  stop "$GATEWAY_PID"
done
echo "   spread over the $ENDPOINTS endpoints (admin API attempts):"
printf '   %-22s %12s %12s %12s\n' policy "used" "min..max" "busiest"
for policy in "${POLICIES[@]}"; do
  node -e 'const s = JSON.parse(process.argv[1]);
    console.log("   " + process.argv[2].padEnd(22) + `${s.used}/${s.endpoints}`.padStart(13) +
      `${s.min_attempts}..${s.max_attempts}`.padStart(13) + String(s.busiest_share).padStart(13))' \
    "${SPREAD[$policy]}" "$policy"
done
for policy in "${POLICIES[@]}"; do
  ratio s5 "$policy/nginx" "${RPS[s5.$policy]}" "${RPS[s5.nginx_round_robin]}"
done
for policy in "${POLICIES[@]}"; do
  ratio s5 "$policy/1 endpoint" "${RPS[s5.$policy]}" "${RPS[s1.sluice]}"
done
for pid in "${ENDPOINT_PIDS[@]}"; do stop "$pid"; done
unset BENCH_SESSIONS

BALANCER="$BUILD/tests/balancer_bench"
if [[ -x "$BALANCER" ]]; then
  echo "   the policies alone (balancer_bench, no servers):"
  "$BALANCER" --json "$OUT/balancer.json" | sed 's/^/   /'
  put s5.balancer_bench "$(cat "$OUT/balancer.json")"
else
  echo "   balancer_bench: skipped (make build)"
fi

# ---------------------------------------------------------------------------------------------
header "6. memory"
printf '   %-52s %10s\n' "" "RSS MiB"
printf '   %-52s %10s\n' "sluice idle, no plugin" "$(calc "$IDLE_PLAIN / 1024" 1)"
if [[ $HAVE_PLUGINS == 1 ]]; then
  printf '   %-52s %10s\n' "sluice idle, 1 no-op plugin" "$(calc "$IDLE_NOOP / 1024" 1)"
  printf '   %-52s %10s\n' "sluice idle, 3 example plugins" "$(calc "$IDLE_THREE / 1024" 1)"
fi
printf '   %-52s %10s\n' "nginx workers idle" "$(calc "$IDLE_NGINX / 1024" 1)"
put s6.idle_rss_kib "{\"sluice\":$IDLE_PLAIN,\"sluice_noop\":$IDLE_NOOP,\"sluice_three_plugins\":$IDLE_THREE,\"nginx_workers\":$IDLE_NGINX}"

start_gateway idle "$PLAIN"
IDLE_PORT=$GATEWAY_PORT; IDLE_PID=$GATEWAY_PID
warm "$IDLE_PORT"
for spec in "sluice:$IDLE_PORT:$IDLE_PID" "nginx:$NGINX_PORT:$NGINX_WORKERS"; do
  IFS=: read -r name port pids <<<"$spec"
  cmd=(node "$REPO/bench/idle_conns.mjs" --url "http://127.0.0.1:$port/v1/chat/completions"
    --connections "$IDLE_CONNS" --pids "$pids")
  "${cmd[@]}" >"$WORK/idle-$name.json"
  printf '   %-52s %10s   (%s bytes per connection, %s of %s idle)\n' \
    "$name with $IDLE_CONNS idle keep-alive connections" \
    "$(calc "$(jget "$WORK/idle-$name.json" o.rss_after_kib) / 1024" 1)" \
    "$(jget "$WORK/idle-$name.json" o.bytes_per_connection)" \
    "$(jget "$WORK/idle-$name.json" o.idle)" "$IDLE_CONNS"
  put "s6.idle_connections.$name" "$(cat "$WORK/idle-$name.json")"
done
put s6.commands.idle_conns "$(jstr "$(quote "${cmd[@]}")")"
stop "$IDLE_PID"
printf '   %-52s %10s   (%s bytes per stream over idle)\n' "sluice relaying $STREAMS streams (scenario 2, peak)" \
  "$(calc "${ST[sluice.process.rss_peak_kib]} / 1024" 1)" "$PER_STREAM"
printf '   %-52s %10s   (%s bytes per stream over idle)\n' "nginx workers relaying $STREAMS streams (peak)" \
  "$(calc "${ST[nginx.process.rss_peak_kib]} / 1024" 1)" "$NG_PER_STREAM"
put s6.streams "{\"sluice_peak_kib\":${ST[sluice.process.rss_peak_kib]},\"sluice_bytes_per_stream\":$PER_STREAM,\"nginx_peak_kib\":${ST[nginx.process.rss_peak_kib]},\"nginx_bytes_per_stream\":$NG_PER_STREAM}"
if [[ $HAVE_PLUGINS == 1 ]]; then
  target s6_idle_rss "idle RSS with 3 plugins loaded" "$(calc "$IDLE_THREE / 1024" 1)" "<=" 40 "MiB"
fi

# ---------------------------------------------------------------------------------------------
ELAPSED=$(( $(date +%s) - T_START ))
put elapsed_s "$ELAPSED"
node "$REPO/bench/results.mjs" "$RECORDS" >"$OUT/results.json"
header "targets"
for line in "${TARGET_LINES[@]}"; do echo "   $line"; done
echo
echo "written: $OUT/results.json ($ELAPSED s)"
