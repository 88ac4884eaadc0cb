#include "routing/builtin_policies.h"
#include "routing/worker_selection.h"

namespace sluice::routing {
namespace {

// Each pick independent, with probability proportional to weight. Stateless.
class RandomPolicy : public BalancingPolicy {
 public:
  std::string_view name() const override { return "random"; }

  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override {
    auto chosen = weightedRandom(workers, randomFor(context));
    if (!chosen && context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
    return chosen;
  }
};

}  // namespace

BalancingPolicyPtr makeRandomPolicy(const BalancerOptions&) {
  return std::make_unique<RandomPolicy>();
}

}  // namespace sluice::routing
