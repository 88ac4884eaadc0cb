#include "routing/builtin_policies.h"
#include "routing/worker_selection.h"

namespace sluice::routing {
namespace {

// The worker with the fewest outstanding requests per unit of weight (with equal weights:
// simply the fewest); ties broken at random so that idle workers share the traffic.
class LeastLoadPolicy : public BalancingPolicy {
 public:
  std::string_view name() const override { return "least_load"; }

  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override {
    auto chosen = leastLoaded(workers, randomFor(context));
    if (!chosen && context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
    return chosen;
  }
};

}  // namespace

BalancingPolicyPtr makeLeastLoadPolicy(const BalancerOptions&) {
  return std::make_unique<LeastLoadPolicy>();
}

}  // namespace sluice::routing
