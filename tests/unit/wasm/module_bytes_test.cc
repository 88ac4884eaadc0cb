#include "wasm/module_bytes.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sluice::wasm {
namespace {

using Bytes = std::vector<uint8_t>;

std::vector<uint8_t> readModule(const std::string& name) {
  const std::string path = std::string(SLUICE_WASM_DIR) + "/" + name + ".wasm";
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

Bytes header() { return {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}; }

void appendLeb(Bytes& out, uint64_t value) {
  do {
    uint8_t b = value & 0x7f;
    value >>= 7;
    if (value != 0) b |= 0x80;
    out.push_back(b);
  } while (value != 0);
}

void appendName(Bytes& out, std::string_view name) {
  appendLeb(out, name.size());
  out.insert(out.end(), name.begin(), name.end());
}

Bytes section(uint8_t id, const Bytes& payload) {
  Bytes out = {id};
  appendLeb(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes module(std::initializer_list<Bytes> sections) {
  Bytes out = header();
  for (const Bytes& s : sections) out.insert(out.end(), s.begin(), s.end());
  return out;
}

// A memory section with one memory of the given limits.
Bytes memorySection(uint64_t min, std::optional<uint64_t> max) {
  Bytes payload = {0x01, static_cast<uint8_t>(max ? 0x01 : 0x00)};
  appendLeb(payload, min);
  if (max) appendLeb(payload, *max);
  return section(5, payload);
}

TEST(ModuleBytes, ListsImportsAndExportsWithSignatures) {
  auto info = parseModule(readModule("abi_versions"));
  ASSERT_TRUE(info) << info.error();
  ASSERT_EQ(info->imports.size(), 2u);
  EXPECT_EQ(info->imports[0].module, "env");
  EXPECT_EQ(info->imports[0].name, "proxy_log");
  EXPECT_EQ(info->imports[0].kind, ExternalKind::kFunction);
  EXPECT_EQ(info->imports[1].module, "wasi_snapshot_preview1");
  EXPECT_EQ(info->imports[1].name, "fd_write");

  std::vector<std::pair<std::string, ExternalKind>> exports;
  for (const auto& e : info->exports) exports.emplace_back(e.name, e.kind);
  const std::vector<std::pair<std::string, ExternalKind>> expected = {
      {"memory", ExternalKind::kMemory},
      {"table", ExternalKind::kTable},
      {"counter", ExternalKind::kGlobal},
      {"proxy_abi_version_0_2_1", ExternalKind::kFunction},
      {"proxy_on_context_create", ExternalKind::kFunction},
      {"malloc", ExternalKind::kFunction},
  };
  EXPECT_EQ(exports, expected);

  const FuncType* malloc_type = info->exportedFunctionType("malloc");
  ASSERT_NE(malloc_type, nullptr);
  EXPECT_EQ(formatSignature(*malloc_type), "(i32) -> i32");
  EXPECT_EQ(formatSignature(*info->exportedFunctionType("proxy_abi_version_0_2_1")), "() -> nil");
  EXPECT_EQ(info->exportedFunctionType("memory"), nullptr);
  EXPECT_EQ(info->exportedFunctionType("absent"), nullptr);

  ASSERT_EQ(info->memories.size(), 1u);
  EXPECT_EQ(info->memories[0].min, 2u);
  EXPECT_EQ(info->memories[0].max, 16u);
}

TEST(ModuleBytes, ListsSectionsIncludingCustomOnes) {
  auto info = parseModule(readModule("basic"));  // assembled with --debug-names
  ASSERT_TRUE(info) << info.error();
  ASSERT_FALSE(info->sections.empty());
  EXPECT_EQ(info->sections.front().id, 1);  // type
  EXPECT_EQ(info->sections.back().id, 0);
  EXPECT_EQ(info->sections.back().custom_name, "name");
}

TEST(ModuleBytes, ImportedFunctionsComeFirstInTheIndexSpace) {
  auto info = parseModule(readModule("host"));
  ASSERT_TRUE(info) << info.error();
  EXPECT_EQ(formatSignature(*info->functionType(0)), "(i32, i32, i32) -> i32");  // env.transform
  EXPECT_EQ(formatSignature(*info->exportedFunctionType("call_wide")), "(i64, f32, f64) -> i64");
  EXPECT_EQ(formatSignature(*info->exportedFunctionType("double")), "(i32) -> i32");
}

TEST(ModuleBytes, CapSetsAMaximumAndRoundTrips) {
  auto capped = capMemoryPages(readModule("memory_cap"), 10);  // declares 2..100
  ASSERT_TRUE(capped) << capped.error();
  auto info = parseModule(*capped);
  ASSERT_TRUE(info) << info.error();
  ASSERT_EQ(info->memories.size(), 1u);
  EXPECT_EQ(info->memories[0].min, 2u);
  EXPECT_EQ(info->memories[0].max, 10u);
  // Capping again changes nothing.
  auto again = capMemoryPages(*capped, 10);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *capped);
}

TEST(ModuleBytes, CapKeepsASmallerDeclaredMaximum) {
  auto capped = capMemoryPages(readModule("memory_cap"), 1000);
  ASSERT_TRUE(capped) << capped.error();
  EXPECT_EQ(parseModule(*capped)->memories[0].max, 100u);
}

TEST(ModuleBytes, CapGrowsTheSectionWhenTheEncodingGetsLonger) {
  // No maximum, then a cap that needs a 3-byte LEB: the memory section grows by 3 bytes and
  // the sections after it are kept intact.
  Bytes exports = {0x01};
  appendName(exports, "memory");
  exports.push_back(0x02);
  exports.push_back(0x00);
  const Bytes original = module({memorySection(1, std::nullopt), section(7, exports)});
  auto capped = capMemoryPages(original, 40000);
  ASSERT_TRUE(capped) << capped.error();
  EXPECT_EQ(capped->size(), original.size() + 3);
  auto info = parseModule(*capped);
  ASSERT_TRUE(info) << info.error();
  EXPECT_EQ(info->memories[0].min, 1u);
  EXPECT_EQ(info->memories[0].max, 40000u);
  ASSERT_EQ(info->exports.size(), 1u);
  EXPECT_EQ(info->exports[0].name, "memory");
}

TEST(ModuleBytes, CapRewritesImportedMemories) {
  auto capped = capMemoryPages(readModule("memory_imported"), 5);  // imports 1..50
  ASSERT_TRUE(capped) << capped.error();
  auto info = parseModule(*capped);
  ASSERT_TRUE(info) << info.error();
  ASSERT_EQ(info->imports.size(), 1u);
  ASSERT_TRUE(info->imports[0].memory);
  EXPECT_EQ(info->imports[0].memory->max, 5u);
  EXPECT_EQ(info->memories[0].max, 5u);
}

TEST(ModuleBytes, CapKeepsTheSharedFlag) {
  const Bytes original = module({section(5, {0x01, 0x03, 0x01, 0x80, 0x01})});  // shared 1..128
  auto capped = capMemoryPages(original, 16);
  ASSERT_TRUE(capped) << capped.error();
  auto info = parseModule(*capped);
  ASSERT_TRUE(info) << info.error();
  EXPECT_TRUE(info->memories[0].shared);
  EXPECT_EQ(info->memories[0].max, 16u);
}

TEST(ModuleBytes, MinimumAboveTheCapIsAnError) {
  auto capped = capMemoryPages(readModule("memory_big_min"), 10);
  ASSERT_FALSE(capped);
  EXPECT_EQ(capped.error(), "module needs 20 pages of memory, the limit is 10");
}

TEST(ModuleBytes, ModuleWithoutMemoryIsCopiedUnchanged) {
  const Bytes original = module({section(1, {0x01, 0x60, 0x00, 0x00})});
  auto capped = capMemoryPages(original, 1);
  ASSERT_TRUE(capped);
  EXPECT_EQ(*capped, original);
}

TEST(ModuleBytes, RejectsWhatIsNotAModule) {
  EXPECT_EQ(parseModule({}).error(),
            "not a WebAssembly module: 0 bytes, shorter than the 8-byte header");
  const Bytes text = {'(', 'm', 'o', 'd', 'u', 'l', 'e', ')'};
  EXPECT_EQ(parseModule(text).error(),
            "not a WebAssembly module: it does not start with \"\\0asm\"");
  const Bytes version2 = {0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00};
  EXPECT_EQ(parseModule(version2).error(), "unsupported WebAssembly binary version 2 (expected 1)");
}

TEST(ModuleBytes, TruncatedSectionNamesTheSectionAndOffset) {
  Bytes bytes = module({memorySection(1, 2)});
  bytes.pop_back();
  auto info = parseModule(bytes);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error(),
            "at byte 8: the memory section declares 4 bytes but only 3 remain (truncated "
            "module?)");
}

TEST(ModuleBytes, EveryTruncationIsAnErrorOrAShorterModule) {
  for (const char* name : {"basic", "host", "abi_versions", "memory_imported"}) {
    const Bytes full = readModule(name);
    auto whole = parseModule(full);
    ASSERT_TRUE(whole) << name << ": " << whole.error();
    std::vector<size_t> boundaries = {8};
    for (const auto& s : whole->sections) boundaries.push_back(s.payload_offset + s.payload_size);
    for (size_t size = 0; size < full.size(); ++size) {
      const std::span<const uint8_t> prefix(full.data(), size);
      const bool at_boundary =
          std::find(boundaries.begin(), boundaries.end(), size) != boundaries.end();
      auto info = parseModule(prefix);
      EXPECT_EQ(info.has_value(), at_boundary) << name << " cut at " << size;
      auto capped = capMemoryPages(prefix, 8);
      if (!at_boundary) {
        EXPECT_FALSE(capped) << name << " cut at " << size;
      }
    }
  }
}

TEST(ModuleBytes, SurvivesEveryByteFlipped) {
  // A cheap stand-in for fuzzing: every single-byte corruption parses or fails cleanly.
  for (const char* name : {"host", "abi_versions", "memory_imported"}) {
    const Bytes full = readModule(name);
    for (size_t i = 0; i < full.size(); ++i) {
      for (uint8_t value : {uint8_t{0x00}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}}) {
        Bytes mutated = full;
        mutated[i] = value;
        (void)parseModule(mutated);
        (void)capMemoryPages(mutated, 8);
      }
    }
  }
}

TEST(ModuleBytes, OverlongLebIsAnError) {
  // A memory minimum of 1 encoded in 6 bytes (u32 LEB128 allows 5).
  const Bytes bytes = module({section(5, {0x01, 0x00, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00})});
  auto info = parseModule(bytes);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("memory minimum is not a valid 32-bit LEB128 integer"),
            std::string::npos)
      << info.error();
}

TEST(ModuleBytes, LebWithBitsBeyond32IsAnError) {
  const Bytes bytes = module({section(5, {0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x1f})});
  EXPECT_FALSE(parseModule(bytes));
  const Bytes max_u32 = module({section(5, {0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f})});
  auto info = parseModule(max_u32);
  ASSERT_TRUE(info) << info.error();
  EXPECT_EQ(info->memories[0].min, 0xffffffffu);
}

TEST(ModuleBytes, HugeCountIsAnErrorNotAnAllocation) {
  const Bytes bytes = module({section(2, {0xff, 0xff, 0xff, 0xff, 0x0f})});
  auto info = parseModule(bytes);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("import count 4294967295 exceeds"), std::string::npos)
      << info.error();
}

TEST(ModuleBytes, TrailingBytesInASectionAreAnError) {
  const Bytes bytes = module({section(5, {0x01, 0x00, 0x01, 0x00})});
  auto info = parseModule(bytes);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("1 unexpected bytes at the end of the memory section"),
            std::string::npos)
      << info.error();
}

TEST(ModuleBytes, MaximumBelowMinimumIsAnError) {
  EXPECT_FALSE(parseModule(module({memorySection(3, 2)})));
}

TEST(ModuleBytes, UnknownSectionIdIsAnError) {
  auto info = parseModule(module({section(42, {})}));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error(), "at byte 8: unknown section id 42");
}

TEST(ModuleBytes, Memory64LimitsAreReadAs64Bit) {
  Bytes payload = {0x01, 0x05};
  appendLeb(payload, 1ull << 33);
  appendLeb(payload, 1ull << 34);
  auto info = parseModule(module({section(5, payload)}));
  ASSERT_TRUE(info) << info.error();
  EXPECT_TRUE(info->memories[0].memory64);
  EXPECT_EQ(info->memories[0].min, 1ull << 33);
  EXPECT_EQ(capMemoryPages(module({section(5, payload)}), 1024).error(),
            "module needs 8589934592 pages of memory, the limit is 1024");
}

}  // namespace
}  // namespace sluice::wasm
