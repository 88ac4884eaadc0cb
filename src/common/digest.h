#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sluice {

using Sha256 = std::array<unsigned char, 32>;

// SHA-256 of `bytes`.
Sha256 sha256(std::string_view bytes);

// The SHA-256 of `bytes`, as 64 lower-case hex digits.
std::string sha256Hex(std::string_view bytes);

// The SHA-1 of `bytes`, as 40 lower-case hex digits (Redis names scripts by it).
std::string sha1Hex(std::string_view bytes);

// Fills `out` from the kernel's random source (getrandom); throws if it cannot.
void randomBytes(std::span<unsigned char> out);

}  // namespace sluice
