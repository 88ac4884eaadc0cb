#include "common/request_id.h"

#include <cstdint>
#include <random>

namespace sluice {
namespace {

// splitmix64: fast, statistically good enough for identifiers (not for secrets).
uint64_t nextRandom() {
  thread_local uint64_t state =
      std::random_device{}() * 0x9E3779B97F4A7C15ull ^ (uint64_t(std::random_device{}()) << 32);
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::string newRequestId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = nextRandom();
    for (int i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

}  // namespace sluice
