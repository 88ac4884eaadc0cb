#include "metrics/shard.h"

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::metrics::detail {
namespace {

// Shards not lent to a thread; the last shard is never lent, it is the shared one.
struct FreeShards {
  FreeShards() {
    for (uint32_t i = shardCount() - 1; i-- > 0;) free.push_back(i);
  }
  std::mutex mutex;
  std::vector<uint32_t> free;  // lowest index last
};

FreeShards& freeShards() {
  // Never destroyed: threads may still exit after static destruction has begun.
  static auto* shards = new FreeShards();
  return *shards;
}

// Gives the thread's shard back when the thread exits. Anything the thread counts later (in
// another thread_local's destructor) goes to the shared shard.
struct Lease {
  ~Lease() {
    if (t_shard >= kShared) return;
    const uint32_t shard = t_shard;
    t_shard = kShared | (shardCount() - 1);
    auto& shards = freeShards();
    std::lock_guard lock(shards.mutex);
    shards.free.push_back(shard);
  }
};

}  // namespace

uint32_t shardCount() {
  static const uint32_t count = std::clamp(std::thread::hardware_concurrency(), 8u, 64u);
  return count;
}

uint32_t claimShard() {
  if (t_shard != kNoShard) return t_shard;
  thread_local Lease lease;
  auto& shards = freeShards();
  // The mutex also orders this thread's first writes after the previous holder's last ones.
  std::lock_guard lock(shards.mutex);
  if (shards.free.empty()) {
    t_shard = kShared | (shardCount() - 1);
  } else {
    t_shard = shards.free.back();
    shards.free.pop_back();
  }
  return t_shard;
}

}  // namespace sluice::metrics::detail
