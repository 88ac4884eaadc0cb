#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::wasm {

// Headers as a plugin sees them: ordered (name, value) pairs, names lower-case, pseudo
// headers (":method", ":path", ":authority", ":scheme", ":status") first.
using HeaderMap = std::vector<std::pair<std::string, std::string>>;

// The spec's wire format: u32 count, then (u32 name size, u32 value size) per pair, then
// each name and value followed by a NUL byte; little endian.
std::string serializeHeaderMap(const HeaderMap& map);

// Parses the wire format; nullopt when sizes disagree with the bytes (never reads past them).
std::optional<HeaderMap> deserializeHeaderMap(std::span<const uint8_t> bytes);

// Lower-cases ASCII letters (header names are case-insensitive; plugins compare exactly).
std::string lowerCase(std::string_view text);

}  // namespace sluice::wasm
