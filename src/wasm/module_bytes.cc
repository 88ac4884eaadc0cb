#include "wasm/module_bytes.h"

#include <algorithm>
#include <array>

namespace sluice::wasm {
namespace {

constexpr std::array<uint8_t, 4> kMagic = {0x00, 0x61, 0x73, 0x6d};  // "\0asm"
constexpr std::array<uint8_t, 4> kVersion = {0x01, 0x00, 0x00, 0x00};

enum SectionId : uint8_t {
  kCustomSection = 0,
  kTypeSection = 1,
  kImportSection = 2,
  kFunctionSection = 3,
  kMemorySection = 5,
  kExportSection = 7,
};

std::string_view sectionName(uint8_t id) {
  static constexpr std::array<std::string_view, 14> kNames = {
      "custom", "type",  "import",  "function", "table", "memory",     "global",
      "export", "start", "element", "code",     "data",  "data count", "tag"};
  return id < kNames.size() ? kNames[id] : "unknown";
}

std::string hexByte(uint8_t byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  return {'0', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
}

// Reads one section (or the whole module) front to back. The first failure sticks: later
// reads return zeros and the caller checks ok() before trusting what it read, so that a
// malformed module can never send a loop past the end of the bytes.
class Reader {
 public:
  Reader(std::span<const uint8_t> module, size_t begin, size_t end)
      : module_(module), pos_(begin), end_(end) {}

  bool ok() const { return error_.empty(); }
  bool atEnd() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }
  const std::string& error() const { return error_; }

  void fail(const std::string& message) { failAt(pos_, message); }
  void failAt(size_t offset, const std::string& message) {
    if (error_.empty()) error_ = "at byte " + std::to_string(offset) + ": " + message;
  }

  uint8_t byte(std::string_view what) {
    if (!ok()) return 0;
    if (pos_ >= end_) {
      fail("unexpected end while reading " + std::string(what));
      return 0;
    }
    return module_[pos_++];
  }

  // Unsigned LEB128 of at most `bits` bits, in at most ceil(bits / 7) bytes, as the spec says.
  uint64_t leb(unsigned bits, std::string_view what) {
    if (!ok()) return 0;
    const size_t start = pos_;
    const unsigned max_bytes = (bits + 6) / 7;
    uint64_t value = 0;
    for (unsigned i = 0; i < max_bytes; ++i) {
      if (pos_ >= end_) {
        failAt(start, "unexpected end while reading " + std::string(what));
        return 0;
      }
      const uint8_t b = module_[pos_++];
      const unsigned shift = 7 * i;
      if (i == max_bytes - 1) {
        const unsigned left = bits - shift;  // bits the last byte may still carry
        if ((b & 0x80) != 0 || ((b & 0x7f) >> left) != 0) {
          failAt(start, std::string(what) + " is not a valid " + std::to_string(bits) +
                            "-bit LEB128 integer");
          return 0;
        }
      }
      value |= uint64_t(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return value;
    }
    return value;  // unreachable: the last byte either ends the number or fails
  }

  uint32_t u32(std::string_view what) { return static_cast<uint32_t>(leb(32, what)); }

  // Signed LEB128 of up to 33 bits (heap types); only skipped, so only its length matters.
  void skipS33(std::string_view what) {
    for (unsigned i = 0; i < 5; ++i) {
      const uint8_t b = byte(what);
      if (!ok() || (b & 0x80) == 0) return;
    }
    fail(std::string(what) + " is longer than 5 bytes");
  }

  // A count of entries that each take at least one byte: larger than what is left means the
  // section is truncated (and keeps a hostile count from driving a huge allocation).
  uint32_t count(std::string_view what) {
    const size_t start = pos_;
    const uint32_t n = u32(what);
    if (ok() && n > remaining()) {
      failAt(start, std::string(what) + " " + std::to_string(n) + " exceeds the " +
                        std::to_string(remaining()) + " bytes left in the section");
      return 0;
    }
    return n;
  }

  std::string name(std::string_view what) {
    const uint32_t size = u32(what);
    if (!ok()) return {};
    if (size > remaining()) {
      fail(std::string(what) + " of " + std::to_string(size) + " bytes runs past the section");
      return {};
    }
    std::string text(reinterpret_cast<const char*>(module_.data() + pos_), size);
    pos_ += size;
    return text;
  }

  void skip(size_t n, std::string_view what) {
    if (!ok()) return;
    if (n > remaining()) {
      fail(std::string(what) + " runs past the section");
      return;
    }
    pos_ += n;
  }

 private:
  std::span<const uint8_t> module_;
  size_t pos_;
  size_t end_;
  std::string error_;
};

bool isNumberOrVectorType(WireType t) { return t >= 0x7b && t <= 0x7f; }
bool isShortRefType(WireType t) { return t == 0x70 || t == 0x6f; }  // funcref, externref
// Typed references: (ref ht) and (ref null ht), each followed by a heap type.
bool isTypedRefPrefix(WireType t) { return t == 0x63 || t == 0x64 || t == 0x6b || t == 0x6c; }

WireType readValueType(Reader& r) {
  const size_t at = r.pos();
  const WireType t = r.byte("value type");
  if (!r.ok()) return 0;
  if (isNumberOrVectorType(t) || isShortRefType(t)) return t;
  if (isTypedRefPrefix(t)) {
    r.skipS33("heap type");
    return t;
  }
  r.failAt(at, "unknown value type " + hexByte(t));
  return 0;
}

MemoryLimits readMemoryLimits(Reader& r) {
  const size_t at = r.pos();
  const uint8_t flags = r.byte("memory limits");
  MemoryLimits limits;
  if (!r.ok()) return limits;
  if (flags > 0x07) {
    r.failAt(at, "unknown memory limits flags " + hexByte(flags));
    return limits;
  }
  limits.shared = (flags & 0x02) != 0;
  limits.memory64 = (flags & 0x04) != 0;
  const unsigned bits = limits.memory64 ? 64 : 32;
  limits.min = r.leb(bits, "memory minimum");
  if ((flags & 0x01) != 0) limits.max = r.leb(bits, "memory maximum");
  if (r.ok() && limits.max && *limits.max < limits.min) {
    r.failAt(at, "memory maximum " + std::to_string(*limits.max) + " is below its minimum " +
                     std::to_string(limits.min));
  }
  return limits;
}

void skipTableType(Reader& r) {
  readValueType(r);
  const size_t at = r.pos();
  const uint8_t flags = r.byte("table limits");
  if (!r.ok()) return;
  if (flags > 0x01) {
    r.failAt(at, "unknown table limits flags " + hexByte(flags));
    return;
  }
  r.u32("table minimum");
  if (flags == 0x01) r.u32("table maximum");
}

void skipGlobalType(Reader& r) {
  readValueType(r);
  const size_t at = r.pos();
  const uint8_t mut = r.byte("global mutability");
  if (r.ok() && mut > 1) r.failAt(at, "global mutability must be 0 or 1, not " + hexByte(mut));
}

void writeLeb(std::vector<uint8_t>& out, uint64_t value) {
  do {
    uint8_t b = value & 0x7f;
    value >>= 7;
    if (value != 0) b |= 0x80;
    out.push_back(b);
  } while (value != 0);
}

void appendRange(std::vector<uint8_t>& out, std::span<const uint8_t> bytes, size_t begin,
                 size_t end) {
  out.insert(out.end(), bytes.begin() + static_cast<ptrdiff_t>(begin),
             bytes.begin() + static_cast<ptrdiff_t>(end));
}

std::optional<std::string> checkHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) {
    return "not a WebAssembly module: " + std::to_string(bytes.size()) +
           " bytes, shorter than the 8-byte header";
  }
  if (!std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) {
    return "not a WebAssembly module: it does not start with \"\\0asm\"";
  }
  if (!std::equal(kVersion.begin(), kVersion.end(), bytes.begin() + 4)) {
    const uint32_t version = bytes[4] | (uint32_t(bytes[5]) << 8) | (uint32_t(bytes[6]) << 16) |
                             (uint32_t(bytes[7]) << 24);
    return "unsupported WebAssembly binary version " + std::to_string(version) + " (expected 1)";
  }
  return std::nullopt;
}

// Splits the module into sections, checking each one fits.
tl::expected<std::vector<ModuleSection>, std::string> readSections(std::span<const uint8_t> bytes) {
  if (auto error = checkHeader(bytes)) return tl::unexpected(std::move(*error));
  std::vector<ModuleSection> sections;
  Reader r(bytes, 8, bytes.size());
  while (r.ok() && !r.atEnd()) {
    ModuleSection section;
    section.offset = r.pos();
    section.id = r.byte("section id");
    if (r.ok() && section.id > 13) {
      r.failAt(section.offset, "unknown section id " + std::to_string(section.id));
      break;
    }
    section.payload_size = r.u32("section size");
    section.payload_offset = r.pos();
    if (r.ok() && section.payload_size > r.remaining()) {
      r.failAt(section.offset, "the " + std::string(sectionName(section.id)) +
                                   " section declares " + std::to_string(section.payload_size) +
                                   " bytes but only " + std::to_string(r.remaining()) +
                                   " remain (truncated module?)");
      break;
    }
    if (!r.ok()) break;
    if (section.id == kCustomSection) {
      Reader name_reader(bytes, section.payload_offset,
                         section.payload_offset + section.payload_size);
      section.custom_name = name_reader.name("custom section name");
      if (!name_reader.ok()) return tl::unexpected(name_reader.error());
    }
    r.skip(section.payload_size, "section");
    sections.push_back(std::move(section));
  }
  if (!r.ok()) return tl::unexpected(r.error());
  return sections;
}

Reader sectionReader(std::span<const uint8_t> bytes, const ModuleSection& s) {
  return Reader(bytes, s.payload_offset, s.payload_offset + s.payload_size);
}

void expectSectionEnd(Reader& r, const ModuleSection& s) {
  if (r.ok() && !r.atEnd()) {
    r.fail(std::to_string(r.remaining()) + " unexpected bytes at the end of the " +
           std::string(sectionName(s.id)) + " section");
  }
}

void readTypeSection(Reader& r, ModuleInfo& info) {
  const uint32_t n = r.count("type count");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    const size_t at = r.pos();
    const uint8_t form = r.byte("type form");
    if (!r.ok()) break;
    if (form != 0x60) {
      r.failAt(at, "type " + std::to_string(i) + " has unsupported form " + hexByte(form) +
                       " (expected a function type, 0x60)");
      break;
    }
    FuncType type;
    const uint32_t params = r.count("parameter count");
    for (uint32_t p = 0; p < params && r.ok(); ++p) type.params.push_back(readValueType(r));
    const uint32_t results = r.count("result count");
    for (uint32_t p = 0; p < results && r.ok(); ++p) type.results.push_back(readValueType(r));
    info.types.push_back(std::move(type));
  }
}

void readImportSection(Reader& r, ModuleInfo& info) {
  const uint32_t n = r.count("import count");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ModuleImport import;
    import.module = r.name("import module name");
    import.name = r.name("import field name");
    const size_t at = r.pos();
    const uint8_t kind = r.byte("import kind");
    if (!r.ok()) break;
    switch (kind) {
      case 0:
        import.kind = ExternalKind::kFunction;
        import.type_index = r.u32("function type index");
        info.function_types.push_back(import.type_index);
        break;
      case 1:
        import.kind = ExternalKind::kTable;
        skipTableType(r);
        break;
      case 2:
        import.kind = ExternalKind::kMemory;
        import.memory = readMemoryLimits(r);
        info.memories.push_back(*import.memory);
        break;
      case 3:
        import.kind = ExternalKind::kGlobal;
        skipGlobalType(r);
        break;
      case 4:
        import.kind = ExternalKind::kTag;
        r.byte("tag attribute");
        import.type_index = r.u32("tag type index");
        break;
      default:
        r.failAt(at, "import " + import.module + "." + import.name + " has unknown kind " +
                         hexByte(kind));
        break;
    }
    info.imports.push_back(std::move(import));
  }
}

void readFunctionSection(Reader& r, ModuleInfo& info) {
  const uint32_t n = r.count("function count");
  for (uint32_t i = 0; i < n && r.ok(); ++i) info.function_types.push_back(r.u32("type index"));
}

void readMemorySection(Reader& r, ModuleInfo& info) {
  const uint32_t n = r.count("memory count");
  for (uint32_t i = 0; i < n && r.ok(); ++i) info.memories.push_back(readMemoryLimits(r));
}

void readExportSection(Reader& r, ModuleInfo& info) {
  const uint32_t n = r.count("export count");
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ModuleExport entry;
    entry.name = r.name("export name");
    const size_t at = r.pos();
    const uint8_t kind = r.byte("export kind");
    entry.index = r.u32("export index");
    if (!r.ok()) break;
    if (kind > 4) {
      r.failAt(at, "export " + entry.name + " has unknown kind " + hexByte(kind));
      break;
    }
    entry.kind = static_cast<ExternalKind>(kind);
    info.exports.push_back(std::move(entry));
  }
}

// Writes `limits` capped to `max_pages`, keeping the shared and memory64 bits.
bool writeCappedLimits(std::vector<uint8_t>& out, const MemoryLimits& limits, uint64_t max_pages,
                       std::string& error) {
  if (limits.min > max_pages) {
    error = "module needs " + std::to_string(limits.min) + " pages of memory, the limit is " +
            std::to_string(max_pages);
    return false;
  }
  const uint64_t max = limits.max ? std::min(*limits.max, max_pages) : max_pages;
  uint8_t flags = 0x01;
  if (limits.shared) flags |= 0x02;
  if (limits.memory64) flags |= 0x04;
  out.push_back(flags);
  writeLeb(out, limits.min);
  writeLeb(out, max);
  return true;
}

}  // namespace

std::string_view kindName(ExternalKind kind) {
  switch (kind) {
    case ExternalKind::kFunction:
      return "function";
    case ExternalKind::kTable:
      return "table";
    case ExternalKind::kMemory:
      return "memory";
    case ExternalKind::kGlobal:
      return "global";
    case ExternalKind::kTag:
      return "tag";
  }
  return "unknown";
}

std::optional<ValType> hostValType(WireType type) {
  switch (type) {
    case 0x7f:
      return ValType::kI32;
    case 0x7e:
      return ValType::kI64;
    case 0x7d:
      return ValType::kF32;
    case 0x7c:
      return ValType::kF64;
    default:
      return std::nullopt;
  }
}

namespace {

std::string_view wireTypeName(WireType type) {
  switch (type) {
    case 0x7f:
      return "i32";
    case 0x7e:
      return "i64";
    case 0x7d:
      return "f32";
    case 0x7c:
      return "f64";
    case 0x7b:
      return "v128";
    case 0x70:
      return "funcref";
    case 0x6f:
      return "externref";
    default:
      return "ref";
  }
}

std::string_view valTypeName(ValType type) {
  switch (type) {
    case ValType::kI32:
      return "i32";
    case ValType::kI64:
      return "i64";
    case ValType::kF32:
      return "f32";
    case ValType::kF64:
      return "f64";
  }
  return "?";
}

template <typename T, typename NameOf>
std::string formatList(std::span<const T> types, NameOf name_of) {
  std::string text = "(";
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) text += ", ";
    text += name_of(types[i]);
  }
  return text + ")";
}

template <typename T, typename NameOf>
std::string formatSignatureOf(std::span<const T> params, std::span<const T> results,
                              NameOf name_of) {
  std::string text = formatList(params, name_of) + " -> ";
  if (results.empty()) return text + "nil";
  if (results.size() == 1) return text + std::string(name_of(results[0]));
  return text + formatList(results, name_of);
}

}  // namespace

std::string formatSignature(const FuncType& type) {
  return formatSignatureOf(std::span<const WireType>(type.params),
                           std::span<const WireType>(type.results), wireTypeName);
}

std::string formatSignature(std::span<const ValType> params, std::span<const ValType> results) {
  return formatSignatureOf(params, results, valTypeName);
}

const ModuleExport* ModuleInfo::findExport(std::string_view name) const {
  for (const auto& entry : exports) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

const FuncType* ModuleInfo::functionType(uint32_t function_index) const {
  if (function_index >= function_types.size()) return nullptr;
  const uint32_t type_index = function_types[function_index];
  return type_index < types.size() ? &types[type_index] : nullptr;
}

const FuncType* ModuleInfo::exportedFunctionType(std::string_view name) const {
  const ModuleExport* entry = findExport(name);
  if (entry == nullptr || entry->kind != ExternalKind::kFunction) return nullptr;
  return functionType(entry->index);
}

tl::expected<ModuleInfo, std::string> parseModule(std::span<const uint8_t> bytes) {
  auto sections = readSections(bytes);
  if (!sections) return tl::unexpected(std::move(sections.error()));
  ModuleInfo info;
  info.sections = std::move(*sections);
  // Sections come in a fixed order (import before function, type before both), so reading
  // them in file order fills the function index space imports first.
  for (const ModuleSection& s : info.sections) {
    Reader r = sectionReader(bytes, s);
    switch (s.id) {
      case kTypeSection:
        readTypeSection(r, info);
        break;
      case kImportSection:
        readImportSection(r, info);
        break;
      case kFunctionSection:
        readFunctionSection(r, info);
        break;
      case kMemorySection:
        readMemorySection(r, info);
        break;
      case kExportSection:
        readExportSection(r, info);
        break;
      default:
        continue;
    }
    expectSectionEnd(r, s);
    if (!r.ok()) {
      return tl::unexpected("in the " + std::string(sectionName(s.id)) + " section, " + r.error());
    }
  }
  return info;
}

tl::expected<std::vector<uint8_t>, std::string> capMemoryPages(std::span<const uint8_t> bytes,
                                                               uint64_t max_pages) {
  auto sections = readSections(bytes);
  if (!sections) return tl::unexpected(std::move(sections.error()));
  std::vector<uint8_t> out;
  out.reserve(bytes.size() + 16);
  appendRange(out, bytes, 0, 8);
  std::vector<uint8_t> payload;
  std::string error;
  for (const ModuleSection& s : *sections) {
    const size_t section_end = s.payload_offset + s.payload_size;
    if (s.id != kImportSection && s.id != kMemorySection) {
      appendRange(out, bytes, s.offset, section_end);
      continue;
    }
    // Rebuild the payload entry by entry: bytes before and after each memory's limits are
    // copied as they are, the limits are re-encoded (their length may change).
    payload.clear();
    Reader r = sectionReader(bytes, s);
    size_t copied = s.payload_offset;
    const uint32_t n = r.count(s.id == kImportSection ? "import count" : "memory count");
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
      if (s.id == kImportSection) {
        r.name("import module name");
        r.name("import field name");
        const size_t at = r.pos();
        const uint8_t kind = r.byte("import kind");
        if (!r.ok()) break;
        if (kind == 0) {
          r.u32("function type index");
          continue;
        } else if (kind == 1) {
          skipTableType(r);
          continue;
        } else if (kind == 3) {
          skipGlobalType(r);
          continue;
        } else if (kind == 4) {
          r.byte("tag attribute");
          r.u32("tag type index");
          continue;
        } else if (kind != 2) {
          r.failAt(at, "unknown import kind " + hexByte(kind));
          break;
        }
      }
      const size_t limits_at = r.pos();
      const MemoryLimits limits = readMemoryLimits(r);
      if (!r.ok()) break;
      appendRange(payload, bytes, copied, limits_at);
      if (!writeCappedLimits(payload, limits, max_pages, error)) return tl::unexpected(error);
      copied = r.pos();
    }
    expectSectionEnd(r, s);
    if (!r.ok()) {
      return tl::unexpected("in the " + std::string(sectionName(s.id)) + " section, " + r.error());
    }
    appendRange(payload, bytes, copied, section_end);
    out.push_back(s.id);
    writeLeb(out, payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
  }
  return out;
}

}  // namespace sluice::wasm
