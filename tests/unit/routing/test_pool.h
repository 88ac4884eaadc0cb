#pragma once

// A pool of workers as the gateway would show it to a policy: ids, weights, health and live
// load counters, viewed as a span of WorkerState.

#include <deque>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "routing/balancing_policy.h"

namespace sluice::routing::testing {

class TestPool {
 public:
  explicit TestPool(size_t size, std::vector<uint32_t> weights = {}) {
    for (size_t i = 0; i < size; ++i) add(weights.empty() ? 1 : weights[i]);
  }

  // Adds a worker named "http://10.0.0.<n>:8000" and returns its id.
  std::string add(uint32_t weight = 1) {
    ids_.push_back("http://10.0.0." + std::to_string(next_++) + ":8000");
    loads_.emplace_back(0);
    states_.push_back({ids_.back(), weight, true, &loads_.back()});
    counters_.push_back(&loads_.back());
    return ids_.back();
  }
  void remove(size_t index) {
    states_.erase(states_.begin() + static_cast<ptrdiff_t>(index));
    counters_.erase(counters_.begin() + static_cast<ptrdiff_t>(index));
  }

  void setLoad(size_t index, uint32_t load) { counters_[index]->store(load); }
  LoadCounter& counter(size_t index) { return *counters_[index]; }
  void setHealthy(size_t index, bool healthy) { states_[index].healthy = healthy; }
  void setWeight(size_t index, uint32_t weight) { states_[index].weight = weight; }

  std::span<const WorkerState> view() const { return states_; }
  std::string_view id(size_t index) const { return states_[index].id; }
  size_t size() const { return states_.size(); }

 private:
  size_t next_ = 1;
  std::deque<std::string> ids_;  // deques: views and counters keep their addresses
  std::deque<LoadCounter> loads_;
  std::vector<WorkerState> states_;
  std::vector<LoadCounter*> counters_;  // counters_[i] is states_[i].outstanding
};

// How many of `picks` picks went to each index; -1 counts nullopt.
inline std::map<int, int> countPicks(BalancingPolicy& policy, const TestPool& pool, int picks,
                                     const PickContext& context = {}) {
  std::map<int, int> counts;
  for (int i = 0; i < picks; ++i) {
    const auto chosen = policy.pick(context, pool.view());
    ++counts[chosen ? static_cast<int>(*chosen) : -1];
  }
  return counts;
}

}  // namespace sluice::routing::testing
