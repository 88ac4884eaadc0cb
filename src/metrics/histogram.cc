#include "metrics/histogram.h"

#include <bit>
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
  for (double bound = start; bounds.size() < count; bound *= factor) bounds.push_back(bound);
  return bounds;
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds),
      // the sum, then bounds.size() + 1 bucket counts
      lines_per_shard_((bounds.size() + 2 + kWordsPerLine - 1) / kWordsPerLine),
      lines_(std::make_unique<detail::Line[]>(lines_per_shard_ * detail::shardCount())) {}

void Histogram::observe(double value) noexcept {
  // The first bound >= value (binary search; NaN compares false everywhere, so it is sent to
  // +Inf explicitly).
  size_t low = 0;
  size_t high = bounds_.size();
  while (low < high) {
    const size_t mid = (low + high) / 2;
    if (bounds_[mid] < value) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (std::isnan(value)) low = bounds_.size();

  detail::Line* shard = &lines_[detail::thisThreadShard() * lines_per_shard_];
  word(shard, 1 + low).fetch_add(1, std::memory_order_relaxed);
  auto& sum = word(shard, 0);
  uint64_t old = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(
      old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + value), std::memory_order_relaxed)) {
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
