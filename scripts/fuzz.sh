#!/usr/bin/env bash
# `make fuzz`: every fuzz target for FUZZ_SECONDS (default 60) under libFuzzer, in the sanitized
# clang build that `make test-asan` uses (build-asan/); see tests/fuzz/run_fuzzer.sh for where
# new inputs and crashes go. CI runs the same fuzzers for 20 s each as part of `make test-asan`.
set -euo pipefail
export FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
exec "$(dirname "${BASH_SOURCE[0]}")/test_asan.sh" -L fuzz --verbose
