#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "routing/cache_aware_policy.h"
#include "test_pool.h"

namespace sluice::routing {
namespace {

using testing::TestPool;

// A prompt of family `family` (a shared 1000-character system prompt) and a 100-character
// question of its own.
std::string prompt(int family, int question) {
  std::string text = "family " + std::to_string(family) + ": ";
  while (text.size() < 1000)
    text += "You are a careful assistant for team " + std::to_string(family) + ". ";
  text.resize(1000);
  std::string tail = " question " + std::to_string(question) + " ";
  while (tail.size() < 100) tail += "?";
  return text + tail.substr(0, 100);
}

class CacheAware : public ::testing::Test {
 protected:
  explicit CacheAware(CacheAwareOptions cache = {}) { configure(cache); }

  void configure(CacheAwareOptions cache) {
    BalancerOptions options;
    options.cache_aware = cache;
    options.now_ms = [this] { return now_ms_; };
    policy_ = std::make_unique<CacheAwarePolicy>(options.cache_aware, options.now_ms);
  }

  size_t pick(std::string_view text, PickTrace* trace = nullptr) {
    return policy_->pick({.prompt = text, .random = &random_, .trace = trace}, pool_.view())
        .value();
  }

  int64_t now_ms_ = 1'000'000;
  Random random_{1};
  TestPool pool_{4};
  std::unique_ptr<CacheAwarePolicy> policy_;
};

TEST_F(CacheAware, SamePrefixSticksToOneWorker) {
  const size_t first = pick(prompt(1, 0));
  for (int question = 1; question < 50; ++question) {
    PickTrace trace;
    EXPECT_EQ(pick(prompt(1, question), &trace), first);
    EXPECT_EQ(trace.reason, PickReason::kCacheHit);
    EXPECT_NEAR(trace.cache_match, 960.0 / 1100, 1e-9);  // 15 whole chunks
  }
}

TEST_F(CacheAware, DifferentPrefixesSpreadOverWorkers) {
  std::map<int, size_t> home;
  for (int family = 0; family < 8; ++family) home[family] = pick(prompt(family, 0));
  std::map<size_t, int> families_per_worker;
  for (const auto& [family, worker] : home) ++families_per_worker[worker];
  EXPECT_EQ(families_per_worker, (std::map<size_t, int>{{0, 2}, {1, 2}, {2, 2}, {3, 2}}));
  // Then each family keeps to its worker.
  for (int round = 1; round < 5; ++round) {
    for (int family = 0; family < 8; ++family) EXPECT_EQ(pick(prompt(family, round)), home[family]);
  }
}

TEST_F(CacheAware, UnseenPrefixGoesToTheLeastLoaded) {
  pick(prompt(1, 0));
  pool_.setLoad(0, 3);
  pool_.setLoad(1, 2);
  pool_.setLoad(2, 1);
  pool_.setLoad(3, 4);
  PickTrace trace;
  EXPECT_EQ(pick(prompt(2, 0), &trace), 2u);
  EXPECT_EQ(trace.reason, PickReason::kCacheMiss);
}

TEST_F(CacheAware, ImbalanceBeyondBothThresholdsGoesToTheLeastLoaded) {
  const size_t home = pick(prompt(1, 0));
  const size_t idle = (home + 1) % 4;
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == idle ? 5 : 40);
  pool_.setLoad(home, 40);  // 40 - 5 > 32 and 40 > 5 * 1.1
  PickTrace trace;
  EXPECT_EQ(pick(prompt(1, 1), &trace), idle);
  EXPECT_EQ(trace.reason, PickReason::kCacheImbalanced);
}

TEST_F(CacheAware, ImbalanceWithinEitherThresholdKeepsTheCache) {
  const size_t home = pick(prompt(1, 0));
  PickTrace trace;
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, 0);
  pool_.setLoad(home, 32);  // max - min = 32: not beyond the absolute threshold
  EXPECT_EQ(pick(prompt(1, 1), &trace), home);
  EXPECT_EQ(trace.reason, PickReason::kCacheHit);

  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, 400);
  pool_.setLoad(home, 435);  // max - min = 35 > 32, but 435 <= 400 * 1.1
  EXPECT_EQ(pick(prompt(1, 2), &trace), home);
  EXPECT_EQ(trace.reason, PickReason::kCacheHit);

  pool_.setLoad(home, 441);  // both thresholds passed
  EXPECT_NE(pick(prompt(1, 3), &trace), home);
  EXPECT_EQ(trace.reason, PickReason::kCacheImbalanced);
}

TEST_F(CacheAware, MatchBelowTheThresholdIsAMiss) {
  const std::string seen = std::string(300, 'a') + std::string(700, 'b');
  const size_t home = pick(seen);
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == home ? 3 : 1);
  // Shares 256 characters (4 whole chunks) of 1000: 0.26 < 0.5.
  PickTrace trace;
  const std::string other = std::string(300, 'a') + std::string(700, 'c');
  EXPECT_NE(pick(other, &trace), home);
  EXPECT_EQ(trace.reason, PickReason::kCacheMiss);
  EXPECT_NEAR(trace.cache_match, 0.256, 1e-9);
}

TEST_F(CacheAware, ThresholdIsAKnob) {
  configure({.cache_threshold = 0.2});
  const size_t home = pick(std::string(300, 'a') + std::string(700, 'b'));
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == home ? 3 : 1);
  EXPECT_EQ(pick(std::string(300, 'a') + std::string(700, 'c')), home);  // 0.256 >= 0.2
}

TEST_F(CacheAware, LongestMatchWinsAmongWorkersThatShareAPrefix) {
  const std::string base(512, 's');
  const size_t a = pick(base + std::string(512, 'x'));
  pool_.setLoad(a, 100);  // imbalanced: the next prompt of the family goes elsewhere
  const size_t b = pick(base + std::string(512, 'y'));
  ASSERT_NE(a, b);
  pool_.setLoad(a, 0);
  // Both know the base; each knows its own continuation.
  EXPECT_EQ(pick(base + std::string(512, 'x') + "more"), a);
  EXPECT_EQ(pick(base + std::string(512, 'y') + "more"), b);
}

TEST_F(CacheAware, UnhealthyWorkerCacheIsIgnored) {
  const size_t home = pick(prompt(1, 0));
  pool_.setHealthy(home, false);
  PickTrace trace;
  const size_t other = pick(prompt(1, 1), &trace);
  EXPECT_NE(other, home);
  EXPECT_EQ(trace.reason, PickReason::kCacheMiss);
  EXPECT_EQ(pick(prompt(1, 2)), other);  // the family moved with it
}

TEST_F(CacheAware, TreeSizeStaysWithinMaxTreeSize) {
  configure({.max_tree_size = 4096});
  for (int family = 0; family < 200; ++family) {
    pick(prompt(family, family));
    for (size_t i = 0; i < pool_.size(); ++i) {
      ASSERT_LE(policy_->treeSize(pool_.id(i)).chars, 4096u);
    }
  }
  size_t total = 0;
  for (size_t i = 0; i < pool_.size(); ++i) total += policy_->treeSize(pool_.id(i)).chars;
  EXPECT_GT(total, 3 * 4096u);  // and the trees do fill up
}

TEST_F(CacheAware, ForgetsPrefixesNotRoutedWithinTheEvictionInterval) {
  configure({.eviction_interval_ms = 1000});
  const size_t home = pick(prompt(1, 0));
  now_ms_ += 1000;
  PickTrace trace;
  EXPECT_EQ(pick(prompt(1, 1), &trace), home);  // 1000 ms old: still fresh
  EXPECT_EQ(trace.reason, PickReason::kCacheHit);

  now_ms_ += 1001;
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == home ? 1 : 0);
  EXPECT_NE(pick(prompt(1, 2), &trace), home);
  EXPECT_EQ(trace.reason, PickReason::kCacheMiss);
  // The next insert into home's tree sweeps the stale entries away.
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == home ? 0 : 9);
  pick("a new prompt for home");
  EXPECT_EQ(policy_->treeSize(pool_.id(home)).chars, std::string("a new prompt for home").size());
}

TEST_F(CacheAware, WorkerKeepsItsTreeWhenOthersComeAndGo) {
  const size_t home = pick(prompt(1, 0));
  const std::string home_id(pool_.id(home));
  pool_.remove(home == 0 ? 1 : 0);  // home may move to another index
  pool_.add();
  const size_t now_home = pick(prompt(1, 1));
  EXPECT_EQ(pool_.id(now_home), home_id);
}

// The workload of the issue: prompt families sharing long prefixes, one of them hot, with
// requests that stay in flight for a while. Families keep to their worker (hits); the hot one
// spills over when its worker runs beyond the balance thresholds, and from then on is served,
// as hits, by the few workers that know it, least loaded first.
TEST_F(CacheAware, SharedPrefixWorkloadStaysCachedAndBalanced) {
  pool_ = TestPool(8);
  struct InFlight {
    int ends_at;
    size_t worker;
  };
  std::vector<InFlight> in_flight;
  std::map<PickReason, int> reasons;  // after a warm-up
  int spills = 0;
  std::map<int, std::set<size_t>> workers_of_family;
  uint32_t widest_gap = 0;
  for (int tick = 0; tick < 5000; ++tick) {
    for (int r = 0; r < 4; ++r) {
      // Family 0 takes half the requests; families 1..31 share the rest.
      const int family = random_.below(2) == 0 ? 0 : 1 + static_cast<int>(random_.below(31));
      PickTrace trace;
      const size_t worker = pick(prompt(family, tick * 4 + r), &trace);
      spills += trace.reason == PickReason::kCacheImbalanced;
      pool_.counter(worker).fetch_add(1);
      in_flight.push_back({tick + 20 + static_cast<int>(random_.below(40)), worker});
      if (tick >= 500) {
        ++reasons[trace.reason];
        workers_of_family[family].insert(worker);
      }
    }
    std::erase_if(in_flight, [&](const InFlight& request) {
      if (request.ends_at > tick) return false;
      pool_.counter(request.worker).fetch_sub(1);
      return true;
    });
    uint32_t low = std::numeric_limits<uint32_t>::max(), high = 0;
    for (size_t i = 0; i < pool_.size(); ++i) {
      low = std::min(low, pool_.counter(i).load());
      high = std::max(high, pool_.counter(i).load());
    }
    if (tick >= 500) widest_gap = std::max(widest_gap, high - low);
  }
  const double picks = 4 * 4500;
  EXPECT_GT(spills, 0);
  EXPECT_GT(reasons[PickReason::kCacheHit] / picks, 0.95);
  // Cold families stay on a worker or two; the hot one is spread over several.
  for (int family = 1; family < 32; ++family) EXPECT_LE(workers_of_family[family].size(), 2u);
  EXPECT_GE(workers_of_family[0].size(), 3u);
  // Load never strays far beyond the absolute threshold (plus one tick of arrivals).
  EXPECT_LE(widest_gap, 32u + 8u);
}

TEST_F(CacheAware, EmptyPromptGoesToTheLeastLoaded) {
  for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == 1 ? 0 : 2);
  PickTrace trace;
  EXPECT_EQ(pick("", &trace), 1u);
  EXPECT_EQ(trace.reason, PickReason::kCacheNoPrompt);
}

}  // namespace
}  // namespace sluice::routing
