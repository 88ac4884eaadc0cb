#include "metrics/histogram.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

namespace sluice::metrics {
namespace {

constexpr size_t kWordsPerLine = sizeof(detail::Line::words) / sizeof(detail::Line::words[0]);

// Word `index` of a shard that starts at `lines`.
template <class LinePtr>
auto& word(LinePtr lines, size_t index) {
  return lines[index / kWordsPerLine].words[index % kWordsPerLine];
}

}  // namespace

std::vector<double> exponentialBuckets(double start, double factor, size_t count) {
  std::vector<double> bounds;
  bounds.reserve(count);
  for (double bound = start; bounds.size() < count; bound *= factor) {
    // Rounded to 15 significant digits, so that 1e-6 * 10 is le="1e-05" and not
    // le="9.999999999999999e-06".
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, bound, std::chars_format::general, 15);
    double rounded = bound;
    std::from_chars(text, end.ptr, rounded);
    bounds.push_back(rounded);
  }
  return bounds;
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds),
      // the sum, then bounds.size() + 1 bucket counts
      lines_per_shard_((bounds.size() + 2 + kWordsPerLine - 1) / kWordsPerLine),
      lines_(std::make_unique<detail::Line[]>(lines_per_shard_ * detail::shardCount())) {}

void Histogram::observe(double value) noexcept {
  // The first bound >= value, found by counting the bounds below the value: independent
  // comparisons with no branch to mispredict (latencies vary too much for a predictor); a
  // binary search only pays past a few dozen bounds. NaN compares false everywhere, so it is
  // sent to +Inf explicitly.
  size_t bucket = 0;
  if (bounds_.size() <= 32) {
    for (double bound : bounds_) bucket += bound < value ? 1 : 0;
  } else {
    bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                 bounds_.begin());
  }
  if (std::isnan(value)) bucket = bounds_.size();

  const auto shard = detail::thisThreadShard();
  detail::Line* lines = &lines_[shard.index * lines_per_shard_];
  detail::add(word(lines, 1 + bucket), 1, shard.exclusive);
  auto& sum = word(lines, 0);
  uint64_t old = sum.load(std::memory_order_relaxed);
  if (shard.exclusive) {
    sum.store(std::bit_cast<uint64_t>(std::bit_cast<double>(old) + value),
              std::memory_order_relaxed);
    return;
  }
  while (!sum.compare_exchange_weak(old,
                                    std::bit_cast<uint64_t>(std::bit_cast<double>(old) + value),
                                    std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  const size_t buckets = bounds_.size() + 1;
  snapshot.cumulative.assign(buckets, 0);
  for (uint32_t shard = 0, n = detail::shardCount(); shard < n; ++shard) {
    const detail::Line* lines = &lines_[shard * lines_per_shard_];
    snapshot.sum += std::bit_cast<double>(word(lines, 0).load(std::memory_order_relaxed));
    for (size_t b = 0; b < buckets; ++b) {
      snapshot.cumulative[b] += word(lines, 1 + b).load(std::memory_order_relaxed);
    }
  }
  for (size_t b = 1; b < buckets; ++b) snapshot.cumulative[b] += snapshot.cumulative[b - 1];
  snapshot.count = snapshot.cumulative.back();
  return snapshot;
}

}  // namespace sluice::metrics
