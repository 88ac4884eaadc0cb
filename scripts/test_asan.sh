#!/usr/bin/env bash
# Builds the tree with clang, AddressSanitizer + UndefinedBehaviorSanitizer and libFuzzer's
# instrumentation (build-asan/), then runs every test against it: unit tests, the integration
# tests (which start the sanitized gateway and mock), the fuzz corpora and a short libFuzzer run
# of each fuzz target (FUZZ_SECONDS, default 20). Any report aborts the process that made it,
# so the test fails. `make fuzz` runs only the fuzzers of the same build, for longer.
# Usage: test_asan.sh [ctest arguments...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ASAN_BUILD_DIR:-$REPO/build-asan}"
JOBS="${JOBS:-$(nproc)}"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  # -O1: a sanitized build is for finding faults, not for speed; it compiles in less time.
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS"

# handle_segv=0 / allow_user_segv_handler: V8 turns out-of-bounds wasm accesses into traps
# with its own SIGSEGV handler. detect_leaks=0: V8 keeps isolate memory to the end of the
# process by design, and the gateway exits without freeing what lives as long as it does.
export ASAN_OPTIONS="handle_segv=0:allow_user_segv_handler=1:detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export SLUICE_SANITIZED=1  # tests that read /proc/PID/maps skip what ASan's mappings confuse
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 900 "$@"
