// The engine interface, as every engine must implement it. Parameterised over the engines
// compiled in (today V8), as proxy-wasm-cpp-host's tests are.

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wasm/wasm_vm.h"

namespace sluice::wasm {
namespace {

std::vector<uint8_t> readModule(const std::string& name) {
  const std::string path = std::string(SLUICE_WASM_DIR) + "/" + name + ".wasm";
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

RawVal f64Bits(double value) {
  RawVal bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

double f64FromBits(RawVal bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

RawVal f32Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float f32FromBits(RawVal raw) {
  const auto bits = static_cast<uint32_t>(raw);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

using EngineGetter = WasmEngine& (*)();

HostResult returns(RawVal value) {
  HostResult result;
  result.value = value;
  return result;
}

HostResult trap(std::string message) {
  HostResult result;
  result.trap = true;
  result.trap_message = std::move(message);
  return result;
}

class EngineTest : public ::testing::TestWithParam<EngineGetter> {
 public:
  WasmEngine& engine() { return GetParam()(); }

  std::shared_ptr<const CompiledModule> compile(const std::string& name, EngineLimits limits = {}) {
    auto compiled = engine().compile(readModule(name), limits);
    EXPECT_TRUE(compiled) << name << ": " << (compiled ? "" : compiled.error());
    return compiled ? *compiled : nullptr;
  }

  std::unique_ptr<WasmVm> instantiate(const std::string& name,
                                      const std::vector<HostFunction>& imports = {},
                                      EngineLimits limits = {}) {
    auto module = compile(name, limits);
    if (!module) return nullptr;
    auto vm = engine().createVm();
    auto done = vm->instantiate(module, imports);
    EXPECT_TRUE(done) << name << ": " << (done ? "" : done.error());
    return done ? std::move(vm) : nullptr;
  }

  // The imports host.wat needs; `transform` upper-cases a guest string into guest memory.
  std::vector<HostFunction> hostImports() {
    return {
        {"env",
         "transform",
         {ValType::kI32, ValType::kI32, ValType::kI32},
         {ValType::kI32},
         [](WasmVm& vm, std::span<const RawVal> args) {
           auto in = vm.memory(args[0], args[1]);
           auto out = vm.memory(args[2], args[1]);
           if (!in || !out) return trap("bad pointer");
           for (size_t i = 0; i < in->size(); ++i) {
             (*out)[i] = static_cast<uint8_t>(std::toupper((*in)[i]));
           }
           return returns(in->size());
         }},
        {"env",
         "fail",
         {ValType::kI32},
         {},
         [](WasmVm&, std::span<const RawVal> args) {
           return trap("host refused code " + std::to_string(args[0]));
         }},
        {"env", "nop", {}, {}, [](WasmVm&, std::span<const RawVal>) { return HostResult{}; }},
        {"env",
         "reenter",
         {ValType::kI32},
         {ValType::kI32},
         [](WasmVm& vm, std::span<const RawVal> args) {
           RawVal arg = args[0];
           CallResult inner = vm.call("double", std::span<const RawVal>(&arg, 1));
           if (inner.status != CallStatus::kOk) {
             return trap(inner.message);
           }
           return returns(*inner.value + 1);
         }},
        {"env",
         "wide",
         {ValType::kI64, ValType::kF32, ValType::kF64},
         {ValType::kI64},
         [](WasmVm&, std::span<const RawVal> args) {
           const double sum = f32FromBits(args[1]) + f64FromBits(args[2]);
           return returns(args[0] + static_cast<RawVal>(sum));
         }},
    };
  }
};

TEST_P(EngineTest, AddsTwoI32) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {40, 2};
  CallResult result = vm->call("add", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{42});
}

TEST_P(EngineTest, I32WrapsAndIsZeroExtended) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {0xffffffffu, 0};  // -1
  CallResult result = vm->call("add", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{0xffffffffu});
}

TEST_P(EngineTest, PassesI64ArgumentsAndResults) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {0x7fffffffffffffffull, 1};
  CallResult result = vm->call("add64", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{0x8000000000000000ull});
}

TEST_P(EngineTest, PassesFloats) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal f64_args[] = {f64Bits(1.5), f64Bits(-4.0)};
  CallResult product = vm->call("mul_f64", f64_args);
  ASSERT_EQ(product.status, CallStatus::kOk) << product.message;
  EXPECT_EQ(f64FromBits(*product.value), -6.0);
  const RawVal f32_args[] = {f32Bits(2.5f)};
  CallResult negated = vm->call("neg_f32", f32_args);
  ASSERT_EQ(negated.status, CallStatus::kOk) << negated.message;
  EXPECT_EQ(f32FromBits(*negated.value), -2.5f);
}

TEST_P(EngineTest, ListsImportsAndFunctionExports) {
  auto module = compile("host");
  ASSERT_TRUE(module);
  ASSERT_EQ(module->imports().size(), 5u);
  EXPECT_EQ(module->imports()[0].module, "env");
  EXPECT_EQ(module->imports()[0].name, "transform");
  EXPECT_TRUE(module->imports()[0].is_function);
  const auto& exports = module->functionExports();
  EXPECT_NE(std::find(exports.begin(), exports.end(), "run_transform"), exports.end());
  EXPECT_EQ(std::find(exports.begin(), exports.end(), "memory"), exports.end());
}

TEST_P(EngineTest, KeepsGuestStateBetweenCalls) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->call("increment", {}).value, RawVal{1});
  EXPECT_EQ(vm->call("increment", {}).value, RawVal{2});
}

TEST_P(EngineTest, HostFunctionReadsAndWritesGuestMemory) {
  auto vm = instantiate("host", hostImports());
  ASSERT_TRUE(vm);
  CallResult result = vm->call("run_transform", {});
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{11});
  auto out = vm->memory(64, 11);
  ASSERT_TRUE(out);
  EXPECT_EQ(std::string(out->begin(), out->end()), "HELLO, WASM");
}

TEST_P(EngineTest, HostFunctionTakesI64AndFloats) {
  auto vm = instantiate("host", hostImports());
  ASSERT_TRUE(vm);
  const RawVal args[] = {1ull << 40, f32Bits(1.5f), f64Bits(2.5)};
  CallResult result = vm->call("call_wide", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{(1ull << 40) + 4});
}

TEST_P(EngineTest, HostFunctionMayCallBackIntoTheGuest) {
  auto vm = instantiate("host", hostImports());
  ASSERT_TRUE(vm);
  const RawVal args[] = {20};
  CallResult result = vm->call("call_reenter", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{41});
}

TEST_P(EngineTest, HostTrapEndsTheCallWithItsMessage) {
  auto vm = instantiate("host", hostImports());
  ASSERT_TRUE(vm);
  CallResult result = vm->call("call_fail", {});
  EXPECT_EQ(result.status, CallStatus::kTrap);
  EXPECT_EQ(result.message, "host refused code 7");
  EXPECT_FALSE(result.value);
  EXPECT_EQ(vm->call("run_transform", {}).status, CallStatus::kOk);
}

TEST_P(EngineTest, HostExceptionBecomesATrap) {
  auto imports = hostImports();
  imports[2].fn = [](WasmVm&, std::span<const RawVal>) -> HostResult {
    throw std::runtime_error("boom");
  };
  auto vm = instantiate("host", imports);
  ASSERT_TRUE(vm);
  const RawVal args[] = {3};
  CallResult result = vm->call("call_nop", args);
  EXPECT_EQ(result.status, CallStatus::kTrap);
  EXPECT_NE(result.message.find("env.nop threw: boom"), std::string::npos) << result.message;
}

TEST_P(EngineTest, MissingImportIsAnErrorNamingIt) {
  auto module = compile("host");
  ASSERT_TRUE(module);
  auto imports = hostImports();
  imports.erase(imports.begin());  // no env.transform
  auto vm = engine().createVm();
  auto done = vm->instantiate(module, imports);
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().find("env.transform"), std::string::npos) << done.error();
}

TEST_P(EngineTest, ImportWithAnotherSignatureIsAnError) {
  auto module = compile("host");
  ASSERT_TRUE(module);
  auto imports = hostImports();
  imports[2].params = {ValType::kI32};  // env.nop takes nothing
  auto vm = engine().createVm();
  auto done = vm->instantiate(module, imports);
  ASSERT_FALSE(done);
  EXPECT_NE(
      done.error().find("env.nop: the module expects () -> nil, the host provides (i32) -> nil"),
      std::string::npos)
      << done.error();
}

TEST_P(EngineTest, TrapIsReportedAndTheVmStillWorks) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  CallResult trapped = vm->call("trap_now", {});
  EXPECT_EQ(trapped.status, CallStatus::kTrap);
  EXPECT_NE(trapped.message.find("unreachable"), std::string::npos) << trapped.message;
  const RawVal args[] = {1, 2};
  CallResult next = vm->call("add", args);
  ASSERT_EQ(next.status, CallStatus::kOk) << next.message;
  EXPECT_EQ(next.value, RawVal{3});
}

TEST_P(EngineTest, DivisionByZeroTraps) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {1, 0};
  EXPECT_EQ(vm->call("divide", args).status, CallStatus::kTrap);
}

TEST_P(EngineTest, OutOfBoundsLoadTraps) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {0xfffffff0u};
  CallResult result = vm->call("load", args);
  EXPECT_EQ(result.status, CallStatus::kTrap);
  EXPECT_NE(result.message.find("out of bounds"), std::string::npos) << result.message;
}

TEST_P(EngineTest, DeepRecursionTrapsWithoutCrashing) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {0};
  CallResult result = vm->call("recurse", args);
  EXPECT_EQ(result.status, CallStatus::kTrap);
  EXPECT_FALSE(result.message.empty());
  EXPECT_EQ(vm->call("increment", {}).status, CallStatus::kOk);
}

TEST_P(EngineTest, DeepRecursionTrapsOnASmallThreadStack) {
  // 256 KiB: less than V8's default guest stack; must trap, not fault.
  CallResult result;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  struct Job {
    EngineTest* test;
    CallResult* result;
  } job{this, &result};
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  auto* job = static_cast<Job*>(arg);
                  auto vm = job->test->instantiate("basic");
                  if (!vm) return nullptr;
                  const RawVal args[] = {0};
                  *job->result = vm->call("recurse", args);
                  return nullptr;
                },
                &job),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  EXPECT_EQ(result.status, CallStatus::kTrap) << result.message;
}

TEST_P(EngineTest, TerminateStopsAnInfiniteLoopAndTheVmStillWorks) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  std::thread watchdog([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vm->terminate();
  });
  const auto start = std::chrono::steady_clock::now();
  CallResult result = vm->call("loop_forever", {});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  watchdog.join();
  EXPECT_EQ(result.status, CallStatus::kTerminated) << result.message;
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  const RawVal args[] = {2, 3};
  CallResult next = vm->call("add", args);
  ASSERT_EQ(next.status, CallStatus::kOk) << next.message;
  EXPECT_EQ(next.value, RawVal{5});
}

TEST_P(EngineTest, TerminateInsideANestedCallEndsTheOuterCall) {
  auto imports = hostImports();
  imports[3].fn = [](WasmVm& vm, std::span<const RawVal>) {
    CallResult inner = vm.call("spin", {});
    // The host sees the inner call end; the outer one must end too.
    return returns(inner.status == CallStatus::kTerminated ? 1u : 0u);
  };
  auto vm = instantiate("host", imports);
  ASSERT_TRUE(vm);
  std::thread watchdog([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vm->terminate();
  });
  const RawVal args[] = {1};
  CallResult result = vm->call("call_reenter", args);
  watchdog.join();
  EXPECT_EQ(result.status, CallStatus::kTerminated) << result.message;
  EXPECT_EQ(vm->call("run_transform", {}).status, CallStatus::kOk);
}

TEST_P(EngineTest, TerminateWhenIdleDoesNotAffectTheNextCall) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  vm->terminate();
  const RawVal args[] = {2, 3};
  CallResult result = vm->call("add", args);
  ASSERT_EQ(result.status, CallStatus::kOk) << result.message;
  EXPECT_EQ(result.value, RawVal{5});
}

TEST_P(EngineTest, ManyTerminatesRacingWithShortCallsNeverLeakIntoLaterCalls) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  std::atomic<bool> stop = false;
  std::thread watchdog([&] {
    while (!stop) vm->terminate();
  });
  int terminated = 0;
  for (int i = 0; i < 20000; ++i) {
    CallResult result = vm->call("increment", {});
    ASSERT_NE(result.status, CallStatus::kTrap) << result.message;
    if (result.status == CallStatus::kTerminated) ++terminated;
  }
  stop = true;
  watchdog.join();
  // With the watchdog gone every call completes.
  for (int i = 0; i < 100; ++i) ASSERT_EQ(vm->call("increment", {}).status, CallStatus::kOk);
}

TEST_P(EngineTest, UnknownExportIsMissing) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  EXPECT_FALSE(vm->hasExport("nope"));
  EXPECT_TRUE(vm->hasExport("add"));
  EXPECT_EQ(vm->call("nope", {}).status, CallStatus::kMissing);
}

TEST_P(EngineTest, WrongArgumentCountIsMissing) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal args[] = {1};
  CallResult result = vm->call("add", args);
  EXPECT_EQ(result.status, CallStatus::kMissing);
  EXPECT_NE(result.message.find("takes 2 arguments"), std::string::npos) << result.message;
}

TEST_P(EngineTest, MultiValueExportCannotBeCalled) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  CallResult result = vm->call("pair", {});
  EXPECT_EQ(result.status, CallStatus::kMissing);
  EXPECT_NE(result.message.find("() -> (i32, i32)"), std::string::npos) << result.message;
}

TEST_P(EngineTest, MemoryViewIsBoundsChecked) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->memorySize(), 65536u);
  EXPECT_TRUE(vm->memory(0, 65536));
  EXPECT_TRUE(vm->memory(65536, 0));
  EXPECT_FALSE(vm->memory(65536, 1));
  EXPECT_FALSE(vm->memory(1, 65536));
  EXPECT_FALSE(vm->memory(UINT64_MAX, 2));
  EXPECT_FALSE(vm->memory(2, UINT64_MAX));
}

TEST_P(EngineTest, MemoryViewFollowsGrowth) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  const RawVal store_args[] = {100, 0x01020304};
  ASSERT_EQ(vm->call("store", store_args).status, CallStatus::kOk);
  auto before = vm->memory(100, 4);
  ASSERT_TRUE(before);
  EXPECT_EQ((*before)[0], 0x04);
  const RawVal grow_args[] = {2};
  CallResult grown = vm->call("grow", grow_args);
  ASSERT_EQ(grown.status, CallStatus::kOk) << grown.message;
  EXPECT_EQ(grown.value, RawVal{1});  // the old size in pages
  EXPECT_EQ(vm->memorySize(), 3u * 65536);
  auto high = vm->memory(3 * 65536 - 4, 4);
  ASSERT_TRUE(high);
  std::memcpy(high->data(), "\x2a\0\0\0", 4);
  const RawVal load_args[] = {3 * 65536 - 4};
  EXPECT_EQ(vm->call("load", load_args).value, RawVal{42});
  EXPECT_EQ((*vm->memory(100, 4))[0], 0x04);
}

TEST_P(EngineTest, MemoryCapLimitsGrowth) {
  EngineLimits limits;
  limits.max_memory_pages = 10;
  auto vm = instantiate("memory_cap", {}, limits);
  ASSERT_TRUE(vm);
  const RawVal too_far[] = {9};  // 2 + 9 = 11 > 10
  EXPECT_EQ(vm->call("grow", too_far).value, RawVal{0xffffffffu});
  const RawVal huge[] = {65535};
  EXPECT_EQ(vm->call("grow", huge).value, RawVal{0xffffffffu});
  const RawVal up_to_cap[] = {8};
  EXPECT_EQ(vm->call("grow", up_to_cap).value, RawVal{2});
  EXPECT_EQ(vm->call("size", {}).value, RawVal{10});
  const RawVal one_more[] = {1};
  EXPECT_EQ(vm->call("grow", one_more).value, RawVal{0xffffffffu});
  EXPECT_EQ(vm->memorySize(), 10u * 65536);
}

TEST_P(EngineTest, MemoryCapAppliesToModulesDeclaringNoMaximum) {
  EngineLimits limits;
  limits.max_memory_pages = 4;
  auto vm = instantiate("memory_unbounded", {}, limits);
  ASSERT_TRUE(vm);
  const RawVal four[] = {4};
  EXPECT_EQ(vm->call("grow", four).value, RawVal{0xffffffffu});
  const RawVal three[] = {3};
  EXPECT_EQ(vm->call("grow", three).value, RawVal{1});
}

TEST_P(EngineTest, ModuleNeedingMoreMemoryThanTheCapIsRejected) {
  EngineLimits limits;
  limits.max_memory_pages = 10;
  auto compiled = engine().compile(readModule("memory_big_min"), limits);
  ASSERT_FALSE(compiled);
  EXPECT_EQ(compiled.error(), "module needs 20 pages of memory, the limit is 10");
}

TEST_P(EngineTest, ImportedMemoryIsProvidedWithTheCappedLimits) {
  EngineLimits limits;
  limits.max_memory_pages = 5;
  auto vm = instantiate("memory_imported", {}, limits);
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->memorySize(), 65536u);
  const RawVal five[] = {5};
  EXPECT_EQ(vm->call("grow", five).value, RawVal{0xffffffffu});
  const RawVal four[] = {4};
  EXPECT_EQ(vm->call("grow", four).value, RawVal{1});
  const RawVal store_args[] = {5 * 65536 - 4, 7};
  ASSERT_EQ(vm->call("store", store_args).status, CallStatus::kOk);
  EXPECT_EQ((*vm->memory(5 * 65536 - 4, 1))[0], 7);
}

TEST_P(EngineTest, OversizedModuleIsRejected) {
  EngineLimits limits;
  limits.max_module_bytes = 100;
  auto compiled = engine().compile(readModule("basic"), limits);
  ASSERT_FALSE(compiled);
  EXPECT_NE(compiled.error().find("the limit is 100"), std::string::npos) << compiled.error();
}

TEST_P(EngineTest, NotWasmIsAClearError) {
  const std::string text = "(module) is text, not a binary module";
  auto compiled =
      engine().compile(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), {});
  ASSERT_FALSE(compiled);
  EXPECT_NE(compiled.error().find("not a WebAssembly module"), std::string::npos)
      << compiled.error();
  EXPECT_FALSE(engine().compile({}, {}));
}

TEST_P(EngineTest, InvalidFunctionBodyIsACompileError) {
  // A valid header and sections, but the body of add is i32.add with nothing on the stack.
  const std::vector<uint8_t> bytes = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,  // header
      0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f,        // type: () -> i32
      0x03, 0x02, 0x01, 0x00,                          // function 0: type 0
      0x0a, 0x05, 0x01, 0x03, 0x00, 0x6a, 0x0b,        // code: i32.add end
  };
  auto compiled = engine().compile(bytes, {});
  ASSERT_FALSE(compiled);
  EXPECT_NE(compiled.error().find("invalid module"), std::string::npos) << compiled.error();
}

TEST_P(EngineTest, FailingStartFunctionFailsInstantiation) {
  auto module = compile("start_trap");
  ASSERT_TRUE(module);
  auto vm = engine().createVm();
  auto done = vm->instantiate(module, {});
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().find("unreachable"), std::string::npos) << done.error();
}

TEST_P(EngineTest, OneCompiledModuleServesVmsOnManyThreads) {
  auto module = compile("basic");
  ASSERT_TRUE(module);
  std::vector<std::thread> threads;
  std::atomic<int> ok = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto vm = engine().createVm();
      if (!vm->instantiate(module, {})) return;
      for (int i = 0; i < 1000; ++i) {
        const RawVal args[] = {RawVal(t), RawVal(i)};
        if (vm->call("add", args).value != RawVal(t + i)) return;
      }
      ++ok;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, 4);
}

TEST_P(EngineTest, ManyVmsOnOneThreadStayIndependent) {
  auto module = compile("basic");
  ASSERT_TRUE(module);
  std::vector<std::unique_ptr<WasmVm>> vms;
  for (int i = 0; i < 3; ++i) {
    vms.push_back(engine().createVm());
    ASSERT_TRUE(vms.back()->instantiate(module, {}));
  }
  for (int round = 1; round <= 3; ++round) {
    for (auto& vm : vms) EXPECT_EQ(vm->call("increment", {}).value, RawVal(round));
  }
}

TEST_P(EngineTest, VmUsedOnAFinishedThreadCanBeDestroyedElsewhere) {
  // A worker builds and uses its instances; whoever joins the worker destroys them.
  std::unique_ptr<WasmVm> vm;
  std::thread worker([&] {
    vm = instantiate("basic");
    if (vm) vm->call("increment", {});
  });
  worker.join();
  ASSERT_TRUE(vm);
  vm.reset();
  auto here = instantiate("basic");
  ASSERT_TRUE(here);
  EXPECT_EQ(here->call("increment", {}).value, RawVal{1});
}

TEST_P(EngineTest, VmDestroyedWhileItsThreadRunsLeaksInsteadOfCrashing) {
  // A misuse: the engine logs it and leaks the isolate; both threads go on working.
  std::unique_ptr<WasmVm> vm;
  std::mutex mutex;
  std::condition_variable changed;
  int stage = 0;
  CallResult after;
  std::thread worker([&] {
    vm = instantiate("basic");
    if (vm) vm->call("increment", {});
    std::unique_lock lock(mutex);
    stage = 1;
    changed.notify_all();
    changed.wait(lock, [&] { return stage == 2; });
    auto next = instantiate("basic");
    if (next) after = next->call("increment", {});
  });
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return stage == 1; });
    vm.reset();
    stage = 2;
    changed.notify_all();
  }
  worker.join();
  EXPECT_EQ(after.status, CallStatus::kOk) << after.message;
  EXPECT_EQ(after.value, RawVal{1});
}

TEST_P(EngineTest, CallFromAnotherThreadIsRefused) {
  auto vm = instantiate("basic");
  ASSERT_TRUE(vm);
  CallResult result;
  std::thread other([&] { result = vm->call("increment", {}); });
  other.join();
  EXPECT_EQ(result.status, CallStatus::kTrap);
  EXPECT_NE(result.message.find("thread"), std::string::npos) << result.message;
  EXPECT_EQ(vm->call("increment", {}).value, RawVal{1});
}

TEST_P(EngineTest, InstantiatingTwiceIsAnError) {
  auto module = compile("basic");
  ASSERT_TRUE(module);
  auto vm = engine().createVm();
  ASSERT_TRUE(vm->instantiate(module, {}));
  EXPECT_FALSE(vm->instantiate(module, {}));
}

TEST_P(EngineTest, VmWithoutModuleHasNoMemoryAndNoExports) {
  auto vm = engine().createVm();
  EXPECT_EQ(vm->memorySize(), 0u);
  EXPECT_FALSE(vm->memory(0, 1));
  EXPECT_TRUE(vm->memory(0, 0));
  EXPECT_EQ(vm->call("add", {}).status, CallStatus::kMissing);
  vm->terminate();
}

INSTANTIATE_TEST_SUITE_P(Engines, EngineTest, ::testing::Values(&v8Engine),
                         [](const ::testing::TestParamInfo<EngineGetter>& info) {
                           return std::string(info.param().name());
                         });

}  // namespace
}  // namespace sluice::wasm
