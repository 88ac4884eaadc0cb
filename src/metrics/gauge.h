#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "metrics/shard.h"

namespace sluice::metrics {

template <class Metric>
class Family;

// A value that goes up and down: requests in flight (`inc` when one starts, `dec` when it ends,
// on any thread), or a level one owner `set`s (pool size, last reload time). `add` writes the
// calling thread's shard only (see shard.h); `set` is meant for gauges only their owner moves:
// an `add` racing with a `set` may be lost.
class Gauge {
 public:
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void add(int64_t delta) noexcept {
    // Two's complement: shards wrap as unsigned and their sum is the signed total.
    const auto shard = detail::thisThreadShard();
    detail::add(cells_[shard.index].value, static_cast<uint64_t>(delta), shard.exclusive);
  }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  void set(int64_t value) noexcept;
  int64_t value() const noexcept;

 private:
  template <class Metric>
  friend class Family;
  Gauge();
  int64_t shardSum() const noexcept;

  std::unique_ptr<detail::Cell[]> cells_;  // shardCount() cells of deltas
  std::atomic<int64_t> base_{0};           // what `set` stored, less the deltas at that time
};

}  // namespace sluice::metrics
