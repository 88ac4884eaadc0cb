// The in-process backend: exact under contention, bounded memory, no suspension.

#include "limits/local_rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "limits_test_support.h"

namespace sluice::limits {
namespace {

using namespace testing;  // NOLINT: the helpers of limits_test_support.h

TEST(LocalRateLimiter, FourThreadsOnOneKeyAllowExactlyTheLimit) {
  const int64_t now = kNoon;
  LocalRateLimiter limiter([now] { return now; });
  AdmitRequest request;
  request.limits = {rpm("key:shared", 1000)};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        if (limiter.admitNow(request).allowed) allowed.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 1000);
}

// Each thread has its own key (1000 per minute) and all share one model limit (2000 per minute):
// rules in different shards are charged together or not at all, even under contention.
TEST(LocalRateLimiter, RulesInDifferentShardsAreChargedTogetherUnderContention) {
  const int64_t now = kNoon;
  LocalRateLimiter limiter([now] { return now; });
  std::atomic<int> allowed{0};
  std::vector<int> allowed_per_thread(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      AdmitRequest request;
      request.limits = {rpm("key:" + std::to_string(t), 1000), rpm("model:shared", 2000),
                        tpm("model:shared", 2000)};
      request.estimated_tokens = 1;
      for (int i = 0; i < 5000; ++i) {
        if (limiter.admitNow(request).allowed) ++allowed_per_thread[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  int total = 0;
  for (const int count : allowed_per_thread) {
    EXPECT_LE(count, 1000);
    total += count;
  }
  EXPECT_EQ(total, 2000);
  // Both model limits were charged exactly as often: each is empty, neither went further.
  AdmitRequest probe;
  probe.limits = {rpm("model:shared", 2000), tpm("model:shared", 2000)};
  const auto decision = limiter.admitNow(probe);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.statuses[0].remaining, 0u);
  EXPECT_EQ(decision.statuses[1].remaining, 0u);
  EXPECT_EQ(decision.statuses[0].reset_ms, 60000);
  EXPECT_EQ(decision.statuses[1].reset_ms, 60000);
}

TEST(LocalRateLimiter, IdleCountersAreDropped) {
  int64_t now = kNoon;
  LocalRateLimiter limiter([&now] { return now; });
  for (int i = 0; i < 5000; ++i) {
    AdmitRequest request;
    request.limits = {rpm("key:" + std::to_string(i), 60), tpd("key:" + std::to_string(i), 100)};
    ASSERT_TRUE(limiter.admitNow(request).allowed);
  }
  EXPECT_EQ(limiter.counterCount(), 10000u);
  now += 1001;  // the per-minute counters have been full again (60 per minute) for 1 ms
  limiter.sweep();
  EXPECT_EQ(limiter.counterCount(), 5000u);
  now = kSecondBeforeMidnight + 1000;  // and the day is over
  limiter.sweep();
  EXPECT_EQ(limiter.counterCount(), 0u);
}

TEST(LocalRateLimiter, MemoryStaysBoundedWhileKeysComeAndGo) {
  int64_t now = kNoon;
  LocalRateLimiter limiter([&now] { return now; });
  // 200k distinct keys, 100 per second: about 6000 are active at any time (60 s window).
  size_t most = 0;
  for (int i = 0; i < 200000; ++i) {
    if (i % 100 == 0) now += 1000;
    ASSERT_TRUE(limiter.admitNow(AdmitRequest{{rpm("key:" + std::to_string(i), 1)}, 0}).allowed);
    if (i % 1000 == 0) most = std::max(most, limiter.counterCount());
  }
  EXPECT_LT(most, 40000u);
}

TEST(LocalRateLimiter, AdmitAndSettleCompleteWithoutSuspending) {
  LocalRateLimiter limiter([] { return kNoon; });
  boost::asio::io_context io;
  int allowed = 0;
  bool done = false;
  auto body = [&]() -> Task<void> {
    AdmitRequest request;
    request.limits = {tpm("key:a", 1'000'000)};
    request.estimated_tokens = 10;
    for (int i = 0; i < 1000; ++i) {
      auto decision = co_await limiter.admit(request);
      if (decision.allowed) ++allowed;
      co_await limiter.settle(std::move(decision.reservation), 5);
    }
    done = true;
  };
  boost::asio::co_spawn(io, body(), boost::asio::detached);
  const size_t handlers = io.poll();
  EXPECT_TRUE(done);
  EXPECT_EQ(allowed, 1000);
  EXPECT_LE(handlers, 2u);  // the coroutine's start; not one per operation
}

TEST(LocalRateLimiter, SettleWithoutAnythingToCorrectIsHarmless) {
  int64_t now = kNoon;
  LocalRateLimiter limiter([&now] { return now; });
  limiter.settleNow(Reservation{}, 100);
  const auto decision = limiter.admitNow(AdmitRequest{{tpm("key:a", 100)}, 10});
  limiter.settleNow(decision.reservation, 10);
  EXPECT_EQ(limiter.admitNow(AdmitRequest{{tpm("key:a", 100)}, 10}).statuses[0].remaining, 80u);
  now += 120000;  // the counter is gone
  limiter.sweep();
  limiter.settleNow(decision.reservation, 0);  // a refund to nothing: nothing happens
  EXPECT_EQ(limiter.counterCount(), 0u);
}

TEST(MakeAdmitRequest, BuildsTheUsualRulesAndLeavesOutZeros) {
  const auto request =
      makeAdmitRequest("team-a", KeyQuota{60, 0, 100000}, "gpt-4o", ModelQuota{600, 90000}, 1200);
  ASSERT_EQ(request.limits.size(), 4u);
  EXPECT_EQ(request.limits[0].kind, LimitKind::kRequestsPerMinute);
  EXPECT_EQ(request.limits[0].subject, "key:team-a");
  EXPECT_EQ(request.limits[0].limit, 60u);
  EXPECT_EQ(request.limits[1].kind, LimitKind::kTokensPerDay);
  EXPECT_EQ(request.limits[1].limit, 100000u);
  EXPECT_EQ(request.limits[2].subject, "model:gpt-4o");
  EXPECT_EQ(request.limits[3].kind, LimitKind::kTokensPerMinute);
  EXPECT_EQ(request.limits[3].limit, 90000u);
  EXPECT_EQ(request.estimated_tokens, 1200u);
  EXPECT_EQ(kindName(LimitKind::kTokensPerDay), "tpd");
}

}  // namespace
}  // namespace sluice::limits
