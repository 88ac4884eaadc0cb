// What crossing the host/guest boundary costs with each engine: host->wasm calls of trivial
// exports, wasm->host calls of trivial imports, memory views, VM creation. Not a test; run
// build-dir/tests/unit/wasm/wasm_call_bench.

#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "wasm/wasm_vm.h"

namespace sluice::wasm {
namespace {

std::vector<uint8_t> readModule(const std::string& name) {
  std::ifstream file(std::string(SLUICE_WASM_DIR) + "/" + name + ".wasm", std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + name + ".wasm");
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

std::shared_ptr<const CompiledModule> compileOrDie(const std::string& name) {
  auto compiled = v8Engine().compile(readModule(name), {});
  if (!compiled) throw std::runtime_error(compiled.error());
  return *compiled;
}

std::vector<HostFunction> hostImports() {
  auto nop = [](WasmVm&, std::span<const RawVal>) { return HostResult{}; };
  return {
      {"env",
       "transform",
       {ValType::kI32, ValType::kI32, ValType::kI32},
       {ValType::kI32},
       [](WasmVm& vm, std::span<const RawVal> args) {
         auto in = vm.memory(args[0], args[1]);
         auto out = vm.memory(args[2], args[1]);
         HostResult result;
         if (!in || !out) {
           result.trap = true;
           return result;
         }
         for (size_t i = 0; i < in->size(); ++i) (*out)[i] = (*in)[i] & ~0x20;
         result.value = in->size();
         return result;
       }},
      {"env", "fail", {ValType::kI32}, {}, nop},
      {"env", "nop", {}, {}, nop},
      {"env", "reenter", {ValType::kI32}, {ValType::kI32}, nop},
      {"env", "wide", {ValType::kI64, ValType::kF32, ValType::kF64}, {ValType::kI64}, nop},
  };
}

std::unique_ptr<WasmVm> vmFor(const std::string& name, const std::vector<HostFunction>& imports) {
  auto vm = v8Engine().createVm();
  auto done = vm->instantiate(compileOrDie(name), imports);
  if (!done) throw std::runtime_error(done.error());
  return vm;
}

void callExport(benchmark::State& state, const char* name, std::vector<RawVal> args) {
  auto vm = vmFor("basic", {});
  for (auto _ : state) {
    CallResult result = vm->call(name, args);
    benchmark::DoNotOptimize(result.value);
  }
}

void BM_HostToWasm_Nop(benchmark::State& state) { callExport(state, "nop", {}); }
void BM_HostToWasm_AddI32(benchmark::State& state) { callExport(state, "add", {1, 2}); }
void BM_HostToWasm_AddI64(benchmark::State& state) { callExport(state, "add64", {1, 2}); }
BENCHMARK(BM_HostToWasm_Nop);
BENCHMARK(BM_HostToWasm_AddI32);
BENCHMARK(BM_HostToWasm_AddI64);

// One guest call making `range(0)` calls of a host function that does nothing: the time per
// item is the cost of one wasm->host call.
void BM_WasmToHost_Nop(benchmark::State& state) {
  auto vm = vmFor("host", hostImports());
  const RawVal calls[] = {static_cast<RawVal>(state.range(0))};
  for (auto _ : state) benchmark::DoNotOptimize(vm->call("call_nop", calls).status);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["ns_per_host_call"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_WasmToHost_Nop)->Arg(1000);

// host->wasm->host with two memory views and an 11-byte copy: a typical ABI call.
void BM_RoundTrip_HostReadsAndWritesMemory(benchmark::State& state) {
  auto vm = vmFor("host", hostImports());
  for (auto _ : state) benchmark::DoNotOptimize(vm->call("run_transform", {}).value);
}
BENCHMARK(BM_RoundTrip_HostReadsAndWritesMemory);

// A call followed by a memory view: the view re-reads the buffer, as the guest may have grown
// it. Compare with BM_HostToWasm_Nop.
void BM_HostToWasm_NopThenMemoryView(benchmark::State& state) {
  auto vm = vmFor("basic", {});
  for (auto _ : state) {
    vm->call("nop", {});
    benchmark::DoNotOptimize(vm->memory(64, 16));
  }
}
BENCHMARK(BM_HostToWasm_NopThenMemoryView);

// Three VMs on one thread called in turn, as a plugin chain does: each call switches the
// thread's entered isolate.
void BM_HostToWasm_NopAcrossThreeVms(benchmark::State& state) {
  auto module = compileOrDie("basic");
  std::vector<std::unique_ptr<WasmVm>> vms;
  for (int i = 0; i < 3; ++i) {
    vms.push_back(v8Engine().createVm());
    if (!vms.back()->instantiate(module, {})) throw std::runtime_error("instantiate");
  }
  size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(vms[next]->call("nop", {}).status);
    next = next == 2 ? 0 : next + 1;
  }
}
BENCHMARK(BM_HostToWasm_NopAcrossThreeVms);

void BM_MemoryView_Cached(benchmark::State& state) {
  auto vm = vmFor("basic", {});
  vm->memory(0, 0);
  for (auto _ : state) benchmark::DoNotOptimize(vm->memory(64, 16));
}
BENCHMARK(BM_MemoryView_Cached);

void BM_CreateVmAndInstantiate(benchmark::State& state) {
  auto module = compileOrDie("host");
  const auto imports = hostImports();
  for (auto _ : state) {
    auto vm = v8Engine().createVm();
    benchmark::DoNotOptimize(vm->instantiate(module, imports));
  }
}
BENCHMARK(BM_CreateVmAndInstantiate)->Unit(benchmark::kMicrosecond);

void BM_Compile(benchmark::State& state) {
  const auto bytes = readModule("host");
  for (auto _ : state) benchmark::DoNotOptimize(v8Engine().compile(bytes, {}));
}
BENCHMARK(BM_Compile)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sluice::wasm

BENCHMARK_MAIN();
