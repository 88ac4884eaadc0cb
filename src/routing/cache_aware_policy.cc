#include "routing/cache_aware_policy.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "routing/builtin_policies.h"
#include "routing/worker_selection.h"

namespace sluice::routing {

CacheAwarePolicy::CacheAwarePolicy(const CacheAwareOptions& options,
                                   std::function<int64_t()> now_ms)
    : options_(options), now_ms_(std::move(now_ms)) {}

int64_t CacheAwarePolicy::nowMs() const {
  if (now_ms_) return now_ms_();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<const CacheAwarePolicy::Trees> CacheAwarePolicy::buildTrees(
    std::span<const WorkerState> workers, const Trees* previous) const {
  auto trees = std::make_unique<Trees>(Trees{Membership(workers, /*with_weights=*/false), {}});
  trees->of_worker.reserve(workers.size());
  for (const auto& worker : workers) {
    std::shared_ptr<WorkerTree> kept;
    if (previous) {
      const auto& ids = previous->membership.ids();
      for (size_t i = 0; i < ids.size() && !kept; ++i) {
        if (ids[i] == worker.id) kept = previous->of_worker[i];
      }
    }
    trees->of_worker.push_back(kept ? std::move(kept)
                                    : std::make_shared<WorkerTree>(options_.max_tree_size));
  }
  return trees;
}

size_t CacheAwarePolicy::leastLoaded(std::span<const WorkerState> workers, const Trees& trees,
                                     Random& random) const {
  size_t best = kNoWorker;
  uint32_t best_load = 0;
  size_t best_chars = 0;
  uint64_t ties = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (!workers[i].eligible()) continue;
    const uint32_t load = workers[i].load();
    const size_t chars = trees.of_worker[i]->chars.load(std::memory_order_relaxed);
    bool better = best == kNoWorker || lessLoaded(workers[i], load, workers[best], best_load);
    const bool tied_load = !better && !lessLoaded(workers[best], best_load, workers[i], load);
    if (tied_load && chars < best_chars) better = true;
    if (better) {
      best = i;
      best_load = load;
      best_chars = chars;
      ties = 1;
    } else if (tied_load && chars == best_chars && random.below(++ties) == 0) {
      best = i;
      best_load = load;
    }
  }
  return best;
}

std::optional<size_t> CacheAwarePolicy::pick(const PickContext& context,
                                             std::span<const WorkerState> workers) {
  uint32_t min_load = std::numeric_limits<uint32_t>::max(), max_load = 0;
  for (const auto& worker : workers) {
    if (!worker.eligible()) continue;
    const uint32_t load = worker.load();
    min_load = std::min(min_load, load);
    max_load = std::max(max_load, load);
  }
  if (min_load > max_load) {
    if (context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
    return std::nullopt;
  }
  Random& random = randomFor(context);
  if (context.prompt.empty()) {
    if (context.trace) context.trace->reason = PickReason::kCacheNoPrompt;
    return routing::leastLoaded(workers, random);
  }

  const bool imbalanced = max_load - min_load > options_.balance_abs_threshold &&
                          static_cast<double>(max_load) >
                              static_cast<double>(min_load) * options_.balance_rel_threshold;
  return trees_.with(
      workers,
      [this](std::span<const WorkerState> current, const Trees* previous) {
        return buildTrees(current, previous);
      },
      [&](const Trees& trees) {
        return pickWithTrees(context, workers, trees, imbalanced, random);
      });
}

size_t CacheAwarePolicy::pickWithTrees(const PickContext& context,
                                       std::span<const WorkerState> workers, const Trees& trees,
                                       bool imbalanced, Random& random) {
  thread_local PromptChunks prompt;
  prompt.assign(context.prompt, options_.chunk_chars);
  const int64_t now = nowMs();
  const int64_t fresh_since = now - static_cast<int64_t>(options_.eviction_interval_ms);

  PickReason reason = PickReason::kCacheImbalanced;
  size_t chosen = kNoWorker;
  size_t matched = 0;
  if (!imbalanced) {
    uint32_t chosen_load = 0;
    uint64_t ties = 0;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (!workers[i].eligible()) continue;
      WorkerTree& tree = *trees.of_worker[i];
      if (!tree.tree.mayMatch(prompt)) continue;
      size_t length;
      {
        std::lock_guard lock(tree.mutex);
        length = tree.tree.match(prompt, fresh_since);
      }
      if (length == 0) continue;
      const uint32_t load = workers[i].load();
      if (length > matched || (length == matched && load < chosen_load)) {
        chosen = i;
        matched = length;
        chosen_load = load;
        ties = 1;
      } else if (length == matched && load == chosen_load && random.below(++ties) == 0) {
        chosen = i;
      }
    }
    const bool hit =
        chosen != kNoWorker && static_cast<double>(matched) >=
                                   options_.cache_threshold * static_cast<double>(prompt.length());
    reason = hit ? PickReason::kCacheHit : PickReason::kCacheMiss;
    if (!hit) chosen = kNoWorker;
  }
  if (chosen == kNoWorker) chosen = leastLoaded(workers, trees, random);

  WorkerTree& tree = *trees.of_worker[chosen];
  {
    std::lock_guard lock(tree.mutex);
    tree.tree.insert(prompt, now, fresh_since);
    tree.chars.store(tree.tree.chars(), std::memory_order_relaxed);
  }
  if (context.trace) {
    context.trace->reason = reason;
    context.trace->cache_match =
        static_cast<double>(matched) / static_cast<double>(prompt.length());
  }
  return chosen;
}

void CacheAwarePolicy::predictCacheMatch(std::string_view prompt,
                                         std::span<const WorkerState> workers,
                                         std::span<double> matches) const {
  if (prompt.empty()) return;
  thread_local PromptChunks chunks;
  chunks.assign(prompt, options_.chunk_chars);
  if (chunks.length() == 0) return;
  const int64_t fresh_since = nowMs() - static_cast<int64_t>(options_.eviction_interval_ms);
  trees_.withCurrent([&](const Trees& trees) {
    const auto& ids = trees.membership.ids();
    for (size_t i = 0; i < workers.size() && i < matches.size(); ++i) {
      for (size_t t = 0; t < ids.size(); ++t) {
        if (ids[t] != workers[i].id) continue;
        WorkerTree& tree = *trees.of_worker[t];
        if (!tree.tree.mayMatch(chunks)) break;
        size_t length;
        {
          std::lock_guard lock(tree.mutex);
          length = tree.tree.match(chunks, fresh_since);
        }
        matches[i] = static_cast<double>(length) / static_cast<double>(chunks.length());
        break;
      }
    }
  });
}

CacheAwarePolicy::TreeSize CacheAwarePolicy::treeSize(std::string_view id) const {
  TreeSize size;
  trees_.withCurrent([&](const Trees& trees) {
    const auto& ids = trees.membership.ids();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] != id) continue;
      WorkerTree& tree = *trees.of_worker[i];
      std::lock_guard lock(tree.mutex);
      size = {tree.tree.chars(), tree.tree.nodes()};
      return;
    }
  });
  return size;
}

BalancingPolicyPtr makeCacheAwarePolicy(const BalancerOptions& options) {
  return std::make_unique<CacheAwarePolicy>(options.cache_aware, options.now_ms);
}

}  // namespace sluice::routing
