#!/usr/bin/env bash
# One libFuzzer run of a fuzz target for FUZZ_SECONDS (default 20), starting from its committed
# corpus. New inputs go to <build>/corpus/<target> (never into the repository). A crash fails the
# test and leaves its input in <build>/crashes/<target>/: fix the bug, then add the input to
# tests/fuzz/corpus/<target>/ so that every ctest run replays it from then on.
# Usage: run_fuzzer.sh FUZZER BUILD_DIR SEED_CORPUS
set -euo pipefail
fuzzer="$1" build="$2" seeds="$3"
target="$(basename "$fuzzer")"
target="${target#fuzz_}"
corpus="$build/corpus/$target"
crashes="$build/crashes/$target"
log="$build/fuzz-$target.log"
mkdir -p "$corpus" "$crashes"

status=0
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=65536 -rss_limit_mb=4096 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
runs="$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)"
echo "fuzz $target: ${runs:-?} inputs in ${FUZZ_SECONDS:-20} s, corpus $(find "$corpus" -type f | wc -l) files, exit $status"
if [[ $status -ne 0 ]]; then
  tail -60 "$log"
  echo "the failing input is in $crashes/"
fi
exit $status
