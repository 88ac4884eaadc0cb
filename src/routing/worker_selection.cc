#include "routing/worker_selection.h"

namespace sluice::routing {

std::optional<size_t> weightedRandom(std::span<const WorkerState> workers, Random& random,
                                     size_t except) {
  uint64_t total = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (i != except && workers[i].eligible()) total += workers[i].weight;
  }
  if (total == 0) return std::nullopt;
  uint64_t point = random.below(total);
  for (size_t i = 0; i < workers.size(); ++i) {
    if (i == except || !workers[i].eligible()) continue;
    if (point < workers[i].weight) return i;
    point -= workers[i].weight;
  }
  return std::nullopt;  // unreachable: point < total
}

std::optional<size_t> leastLoaded(std::span<const WorkerState> workers, Random& random) {
  size_t best = kNoWorker;
  uint32_t best_load = 0;
  uint64_t ties = 0;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (!workers[i].eligible()) continue;
    const uint32_t load = workers[i].load();
    if (best == kNoWorker || lessLoaded(workers[i], load, workers[best], best_load)) {
      best = i;
      best_load = load;
      ties = 1;
    } else if (!lessLoaded(workers[best], best_load, workers[i], load)) {
      // Reservoir sampling over the tied workers: each ends up chosen with probability 1/ties.
      if (random.below(++ties) == 0) {
        best = i;
        best_load = load;
      }
    }
  }
  if (best == kNoWorker) return std::nullopt;
  return best;
}

}  // namespace sluice::routing
