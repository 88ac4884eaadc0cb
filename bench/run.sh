#!/usr/bin/env bash
# Non-streaming chat completions through sluice, through nginx (proxy_pass with upstream
# keep-alive, proxy_buffering off) and direct to the mock; then sluice with 0, 1 (no-op) and 3
# example plugins. All in one run on this machine, so every ratio compares figures taken
# side by side. Last, the balancing policies alone (balancer_bench: ns per pick, KV-cache hits
# on a shared-prefix workload), also written to build/bench/balancer.json.
# Usage: bench/run.sh [duration_s] [connections] [threads]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SLUICE_BIN:-$REPO/build/sluice}"
DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
THREADS="${3:-1}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2
  exit 1
}

BUILD="$(dirname "$BIN")"
MOCK_PORT=$(free_port); NGINX_PORT=$(free_port)
"$BIN" mock --listen "127.0.0.1:$MOCK_PORT" --threads 1 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)

# start_gateway NAME PLUGINS_YAML: starts a sluice with that plugin list; its port is left in
# GATEWAY_PORT (not printed: a command substitution would lose the PID kept for cleanup).
start_gateway() {
  local port
  port=$(free_port)
  GATEWAY_PORT=$port
  cat >"$WORK/$1.yaml" <<YAML
listen: 127.0.0.1:$port
threads: $THREADS
access_log: "off"
log_level: warn
providers:
  - {id: mock, type: openai, endpoints: ["http://127.0.0.1:$MOCK_PORT"]}
routes:
  - {models: ["*"], provider: mock}
$2
YAML
  "$BIN" run --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
}
start_gateway sluice ""
GW_PORT=$GATEWAY_PORT
cat >"$WORK/nginx.conf" <<NGINX
worker_processes $THREADS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"; wait_port "$GW_PORT"; wait_port "$NGINX_PORT"

measure() {  # name port → "rps p50_ms p99_ms"
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$REPO/bench/post_chat.lua" \
    -H "authorization: Bearer bench-key" "http://127.0.0.1:$2/v1/chat/completions")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-8s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps" >"$WORK/$1.rps"
}

echo "machine: $(nproc) cores, $(uname -r); gateway/nginx workers: $THREADS; mock threads: 1"
echo "load: wrk -t1 -c$CONNECTIONS -d${DURATION}s, 1 KiB-class chat completion, zero-latency mock"
printf '%-8s %12s %10s %10s\n' target "req/s" p50 p99
measure direct "$MOCK_PORT"
measure nginx "$NGINX_PORT"
measure sluice "$GW_PORT"
awk -v s="$(cat "$WORK/sluice.rps")" -v n="$(cat "$WORK/nginx.rps")" -v d="$(cat "$WORK/direct.rps")" \
  'BEGIN { printf "sluice/nginx throughput: %.2f   sluice/direct: %.2f   nginx/direct: %.2f\n", s/n, s/d, n/d }'

# Plugins: the same load with a no-op plugin, then with auth + logging + ratelimit chained.
NOOP="$BUILD/tests/wasm/noop.wasm"
PLUGINS="$BUILD/plugins"
if [[ -f "$NOOP" && -f "$PLUGINS/auth.wasm" ]]; then
  start_gateway noop "plugins:
  - {name: noop, path: $NOOP}"
  NOOP_PORT=$GATEWAY_PORT
  start_gateway three "plugins:
  - {name: auth, path: $PLUGINS/auth.wasm, config: {keys: [bench-key]}, expose_credentials: true}
  - {name: logging, path: $PLUGINS/logging.wasm}
  - {name: ratelimit, path: $PLUGINS/ratelimit.wasm, config: {requests_per_minute: 100000000, header: authorization}, expose_credentials: true}"
  THREE_PORT=$GATEWAY_PORT
  wait_port "$NOOP_PORT"; wait_port "$THREE_PORT"
  echo
  printf '%-8s %12s %10s %10s\n' plugins "req/s" p50 p99
  measure 0 "$GW_PORT"
  measure 1-noop "$NOOP_PORT"
  measure 3-examples "$THREE_PORT"
  awk -v z="$(cat "$WORK/0.rps")" -v one="$(cat "$WORK/1-noop.rps")" -v three="$(cat "$WORK/3-examples.rps")" \
    -v t="$THREADS" 'BEGIN {
      printf "throughput with 1 no-op plugin: %.2f of none (+%.1f us per request and thread)\n", one/z, (t/one - t/z)*1e6
      printf "throughput with 3 example plugins: %.2f of none (+%.1f us per request and thread)\n", three/z, (t/three - t/z)*1e6
    }'
else
  echo "plugins: skipped (build the wasm modules first: make build)"
fi

# Balancing policies: in-process, no servers involved; the JSON is for tracking across runs.
BALANCER="$BUILD/tests/balancer_bench"
echo
if [[ -x "$BALANCER" ]]; then
  mkdir -p "$BUILD/bench"
  "$BALANCER" --json "$BUILD/bench/balancer.json"
  echo "written: $BUILD/bench/balancer.json"
else
  echo "balancer: skipped (build it first: make build)"
fi
