#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "routing/balancing_policy.h"
#include "test_pool.h"

namespace sluice::routing {
namespace {

using testing::TestPool;

class ConsistentHash : public ::testing::Test {
 protected:
  std::optional<size_t> pick(std::string_view key, PickTrace* trace = nullptr) {
    return policy_->pick({.hash_key = key, .trace = trace}, pool_.view());
  }
  // The worker id each of `count` keys lands on.
  std::vector<std::string> owners(int count) {
    std::vector<std::string> out;
    out.reserve(count);
    for (int i = 0; i < count; ++i) {
      out.emplace_back(pool_.id(pick("user-" + std::to_string(i)).value()));
    }
    return out;
  }

  TestPool pool_{10};
  BalancingPolicyPtr policy_ = createBalancingPolicy("consistent_hash", {});
};

TEST_F(ConsistentHash, SameKeyGoesToSameWorker) {
  const auto first = owners(2000);
  EXPECT_EQ(owners(2000), first);
  std::map<std::string, int> per_worker;
  for (const auto& id : first) ++per_worker[id];
  EXPECT_EQ(per_worker.size(), 10u);  // and the keys spread over all workers
}

TEST_F(ConsistentHash, SameKeySameWorkerInAnotherPolicyInstance) {
  // Another replica of the gateway (or a restart) places keys identically.
  const auto first = owners(500);
  policy_ = createBalancingPolicy("consistent_hash", {});
  EXPECT_EQ(owners(500), first);
}

TEST_F(ConsistentHash, KeysSpreadInProportionToWeight) {
  pool_ = TestPool(3, {1, 1, 2});
  std::map<std::string, int> per_worker;
  for (const auto& id : owners(40000)) ++per_worker[id];
  EXPECT_NEAR(per_worker[std::string(pool_.id(0))], 10000, 1500);
  EXPECT_NEAR(per_worker[std::string(pool_.id(1))], 10000, 1500);
  EXPECT_NEAR(per_worker[std::string(pool_.id(2))], 20000, 1500);
}

TEST_F(ConsistentHash, RemovingAWorkerMovesOnlyTheKeysItOwned) {
  const auto before = owners(20000);
  const std::string removed(pool_.id(4));
  pool_.remove(4);
  const auto after = owners(20000);
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == removed) {
      EXPECT_NE(after[i], removed);
      ++moved;
    } else {
      EXPECT_EQ(after[i], before[i]) << "key " << i << " moved though its worker stayed";
    }
  }
  EXPECT_NEAR(moved / 20000.0, 1 / 10.0, 0.03);
}

TEST_F(ConsistentHash, AddingAWorkerTakesKeysOnlyForItself) {
  const auto before = owners(20000);
  const std::string added = pool_.add();
  const auto after = owners(20000);
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (after[i] != before[i]) {
      EXPECT_EQ(after[i], added);
      ++moved;
    }
  }
  EXPECT_NEAR(moved / 20000.0, 1 / 11.0, 0.03);
}

TEST_F(ConsistentHash, UnhealthyOwnerLendsItsKeysAndGetsThemBack) {
  const auto before = owners(5000);
  const std::string down(pool_.id(2));
  pool_.setHealthy(2, false);
  const auto during = owners(5000);
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == down) {
      EXPECT_NE(during[i], down);
    } else {
      EXPECT_EQ(during[i], before[i]);
    }
  }
  pool_.setHealthy(2, true);
  EXPECT_EQ(owners(5000), before);
}

TEST_F(ConsistentHash, HotKeySpillsToTheNextWorkerUnderLoad) {
  PickTrace trace;
  const size_t owner = pick("hot-session", &trace).value();
  EXPECT_EQ(trace.reason, PickReason::kHashOwner);

  pool_.setLoad(owner, 10);  // others idle: bound ceil(11 * 1.25 / 10) = 2
  const size_t spill = pick("hot-session", &trace).value();
  EXPECT_NE(spill, owner);
  EXPECT_EQ(trace.reason, PickReason::kHashSpill);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pick("hot-session"), spill);  // the same next worker

  pool_.setLoad(owner, 0);
  EXPECT_EQ(pick("hot-session", &trace), owner);
  EXPECT_EQ(trace.reason, PickReason::kHashOwner);
}

TEST_F(ConsistentHash, HotKeyTakesAtMostItsBoundThenOverflowsInRingOrder) {
  // Requests of one key that stay in flight: each worker fills to the bound, then the next.
  pool_ = TestPool(4);
  std::map<size_t, int> taken;
  for (int i = 0; i < 40; ++i) {
    const size_t chosen = pick("hot").value();
    pool_.counter(chosen).fetch_add(1);
    ++taken[chosen];
    // The bound of the moment, ceil((L + 1) * 1.25 / 4), is never exceeded.
    EXPECT_LE(pool_.counter(chosen).load(), static_cast<uint32_t>(std::ceil((i + 1) * 1.25 / 4)));
  }
  EXPECT_EQ(taken.size(), 4u);
}

TEST_F(ConsistentHash, BoundIsCeilOfAverageTimesOnePlusEpsilon) {
  pool_ = TestPool(4);
  const size_t owner = pick("k").value();
  auto loads = [&](uint32_t mine) {
    for (size_t i = 0; i < 4; ++i) pool_.setLoad(i, i == owner ? mine : 2);
  };
  loads(2);  // L = 8: bound ceil(9 * 1.25 / 4) = 3, and 2 + 1 <= 3
  EXPECT_EQ(pick("k"), owner);
  loads(3);  // L = 9: bound ceil(10 * 1.25 / 4) = 4, and 3 + 1 <= 4
  EXPECT_EQ(pick("k"), owner);
  loads(4);  // L = 10: bound ceil(11 * 1.25 / 4) = 4, and 4 + 1 > 4
  EXPECT_NE(pick("k"), owner);
}

TEST_F(ConsistentHash, LargeEpsilonNeverSpills) {
  BalancerOptions options;
  options.consistent_hash.epsilon = 1000;
  policy_ = createBalancingPolicy("consistent_hash", options);
  const size_t owner = pick("k").value();
  pool_.setLoad(owner, 50);
  EXPECT_EQ(pick("k"), owner);
}

TEST_F(ConsistentHash, RequestWithoutKeyGoesToTheLeastLoaded) {
  for (size_t i = 0; i < pool_.size(); ++i) pool_.setLoad(i, i == 7 ? 0 : 3);
  PickTrace trace;
  EXPECT_EQ(pick("", &trace), 7u);
  EXPECT_EQ(trace.reason, PickReason::kHashNoKey);
}

TEST_F(ConsistentHash, ReweightingMovesKeysOnlyToTheHeavierWorker) {
  const auto before = owners(20000);
  pool_.setWeight(0, 2);
  const auto after = owners(20000);
  const std::string heavier(pool_.id(0));
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (after[i] != before[i]) {
      EXPECT_EQ(after[i], heavier);
      ++moved;
    }
  }
  EXPECT_GT(moved, 0);
}

}  // namespace
}  // namespace sluice::routing
