#include "metrics/gauge.h"

namespace sluice::metrics {

Gauge::Gauge() : cells_(std::make_unique<detail::Cell[]>(detail::shardCount())) {}

int64_t Gauge::shardSum() const noexcept {
  uint64_t sum = 0;
  for (uint32_t i = 0, n = detail::shardCount(); i < n; ++i) {
    sum += cells_[i].value.load(std::memory_order_relaxed);
  }
  return static_cast<int64_t>(sum);
}

void Gauge::set(int64_t value) noexcept {
  base_.store(value - shardSum(), std::memory_order_relaxed);
}

int64_t Gauge::value() const noexcept { return base_.load(std::memory_order_relaxed) + shardSum(); }

}  // namespace sluice::metrics
