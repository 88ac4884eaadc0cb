#pragma once

// Selection rules several policies share. All skip workers that are not eligible (unhealthy
// or weight 0) and return nullopt when none is.

#include <cstddef>
#include <limits>
#include <optional>
#include <span>

#include "routing/balancing_policy.h"

namespace sluice::routing {

inline constexpr size_t kNoWorker = std::numeric_limits<size_t>::max();

inline Random& randomFor(const PickContext& context) {
  return context.random ? *context.random : Random::forThisThread();
}

// An eligible worker other than `except`, drawn with probability proportional to its weight.
std::optional<size_t> weightedRandom(std::span<const WorkerState> workers, Random& random,
                                     size_t except = kNoWorker);

// Whether `a` carries fewer outstanding requests per unit of weight than `b`. One is added to
// each load so that weights also decide between idle workers.
inline bool lessLoaded(const WorkerState& a, uint32_t load_a, const WorkerState& b,
                       uint32_t load_b) {
  return (uint64_t{load_a} + 1) * b.weight < (uint64_t{load_b} + 1) * a.weight;
}

// The eligible worker with the fewest outstanding requests per unit of weight; ties broken at
// random.
std::optional<size_t> leastLoaded(std::span<const WorkerState> workers, Random& random);

}  // namespace sluice::routing
