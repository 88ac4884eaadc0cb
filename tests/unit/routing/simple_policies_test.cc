// round_robin, random, power_of_two and least_load.

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "routing/balancing_policy.h"
#include "test_pool.h"

namespace sluice::routing {
namespace {

using testing::countPicks;
using testing::TestPool;

std::vector<size_t> sequence(BalancingPolicy& policy, const TestPool& pool, int picks) {
  std::vector<size_t> out;
  out.reserve(picks);
  for (int i = 0; i < picks; ++i) out.push_back(policy.pick({}, pool.view()).value());
  return out;
}

// Expect `counts[i]` within `tolerance` (relative) of `total * weights[i] / sum(weights)`.
void expectShares(const std::map<int, int>& counts, const std::vector<double>& weights, int total,
                  double tolerance) {
  double sum = 0;
  for (double w : weights) sum += w;
  for (size_t i = 0; i < weights.size(); ++i) {
    const double expected = total * weights[i] / sum;
    const auto it = counts.find(static_cast<int>(i));
    const double got = it == counts.end() ? 0 : it->second;
    EXPECT_NEAR(got, expected, expected * tolerance) << "worker " << i;
  }
}

TEST(RoundRobin, CyclesThroughWorkersInOrder) {
  TestPool pool(3);
  auto policy = createBalancingPolicy("round_robin", {});
  EXPECT_EQ(sequence(*policy, pool, 7), (std::vector<size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(RoundRobin, SkipsUnhealthyAndKeepsAnExactCycleAmongTheRest) {
  TestPool pool(4);
  auto policy = createBalancingPolicy("round_robin", {});
  pool.setHealthy(1, false);
  EXPECT_EQ(sequence(*policy, pool, 6), (std::vector<size_t>{0, 2, 3, 0, 2, 3}));
  pool.setHealthy(1, true);
  pool.setHealthy(3, false);
  const auto next = sequence(*policy, pool, 9);
  for (size_t start = 0; start < next.size(); start += 3) {
    EXPECT_EQ(std::set<size_t>(next.begin() + start, next.begin() + start + 3),
              (std::set<size_t>{0, 1, 2}));
  }
}

TEST(RoundRobin, WeightsGiveExactSharesOver100kPicks) {
  TestPool pool(4, {1, 2, 3, 4});
  auto policy = createBalancingPolicy("round_robin", {});
  EXPECT_EQ(countPicks(*policy, pool, 100000),
            (std::map<int, int>{{0, 10000}, {1, 20000}, {2, 30000}, {3, 40000}}));
}

TEST(RoundRobin, WeightedPicksAreInterleavedNotBunched) {
  TestPool pool(4, {5, 5, 1, 1});
  auto policy = createBalancingPolicy("round_robin", {});
  const auto picks = sequence(*policy, pool, 120);
  // Every period of 12 consecutive picks holds exactly the weights...
  for (size_t start = 0; start + 12 <= picks.size(); start += 12) {
    std::map<size_t, int> counts;
    for (size_t i = start; i < start + 12; ++i) ++counts[picks[i]];
    EXPECT_EQ(counts, (std::map<size_t, int>{{0, 5}, {1, 5}, {2, 1}, {3, 1}}));
  }
  // ...and the heavy workers alternate instead of taking five in a row each.
  for (size_t i = 1; i < picks.size(); ++i) EXPECT_NE(picks[i], picks[i - 1]) << "pick " << i;
}

TEST(RoundRobin, WeightsHoldAmongHealthyWorkers) {
  TestPool pool(4, {1, 2, 3, 4});
  pool.setHealthy(3, false);
  auto policy = createBalancingPolicy("round_robin", {});
  EXPECT_EQ(countPicks(*policy, pool, 60000),
            (std::map<int, int>{{0, 10000}, {1, 20000}, {2, 30000}}));
}

TEST(RandomPolicy, FollowsWeightsOver100kPicks) {
  TestPool pool(4, {1, 2, 3, 4});
  auto policy = createBalancingPolicy("random", {});
  Random random(7);
  expectShares(countPicks(*policy, pool, 100000, {.random = &random}), {1, 2, 3, 4}, 100000, 0.05);
}

TEST(RandomPolicy, EqualWeightsAreUniform) {
  TestPool pool(5);
  auto policy = createBalancingPolicy("random", {});
  Random random(11);
  expectShares(countPicks(*policy, pool, 100000, {.random = &random}), {1, 1, 1, 1, 1}, 100000,
               0.05);
}

TEST(RandomPolicy, IgnoresLoad) {
  TestPool pool(2);
  pool.setLoad(0, 1000);
  auto policy = createBalancingPolicy("random", {});
  Random random(3);
  expectShares(countPicks(*policy, pool, 20000, {.random = &random}), {1, 1}, 20000, 0.05);
}

TEST(PowerOfTwo, NeverPicksTheBusiestOfThree) {
  TestPool pool(3);
  pool.setLoad(0, 0);
  pool.setLoad(1, 5);
  pool.setLoad(2, 10);
  auto policy = createBalancingPolicy("power_of_two", {});
  Random random(5);
  const auto counts = countPicks(*policy, pool, 30000, {.random = &random});
  // Worker 0 wins both pairs it is drawn into (2 of 3), worker 1 the pair {1, 2}.
  expectShares(counts, {2, 1, 0}, 30000, 0.05);
  EXPECT_EQ(counts.count(2), 0u);
}

TEST(PowerOfTwo, EqualLoadsFollowWeights) {
  TestPool pool(2, {1, 3});
  auto policy = createBalancingPolicy("power_of_two", {});
  Random random(9);
  expectShares(countPicks(*policy, pool, 40000, {.random = &random}), {1, 3}, 40000, 0.05);
}

TEST(PowerOfTwo, SpreadsOverIdleWorkers) {
  TestPool pool(4);
  auto policy = createBalancingPolicy("power_of_two", {});
  Random random(13);
  expectShares(countPicks(*policy, pool, 40000, {.random = &random}), {1, 1, 1, 1}, 40000, 0.05);
}

TEST(LeastLoad, PicksTheMinimum) {
  TestPool pool(4);
  pool.setLoad(0, 3);
  pool.setLoad(1, 1);
  pool.setLoad(2, 2);
  pool.setLoad(3, 5);
  auto policy = createBalancingPolicy("least_load", {});
  EXPECT_EQ(countPicks(*policy, pool, 1000), (std::map<int, int>{{1, 1000}}));
}

TEST(LeastLoad, BreaksTiesAtRandom) {
  TestPool pool(4);
  pool.setLoad(0, 3);
  pool.setLoad(1, 1);
  pool.setLoad(2, 2);
  pool.setLoad(3, 1);
  auto policy = createBalancingPolicy("least_load", {});
  Random random(17);
  const auto counts = countPicks(*policy, pool, 20000, {.random = &random});
  EXPECT_EQ(counts.size(), 2u);
  expectShares(counts, {0, 1, 0, 1}, 20000, 0.05);
}

TEST(LeastLoad, WeightScalesCapacity) {
  // (load + 1) / weight: worker 1 at (3 + 1) / 4 = 1 beats worker 0 at (1 + 1) / 1 = 2.
  TestPool pool(2, {1, 4});
  pool.setLoad(0, 1);
  pool.setLoad(1, 3);
  auto policy = createBalancingPolicy("least_load", {});
  EXPECT_EQ(countPicks(*policy, pool, 100), (std::map<int, int>{{1, 100}}));
}

TEST(LeastLoad, SkipsAnIdleButUnhealthyWorker) {
  TestPool pool(3);
  pool.setLoad(1, 4);
  pool.setLoad(2, 2);
  pool.setHealthy(0, false);
  auto policy = createBalancingPolicy("least_load", {});
  EXPECT_EQ(countPicks(*policy, pool, 100), (std::map<int, int>{{2, 100}}));
}

}  // namespace
}  // namespace sluice::routing
