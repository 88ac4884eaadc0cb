#pragma once

#include <cstdint>
#include <memory>

#include "metrics/shard.h"

namespace sluice::metrics {

template <class Metric>
class Family;

// A count that only goes up (requests, tokens, errors): one series of a counter family.
// `inc` is a load and a store on the calling thread's own shard (see shard.h).
class Counter {
 public:
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void inc(uint64_t n = 1) noexcept {
    const auto shard = detail::thisThreadShard();
    detail::add(cells_[shard.index].value, n, shard.exclusive);
  }
  // The sum over shards: exact once writers are done, a moment's snapshot while they run.
  uint64_t value() const noexcept;

 private:
  template <class Metric>
  friend class Family;
  Counter();

  std::unique_ptr<detail::Cell[]> cells_;  // shardCount() cells
};

}  // namespace sluice::metrics
