#pragma once

// cache_aware, as SGLang's router does it: requests whose prompt shares a long enough prefix
// with prompts recently sent to a worker go to that worker (whose KV cache likely still holds
// the prefix) while load stays balanced; others go to the least loaded worker. Declared here,
// unlike the other policies, for the size of its trees (tests, admin API).

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "routing/balancing_policy.h"
#include "routing/membership_cache.h"
#include "routing/prefix_tree.h"

namespace sluice::routing {

class CacheAwarePolicy : public BalancingPolicy {
 public:
  CacheAwarePolicy(const CacheAwareOptions& options, std::function<int64_t()> now_ms);

  std::string_view name() const override { return "cache_aware"; }
  bool usesPrompt() const override { return true; }

  // With load balanced (not both max - min > balance_abs_threshold and max > min *
  // balance_rel_threshold), the worker with the longest matching prefix if it covers
  // cache_threshold of the prompt (ties: fewer outstanding, then random); otherwise the worker
  // with the fewest outstanding requests per unit of weight (ties: the smaller tree, then
  // random). The prompt then joins the chosen worker's tree.
  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override;
  // The longest fresh match in each worker's tree / prompt characters, as pick measures it.
  void predictCacheMatch(std::string_view prompt, std::span<const WorkerState> workers,
                         std::span<double> matches) const override;

  struct TreeSize {
    size_t chars = 0;
    size_t nodes = 0;
  };
  // What the tree of worker `id` holds now (zero for a worker not in the pool the last pick
  // saw).
  TreeSize treeSize(std::string_view id) const;

 private:
  // Critical sections on a tree last a few hundred nanoseconds: spinning a little before
  // sleeping saves the futex round trip that dominated when two threads met on one tree.
  class TreeMutex {
   public:
    void lock() {
      for (int spin = 0; spin < 100; ++spin) {
        if (mutex_.try_lock()) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
      }
      mutex_.lock();
    }
    void unlock() { mutex_.unlock(); }

   private:
    std::mutex mutex_;
  };

  // One worker's tree behind its own lock. A pick holds one tree's lock at a time, for one
  // match or one insert, and locks only the trees whose first-chunk bitmap knows the prompt's
  // first chunk; concurrent picks pass each other instead of queueing on one lock.
  struct alignas(64) WorkerTree {
    explicit WorkerTree(size_t max_chars) : tree(max_chars) {}
    TreeMutex mutex;
    PrefixTree tree;               // guarded by mutex
    std::atomic<size_t> chars{0};  // tree.chars(), readable without the lock
  };
  // The trees in the order of the pool's workers; a worker keeps its tree while it stays in
  // the pool, wherever it moves.
  struct Trees {
    Membership membership;
    std::vector<std::shared_ptr<WorkerTree>> of_worker;
  };

  std::unique_ptr<const Trees> buildTrees(std::span<const WorkerState> workers,
                                          const Trees* previous) const;
  size_t pickWithTrees(const PickContext& context, std::span<const WorkerState> workers,
                       const Trees& trees, bool imbalanced, Random& random);
  size_t leastLoaded(std::span<const WorkerState> workers, const Trees& trees,
                     Random& random) const;
  int64_t nowMs() const;

  CacheAwareOptions options_;
  std::function<int64_t()> now_ms_;
  MembershipCache<Trees> trees_;
};

}  // namespace sluice::routing
