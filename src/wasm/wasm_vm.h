#pragma once

// The engine interface of the plugin host. Nothing here names an engine type: the
// proxy-wasm ABI layer (abi/, context) is written against it, and each engine lives in one
// .cc file behind a factory function (v8_engine.cc: v8Engine()). The engine-independent
// reader of module bytes (imports, exports, signatures, memory caps) is module_bytes.h.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace sluice::wasm {

enum class ValType : uint8_t { kI32, kI64, kF32, kF64 };

// Arguments and results travel as raw 64-bit patterns: i32 in the low bits (zero-extended),
// i64 as is, f32/f64 as their IEEE bits.
using RawVal = uint64_t;

class WasmVm;

// What a host function returns: results (as many as its signature has), or a trap that
// ends the guest call with `trap_message`.
struct HostResult {
  RawVal value = 0;  // the single result, when the signature has one
  bool trap = false;
  std::string trap_message;
};

// A function the guest imports, implemented by the host. `fn` runs on the VM's thread,
// inside the guest call; it may read and write guest memory through `vm`, and call the
// guest again (vm.call, e.g. its malloc). Its signature must equal the one the guest
// declares, or instantiate() fails. An exception escaping `fn` becomes a trap. A trap ends
// the whole guest call even if the guest catches it (wasm exception handling).
struct HostFunction {
  std::string module;  // import module, e.g. "env" or "wasi_snapshot_preview1"
  std::string name;
  std::vector<ValType> params;
  std::vector<ValType> results;  // zero or one
  std::function<HostResult(WasmVm& vm, std::span<const RawVal> args)> fn;
};

struct ImportDesc {
  std::string module;
  std::string name;
  bool is_function = true;  // else a memory (the engine provides it), a table or a global
};

// A module compiled once per process: immutable, shareable by every thread's VM.
class CompiledModule {
 public:
  virtual ~CompiledModule();
  // The WasmEngine::name() of the engine that compiled it: a VM takes only its own engine's
  // modules (checked without RTTI, which V8 is built without).
  virtual std::string_view engine() const = 0;
  virtual const std::vector<ImportDesc>& imports() const = 0;
  virtual const std::vector<std::string>& functionExports() const = 0;
};

enum class CallStatus : uint8_t {
  kOk,
  kTrap,        // the guest trapped (unreachable, out-of-bounds, stack overflow, host trap)
  kTerminated,  // terminate() was called: the watchdog's deadline passed
  kMissing,     // no such export, or wrong signature
};

struct CallResult {
  CallStatus status = CallStatus::kOk;
  std::optional<RawVal> value;  // the result when the function returns one
  std::string message;          // what went wrong, for logs
};

// One instance of one module, owned by one thread (V8: its own isolate). Not thread-safe,
// except terminate(). Created, called and destroyed on that thread; it may also be destroyed
// elsewhere once that thread has ended (a worker's instances, destroyed by whoever joined it).
// A call from another thread fails with kTrap.
class WasmVm {
 public:
  virtual ~WasmVm();

  // Instantiates `module` with `imports` (matched by module + name). An import the guest
  // needs but `imports` lacks is an error naming it (all of them, with signatures); so is a
  // signature that differs. An imported memory is created by the engine with the module's
  // (capped) limits. Runs the start function, which terminate() can stop. Called once per VM.
  virtual tl::expected<void, std::string> instantiate(std::shared_ptr<const CompiledModule> module,
                                                      const std::vector<HostFunction>& imports) = 0;

  // Whether the module exports a function of that name.
  virtual bool hasExport(std::string_view name) const = 0;

  // Calls an exported function. Never throws; a trap or termination is reported in the result
  // and leaves the VM usable for further calls (the ABI layer may still choose to rebuild it).
  // kMissing also when `args` does not match the export's parameter count, or the export's
  // signature cannot cross the boundary (multiple results, v128, references).
  virtual CallResult call(std::string_view name, std::span<const RawVal> args) = 0;

  // Bounds-checked view of linear memory: nullopt when [offset, offset+size) is outside it.
  // Valid until the guest runs again (memory may grow and move).
  virtual std::optional<std::span<uint8_t>> memory(uint64_t offset, uint64_t size) = 0;

  // Current size of linear memory in bytes (0 when the module has none).
  virtual uint64_t memorySize() const = 0;

  // Thread-safe: makes the call running on the VM's thread return kTerminated as soon as
  // possible (nested calls included); a no-op when nothing runs. A terminate() that races
  // with the end of a call never reaches the next one, unless that one has already begun: the
  // caller (the watchdog) must stop targeting a call once it returns. The VM must outlive
  // the terminate() call.
  virtual void terminate() = 0;
};

struct EngineLimits {
  uint32_t max_memory_pages = 1024;  // 64 KiB pages: 64 MiB
  uint64_t max_module_bytes = uint64_t{32} * 1024 * 1024;
};

class WasmEngine {
 public:
  virtual ~WasmEngine();

  virtual std::string_view name() const = 0;

  // Validates and compiles (thread-safe). Errors say what is wrong with the bytes. A module
  // whose declared or imported memory exceeds `limits.max_memory_pages` is rejected when its
  // minimum exceeds it, and its maximum is capped to it otherwise.
  virtual tl::expected<std::shared_ptr<const CompiledModule>, std::string> compile(
      std::span<const uint8_t> bytes, const EngineLimits& limits) = 0;

  // A new VM for the calling thread.
  virtual std::unique_ptr<WasmVm> createVm() = 0;
};

// The process-wide V8 engine (V8 is initialised on first use, once).
WasmEngine& v8Engine();

}  // namespace sluice::wasm
