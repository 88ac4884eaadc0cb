#!/usr/bin/env bash
# Builds the tree with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs every
# test against it: unit tests, fuzz-corpus replays and the integration tests, which start the
# sanitized gateway and mock. Any report aborts the process that made it, so the test fails.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ASAN_BUILD_DIR:-$REPO/build-asan}"
JOBS="${JOBS:-$(nproc)}"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=ON >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS"

# handle_segv=0 / allow_user_segv_handler: V8 turns out-of-bounds wasm accesses into traps
# with its own SIGSEGV handler. detect_leaks=0: V8 keeps isolate memory to the end of the
# process by design, and the gateway exits without freeing what lives as long as it does.
export ASAN_OPTIONS="handle_segv=0:allow_user_segv_handler=1:detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export SLUICE_SANITIZED=1  # tests that read /proc/PID/maps skip what ASan's mappings confuse
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 600
