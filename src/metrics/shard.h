#pragma once

// Per-thread shards: a metric keeps one cache line per shard and each thread writes the shard it
// was given on first use, so worker threads count without sharing a cache line and without a
// lock. A scrape sums the shards. Shards are handed out round robin; a process with more
// threads than shards puts some threads on the same shard, which stays exact (the writes are
// atomic) and only costs some contention.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::metrics::detail {

// Padding unit: the cache line of x86-64 and of most ARM64 cores.
inline constexpr size_t kCacheLine = 64;

// One shard of a counter or a gauge, alone on its cache line.
struct alignas(kCacheLine) Cell {
  std::atomic<uint64_t> value{0};
};

// Eight words on one cache line: a histogram shard spans one or more of these.
struct alignas(kCacheLine) Line {
  std::atomic<uint64_t> words[kCacheLine / sizeof(uint64_t)]{};
};

// Shards per metric: the hardware threads, at least 4 and at most 64; fixed for the process.
uint32_t shardCount();

// Gives the calling thread its shard (the next one round robin) and returns it.
uint32_t assignThisThreadShard();

inline constexpr uint32_t kNoShard = UINT32_MAX;
inline constinit thread_local uint32_t t_shard = kNoShard;

// The calling thread's shard: one thread-local read after the first call.
inline uint32_t thisThreadShard() {
  const uint32_t shard = t_shard;
  return shard != kNoShard ? shard : assignThisThreadShard();
}

}  // namespace sluice::metrics::detail
