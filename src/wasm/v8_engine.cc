// The V8 engine behind WasmEngine/WasmVm, through V8's public JS API (the WebAssembly C API
// that Envoy uses is not exported by libnode). V8 types appear in this file only.

#include <libplatform/libplatform.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <v8.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "wasm/module_bytes.h"
#include "wasm/wasm_vm.h"

namespace sluice::wasm {
namespace {

// V8 flags, set once before initialisation: none, V8 10.2's defaults fit. Measured on a
// 510 KB module built by clang (3000 functions): Liftoff compiles it in ~30-45 ms and dynamic
// tiering recompiles the hot functions with TurboFan in the background, for every VM of the
// module at once; `--no-liftoff` (proxy-wasm-cpp-host's choice on older V8) took 120-300 ms
// to compile for the same steady-state speed, `--no-wasm-dynamic-tiering` only added
// background work. `--no-wasm-async-compilation` is moot (only the synchronous API is used)
// and `--no-expose-wasm` impossible (instances come from WebAssembly.Instance).
// SLUICE_V8_FLAGS in the environment adds flags, for experiments.
constexpr char kV8Flags[] = "";

// Heap for the JS side of a VM (wrappers, BigInts, exceptions); linear memory is outside it.
constexpr size_t kMaxHeapBytes = 64u << 20;
// Stack the guest may use; V8 throws RangeError (a trap) past it.
constexpr size_t kGuestStackBytes = 984u << 10;  // V8's default --stack-size
// Host functions and exports take their arguments in a fixed array up to this count.
constexpr size_t kInlineArgs = 8;
// Foreground tasks V8 posts to an isolate (GC, wasm code logging) run when we pump its
// message loop; once every this many top-level calls keeps the queue short at no cost.
constexpr uint32_t kPumpEveryCalls = 256;

void onFatalError(const char* location, const char* message) {
  spdlog::critical("V8 fatal error in {}: {}", location ? location : "?", message ? message : "?");
}

void onOomError(const char* location, bool is_heap_oom) {
  spdlog::critical("V8 out of memory ({}) in {}", is_heap_oom ? "JS heap" : "process",
                   location ? location : "?");
}

// V8 for the whole process: initialised on first use, never torn down (V8 cannot be
// re-initialised, and tearing it down at exit races with threads still holding VMs).
class V8Process {
 public:
  static V8Process& get() {
    static V8Process* process = new V8Process();
    return *process;
  }

  v8::Platform* platform() const { return platform_.get(); }

  // A new isolate with its own allocator and our error handlers.
  v8::Isolate* newIsolate(v8::ArrayBuffer::Allocator* allocator) {
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = allocator;
    params.constraints.ConfigureDefaultsFromHeapSize(0, kMaxHeapBytes);
    v8::Isolate* isolate = v8::Isolate::New(params);
    isolate->SetFatalErrorHandler(onFatalError);
    isolate->SetOOMErrorHandler(onOomError);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    limitStackToThread(isolate);
    return isolate;
  }

  void disposeIsolate(v8::Isolate* isolate) {
    v8::platform::NotifyIsolateShutdown(platform_.get(), isolate);
    isolate->Dispose();
  }

 private:
  V8Process() {
    v8::V8::SetFlagsFromString(kV8Flags);
    // For experiments and for operators who know V8 (e.g. "--no-liftoff"), without a rebuild.
    if (const char* extra = std::getenv("SLUICE_V8_FLAGS")) v8::V8::SetFlagsFromString(extra);
    platform_ = v8::platform::NewDefaultPlatform();
    v8::V8::InitializePlatform(platform_.get());
    // Out-of-bounds memory accesses are caught by V8's signal handler on guard pages
    // instead of an explicit bounds check per load and store.
    if (!v8::V8::EnableWebAssemblyTrapHandler(true)) {
      spdlog::warn("V8: trap-based bounds checks unavailable, using explicit checks");
    }
    v8::V8::Initialize();
  }

  // V8 assumes --stack-size (984 KiB) below the point the isolate is created at. On a thread
  // with a smaller stack, lower the limit so deep guest recursion traps instead of faulting.
  static void limitStackToThread(v8::Isolate* isolate) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void* stack_low = nullptr;
    size_t stack_size = 0;
    const bool ok = pthread_attr_getstack(&attr, &stack_low, &stack_size) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) return;
    const auto here = reinterpret_cast<uintptr_t>(&attr);
    const auto low = reinterpret_cast<uintptr_t>(stack_low);
    constexpr uintptr_t kMargin = 64u << 10;  // for the host frames below the guest's
    if (here > low + kMargin && here - low - kMargin < kGuestStackBytes) {
      isolate->SetStackLimit(low + kMargin);
    }
  }

  std::unique_ptr<v8::Platform> platform_;
};

v8::Local<v8::String> v8String(v8::Isolate* isolate, std::string_view text) {
  return v8::String::NewFromUtf8(isolate, text.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(text.size()))
      .ToLocalChecked();
}

// "RuntimeError: unreachable (in trap_now)": the exception, and the function it came from
// (from the error's stack, which names wasm functions from the module's name section).
std::string describeException(v8::Isolate* isolate, const v8::TryCatch& caught) {
  if (!caught.HasCaught()) return "unknown error";
  v8::TryCatch nested(isolate);  // converting to a string may throw in turn
  v8::Local<v8::Value> exception = caught.Exception();
  v8::String::Utf8Value text(isolate, exception);
  std::string message = *text != nullptr ? std::string(*text, text.length()) : "exception";
  v8::Local<v8::Value> stack;
  if (!caught.StackTrace(isolate->GetCurrentContext()).ToLocal(&stack) || !stack->IsString()) {
    return message;
  }
  v8::String::Utf8Value stack_text(isolate, stack);
  if (*stack_text == nullptr) return message;
  const std::string_view trace(*stack_text, stack_text.length());
  constexpr std::string_view kFrame = "\n    at ";
  const size_t at = trace.find(kFrame);
  if (at == std::string_view::npos) return message;
  std::string_view frame = trace.substr(at + kFrame.size());
  frame = frame.substr(0, std::min(frame.find('\n'), frame.find(" (")));
  if (!frame.empty()) message += " (in " + std::string(frame) + ")";
  return message;
}

v8::Local<v8::Value> toV8(v8::Isolate* isolate, ValType type, RawVal raw) {
  switch (type) {
    case ValType::kI32:
      return v8::Integer::New(isolate, static_cast<int32_t>(static_cast<uint32_t>(raw)));
    case ValType::kI64:
      return v8::BigInt::New(isolate, static_cast<int64_t>(raw));
    case ValType::kF32: {
      float value;
      const auto bits = static_cast<uint32_t>(raw);
      std::memcpy(&value, &bits, sizeof value);
      return v8::Number::New(isolate, value);
    }
    case ValType::kF64: {
      double value;
      std::memcpy(&value, &raw, sizeof value);
      return v8::Number::New(isolate, value);
    }
  }
  return v8::Undefined(isolate);
}

// The wasm<->JS wrappers hand over exactly the declared types (i32 as an int32 Number, i64 as
// a BigInt, floats as Numbers); anything else reads as 0.
RawVal fromV8(v8::Local<v8::Value> value, ValType type) {
  switch (type) {
    case ValType::kI32:
      if (value->IsInt32()) return static_cast<uint32_t>(value.As<v8::Int32>()->Value());
      return 0;
    case ValType::kI64:
      if (value->IsBigInt()) return static_cast<uint64_t>(value.As<v8::BigInt>()->Int64Value());
      return 0;
    case ValType::kF32: {
      if (!value->IsNumber()) return 0;
      const auto single = static_cast<float>(value.As<v8::Number>()->Value());
      uint32_t bits;
      std::memcpy(&bits, &single, sizeof bits);
      return bits;
    }
    case ValType::kF64: {
      if (!value->IsNumber()) return 0;
      const double number = value.As<v8::Number>()->Value();
      RawVal bits;
      std::memcpy(&bits, &number, sizeof bits);
      return bits;
    }
  }
  return 0;
}

std::optional<std::vector<ValType>> hostTypes(const std::vector<WireType>& types) {
  std::vector<ValType> out;
  out.reserve(types.size());
  for (WireType t : types) {
    auto host = hostValType(t);
    if (!host) return std::nullopt;
    out.push_back(*host);
  }
  return out;
}

constexpr std::string_view kEngineName = "v8";

class V8CompiledModule final : public CompiledModule {
 public:
  V8CompiledModule(v8::CompiledWasmModule compiled, ModuleInfo info)
      : compiled_(std::move(compiled)), info_(std::move(info)) {
    for (const ModuleImport& import : info_.imports) {
      imports_.push_back({import.module, import.name, import.kind == ExternalKind::kFunction});
    }
    for (const ModuleExport& entry : info_.exports) {
      if (entry.kind == ExternalKind::kFunction) function_exports_.push_back(entry.name);
    }
  }

  std::string_view engine() const override { return kEngineName; }
  const std::vector<ImportDesc>& imports() const override { return imports_; }
  const std::vector<std::string>& functionExports() const override { return function_exports_; }

  const v8::CompiledWasmModule& compiled() const { return compiled_; }
  // Parsed from the bytes V8 compiled, i.e. with memory limits already capped.
  const ModuleInfo& info() const { return info_; }

 private:
  v8::CompiledWasmModule compiled_;
  ModuleInfo info_;
  std::vector<ImportDesc> imports_;
  std::vector<std::string> function_exports_;
};

// Exported functions by name, looked up on every call: open addressing over a power-of-two
// table, because std::unordered_map's division by a prime bucket count alone cost a tenth of
// a trivial call. Built once per instance.
template <typename T>
class NameTable {
 public:
  void assign(std::vector<std::pair<std::string, T>> entries) {
    entries_ = std::move(entries);
    size_t size = 8;
    while (size < entries_.size() * 2) size *= 2;
    slots_.assign(size, 0);
    mask_ = size - 1;
    for (uint32_t i = 0; i < entries_.size(); ++i) {
      size_t slot = hash(entries_[i].first) & mask_;
      while (slots_[slot] != 0) slot = (slot + 1) & mask_;
      slots_[slot] = i + 1;
    }
  }

  T* find(std::string_view name) {
    if (entries_.empty()) return nullptr;
    for (size_t slot = hash(name) & mask_;; slot = (slot + 1) & mask_) {
      const uint32_t entry = slots_[slot];
      if (entry == 0) return nullptr;
      if (entries_[entry - 1].first == name) return &entries_[entry - 1].second;
    }
  }

  const T* find(std::string_view name) const { return const_cast<NameTable*>(this)->find(name); }

  void clear() {
    entries_.clear();
    slots_.clear();
  }

 private:
  static size_t hash(std::string_view name) { return std::hash<std::string_view>{}(name); }

  std::vector<std::pair<std::string, T>> entries_;
  std::vector<uint32_t> slots_;  // index into entries_ plus one; 0 is empty
  size_t mask_ = 0;
};

class V8Vm final : public WasmVm {
 public:
  V8Vm()
      : allocator_(v8::ArrayBuffer::Allocator::NewDefaultAllocator()),
        isolate_(V8Process::get().newIsolate(allocator_.get())),
        home_thread_(std::this_thread::get_id()) {
    v8::Isolate::Scope isolate_scope(isolate_);
    v8::HandleScope handle_scope(isolate_);
    context_.Reset(isolate_, v8::Context::New(isolate_));
  }

  ~V8Vm() override {
    while (terminators_.load() != 0) std::this_thread::yield();
    if (entered_here_.isolate == isolate_) entered_here_.leave();
    // Every handle goes before the isolate it points into.
    exports_.clear();
    memory_object_.Reset();
    instance_.Reset();
    context_.Reset();
    if (isolate_->IsInUse()) {
      // Still entered by its thread, which is alive (it exits the isolate when it ends):
      // disposing it would abort, exiting it from here would corrupt V8's per-thread state.
      // Leaking is the safe way out.
      spdlog::critical(
          "wasm VM destroyed on another thread while its own thread still runs; its isolate "
          "leaks");
      static_cast<void>(allocator_.release());  // leaks with the isolate
      return;
    }
    V8Process::get().disposeIsolate(isolate_);
  }

  V8Vm(const V8Vm&) = delete;
  V8Vm& operator=(const V8Vm&) = delete;

  tl::expected<void, std::string> instantiate(std::shared_ptr<const CompiledModule> module,
                                              const std::vector<HostFunction>& imports) override;

  bool hasExport(std::string_view name) const override { return exports_.find(name) != nullptr; }

  CallResult call(std::string_view name, std::span<const RawVal> args) override;

  std::optional<std::span<uint8_t>> memory(uint64_t offset, uint64_t size) override {
    if (memory_stale_) refreshMemory();
    if (offset > memory_size_ || size > memory_size_ - offset) return std::nullopt;
    return std::span<uint8_t>(memory_base_ + offset, size);
  }

  uint64_t memorySize() const override {
    if (memory_stale_) refreshMemory();
    return memory_size_;
  }

  // With leaveRunning(), a Dekker-style handshake without a lock on the call path: either
  // this sees running_ false and leaves the isolate alone, or the call's end sees
  // terminators_ > 0, waits for it, and cancels the termination it requested.
  void terminate() override {
    terminators_.fetch_add(1);
    if (running_.load()) {
      terminate_requested_.store(true);
      isolate_->TerminateExecution();
    }
    terminators_.fetch_sub(1);
  }

 private:
  // A host function as the guest imports it; V8 hands its address back to the callback.
  struct HostBinding {
    V8Vm* vm;
    HostFunction function;
  };

  struct ExportSlot {
    v8::Global<v8::Function> function;
    std::vector<ValType> params;
    std::optional<ValType> result;
    std::string unsupported;  // why it cannot be called from the host, if it cannot
  };

  // Brackets guest code: the outermost one marks the VM running for terminate(), and every
  // one keeps a host trap raised in a nested call from leaking into the call around it.
  class RunScope {
   public:
    explicit RunScope(V8Vm& vm) : vm_(vm), outer_host_trap_(vm.host_trapped_) {
      vm_.host_trapped_ = false;
      // Release is enough here: only the call's end needs the full fence (leaveRunning).
      if (vm_.depth_++ == 0) vm_.running_.store(true, std::memory_order_release);
    }
    ~RunScope() {
      vm_.memory_stale_ = true;
      vm_.host_trapped_ = outer_host_trap_;
      if (--vm_.depth_ == 0) vm_.leaveRunning();
    }
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

   private:
    V8Vm& vm_;
    bool outer_host_trap_;
  };

  // Clears a termination requested during the call, or racing with its end, so that it
  // cannot hit the next call.
  void leaveRunning() {
    running_.store(false);
    while (terminators_.load() != 0) std::this_thread::yield();
    if (terminate_requested_.load()) {
      terminate_requested_.store(false);
      isolate_->CancelTerminateExecution();
    }
    if (++calls_since_pump_ >= kPumpEveryCalls) pumpMessageLoop();
  }

  // Entering an isolate that is not the thread's current one costs about 70 ns (V8 locks its
  // thread table and allocates an entry), half a trivial call. So the isolate stays entered
  // on its thread between calls until another VM of the thread needs the thread; each call's
  // Isolate::Scope then only bumps a counter.
  void stayEntered() {
    if (entered_here_.isolate == isolate_) return;
    // Another isolate running a call, or entered above it: use plain scopes.
    if (!entered_here_.leave() || v8::Isolate::TryGetCurrent() != nullptr) return;
    isolate_->Enter();
    entered_here_.isolate = isolate_;
  }

  // The isolate this thread keeps entered between calls. It holds the isolate, not the VM:
  // a VM destroyed elsewhere leaks its isolate (see ~V8Vm), so the pointer never dangles.
  struct EnteredIsolate {
    v8::Isolate* isolate = nullptr;

    // Exits the isolate unless it is not on top of the thread's isolates or runs a call (a
    // call has a context entered). False when it stays entered.
    bool leave() {
      if (isolate == nullptr) return true;
      if (v8::Isolate::TryGetCurrent() != isolate || isolate->InContext()) return false;
      isolate->Exit();
      isolate = nullptr;
      return true;
    }

    // When the thread ends, so that its VMs can then be destroyed on another thread (a
    // worker's instances, destroyed by whoever joined the worker).
    ~EnteredIsolate() { leave(); }
  };

  static void hostCallback(const v8::FunctionCallbackInfo<v8::Value>& info);

  // Turns the outcome of a guest call (or of instantiation) into a CallResult.
  CallResult outcome(const v8::TryCatch& caught, bool failed) {
    CallResult result;
    if (host_trapped_) {
      result.status = CallStatus::kTrap;
      result.message = host_trap_message_;
    } else if (caught.HasTerminated() || (failed && isolate_->IsExecutionTerminating())) {
      result.status = CallStatus::kTerminated;
      result.message = "terminated: the call ran past its deadline";
    } else if (failed) {
      result.status = CallStatus::kTrap;
      result.message = describeException(isolate_, caught);
    }
    return result;
  }

  void refreshMemory() const {
    memory_stale_ = false;
    if (memory_object_.IsEmpty()) return;
    v8::Isolate::Scope isolate_scope(isolate_);
    v8::HandleScope handle_scope(isolate_);
    v8::Local<v8::ArrayBuffer> buffer =
        memory_object_.Get(isolate_).As<v8::WasmMemoryObject>()->Buffer();
    memory_base_ = static_cast<uint8_t*>(buffer->Data());
    memory_size_ = buffer->ByteLength();
  }

  void pumpMessageLoop() {
    calls_since_pump_ = 0;
    v8::Isolate::Scope isolate_scope(isolate_);
    while (v8::platform::PumpMessageLoop(V8Process::get().platform(), isolate_)) {
    }
  }

  tl::expected<v8::Local<v8::Object>, std::string> newMemory(v8::Local<v8::Context> context,
                                                             const ModuleImport& import);

  static thread_local EnteredIsolate entered_here_;

  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator_;
  v8::Isolate* isolate_;
  const std::thread::id home_thread_;
  v8::Global<v8::Context> context_;
  std::shared_ptr<const V8CompiledModule> module_;
  std::vector<std::unique_ptr<HostBinding>> bindings_;
  NameTable<ExportSlot> exports_;
  v8::Global<v8::Object> instance_;
  v8::Global<v8::Object> memory_object_;  // a WebAssembly.Memory

  // Linear memory as last seen; re-read after the guest ran (it may have grown).
  mutable uint8_t* memory_base_ = nullptr;
  mutable size_t memory_size_ = 0;
  mutable bool memory_stale_ = true;

  int depth_ = 0;  // nested calls: guest -> host -> guest
  bool host_trapped_ = false;
  std::string host_trap_message_;
  uint32_t calls_since_pump_ = 0;

  // Shared with terminate() on the watchdog's thread (sequentially consistent).
  std::atomic<bool> running_ = false;
  std::atomic<int> terminators_ = 0;
  std::atomic<bool> terminate_requested_ = false;
};

thread_local V8Vm::EnteredIsolate V8Vm::entered_here_;

void V8Vm::hostCallback(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* binding = static_cast<HostBinding*>(info.Data().As<v8::External>()->Value());
  V8Vm& vm = *binding->vm;
  const HostFunction& function = binding->function;
  vm.memory_stale_ = true;  // the guest ran since the host last looked

  RawVal inline_args[kInlineArgs];
  std::vector<RawVal> heap_args;
  RawVal* args = inline_args;
  const size_t count = function.params.size();
  if (count > kInlineArgs) {
    heap_args.resize(count);
    args = heap_args.data();
  }
  for (size_t i = 0; i < count; ++i) {
    args[i] = fromV8(info[static_cast<int>(i)], function.params[i]);
  }

  HostResult result;
  try {
    result = function.fn(vm, std::span<const RawVal>(args, count));
  } catch (const std::exception& e) {
    result.trap = true;
    result.trap_message =
        "host function " + function.module + "." + function.name + " threw: " + e.what();
  } catch (...) {
    result.trap = true;
    result.trap_message = "host function " + function.module + "." + function.name + " threw";
  }

  if (result.trap) {
    // Recorded on the VM as well as thrown: a guest using exception handling could catch the
    // exception, but the call still ends as a trap.
    vm.host_trapped_ = true;
    vm.host_trap_message_ = result.trap_message.empty() ? "host function " + function.module + "." +
                                                              function.name + " trapped"
                                                        : std::move(result.trap_message);
    v8::Isolate* isolate = info.GetIsolate();
    isolate->ThrowException(v8::Exception::Error(v8String(isolate, vm.host_trap_message_)));
    return;
  }
  if (function.results.empty()) return;
  switch (function.results[0]) {
    case ValType::kI32:
      info.GetReturnValue().Set(static_cast<int32_t>(static_cast<uint32_t>(result.value)));
      break;
    case ValType::kI64:
      info.GetReturnValue().Set(
          v8::BigInt::New(info.GetIsolate(), static_cast<int64_t>(result.value)));
      break;
    case ValType::kF32:
    case ValType::kF64:
      info.GetReturnValue().Set(toV8(info.GetIsolate(), function.results[0], result.value));
      break;
  }
}

tl::expected<v8::Local<v8::Object>, std::string> V8Vm::newMemory(v8::Local<v8::Context> context,
                                                                 const ModuleImport& import) {
  const MemoryLimits& limits = *import.memory;
  const std::string what = "memory " + import.module + "." + import.name;
  if (limits.memory64) return tl::unexpected(what + " is a 64-bit memory, not supported");
  v8::Local<v8::Object> descriptor = v8::Object::New(isolate_);
  auto set = [&](std::string_view key, v8::Local<v8::Value> value) {
    return descriptor->Set(context, v8String(isolate_, key), value).FromMaybe(false);
  };
  set("initial", v8::Number::New(isolate_, static_cast<double>(limits.min)));
  if (limits.max) set("maximum", v8::Number::New(isolate_, static_cast<double>(*limits.max)));
  if (limits.shared) set("shared", v8::True(isolate_));
  v8::Local<v8::Value> wasm_namespace;
  v8::Local<v8::Value> constructor;
  if (!context->Global()
           ->Get(context, v8String(isolate_, "WebAssembly"))
           .ToLocal(&wasm_namespace) ||
      !wasm_namespace->IsObject() ||
      !wasm_namespace.As<v8::Object>()
           ->Get(context, v8String(isolate_, "Memory"))
           .ToLocal(&constructor) ||
      !constructor->IsFunction()) {
    return tl::unexpected(std::string("WebAssembly.Memory is not available"));
  }
  v8::TryCatch caught(isolate_);
  v8::Local<v8::Value> argv[] = {descriptor};
  v8::Local<v8::Object> memory;
  if (!constructor.As<v8::Function>()->NewInstance(context, 1, argv).ToLocal(&memory) ||
      caught.HasCaught()) {
    return tl::unexpected("cannot create " + what + ": " + describeException(isolate_, caught));
  }
  return memory;
}

tl::expected<void, std::string> V8Vm::instantiate(std::shared_ptr<const CompiledModule> module,
                                                  const std::vector<HostFunction>& imports) {
  if (module_) return tl::unexpected(std::string("the VM is already instantiated"));
  if (!module || module->engine() != kEngineName) {
    return tl::unexpected(std::string("the module was compiled by another engine"));
  }
  auto compiled = std::static_pointer_cast<const V8CompiledModule>(module);
  const ModuleInfo& info = compiled->info();

  v8::Isolate::Scope isolate_scope(isolate_);
  v8::HandleScope handle_scope(isolate_);
  v8::Local<v8::Context> context = context_.Get(isolate_);
  v8::Context::Scope context_scope(context);
  v8::TryCatch unexpected(isolate_);  // nothing V8 throws here goes to stderr

  // The import object: {module: {name: function or memory}}, checked against what the guest
  // declares so that a signature mismatch is an error here rather than a silent coercion.
  v8::Local<v8::Object> import_object = v8::Object::New(isolate_);
  v8::Local<v8::Object> imported_memory;
  std::vector<std::string> missing;
  for (const ModuleImport& import : info.imports) {
    v8::Local<v8::Value> value;
    if (import.kind == ExternalKind::kFunction) {
      const FuncType* wanted =
          import.type_index < info.types.size() ? &info.types[import.type_index] : nullptr;
      const HostFunction* host = nullptr;
      for (const HostFunction& candidate : imports) {
        if (candidate.module == import.module && candidate.name == import.name) {
          host = &candidate;
          break;
        }
      }
      if (host == nullptr || wanted == nullptr) {
        missing.push_back(import.module + "." + import.name +
                          (wanted ? " " + formatSignature(*wanted) : std::string()));
        continue;
      }
      auto params = hostTypes(wanted->params);
      auto results = hostTypes(wanted->results);
      if (!params || !results || *params != host->params || *results != host->results) {
        return tl::unexpected("import " + import.module + "." + import.name +
                              ": the module expects " + formatSignature(*wanted) +
                              ", the host provides " +
                              formatSignature(host->params, host->results));
      }
      if (host->results.size() > 1) {
        return tl::unexpected("import " + import.module + "." + import.name +
                              ": host functions return at most one value");
      }
      bindings_.push_back(std::make_unique<HostBinding>(HostBinding{this, *host}));
      v8::Local<v8::FunctionTemplate> function_template = v8::FunctionTemplate::New(
          isolate_, hostCallback, v8::External::New(isolate_, bindings_.back().get()),
          v8::Local<v8::Signature>(), static_cast<int>(host->params.size()),
          v8::ConstructorBehavior::kThrow);
      v8::Local<v8::Function> function;
      if (!function_template->GetFunction(context).ToLocal(&function)) {
        return tl::unexpected("cannot create host function " + import.module + "." + import.name);
      }
      value = function;
    } else if (import.kind == ExternalKind::kMemory) {
      // The host provides an imported memory, sized by the (capped) limits the guest declares.
      if (!imported_memory.IsEmpty()) {
        return tl::unexpected(std::string("the module imports more than one memory"));
      }
      auto memory = newMemory(context, import);
      if (!memory) return tl::unexpected(memory.error());
      imported_memory = *memory;
      value = imported_memory;
    } else {
      missing.push_back(std::string(kindName(import.kind)) + " " + import.module + "." +
                        import.name);
      continue;
    }
    v8::Local<v8::String> module_key = v8String(isolate_, import.module);
    v8::Local<v8::Value> namespace_value;
    if (!import_object->Get(context, module_key).ToLocal(&namespace_value) ||
        !namespace_value->IsObject()) {
      namespace_value = v8::Object::New(isolate_);
      import_object->Set(context, module_key, namespace_value).Check();
    }
    namespace_value.As<v8::Object>()->Set(context, v8String(isolate_, import.name), value).Check();
  }
  if (!missing.empty()) {
    std::string message = "the module imports what the host does not provide: ";
    for (size_t i = 0; i < missing.size(); ++i) message += (i ? ", " : "") + missing[i];
    return tl::unexpected(message);
  }

  v8::Local<v8::WasmModuleObject> module_object;
  if (!v8::WasmModuleObject::FromCompiledModule(isolate_, compiled->compiled())
           .ToLocal(&module_object)) {
    return tl::unexpected(std::string("cannot load the compiled module into this VM"));
  }
  v8::Local<v8::Value> wasm_namespace;
  v8::Local<v8::Value> instance_constructor;
  if (!context->Global()
           ->Get(context, v8String(isolate_, "WebAssembly"))
           .ToLocal(&wasm_namespace) ||
      !wasm_namespace->IsObject() ||
      !wasm_namespace.As<v8::Object>()
           ->Get(context, v8String(isolate_, "Instance"))
           .ToLocal(&instance_constructor) ||
      !instance_constructor->IsFunction()) {
    return tl::unexpected(std::string("WebAssembly.Instance is not available"));
  }

  // Instantiation runs the guest's start function: a call like any other for terminate().
  v8::Local<v8::Object> instance;
  {
    RunScope run(*this);
    v8::TryCatch caught(isolate_);
    v8::Local<v8::Value> argv[] = {module_object, import_object};
    // Test HasCaught() too: when the start function traps, V8 10.2 returns the receiver the
    // construct call allocated along with the exception.
    const bool failed = !instance_constructor.As<v8::Function>()
                             ->NewInstance(context, 2, argv)
                             .ToLocal(&instance) ||
                        caught.HasCaught();
    CallResult result = outcome(caught, failed);
    if (result.status != CallStatus::kOk) {
      bindings_.clear();
      return tl::unexpected("instantiating the module failed: " + result.message);
    }
  }

  v8::Local<v8::Value> exports_value;
  if (!instance->Get(context, v8String(isolate_, "exports")).ToLocal(&exports_value) ||
      !exports_value->IsObject()) {
    return tl::unexpected(std::string("the instance has no exports object"));
  }
  v8::Local<v8::Object> exports = exports_value.As<v8::Object>();
  v8::Local<v8::Object> exported_memory;
  std::vector<std::pair<std::string, ExportSlot>> functions;
  for (const ModuleExport& entry : info.exports) {
    if (entry.kind != ExternalKind::kFunction && entry.kind != ExternalKind::kMemory) continue;
    v8::Local<v8::Value> value;
    if (!exports->Get(context, v8String(isolate_, entry.name)).ToLocal(&value)) continue;
    if (entry.kind == ExternalKind::kMemory) {
      // The ABI's memory is the one exported as "memory"; else the first exported one.
      if (value->IsWasmMemoryObject() && (exported_memory.IsEmpty() || entry.name == "memory")) {
        exported_memory = value.As<v8::Object>();
      }
      continue;
    }
    if (!value->IsFunction()) continue;
    ExportSlot slot;
    slot.function.Reset(isolate_, value.As<v8::Function>());
    const FuncType* type = info.functionType(entry.index);
    auto params = type ? hostTypes(type->params) : std::nullopt;
    auto results = type ? hostTypes(type->results) : std::nullopt;
    if (!params || !results || results->size() > 1) {
      slot.unsupported = "export " + entry.name + " has signature " +
                         (type ? formatSignature(*type) : std::string("?")) +
                         ", which the host cannot call";
    } else {
      slot.params = std::move(*params);
      if (!results->empty()) slot.result = (*results)[0];
    }
    functions.emplace_back(entry.name, std::move(slot));
  }
  exports_.assign(std::move(functions));
  v8::Local<v8::Object> memory = exported_memory.IsEmpty() ? imported_memory : exported_memory;
  if (!memory.IsEmpty()) memory_object_.Reset(isolate_, memory);
  instance_.Reset(isolate_, instance);
  module_ = std::move(compiled);
  memory_stale_ = true;
  return {};
}

CallResult V8Vm::call(std::string_view name, std::span<const RawVal> args) {
  ExportSlot* found = exports_.find(name);
  if (found == nullptr) {
    return {CallStatus::kMissing, std::nullopt, "no exported function " + std::string(name)};
  }
  ExportSlot& slot = *found;
  if (!slot.unsupported.empty()) return {CallStatus::kMissing, std::nullopt, slot.unsupported};
  if (args.size() != slot.params.size()) {
    return {CallStatus::kMissing, std::nullopt,
            "export " + std::string(name) + " takes " + std::to_string(slot.params.size()) +
                " arguments, not " + std::to_string(args.size())};
  }

  if (depth_ == 0) {
    if (std::this_thread::get_id() != home_thread_) {
      return {CallStatus::kTrap, std::nullopt,
              "the VM was called on a thread other than the one that created it"};
    }
    stayEntered();
  }

  v8::Isolate::Scope isolate_scope(isolate_);
  v8::HandleScope handle_scope(isolate_);
  v8::Local<v8::Context> context = context_.Get(isolate_);
  v8::Context::Scope context_scope(context);

  v8::Local<v8::Value> inline_argv[kInlineArgs];
  std::vector<v8::Local<v8::Value>> heap_argv;
  v8::Local<v8::Value>* argv = inline_argv;
  if (args.size() > kInlineArgs) {
    heap_argv.resize(args.size());
    argv = heap_argv.data();
  }
  for (size_t i = 0; i < args.size(); ++i) argv[i] = toV8(isolate_, slot.params[i], args[i]);

  RunScope run(*this);
  v8::TryCatch caught(isolate_);
  v8::Local<v8::Value> returned;
  const bool failed =
      !slot.function.Get(isolate_)
           ->Call(context, v8::Undefined(isolate_), static_cast<int>(args.size()), argv)
           .ToLocal(&returned) ||
      caught.HasCaught();
  CallResult result = outcome(caught, failed);
  if (result.status == CallStatus::kOk && slot.result)
    result.value = fromV8(returned, *slot.result);
  return result;
}

class V8Engine final : public WasmEngine {
 public:
  std::string_view name() const override { return kEngineName; }

  tl::expected<std::shared_ptr<const CompiledModule>, std::string> compile(
      std::span<const uint8_t> bytes, const EngineLimits& limits) override;

  std::unique_ptr<WasmVm> createVm() override { return std::make_unique<V8Vm>(); }
};

tl::expected<std::shared_ptr<const CompiledModule>, std::string> V8Engine::compile(
    std::span<const uint8_t> bytes, const EngineLimits& limits) {
  if (bytes.size() > limits.max_module_bytes) {
    return tl::unexpected("the module is " + std::to_string(bytes.size()) +
                          " bytes, the limit is " + std::to_string(limits.max_module_bytes));
  }
  auto capped = capMemoryPages(bytes, limits.max_memory_pages);
  if (!capped) return tl::unexpected(std::move(capped.error()));
  auto info = parseModule(*capped);
  if (!info) return tl::unexpected(std::move(info.error()));

  // A fresh isolate per compile on the calling thread. One shared compile isolate would need
  // v8::Locker to move between threads, and in V8 10.2 using a Locker once makes V8 demand
  // one around every isolate in the process (Locker::WasEverUsed is process-wide). A compile
  // costs far more than the isolate (about a millisecond), and compiles are rare.
  V8Process& process = V8Process::get();
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator(
      v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  v8::Isolate* isolate = process.newIsolate(allocator.get());
  std::optional<v8::CompiledWasmModule> compiled;
  std::string error;
  {
    v8::Isolate::Scope isolate_scope(isolate);
    v8::HandleScope handle_scope(isolate);
    v8::Local<v8::Context> context = v8::Context::New(isolate);
    v8::Context::Scope context_scope(context);
    v8::TryCatch caught(isolate);
    v8::Local<v8::WasmModuleObject> module;
    if (v8::WasmModuleObject::Compile(isolate, {capped->data(), capped->size()}).ToLocal(&module)) {
      compiled.emplace(module->GetCompiledModule());
    } else {
      error = describeException(isolate, caught);
      constexpr std::string_view kPrefix = "CompileError: WasmModuleObject::Compile(): ";
      if (error.starts_with(kPrefix)) error.erase(0, kPrefix.size());
      error = "invalid module: " + error;
    }
  }
  process.disposeIsolate(isolate);
  if (!compiled) return tl::unexpected(std::move(error));
  return std::make_shared<const V8CompiledModule>(std::move(*compiled), std::move(*info));
}

}  // namespace

WasmEngine& v8Engine() {
  static V8Engine engine;
  return engine;
}

}  // namespace sluice::wasm
