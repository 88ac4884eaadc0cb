#include "routing/builtin_policies.h"
#include "routing/worker_selection.h"

namespace sluice::routing {
namespace {

// Two distinct workers drawn by weight; the one with fewer outstanding requests wins (ties go
// to the first draw). Reads only two load counters, and avoids the herd that "least loaded"
// sends to one idle worker when loads are stale.
class PowerOfTwoPolicy : public BalancingPolicy {
 public:
  std::string_view name() const override { return "power_of_two"; }

  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override {
    Random& random = randomFor(context);
    const auto first = weightedRandom(workers, random);
    if (!first) {
      if (context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
      return std::nullopt;
    }
    const auto second = weightedRandom(workers, random, *first);
    if (!second) return first;
    return workers[*second].load() < workers[*first].load() ? second : first;
  }
};

}  // namespace

BalancingPolicyPtr makePowerOfTwoPolicy(const BalancerOptions&) {
  return std::make_unique<PowerOfTwoPolicy>();
}

}  // namespace sluice::routing
