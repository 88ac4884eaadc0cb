#pragma once

// Counters of one deployed module, shared by its instances on every thread and kept across
// versions of the module (a PUT keeps them). Each thread counts into its own shard, so that
// a callback costs no contended cache line; readers sum the shards.

#include <array>
#include <atomic>
#include <cstdint>

namespace sluice::wasm {

// Upper bounds of the callback-time histogram, in nanoseconds (the last bucket is +Inf).
inline constexpr std::array<uint64_t, 16> kCallbackBucketsNs = {
    1'000,   2'500,     5'000,     10'000,    25'000,     50'000,     100'000,     250'000,
    500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 25'000'000, 100'000'000, 1'000'000'000};

class PluginStats {
 public:
  struct Totals {
    uint64_t calls = 0;
    uint64_t errors = 0;  // traps + deadline misses + instances that failed to (re)start
    uint64_t traps = 0;
    uint64_t deadline_misses = 0;
    uint64_t rejects = 0;        // local responses sent
    uint64_t modifications = 0;  // headers, bodies or properties changed
    uint64_t total_ns = 0;
    uint64_t max_ns = 0;
    std::array<uint64_t, kCallbackBucketsNs.size() + 1> buckets{};

    // The q-quantile of callback time (interpolated within its bucket), in nanoseconds.
    uint64_t quantileNs(double q) const;
  };

  void call(uint64_t ns) {
    auto& s = shard();
    bump(s.calls);
    s.total_ns.fetch_add(ns, std::memory_order_relaxed);
    size_t bucket = 0;
    while (bucket < kCallbackBucketsNs.size() && ns > kCallbackBucketsNs[bucket]) ++bucket;
    bump(s.buckets[bucket]);
    auto max = s.max_ns.load(std::memory_order_relaxed);
    while (ns > max && !s.max_ns.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
    }
  }
  void trap() { bump(shard().traps), bump(shard().errors); }
  void deadlineMiss() { bump(shard().deadline_misses), bump(shard().errors); }
  void startFailure() { bump(shard().errors); }
  void reject() { bump(shard().rejects); }
  void modification() { bump(shard().modifications); }

  Totals totals() const;

 private:
  struct alignas(64) Shard {
    std::atomic<uint64_t> calls{0}, errors{0}, traps{0}, deadline_misses{0}, rejects{0},
        modifications{0}, total_ns{0}, max_ns{0};
    std::array<std::atomic<uint64_t>, kCallbackBucketsNs.size() + 1> buckets{};
  };
  static constexpr size_t kShards = 8;

  // A thread keeps its shard for life; with more than kShards threads some share one, which
  // the read-modify-writes allow.
  static void bump(std::atomic<uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
  Shard& shard();

  std::array<Shard, kShards> shards_;
};

}  // namespace sluice::wasm
