#pragma once

// Per-thread shards: a metric keeps one cache line per shard and sums them on scrape. A thread
// that counts is lent a shard of its own for its life, so it writes it with a plain load and
// store: no lock, no atomic read-modify-write, no cache line shared with another writer. When
// more threads count than there are shards, the extra ones share the last shard and write it
// with atomic adds: still exact, just slower.

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

// Shards per metric: the hardware threads, at least 8 and at most 64; fixed for the process.
uint32_t shardCount();

// The calling thread's shard in t_shard: its index, with kShared set when the thread shares
// it; kNoShard before the thread first counts.
inline constexpr uint32_t kShared = 1u << 31;
inline constexpr uint32_t kNoShard = UINT32_MAX;
inline constinit thread_local uint32_t t_shard = kNoShard;

// Lends the calling thread a shard on its first count (returned when the thread exits) and
// returns t_shard.
uint32_t claimShard();

struct ShardRef {
  uint32_t index;
  bool exclusive;  // the calling thread is the shard's only writer
};

// One thread-local read after the first call.
inline ShardRef thisThreadShard() {
  uint32_t shard = t_shard;
  if (shard >= kShared) [[unlikely]]
    shard = claimShard();
  return {shard & ~kShared, shard < kShared};
}

// Adds `n` to a shard's word (unsigned: wraps, so a gauge's negative deltas add up too).
inline void add(std::atomic<uint64_t>& word, uint64_t n, bool exclusive) {
  if (exclusive) {
    word.store(word.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  } else {
    word.fetch_add(n, std::memory_order_relaxed);
  }
}

}  // namespace sluice::metrics::detail
