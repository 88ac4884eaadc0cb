#include "wasm/wasm_vm.h"

namespace sluice::wasm {

// The interfaces' key functions, compiled with RTTI: their vtables and type information come
// from here, never from v8_engine.cc (built without RTTI, like libnode), so that a dynamic_cast
// or typeid elsewhere stays valid.
CompiledModule::~CompiledModule() = default;
WasmVm::~WasmVm() = default;
WasmEngine::~WasmEngine() = default;

}  // namespace sluice::wasm
