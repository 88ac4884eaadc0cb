# Entry points for developers and CI; CMake does the real work.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CONFIG ?= examples/sluice.yaml
# Keep the output readable: no "Entering directory" lines from the makes CMake runs.
MAKEFLAGS += --no-print-directory

.PHONY: deps build run test test-asan fuzz bench soak clean

deps:
	@scripts/deps.sh

build: deps
	@test -f $(BUILD_DIR)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	@cmake --build $(BUILD_DIR) -j$(JOBS)

# Two mock upstreams in the background and the gateway in the foreground on 127.0.0.1:8080.
run: build
	@scripts/run.sh $(BUILD_DIR)/sluice $(CONFIG)

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

# The tests again, with the whole tree built by clang under AddressSanitizer + UBSan and
# libFuzzer's instrumentation (build-asan/), plus each fuzz target for FUZZ_SECONDS (default 20).
test-asan: deps
	@scripts/test_asan.sh

# Only the fuzz targets of that build, for FUZZ_SECONDS each (default 60).
fuzz: deps
	@scripts/fuzz.sh

# BENCH_ARGS: [seconds] [connections] [threads]; BENCH_QUICK=1 for a smoke test (see README).
bench: build
	@if [ -x bench/run.sh ]; then SLUICE_BIN=$${SLUICE_BIN:-$(BUILD_DIR)/sluice} BENCH_OUT=$${BENCH_OUT:-$(BUILD_DIR)/bench} bench/run.sh $(BENCH_ARGS); \
	else echo "bench: no benchmark yet (bench/run.sh is missing)"; fi

# SOAK_SECONDS (default 600) of mixed load with workers flapping and plugins replaced; checks
# for crashes, leaks and requests not accounted for (see README, Testing and hardening).
soak: build
	@SLUICE_BIN=$${SLUICE_BIN:-$(BUILD_DIR)/sluice} SLUICE_PLUGIN_DIR=$${SLUICE_PLUGIN_DIR:-$(BUILD_DIR)/plugins} \
	  SOAK_OUT=$${SOAK_OUT:-$(BUILD_DIR)/soak} node tests/soak/soak.mjs

clean:
	rm -rf $(BUILD_DIR)
