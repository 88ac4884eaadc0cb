#include "routing/balancing_policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_pool.h"

namespace sluice::routing {
namespace {

using testing::TestPool;

TEST(BalancingPolicyRegistry, ListsTheConfigNames) {
  const auto names = balancingPolicyNames();
  EXPECT_EQ(std::vector<std::string_view>(names.begin(), names.end()),
            (std::vector<std::string_view>{"round_robin", "random", "power_of_two", "least_load",
                                           "consistent_hash", "cache_aware"}));
}

TEST(BalancingPolicyRegistry, CreatesEachPolicyUnderItsName) {
  for (auto name : balancingPolicyNames()) {
    auto policy = createBalancingPolicy(name, {});
    ASSERT_NE(policy, nullptr) << name;
    EXPECT_EQ(policy->name(), name);
  }
}

TEST(BalancingPolicyRegistry, UnknownNameGivesNull) {
  EXPECT_EQ(createBalancingPolicy("fastest", {}), nullptr);
  EXPECT_EQ(createBalancingPolicy("", {}), nullptr);
}

TEST(BalancingPolicyRegistry, SaysWhichRequestFieldsItReads) {
  EXPECT_TRUE(createBalancingPolicy("cache_aware", {})->usesPrompt());
  EXPECT_FALSE(createBalancingPolicy("cache_aware", {})->usesHashKey());
  EXPECT_TRUE(createBalancingPolicy("consistent_hash", {})->usesHashKey());
  EXPECT_FALSE(createBalancingPolicy("consistent_hash", {})->usesPrompt());
  EXPECT_FALSE(createBalancingPolicy("round_robin", {})->usesPrompt());
  EXPECT_FALSE(createBalancingPolicy("round_robin", {})->usesHashKey());
}

TEST(BalancerOptions, DefaultsAreValidAndMatchSGLang) {
  BalancerOptions options;
  EXPECT_TRUE(checkBalancerOptions(options).empty());
  EXPECT_EQ(options.consistent_hash.epsilon, 0.25);
  EXPECT_EQ(options.cache_aware.cache_threshold, 0.5);
  EXPECT_EQ(options.cache_aware.balance_abs_threshold, 32u);
  EXPECT_EQ(options.cache_aware.balance_rel_threshold, 1.1);
  EXPECT_EQ(options.cache_aware.eviction_interval_ms, 60000u);
  EXPECT_EQ(options.cache_aware.max_tree_size, size_t{1} << 20);
}

TEST(BalancerOptions, EachProblemNamesItsKey) {
  BalancerOptions options;
  options.consistent_hash.epsilon = 0;
  options.cache_aware.cache_threshold = 1.5;
  options.cache_aware.balance_rel_threshold = 0.9;
  options.cache_aware.chunk_chars = 0;
  const auto problems = checkBalancerOptions(options);
  ASSERT_EQ(problems.size(), 4u);
  EXPECT_TRUE(problems[0].starts_with("consistent_hash.epsilon"));
  EXPECT_TRUE(problems[1].starts_with("cache_aware.cache_threshold"));
  EXPECT_TRUE(problems[2].starts_with("cache_aware.balance_rel_threshold"));
  EXPECT_TRUE(problems[3].starts_with("cache_aware.chunk_chars"));
}

// The rules every policy obeys, whatever it is.
class EveryPolicy : public ::testing::TestWithParam<std::string_view> {
 protected:
  BalancingPolicyPtr policy_ = createBalancingPolicy(GetParam(), {});
  PickContext context_{.prompt = "You are a helpful assistant. Summarise this text.",
                       .hash_key = "session-42"};
};

TEST_P(EveryPolicy, AllUnhealthyGivesNullopt) {
  TestPool pool(4);
  for (size_t i = 0; i < pool.size(); ++i) pool.setHealthy(i, false);
  PickTrace trace;
  PickContext context = context_;
  context.trace = &trace;
  EXPECT_EQ(policy_->pick(context, pool.view()), std::nullopt);
  EXPECT_EQ(trace.reason, PickReason::kNoEligibleWorker);
}

TEST_P(EveryPolicy, EmptyPoolGivesNullopt) {
  TestPool pool(0);
  EXPECT_EQ(policy_->pick(context_, pool.view()), std::nullopt);
}

TEST_P(EveryPolicy, NeverPicksUnhealthyOrDrainedWorkers) {
  TestPool pool(6);
  pool.setHealthy(1, false);
  pool.setHealthy(3, false);
  pool.setWeight(4, 0);
  pool.setLoad(0, 50);  // the cache and the hash must not pull traffic onto the unhealthy
  std::set<size_t> picked;
  for (int i = 0; i < 2000; ++i) {
    PickContext context = context_;
    const std::string key = "key-" + std::to_string(i);
    context.hash_key = key;
    const auto chosen = policy_->pick(context, pool.view());
    ASSERT_TRUE(chosen.has_value());
    picked.insert(*chosen);
  }
  EXPECT_EQ(picked.count(1), 0u);
  EXPECT_EQ(picked.count(3), 0u);
  EXPECT_EQ(picked.count(4), 0u);
}

TEST_P(EveryPolicy, SingleEligibleWorkerTakesEverything) {
  TestPool pool(3);
  pool.setHealthy(0, false);
  pool.setHealthy(2, false);
  pool.setLoad(1, 1000);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(policy_->pick(context_, pool.view()), 1u);
}

// Four threads pick at once, as the gateway's worker threads do, while loads change under
// them and half the threads see the pool after a worker was added (a membership change in
// flight). Every answer must be an eligible worker of the view it was given. Run under TSan.
TEST_P(EveryPolicy, ConcurrentPicksFromFourThreads) {
  TestPool pool(9);
  pool.setHealthy(5, false);
  const std::vector<WorkerState> grown(pool.view().begin(), pool.view().end());
  std::vector<LoadCounter*> counters;
  for (size_t i = 0; i < pool.size(); ++i) counters.push_back(&pool.counter(i));
  pool.remove(8);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Random random(t + 1);
      const std::span<const WorkerState> view =
          t % 2 == 0 ? pool.view() : std::span<const WorkerState>(grown);
      for (int i = 0; i < 5000; ++i) {
        const std::string key = "session-" + std::to_string(i % 97);
        const std::string prompt =
            "system prompt " + std::to_string(i % 13) + std::string(300, 'x') + std::to_string(i);
        PickContext context{.prompt = prompt, .hash_key = key, .random = &random};
        const auto chosen = policy_->pick(context, view);
        if (!chosen || *chosen >= view.size() || !view[*chosen].eligible()) {
          ++bad;
          continue;
        }
        LoadCounter& load = *counters[*chosen];
        load.fetch_add(1);
        policy_->onStart(*chosen, context);
        if (i % 3 != 0) {
          load.fetch_sub(1);
          policy_->onFinish(*chosen);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, EveryPolicy, ::testing::ValuesIn(balancingPolicyNames()),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace sluice::routing
