#include "metrics/shard.h"

#include <algorithm>
#include <thread>

namespace sluice::metrics::detail {

uint32_t shardCount() {
  static const uint32_t count = std::clamp(std::thread::hardware_concurrency(), 4u, 64u);
  return count;
}

uint32_t assignThisThreadShard() {
  static std::atomic<uint32_t> next{0};
  t_shard = next.fetch_add(1, std::memory_order_relaxed) % shardCount();
  return t_shard;
}

}  // namespace sluice::metrics::detail
