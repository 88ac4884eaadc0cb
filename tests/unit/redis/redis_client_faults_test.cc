// The client against faults a real Redis does not produce on demand: a fake server that sends
// garbage, answers late or never, and a port where nothing listens.

#include <gtest/gtest.h>

#include <array>
#include <memory>

#include "redis/redis_client.h"
#include "redis_test_support.h"

namespace sluice::redis {
namespace {

using namespace std::chrono_literals;
using testing::FakeRedis;
using testing::runFor;
using testing::runTask;
using testing::Task;
using Clock = std::chrono::steady_clock;

RedisAddress addressOf(const std::string& url) { return parseRedisAddress(url).value(); }

// PING answers PONG; everything else gets `reply` (nullopt: silence).
FakeRedis::Respond pongThen(std::optional<std::string> reply) {
  return [reply](const FakeRedis::Command& command) -> std::optional<std::string> {
    if (command.at(0) == "PING") return "+PONG\r\n";
    return reply;
  };
}

// Starts `count` GETs at once; their results land in the returned vector as they complete.
std::shared_ptr<std::vector<RedisResult>> startCalls(boost::asio::io_context& io,
                                                     RedisClient& client, int count,
                                                     std::chrono::milliseconds timeout) {
  auto results = std::make_shared<std::vector<RedisResult>>();
  for (int i = 0; i < count; ++i) {
    boost::asio::co_spawn(
        io,
        [&client, results, timeout]() -> Task<void> {
          const std::array<std::string_view, 2> get{"GET", "k"};
          results->push_back(co_await client.call(get, timeout));
        },
        boost::asio::detached);
  }
  return results;
}

void runUntil(boost::asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = Clock::now() + limit;
  while (!done() && Clock::now() < deadline) io.run_one_for(10ms);
  io.restart();
}

TEST(RedisClientFaults, MalformedReplyClosesTheConnectionAndFailsEveryWaitingCall) {
  boost::asio::io_context io;
  FakeRedis fake(io, pongThen("?garbage\r\n"));
  RedisClient client(io, addressOf(fake.url()));
  auto results = startCalls(io, client, 3, 5000ms);
  runUntil(io, [&] { return results->size() == 3 && fake.closedByClient() == 1; });
  ASSERT_EQ(results->size(), 3u);
  for (const auto& result : *results) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, RedisErrorKind::kProtocol);
    EXPECT_EQ(result.error().message, "malformed reply from redis at " +
                                          addressOf(fake.url()).describe() +
                                          ": unexpected reply type byte 0x3f");
  }
  EXPECT_EQ(fake.closedByClient(), 1);
  EXPECT_FALSE(client.healthy());
}

TEST(RedisClientFaults, OversizedReplyIsRefusedBeforeItArrives) {
  boost::asio::io_context io;
  FakeRedis fake(io, pongThen("$1000000\r\n"));  // announces 1 MB, sends none of it
  RedisClientOptions options;
  options.max_reply_bytes = 64 * 1024;
  RedisClient client(io, addressOf(fake.url()), options);
  const std::array<std::string_view, 2> get{"GET", "big"};
  auto result = runTask(io, client.call(get));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, RedisErrorKind::kProtocol);
  EXPECT_NE(result.error().message.find("reply exceeds the limit of 65536 bytes"),
            std::string::npos);
}

TEST(RedisClientFaults, ReplyNestedTooDeeplyIsRefused) {
  boost::asio::io_context io;
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += "*1\r\n";
  FakeRedis fake(io, pongThen(deep + ":1\r\n"));
  RedisClient client(io, addressOf(fake.url()));
  const std::array<std::string_view, 2> get{"GET", "deep"};
  auto result = runTask(io, client.call(get));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, RedisErrorKind::kProtocol);
  EXPECT_NE(result.error().message.find("arrays nested deeper than 16 levels"), std::string::npos);
}

TEST(RedisClientFaults, SilentServerTimesOutTheCallAndResetsTheConnection) {
  boost::asio::io_context io;
  FakeRedis fake(io, pongThen(std::nullopt));
  RedisClient client(io, addressOf(fake.url()));
  const std::array<std::string_view, 2> get{"GET", "k"};
  const auto started = Clock::now();
  auto result = runTask(io, client.call(get, 200ms));
  const auto waited = Clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, RedisErrorKind::kTimeout);
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 1000ms);
  // Nothing at all came back for 200 ms: the connection is taken as stuck and closed.
  runUntil(
      io, [&] { return fake.closedByClient() == 1; }, 1000ms);
  EXPECT_EQ(fake.closedByClient(), 1);
  EXPECT_FALSE(client.healthy());
}

TEST(RedisClientFaults, LateReplyTimesOutOnlyItsCallAndRepliesStayMatched) {
  boost::asio::io_context io;
  // Every ECHO is answered 60 ms after it arrives, in order.
  FakeRedis fake(
      io,
      [](const FakeRedis::Command& command) -> std::optional<std::string> {
        if (command.at(0) == "PING") return "+PONG\r\n";
        return "$" + std::to_string(command.at(1).size()) + "\r\n" + command.at(1) + "\r\n";
      },
      60ms);
  RedisClient client(io, addressOf(fake.url()));
  client.connect();
  runUntil(io, [&] { return client.healthy(); });
  ASSERT_TRUE(client.healthy());

  const std::array<std::string_view, 2> first{"ECHO", "first"};
  auto impatient = runTask(io, client.call(first, 20ms));
  ASSERT_FALSE(impatient);
  EXPECT_EQ(impatient.error().kind, RedisErrorKind::kTimeout);
  // Redis is slow, not stuck (silent for less than 100 ms): the connection stays, the late
  // "first" is dropped when it arrives, and the next call gets its own reply.
  const std::array<std::string_view, 2> second{"ECHO", "second"};
  auto patient = runTask(io, client.call(second, 1000ms));
  ASSERT_TRUE(patient) << patient.error().message;
  EXPECT_EQ(patient->string(), "second");
  EXPECT_TRUE(client.healthy());
  EXPECT_EQ(fake.accepted(), 1);
  EXPECT_EQ(fake.closedByClient(), 0);
}

TEST(RedisClientFaults, ServerThatNeverAnswersTheHandshakeFailsTheConnectAttempt) {
  boost::asio::io_context io;
  FakeRedis fake(io, [](const FakeRedis::Command&) { return std::nullopt; });
  RedisClientOptions options;
  options.connect_timeout = 200ms;
  RedisClient client(io, addressOf(fake.url()), options);
  const std::array<std::string_view, 1> ping{"PING"};
  const auto started = Clock::now();
  auto result = runTask(io, client.call(ping, 5000ms));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, RedisErrorKind::kConnection);
  EXPECT_LT(Clock::now() - started, 1000ms);
  EXPECT_NE(result.error().message.find("no answer within 200 ms"), std::string::npos)
      << result.error().message;
  EXPECT_EQ(client.stats().connect_failures, 1u);
}

TEST(RedisClientFaults, UnreachableRedisCostsOneAttemptPerBackoff) {
  boost::asio::io_context io;
  RedisClientOptions options;
  options.min_backoff = 300ms;  // wide enough for the fail-fast burst on a slow machine
  options.max_backoff = 2000ms;
  RedisClient client(io, addressOf("redis://127.0.0.1:" + std::to_string(testing::freePort())),
                     options);
  const std::array<std::string_view, 1> ping{"PING"};
  auto first = runTask(io, client.call(ping));
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().kind, RedisErrorKind::kConnection);
  EXPECT_NE(first.error().message.find("Connection refused"), std::string::npos)
      << first.error().message;

  // Within the back-off calls fail at once, without connecting.
  const auto started = Clock::now();
  for (int i = 0; i < 200; ++i) {
    auto result = runTask(io, client.call(ping));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, RedisErrorKind::kConnection);
  }
  EXPECT_LT(Clock::now() - started, 300ms);
  EXPECT_EQ(client.stats().connect_attempts, 1u);
  auto fast = runTask(io, client.call(ping));
  EXPECT_NE(fast.error().message.find("unavailable (next connect attempt in"), std::string::npos)
      << fast.error().message;
  EXPECT_NE(fast.error().message.find("Connection refused"), std::string::npos)
      << fast.error().message;

  // Then one call makes one attempt, after which the back-off doubles (600 ms).
  runFor(io, 310ms);
  (void)runTask(io, client.call(ping));
  EXPECT_EQ(client.stats().connect_attempts, 2u);
  runFor(io, 310ms);
  (void)runTask(io, client.call(ping));
  EXPECT_EQ(client.stats().connect_attempts, 2u);
  runFor(io, 310ms);
  (void)runTask(io, client.call(ping));
  EXPECT_EQ(client.stats().connect_attempts, 3u);
  EXPECT_EQ(client.stats().connect_failures, 3u);
  EXPECT_FALSE(client.healthy());
}

TEST(RedisClientFaults, CloseFailsWaitingAndLaterCalls) {
  boost::asio::io_context io;
  FakeRedis fake(io, pongThen(std::nullopt));
  RedisClient client(io, addressOf(fake.url()));
  auto results = startCalls(io, client, 2, 5000ms);
  runFor(io, 50ms);
  ASSERT_TRUE(results->empty());
  client.close();
  runUntil(io, [&] { return results->size() == 2; });
  ASSERT_EQ(results->size(), 2u);
  for (const auto& result : *results) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, RedisErrorKind::kConnection);
    EXPECT_NE(result.error().message.find("is closed"), std::string::npos);
  }
  const std::array<std::string_view, 1> ping{"PING"};
  auto later = runTask(io, client.call(ping));
  ASSERT_FALSE(later);
  EXPECT_NE(later.error().message.find("is closed"), std::string::npos);
}

}  // namespace
}  // namespace sluice::redis
