#pragma once

// A reader of the WebAssembly binary format, independent of any engine. It tells what an
// engine's API does not before compiling — imports, exports and their signatures, memories —
// and rewrites memory limits so that a module cannot grow past the configured cap. Written
// for untrusted input: every read is bounds-checked and malformed bytes give an error naming
// the offset, never a crash.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "wasm/wasm_vm.h"

namespace sluice::wasm {

enum class ExternalKind : uint8_t { kFunction = 0, kTable = 1, kMemory = 2, kGlobal = 3, kTag = 4 };

std::string_view kindName(ExternalKind kind);

// A value type as the binary format encodes it (the byte of its type code). Only the four
// numeric types cross the host boundary; the others are kept to name them in errors.
using WireType = uint8_t;

std::optional<ValType> hostValType(WireType type);

struct FuncType {
  std::vector<WireType> params;
  std::vector<WireType> results;
};

// "(i32, i64) -> i32", "() -> nil": for messages.
std::string formatSignature(const FuncType& type);
std::string formatSignature(std::span<const ValType> params, std::span<const ValType> results);

// Limits of a linear memory, in 64 KiB pages.
struct MemoryLimits {
  uint64_t min = 0;
  std::optional<uint64_t> max;
  bool shared = false;
  bool memory64 = false;
};

struct ModuleImport {
  std::string module;
  std::string name;
  ExternalKind kind = ExternalKind::kFunction;
  uint32_t type_index = 0;             // functions and tags
  std::optional<MemoryLimits> memory;  // memories
};

struct ModuleExport {
  std::string name;
  ExternalKind kind = ExternalKind::kFunction;
  uint32_t index = 0;  // in the index space of its kind (imports first)
};

struct ModuleSection {
  uint8_t id = 0;
  size_t offset = 0;          // of the id byte
  size_t payload_offset = 0;  // after the size
  size_t payload_size = 0;
  std::string custom_name;  // custom sections (id 0) only
};

struct ModuleInfo {
  std::vector<ModuleSection> sections;
  std::vector<FuncType> types;
  std::vector<ModuleImport> imports;
  std::vector<uint32_t> function_types;  // type index per function, imported ones first
  std::vector<ModuleExport> exports;
  std::vector<MemoryLimits> memories;  // imported ones first

  const ModuleExport* findExport(std::string_view name) const;
  // nullptr when the index or its type index is out of range.
  const FuncType* functionType(uint32_t function_index) const;
  // The signature of an exported function; nullptr when there is no such function export.
  const FuncType* exportedFunctionType(std::string_view name) const;
};

inline constexpr uint32_t kWasmPageBytes = 64 * 1024;

// Checks magic and version and reads the sections the host cares about (type, import,
// function, memory, export). It does not validate function bodies: the engine does.
tl::expected<ModuleInfo, std::string> parseModule(std::span<const uint8_t> bytes);

// The module with every memory (defined or imported) limited to `max_pages`: its maximum
// becomes min(declared maximum, max_pages), or max_pages when it declared none. An error when
// a memory's minimum already exceeds `max_pages`. Sections other than import and memory are
// copied unchanged; the two rewritten ones get their size re-encoded.
tl::expected<std::vector<uint8_t>, std::string> capMemoryPages(std::span<const uint8_t> bytes,
                                                               uint64_t max_pages);

}  // namespace sluice::wasm
