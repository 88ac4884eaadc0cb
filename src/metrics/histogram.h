#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "metrics/shard.h"

namespace sluice::metrics {

template <class Metric>
class Family;

// Bucket bounds in seconds for whole-request latency and time to first token: 5 ms to 5 min,
// since long completions take minutes.
inline constexpr std::array<double, 15> kLatencyBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
// Bucket bounds in seconds for the gap between two streamed tokens: 1 ms to 5 s.
inline constexpr std::array<double, 12> kTokenGapBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5,   5};

// `count` bounds from `start`, each `factor` times the previous one: {0.001, 2, 4} gives
// 0.001, 0.002, 0.004, 0.008.
std::vector<double> exponentialBuckets(double start, double factor, size_t count);

// Counts of observations (durations in seconds) by bucket, their sum and their number: one
// series of a histogram family. A bucket counts the values at most its bound (a value equal to
// a bound falls in that bound's bucket); NaN falls only in +Inf. `observe` finds the bucket and
// writes the bucket's count and the sum on the calling thread's shard (see shard.h).
class Histogram {
 public:
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value) noexcept;

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  // Read shard by shard while writers run: count always equals the +Inf bucket, but sum may
  // include an observation the buckets do not yet show, or the reverse.
  Snapshot snapshot() const;
  std::span<const double> bounds() const noexcept { return bounds_; }

 private:
  template <class Metric>
  friend class Family;
  // `bounds` (strictly increasing, finite) is borrowed from the family.
  explicit Histogram(std::span<const double> bounds);

  std::span<const double> bounds_;
  size_t lines_per_shard_;                 // a shard: word 0 is the sum, then one count per bucket
  std::unique_ptr<detail::Line[]> lines_;  // shardCount() * lines_per_shard_
};

}  // namespace sluice::metrics
