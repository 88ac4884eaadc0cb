#include "routing/balancing_policy.h"

#include <array>
#include <random>
#include <thread>

#include "routing/builtin_policies.h"

namespace sluice::routing {
namespace {

struct Registration {
  std::string_view name;
  BalancingPolicyPtr (*make)(const BalancerOptions&);
};

// Adding a policy: one file with its factory, one line here.
constexpr std::array<Registration, 6> kPolicies{{
    {"round_robin", makeRoundRobinPolicy},
    {"random", makeRandomPolicy},
    {"power_of_two", makePowerOfTwoPolicy},
    {"least_load", makeLeastLoadPolicy},
    {"consistent_hash", makeConsistentHashPolicy},
    {"cache_aware", makeCacheAwarePolicy},
}};

constexpr std::array<std::string_view, kPolicies.size()> kNames = [] {
  std::array<std::string_view, kPolicies.size()> names{};
  for (size_t i = 0; i < kPolicies.size(); ++i) names[i] = kPolicies[i].name;
  return names;
}();

}  // namespace

Random& Random::forThisThread() {
  thread_local Random random([] {
    std::random_device device;
    return (uint64_t{device()} << 32) ^ device() ^
           std::hash<std::thread::id>{}(std::this_thread::get_id());
  }());
  return random;
}

std::span<const std::string_view> balancingPolicyNames() { return kNames; }

std::vector<std::string> checkBalancerOptions(const BalancerOptions& options) {
  std::vector<std::string> problems;
  const auto& hash = options.consistent_hash;
  if (!(hash.epsilon > 0)) {
    problems.push_back(
        "consistent_hash.epsilon must be greater than 0 (0.25 lets a worker "
        "take 25% more than the average load)");
  }
  if (hash.virtual_nodes == 0) {
    problems.push_back("consistent_hash.virtual_nodes must be at least 1");
  }
  const auto& cache = options.cache_aware;
  if (!(cache.cache_threshold >= 0 && cache.cache_threshold <= 1)) {
    problems.push_back("cache_aware.cache_threshold must be between 0 and 1");
  }
  if (!(cache.balance_rel_threshold >= 1)) {
    problems.push_back("cache_aware.balance_rel_threshold must be at least 1");
  }
  if (cache.eviction_interval_ms == 0) {
    problems.push_back("cache_aware.eviction_interval_ms must be at least 1");
  }
  if (cache.chunk_chars == 0) problems.push_back("cache_aware.chunk_chars must be at least 1");
  if (cache.max_tree_size < cache.chunk_chars) {
    problems.push_back("cache_aware.max_tree_size must hold at least one chunk (chunk_chars)");
  }
  return problems;
}

BalancingPolicyPtr createBalancingPolicy(std::string_view name, const BalancerOptions& options) {
  for (const auto& policy : kPolicies) {
    if (policy.name == name) return policy.make(options);
  }
  return nullptr;
}

std::string_view pickReasonName(PickReason reason) {
  static constexpr std::string_view kNames[kPickReasons] = {
      "policy",    "no_eligible_worker", "hash_owner",       "hash_spill",     "hash_no_key",
      "cache_hit", "cache_miss",         "cache_imbalanced", "cache_no_prompt"};
  const auto index = static_cast<size_t>(reason);
  return index < kPickReasons ? kNames[index] : "unknown";
}

}  // namespace sluice::routing
