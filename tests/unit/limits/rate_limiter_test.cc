// What every backend must do, run against each: the local one, and Redis (a real redis-server
// started by the test, skipped when it is not installed) with the clock injected into the script.

#include "limits/rate_limiter.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "limits/local_rate_limiter.h"
#include "limits/redis_rate_limiter.h"
#include "limits_test_support.h"

namespace sluice::limits {
namespace {

using namespace testing;  // NOLINT: the helpers of limits_test_support.h

enum class Backend { kLocal, kRedis };

class RateLimiterTest : public ::testing::TestWithParam<Backend> {
 protected:
  static void SetUpTestSuite() {
    if (!RedisServer::available()) return;
    server_ = std::make_unique<RedisServer>();
    if (!server_->start()) server_.reset();
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    if (GetParam() == Backend::kLocal) {
      limiter_ = std::make_unique<LocalRateLimiter>([this] { return now_; });
      return;
    }
    if (!RedisServer::available()) {
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server, see "
                      "scripts/deps.sh); skipping the Redis backend";
    }
    ASSERT_TRUE(server_) << "redis-server did not start";
    auto address = redis::parseRedisAddress(server_->url());
    ASSERT_TRUE(address) << address.error();
    client_ = std::make_unique<redis::RedisClient>(io_, *address);
    RedisLimiterOptions options;
    options.fail_open = false;  // any Redis failure shows as a rejection
    options.clock = [this] { return now_; };
    // Each test its own keys on the shared server.
    options.key_prefix =
        "sluice:rl:" +
        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ":";
    limiter_ = std::make_unique<RedisRateLimiter>(
        [this]() -> redis::RedisClient& { return *client_; }, options);
  }

  Decision admit(const AdmitRequest& request) { return runTask(io_, limiter_->admit(request)); }
  Decision admit(LimitRule rule, uint64_t tokens = 0) {
    AdmitRequest request;
    request.limits.push_back(std::move(rule));
    request.estimated_tokens = tokens;
    return admit(request);
  }
  void settle(const Reservation& reservation, uint64_t actual_tokens) {
    runTask(io_, limiter_->settle(reservation, actual_tokens));
  }

  static inline std::unique_ptr<RedisServer> server_;
  int64_t now_ = kNoon;
  boost::asio::io_context io_;
  std::unique_ptr<redis::RedisClient> client_;
  std::unique_ptr<RateLimiter> limiter_;
};

TEST_P(RateLimiterTest, BurstOfTheWholeLimitPassesAndOneMoreIsRejected) {
  for (uint64_t i = 1; i <= 10; ++i) {
    const auto decision = admit(rpm("key:a", 10));
    ASSERT_TRUE(decision.allowed) << "request " << i;
    ASSERT_EQ(decision.statuses.size(), 1u);
    EXPECT_EQ(decision.statuses[0].limit, 10u);
    EXPECT_EQ(decision.statuses[0].remaining, 10 - i);
    EXPECT_EQ(decision.statuses[0].reset_ms, static_cast<int64_t>(i) * 6000);
  }
  const auto rejected = admit(rpm("key:a", 10));
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.reason, RejectReason::kRateLimited);
  EXPECT_EQ(reasonName(rejected.reason), "rate_limited");
  EXPECT_EQ(rejected.rejected_by, 0u);
  EXPECT_EQ(rejected.retry_after_ms, 6000);  // T = 60 s / 10
  EXPECT_EQ(rejected.statuses[0].remaining, 0u);
  EXPECT_EQ(rejected.statuses[0].reset_ms, 60000);
  EXPECT_TRUE(rejected.reservation.empty());
}

TEST_P(RateLimiterTest, OneRequestComesBackEachEmissionInterval) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(admit(rpm("key:a", 10)).allowed);
  now_ += 5999;
  const auto early = admit(rpm("key:a", 10));
  EXPECT_FALSE(early.allowed);
  EXPECT_EQ(early.retry_after_ms, 1);
  now_ += 1;  // exactly T after the burst
  EXPECT_TRUE(admit(rpm("key:a", 10)).allowed);
  EXPECT_FALSE(admit(rpm("key:a", 10)).allowed);
  now_ += 60000;  // a whole window: the whole burst again, and no more
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(admit(rpm("key:a", 10)).allowed) << i;
  EXPECT_FALSE(admit(rpm("key:a", 10)).allowed);
}

TEST_P(RateLimiterTest, LimitThatDoesNotDivideTheMinuteIsExactAtTheBoundary) {
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(admit(rpm("key:a", 7)).allowed) << i;
  const auto rejected = admit(rpm("key:a", 7));
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.retry_after_ms, 8572);  // T = 8571.43 ms, rounded up
  now_ += 8571;
  EXPECT_FALSE(admit(rpm("key:a", 7)).allowed);
  now_ += 1;
  EXPECT_TRUE(admit(rpm("key:a", 7)).allowed);
}

TEST_P(RateLimiterTest, LargeLimitIsExactAtTheBoundary) {
  constexpr uint64_t kLimit = 1'000'003;  // prime: T is no whole number of anything
  ASSERT_TRUE(admit(tpm("model:m", kLimit), kLimit - 1000).allowed);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(admit(tpm("model:m", kLimit), 1).allowed) << i;
  const auto rejected = admit(tpm("model:m", kLimit), 1);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.retry_after_ms, 1);  // T = 0.06 ms
}

TEST_P(RateLimiterTest, TokenRequestsCostTheirEstimate) {
  EXPECT_EQ(admit(tpm("key:a", 1000), 300).statuses[0].remaining, 700u);
  EXPECT_EQ(admit(tpm("key:a", 1000), 300).statuses[0].remaining, 400u);
  const auto third = admit(tpm("key:a", 1000), 300);
  EXPECT_TRUE(third.allowed);
  EXPECT_EQ(third.statuses[0].remaining, 100u);
  EXPECT_EQ(third.statuses[0].reset_ms, 54000);  // 900 tokens at 60 ms each
  const auto fourth = admit(tpm("key:a", 1000), 300);
  EXPECT_FALSE(fourth.allowed);
  EXPECT_EQ(fourth.retry_after_ms, 12000);  // until 200 more tokens have come back
  EXPECT_TRUE(admit(tpm("key:a", 1000), 100).allowed);
}

TEST_P(RateLimiterTest, EstimateOfZeroStillCostsOneToken) {
  const auto decision = admit(tpm("key:a", 5), 0);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.statuses[0].remaining, 4u);
  EXPECT_EQ(decision.reservation.tokens, 1u);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(admit(tpm("key:a", 5), 0).allowed);
  EXPECT_FALSE(admit(tpm("key:a", 5), 0).allowed);  // an exhausted limit rejects everything
}

TEST_P(RateLimiterTest, CostLargerThanTheLimitIsAlwaysRejected) {
  const auto rejected = admit(tpm("key:a", 1000), 1001);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.reason, RejectReason::kCostExceedsLimit);
  EXPECT_EQ(reasonName(rejected.reason), "cost_exceeds_limit");
  EXPECT_EQ(rejected.rejected_by, 0u);
  EXPECT_EQ(rejected.retry_after_ms, 0);  // no wait helps
  EXPECT_EQ(rejected.statuses[0].remaining, 1000u);
  now_ += 3'600'000;
  EXPECT_EQ(admit(tpm("key:a", 1000), 1001).reason, RejectReason::kCostExceedsLimit);
  EXPECT_EQ(admit(tpd("key:a", 1000), 1001).reason, RejectReason::kCostExceedsLimit);
  EXPECT_TRUE(admit(tpm("key:a", 1000), 1000).allowed);  // nothing was charged
}

TEST_P(RateLimiterTest, RejectionByOneLimitChargesNone) {
  AdmitRequest request;
  request.limits = {rpm("key:a", 100), tpm("key:a", 10000), tpd("key:a", 100000),
                    rpm("model:small", 2), tpm("model:small", 10000)};
  request.estimated_tokens = 1000;
  ASSERT_TRUE(admit(request).allowed);
  ASSERT_TRUE(admit(request).allowed);
  const auto rejected = admit(request);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.rejected_by, 3u);  // the model's requests per minute
  EXPECT_EQ(rejected.retry_after_ms, 30000);
  ASSERT_EQ(rejected.statuses.size(), 5u);
  EXPECT_EQ(rejected.statuses[0].remaining, 98u);
  EXPECT_EQ(rejected.statuses[1].remaining, 8000u);
  EXPECT_EQ(rejected.statuses[2].remaining, 98000u);
  EXPECT_EQ(rejected.statuses[4].remaining, 8000u);
  EXPECT_TRUE(rejected.reservation.empty());

  // The key's counters were left alone: another model sees exactly two requests charged.
  request.limits[3] = rpm("model:large", 2);
  request.limits[4] = tpm("model:large", 10000);
  const auto other = admit(request);
  ASSERT_TRUE(other.allowed);
  EXPECT_EQ(other.statuses[0].remaining, 97u);
  EXPECT_EQ(other.statuses[1].remaining, 7000u);
  EXPECT_EQ(other.statuses[2].remaining, 97000u);
  EXPECT_EQ(other.statuses[3].remaining, 1u);
  ASSERT_EQ(other.reservation.charges.size(), 3u);  // the token limits
  EXPECT_EQ(other.reservation.tokens, 1000u);
}

TEST_P(RateLimiterTest, ReportsTheRejectingLimitThatWaitsLongest) {
  AdmitRequest request;
  request.limits = {rpm("key:a", 60), rpm("key:b", 6)};
  ASSERT_TRUE(admit(request).allowed);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(admit(rpm("key:b", 6)).allowed);
  for (int i = 0; i < 59; ++i) ASSERT_TRUE(admit(rpm("key:a", 60)).allowed);
  const auto rejected = admit(request);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.rejected_by, 1u);
  EXPECT_EQ(rejected.retry_after_ms, 10000);  // key:b's T; key:a would need 1000
}

TEST_P(RateLimiterTest, LimitOfZeroIsNotChecked) {
  AdmitRequest request;
  request.limits = {rpm("key:a", 0), rpm("key:a", 1)};
  ASSERT_TRUE(admit(request).allowed);
  const auto rejected = admit(request);
  EXPECT_EQ(rejected.rejected_by, 1u);
  EXPECT_EQ(rejected.statuses[0].limit, 0u);
  EXPECT_TRUE(admit(AdmitRequest{}).allowed);
}

TEST_P(RateLimiterTest, SettleRefundsWhatWasNotUsed) {
  const auto first = admit(tpm("key:a", 1000), 800);
  ASSERT_TRUE(first.allowed);
  ASSERT_EQ(first.reservation.tokens, 800u);
  EXPECT_FALSE(admit(tpm("key:a", 1000), 800).allowed);
  settle(first.reservation, 100);
  const auto second = admit(tpm("key:a", 1000), 800);
  EXPECT_TRUE(second.allowed);
  EXPECT_EQ(second.statuses[0].remaining, 100u);
}

TEST_P(RateLimiterTest, SettleChargesWhatWasUsedBeyondTheEstimate) {
  const auto first = admit(tpm("key:a", 1000), 100);
  settle(first.reservation, 600);
  EXPECT_EQ(admit(tpm("key:a", 1000), 400).statuses[0].remaining, 0u);
  EXPECT_FALSE(admit(tpm("key:a", 1000), 1).allowed);
}

TEST_P(RateLimiterTest, SettleCarriesNoMoreThanOneWindowOfDebt) {
  const auto first = admit(tpm("key:a", 1000), 100);
  settle(first.reservation, 50000);  // 50 minutes' worth
  const auto empty = admit(tpm("key:a", 1000), 1);
  EXPECT_FALSE(empty.allowed);
  EXPECT_LE(empty.retry_after_ms, 60000);
  now_ += 60000;
  EXPECT_TRUE(admit(tpm("key:a", 1000), 1000).allowed);
}

TEST_P(RateLimiterTest, RefundNeverMakesALimitMoreThanFull) {
  const auto first = admit(tpm("key:a", 1000), 500);
  now_ += 30000;  // the 500 tokens have come back
  settle(first.reservation, 0);
  const auto full = admit(tpm("key:a", 1000), 1000);
  EXPECT_TRUE(full.allowed);
  EXPECT_FALSE(admit(tpm("key:a", 1000), 1).allowed);
}

TEST_P(RateLimiterTest, SettleCorrectsTheDailyBudgetToo) {
  AdmitRequest request;
  request.limits = {tpm("key:a", 100000), tpd("key:a", 10000)};
  request.estimated_tokens = 4000;
  const auto first = admit(request);
  ASSERT_TRUE(first.allowed);
  EXPECT_EQ(first.statuses[1].remaining, 6000u);
  settle(first.reservation, 1000);
  request.estimated_tokens = 1;
  EXPECT_EQ(admit(request).statuses[1].remaining, 8999u);
  const auto more = admit(request);
  settle(more.reservation, 3000);
  EXPECT_EQ(admit(request).statuses[1].remaining, 5998u);
}

TEST_P(RateLimiterTest, DailyBudgetRollsOverAtUtcMidnight) {
  now_ = kSecondBeforeMidnight;
  const auto first = admit(tpd("key:a", 1000), 600);
  ASSERT_TRUE(first.allowed);
  EXPECT_EQ(first.statuses[0].remaining, 400u);
  EXPECT_EQ(first.statuses[0].reset_ms, 1000);
  const auto rejected = admit(tpd("key:a", 1000), 600);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.reason, RejectReason::kRateLimited);
  EXPECT_EQ(rejected.retry_after_ms, 1000);  // until midnight
  now_ += 999;
  EXPECT_FALSE(admit(tpd("key:a", 1000), 600).allowed);
  now_ += 1;  // 00:00:00.000
  const auto next_day = admit(tpd("key:a", 1000), 600);
  EXPECT_TRUE(next_day.allowed);
  EXPECT_EQ(next_day.statuses[0].remaining, 400u);
  EXPECT_EQ(next_day.statuses[0].reset_ms, 86'400'000);

  // A late settle of yesterday's request does not touch today's budget.
  settle(first.reservation, 0);
  EXPECT_EQ(admit(tpd("key:a", 1000), 400).statuses[0].remaining, 0u);
}

TEST_P(RateLimiterTest, ClockGoingBackAllowsNoBurst) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(admit(rpm("key:a", 10)).allowed);
  const int64_t burst_at = now_;
  now_ -= 3'600'000;  // an hour back
  const auto back = admit(rpm("key:a", 10));
  EXPECT_FALSE(back.allowed);
  EXPECT_GT(back.retry_after_ms, 0);
  EXPECT_LE(back.retry_after_ms, 60000);  // a limit is never more than empty
  EXPECT_FALSE(admit(rpm("key:a", 10)).allowed);
  now_ = burst_at;
  EXPECT_FALSE(admit(rpm("key:a", 10)).allowed);
  now_ = burst_at + 6000;
  EXPECT_TRUE(admit(rpm("key:a", 10)).allowed);
  EXPECT_FALSE(admit(rpm("key:a", 10)).allowed);

  // Back across midnight: the budget keeps counting into the later day.
  now_ = kSecondBeforeMidnight + 1000;
  ASSERT_TRUE(admit(tpd("key:a", 1000), 1000).allowed);
  now_ = kSecondBeforeMidnight;
  const auto yesterday = admit(tpd("key:a", 1000), 1);
  EXPECT_FALSE(yesterday.allowed);
  EXPECT_EQ(yesterday.retry_after_ms, 86'401'000);
}

TEST_P(RateLimiterTest, SubjectsAndLimitsAreSeparateCounters) {
  ASSERT_TRUE(admit(rpm("key:a", 1)).allowed);
  EXPECT_FALSE(admit(rpm("key:a", 1)).allowed);
  EXPECT_TRUE(admit(rpm("key:b", 1)).allowed);
  EXPECT_TRUE(admit(tpm("key:a", 1), 1).allowed);  // tokens count apart from requests
  EXPECT_TRUE(admit(rpm("key:a", 2)).allowed);     // a changed limit starts afresh
}

INSTANTIATE_TEST_SUITE_P(Backends, RateLimiterTest,
                         ::testing::Values(Backend::kLocal, Backend::kRedis), [](const auto& info) {
                           return std::string(info.param == Backend::kLocal ? "Local" : "Redis");
                         });

}  // namespace
}  // namespace sluice::limits
