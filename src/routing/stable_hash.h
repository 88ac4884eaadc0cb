#pragma once

// A 64-bit string hash defined here rather than std::hash, so that every replica of the
// gateway, on every build, places the same key on the same worker. wyhash-style: 16 bytes per
// 128-bit multiply, in three independent lanes for long inputs. Assumes a little-endian machine
// (x86-64, AArch64).

#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::routing {

inline uint64_t mix64(uint64_t a, uint64_t b) {
  const auto product = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

inline uint64_t stableHash(std::string_view text, uint64_t seed = 0) {
  constexpr uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL,
                     k2 = 0x8ebc6af09c88c6e3ULL, k3 = 0x589965cc75374cc3ULL;
  auto read64 = [](const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto read32 = [](const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return uint64_t{v};
  };
  const char* p = text.data();
  size_t n = text.size();
  uint64_t h = seed ^ mix64(seed ^ k0, k1);
  uint64_t a = 0, b = 0;
  if (n <= 16) {
    if (n >= 4) {
      a = (read32(p) << 32) | read32(p + ((n >> 3) << 2));
      b = (read32(p + n - 4) << 32) | read32(p + n - 4 - ((n >> 3) << 2));
    } else if (n > 0) {
      a = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
          (uint64_t{static_cast<uint8_t>(p[n >> 1])} << 8) | static_cast<uint8_t>(p[n - 1]);
    }
  } else {
    size_t left = n;
    if (left > 48) {
      // Three independent lanes, so that the multiplies overlap instead of waiting on each other.
      uint64_t lane1 = h, lane2 = h;
      do {
        h = mix64(read64(p) ^ k1, read64(p + 8) ^ h);
        lane1 = mix64(read64(p + 16) ^ k2, read64(p + 24) ^ lane1);
        lane2 = mix64(read64(p + 32) ^ k3, read64(p + 40) ^ lane2);
        p += 48;
        left -= 48;
      } while (left > 48);
      h ^= lane1 ^ lane2;
    }
    while (left > 16) {
      h = mix64(read64(p) ^ k1, read64(p + 8) ^ h);
      p += 16;
      left -= 16;
    }
    a = read64(p + left - 16);
    b = read64(p + left - 8);
  }
  return mix64(k1 ^ n, mix64(a ^ k1 ^ k2, b ^ h ^ k3));
}

}  // namespace sluice::routing
