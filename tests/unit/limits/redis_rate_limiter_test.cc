// The Redis backend against a real redis-server started by the test (skipped when none is
// installed): replicas sharing one limit, Redis's own clock, Redis going away and coming back.

#include "limits/redis_rate_limiter.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "limits_test_support.h"

namespace sluice::limits {
namespace {

using namespace std::chrono_literals;
using namespace testing;  // NOLINT: the helpers of limits_test_support.h

redis::RedisAddress addressOf(const RedisServer& server) {
  auto address = redis::parseRedisAddress(server.url());
  EXPECT_TRUE(address) << address.error();
  return address.value_or(redis::RedisAddress{});
}

// One replica of the gateway: its own io_context, Redis client and limiter.
struct Replica {
  Replica(const RedisServer& server, RedisLimiterOptions options)
      : client(io, addressOf(server)),
        limiter([this]() -> redis::RedisClient& { return client; }, std::move(options)) {}

  Decision admit(const AdmitRequest& request) { return runTask(io, limiter.admit(request)); }

  boost::asio::io_context io;
  redis::RedisClient client;
  RedisRateLimiter limiter;
};

class RedisRateLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) {
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server, see "
                      "scripts/deps.sh); skipping the tests against a real Redis";
    }
    ASSERT_TRUE(server_.start()) << "redis-server did not start";
  }

  RedisServer server_;
};

AdmitRequest oneRule(LimitRule rule, uint64_t tokens = 0) {
  AdmitRequest request;
  request.limits.push_back(std::move(rule));
  request.estimated_tokens = tokens;
  return request;
}

// Two replicas, each on its own thread, fire admissions at once at one limit (Redis's clock:
// no injected time): together they get exactly the limit.
TEST_F(RedisRateLimiterTest, TwoReplicasEnforceOneCombinedLimitExactly) {
  Replica first(server_, {});
  Replica second(server_, {});
  AdmitRequest request;
  request.limits = {rpm("key:shared", 10), tpd("key:shared", 100000)};
  request.estimated_tokens = 100;

  std::array<int, 2> allowed{0, 0};
  std::array<int, 2> answered{0, 0};
  auto run = [&](Replica& replica, int index) {
    auto one = [&]() -> Task<void> {
      const auto decision = co_await replica.limiter.admit(request);
      if (decision.allowed) ++allowed[index];
      if (decision.reason != RejectReason::kLimiterUnavailable) ++answered[index];
    };
    for (int i = 0; i < 25; ++i) boost::asio::co_spawn(replica.io, one(), boost::asio::detached);
    runFor(replica.io, 1500ms);
  };
  std::thread other([&] { run(second, 1); });
  run(first, 0);
  other.join();

  EXPECT_EQ(answered[0] + answered[1], 50);
  EXPECT_EQ(allowed[0] + allowed[1], 10);
  EXPECT_EQ(first.limiter.errors() + second.limiter.errors(), 0u);
  // Both replicas see the same counters.
  const auto probe = second.admit(oneRule(tpd("key:shared", 100000), 1));
  EXPECT_EQ(probe.statuses[0].remaining, 100000u - 1000u - 1u);
}

TEST_F(RedisRateLimiterTest, UsesRedisClockAndCountersExpireWhenIdle) {
  Replica replica(server_, {});
  AdmitRequest request;
  request.limits = {rpm("key:a", 2), tpd("key:a", 1000)};
  request.estimated_tokens = 10;
  const auto decision = replica.admit(request);
  ASSERT_TRUE(decision.allowed) << reasonName(decision.reason);
  EXPECT_EQ(decision.statuses[0].reset_ms, 30000);
  ASSERT_EQ(decision.reservation.charges.size(), 1u);
  // The day charged is Redis's today.
  const auto today = std::chrono::duration_cast<std::chrono::hours>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() /
                     24;
  EXPECT_NEAR(decision.reservation.charges[0].day, today, 1);

  const std::array<std::string_view, 2> minute_ttl{"PTTL", "sluice:rl:rpm:2:key:a"};
  const auto minute = runTask(replica.io, replica.client.call(minute_ttl));
  ASSERT_TRUE(minute && minute->isInteger());
  EXPECT_GT(minute->integer(), 29000);
  EXPECT_LE(minute->integer(), 30001);
  const std::array<std::string_view, 2> day_ttl{"PTTL", "sluice:rl:tpd:key:a"};
  const auto day = runTask(replica.io, replica.client.call(day_ttl));
  ASSERT_TRUE(day && day->isInteger());
  EXPECT_GT(day->integer(), 0);
  EXPECT_LE(day->integer(), 86'400'000);

  // A full refund of the only request: the per-minute counter is deleted at once.
  AdmitRequest tokens = oneRule(tpm("key:b", 1000), 50);
  const auto charged = replica.admit(tokens);
  ASSERT_TRUE(charged.allowed);
  runTask(replica.io, replica.limiter.settle(charged.reservation, 0));
  const std::array<std::string_view, 2> exists{"EXISTS", "sluice:rl:tpm:1000:key:b"};
  const auto gone = runTask(replica.io, replica.client.call(exists));
  ASSERT_TRUE(gone && gone->isInteger());
  EXPECT_EQ(gone->integer(), 0);
}

// Kills Redis, checks what admission does without it, restarts Redis and checks that limits
// apply again, for one failure policy.
void outageAndRecovery(RedisServer& server, bool fail_open) {
  RedisLimiterOptions options;
  options.fail_open = fail_open;
  Replica replica(server, options);
  const auto request = oneRule(rpm("key:a", 3));
  ASSERT_TRUE(replica.admit(request).allowed);
  ASSERT_EQ(replica.limiter.errors(), 0u);

  server.kill();
  for (int i = 0; i < 5; ++i) {
    const auto decision = replica.admit(request);
    EXPECT_EQ(decision.allowed, fail_open);
    EXPECT_EQ(decision.reason, RejectReason::kLimiterUnavailable);
    EXPECT_EQ(reasonName(decision.reason), "limiter_unavailable");
    EXPECT_TRUE(decision.statuses.empty());
    EXPECT_TRUE(decision.reservation.empty());
  }
  EXPECT_EQ(replica.limiter.errors(), 5u);

  ASSERT_TRUE(server.start());  // same port, empty (no persistence)
  const auto until = std::chrono::steady_clock::now() + 10s;
  Decision decision;
  while (std::chrono::steady_clock::now() < until) {
    decision = replica.admit(request);
    if (decision.reason != RejectReason::kLimiterUnavailable) break;
    runFor(replica.io, 50ms);
  }
  ASSERT_TRUE(decision.allowed) << reasonName(decision.reason);
  EXPECT_EQ(decision.reason, RejectReason::kNone);
  EXPECT_TRUE(replica.admit(request).allowed);
  EXPECT_TRUE(replica.admit(request).allowed);
  const auto rejected = replica.admit(request);
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.reason, RejectReason::kRateLimited);
}

TEST_F(RedisRateLimiterTest, FailOpenAllowsWhileRedisIsDownAndLimitsAgainWhenItIsBack) {
  outageAndRecovery(server_, true);
}

TEST_F(RedisRateLimiterTest, FailClosedRejectsWithLimiterUnavailableAndRecovers) {
  outageAndRecovery(server_, false);
}

TEST_F(RedisRateLimiterTest, ErrorReplyFromRedisCountsAsUnavailable) {
  RedisLimiterOptions options;
  options.fail_open = false;
  Replica replica(server_, options);
  // A key of the wrong type makes the script fail (WRONGTYPE) inside Redis.
  const std::array<std::string_view, 3> set{"SET", "sluice:rl:tpd:key:a", "not a hash"};
  ASSERT_TRUE(runTask(replica.io, replica.client.call(set)));
  const auto decision = replica.admit(oneRule(tpd("key:a", 1000), 1));
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.reason, RejectReason::kLimiterUnavailable);
  EXPECT_EQ(replica.limiter.errors(), 1u);
  // Other keys are fine, and nothing of the failed admission was charged.
  EXPECT_TRUE(replica.admit(oneRule(tpd("key:b", 1000), 1)).allowed);
}

TEST_F(RedisRateLimiterTest, FailuresAreLoggedAtMostOncePerInterval) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));

  RedisLimiterOptions options;
  options.log_interval = 60s;
  Replica replica(server_, options);
  server_.kill();
  for (int i = 0; i < 20; ++i) replica.admit(oneRule(rpm("key:a", 3)));
  EXPECT_EQ(replica.limiter.errors(), 20u);
  int limiter_lines = 0;
  for (const auto& line : sink->last_formatted()) {
    if (line.find("rate limits: redis admit failed") != std::string::npos) ++limiter_lines;
  }
  EXPECT_EQ(limiter_lines, 1);
  spdlog::set_default_logger(previous);
}

TEST_F(RedisRateLimiterTest, KeyPrefixIsConfigurable) {
  RedisLimiterOptions options;
  options.key_prefix = "{gw}:rl:";
  Replica replica(server_, options);
  ASSERT_TRUE(replica.admit(oneRule(rpm("key:a", 3))).allowed);
  const std::array<std::string_view, 2> exists{"EXISTS", "{gw}:rl:rpm:3:key:a"};
  const auto found = runTask(replica.io, replica.client.call(exists));
  ASSERT_TRUE(found && found->isInteger());
  EXPECT_EQ(found->integer(), 1);
}

}  // namespace
}  // namespace sluice::limits
