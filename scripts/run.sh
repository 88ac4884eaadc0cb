#!/usr/bin/env bash
# `make run`: two mock upstreams on :18001 and :18002 in the background, the gateway in the
# foreground; the mocks are stopped when the gateway exits, however it exits.
set -euo pipefail

SLUICE="${1:-build/sluice}"
CONFIG="${2:-examples/sluice.yaml}"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in 18001 18002; do
  "$SLUICE" mock --listen "127.0.0.1:$port" &
  pids+=("$!")
done

echo "run: mocks on 127.0.0.1:18001 and :18002; gateway config $CONFIG" >&2
"$SLUICE" run --config "$CONFIG"
