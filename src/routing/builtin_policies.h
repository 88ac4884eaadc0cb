#pragma once

// Factories of the policies that come with sluice, one per file; the registry in
// balancing_policy.cc lists them under their config names.

#include "routing/balancing_policy.h"

namespace sluice::routing {

BalancingPolicyPtr makeRoundRobinPolicy(const BalancerOptions& options);
BalancingPolicyPtr makeRandomPolicy(const BalancerOptions& options);
BalancingPolicyPtr makePowerOfTwoPolicy(const BalancerOptions& options);
BalancingPolicyPtr makeLeastLoadPolicy(const BalancerOptions& options);
BalancingPolicyPtr makeConsistentHashPolicy(const BalancerOptions& options);
BalancingPolicyPtr makeCacheAwarePolicy(const BalancerOptions& options);

}  // namespace sluice::routing
