#include "metrics/counter.h"

namespace sluice::metrics {

Counter::Counter() : cells_(std::make_unique<detail::Cell[]>(detail::shardCount())) {}

uint64_t Counter::value() const noexcept {
  uint64_t sum = 0;
  for (uint32_t i = 0, n = detail::shardCount(); i < n; ++i) {
    sum += cells_[i].value.load(std::memory_order_relaxed);
  }
  return sum;
}

}  // namespace sluice::metrics
