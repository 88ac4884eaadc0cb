#include "wasm/header_map.h"

#include <cstring>

namespace sluice::wasm {
namespace {

void putU32(std::string& out, uint32_t value) {
  char bytes[4] = {static_cast<char>(value), static_cast<char>(value >> 8),
                   static_cast<char>(value >> 16), static_cast<char>(value >> 24)};
  out.append(bytes, 4);
}

uint32_t getU32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

std::string serializeHeaderMap(const HeaderMap& map) {
  size_t total = 4 + map.size() * 8;
  for (const auto& [name, value] : map) total += name.size() + value.size() + 2;
  std::string out;
  out.reserve(total);
  putU32(out, static_cast<uint32_t>(map.size()));
  for (const auto& [name, value] : map) {
    putU32(out, static_cast<uint32_t>(name.size()));
    putU32(out, static_cast<uint32_t>(value.size()));
  }
  for (const auto& [name, value] : map) {
    out += name;
    out += '\0';
    out += value;
    out += '\0';
  }
  return out;
}

std::optional<HeaderMap> deserializeHeaderMap(std::span<const uint8_t> bytes) {
  if (bytes.size() < 4) return std::nullopt;
  const uint64_t count = getU32(bytes.data());
  if (count > (bytes.size() - 4) / 8) return std::nullopt;
  size_t sizes = 4;
  size_t data = 4 + count * 8;
  HeaderMap map;
  map.reserve(count);
  for (uint64_t i = 0; i < count; ++i, sizes += 8) {
    const uint64_t name_size = getU32(bytes.data() + sizes);
    const uint64_t value_size = getU32(bytes.data() + sizes + 4);
    if (name_size + value_size + 2 > bytes.size() - data) return std::nullopt;
    const auto* p = reinterpret_cast<const char*>(bytes.data() + data);
    if (p[name_size] != '\0' || p[name_size + 1 + value_size] != '\0') return std::nullopt;
    map.emplace_back(std::string(p, name_size), std::string(p + name_size + 1, value_size));
    data += name_size + value_size + 2;
  }
  return map;
}

std::string lowerCase(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace sluice::wasm
