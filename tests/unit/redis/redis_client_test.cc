// The client against a real redis-server started by the test (skipped when there is none).

#include "redis/redis_client.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <set>

#include "redis_test_support.h"

namespace sluice::redis {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;
using testing::runFor;
using testing::runTask;
using testing::Task;
using Clock = std::chrono::steady_clock;

RedisAddress addressOf(const std::string& url) {
  auto address = parseRedisAddress(url);
  EXPECT_TRUE(address) << address.error();
  return address.value_or(RedisAddress{});
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) {
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server, see "
                      "scripts/deps.sh); skipping the tests against a real Redis";
    }
    ASSERT_TRUE(server_.start()) << "redis-server did not start";
    client_ = std::make_unique<RedisClient>(io_, addressOf(server_.url()));
  }

  RedisResult call(RedisClient& client, std::vector<std::string_view> args,
                   std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    return runTask(io_, client.call(args, timeout));
  }
  RedisResult call(std::vector<std::string_view> args) { return call(*client_, std::move(args)); }

  // The reply, failing the test when there is none.
  RedisReply reply(std::vector<std::string_view> args) {
    auto result = call(std::move(args));
    EXPECT_TRUE(result) << result.error().message;
    return result.value_or(RedisReply(RedisReply::Error{"no reply"}));
  }

  boost::asio::io_context io_;
  RedisServer server_;
  std::unique_ptr<RedisClient> client_;
};

TEST_F(RedisClientTest, SetGetAndIncr) {
  EXPECT_FALSE(client_->healthy());  // nothing tried yet
  EXPECT_EQ(reply({"SET", "greeting", "hello"}), RedisReply(RedisReply::SimpleString{"OK"}));
  EXPECT_TRUE(client_->healthy());
  EXPECT_EQ(reply({"GET", "greeting"}), RedisReply(RedisReply::BulkString{"hello"}));
  EXPECT_EQ(reply({"GET", "missing"}), RedisReply());
  EXPECT_EQ(reply({"INCR", "counter"}), RedisReply(1));
  EXPECT_EQ(reply({"INCRBY", "counter", "41"}), RedisReply(42));
  EXPECT_EQ(reply({"EXPIRE", "counter", "60"}), RedisReply(1));
  EXPECT_EQ(client_->stats().connect_attempts, 1u);
}

TEST_F(RedisClientTest, ServerErrorsAreRepliesNotFailures) {
  EXPECT_EQ(reply({"SET", "text", "abc"}).string(), "OK");
  const auto wrong_type = reply({"INCR", "text"});
  ASSERT_TRUE(wrong_type.isError());
  EXPECT_EQ(wrong_type.errorMessage(), "ERR value is not an integer or out of range");
  EXPECT_TRUE(reply({"NOSUCHCOMMAND"}).errorMessage().starts_with("ERR unknown command"));
  EXPECT_TRUE(client_->healthy());
  EXPECT_EQ(reply({"GET", "text"}).string(), "abc");  // replies still line up
}

TEST_F(RedisClientTest, BinaryValuesAndArrays) {
  const std::string binary("\0\r\n\xff", 4);
  EXPECT_EQ(reply({"RPUSH", "list", binary, "", "three"}), RedisReply(3));
  const auto range = reply({"LRANGE", "list", "0", "-1"});
  const RedisReply expected = RedisReply::Array{
      RedisReply::BulkString{binary}, RedisReply::BulkString{""}, RedisReply::BulkString{"three"}};
  EXPECT_EQ(range, expected);
}

TEST_F(RedisClientTest, PipelinesAThousandConcurrentCallsOnOneConnection) {
  constexpr int kCalls = 1000;
  int done = 0;
  int mismatches = 0;
  std::set<int64_t> counts;
  for (int i = 0; i < kCalls; ++i) {
    boost::asio::co_spawn(
        io_,
        [&, i]() -> Task<void> {
          const std::string value = "value-" + std::to_string(i);
          const std::array<std::string_view, 2> echo{"ECHO", value};
          auto echoed = co_await client_->call(echo);
          if (!echoed || echoed->string() != value) ++mismatches;
          const std::array<std::string_view, 2> incr{"INCR", "calls"};
          auto count = co_await client_->call(incr);
          if (count && count->isInteger()) counts.insert(count->integer());
          ++done;
        },
        boost::asio::detached);
  }
  const auto deadline = Clock::now() + 10s;
  while (done < kCalls && Clock::now() < deadline) io_.run_one_for(100ms);
  ASSERT_EQ(done, kCalls);
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(counts.size(), static_cast<size_t>(kCalls));  // every INCR got its own reply
  EXPECT_EQ(*counts.rbegin(), kCalls);
  EXPECT_EQ(client_->stats().connect_attempts, 1u);  // all queued behind one connect
}

TEST_F(RedisClientTest, EvalshaFallsBackToEvalOnNoscript) {
  const RedisScript script(
      "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
      "return {n, KEYS[1], ARGV[2]}");
  EXPECT_EQ(reply({"SCRIPT", "FLUSH"}).string(), "OK");
  EXPECT_EQ(reply({"CONFIG", "RESETSTAT"}).string(), "OK");
  const std::array<std::string_view, 1> keys{"hits"};
  const std::array<std::string_view, 2> args{"5", "tag"};

  auto first = runTask(io_, client_->evalsha(script, keys, args));
  ASSERT_TRUE(first) << first.error().message;
  const RedisReply expected_first = RedisReply::Array{RedisReply(5), RedisReply::BulkString{"hits"},
                                                      RedisReply::BulkString{"tag"}};
  EXPECT_EQ(*first, expected_first);

  auto second = runTask(io_, client_->evalsha(script, keys, args));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->array()[0], RedisReply(10));

  // The first call met NOSCRIPT and ran EVAL, which cached the script; the second needed only
  // EVALSHA.
  const auto stats = reply({"INFO", "commandstats"}).string();
  EXPECT_NE(stats.find("cmdstat_eval:calls=1,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("cmdstat_evalsha:calls=2,"), std::string::npos) << stats;
  const auto exists = reply({"SCRIPT", "EXISTS", script.sha1()});
  EXPECT_EQ(exists, RedisReply(RedisReply::Array{RedisReply(1)}));
}

TEST_F(RedisClientTest, ScriptErrorsAreErrorReplies) {
  const RedisScript script("return redis.call('NOSUCHCOMMAND')");
  const std::array<std::string_view, 0> none{};
  auto result = runTask(io_, client_->evalsha(script, none, none));
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_TRUE(result->isError());
  EXPECT_NE(result->errorMessage().find("Unknown Redis command"), std::string::npos)
      << result->errorMessage();
}

TEST_F(RedisClientTest, UnixSocketAddress) {
  RedisClient unix_client(io_, addressOf("unix://" + server_.socketPath()));
  auto set = call(unix_client, {"SET", "over-unix", "yes"});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(reply({"GET", "over-unix"}).string(), "yes");  // same server over TCP
  EXPECT_TRUE(unix_client.healthy());
}

TEST_F(RedisClientTest, KilledServerFailsCallsAtOnceAndRestartedServerServesAgain) {
  EXPECT_EQ(reply({"SET", "k", "v"}).string(), "OK");

  // A call Redis holds (BLPOP waits 30 s for data) fails as soon as the server dies.
  std::optional<RedisResult> blocked;
  boost::asio::co_spawn(
      io_,
      [&]() -> Task<void> {
        const std::array<std::string_view, 3> blpop{"BLPOP", "empty-list", "30"};
        blocked = co_await client_->call(blpop, 60s);
      },
      boost::asio::detached);
  runFor(io_, 50ms);
  ASSERT_FALSE(blocked);
  const auto killed_at = Clock::now();
  server_.kill();
  while (!blocked && Clock::now() - killed_at < 5s) io_.run_one_for(10ms);
  ASSERT_TRUE(blocked);
  EXPECT_LT(Clock::now() - killed_at, 1s);
  ASSERT_FALSE(*blocked);
  EXPECT_EQ(blocked->error().kind, RedisErrorKind::kConnection);
  EXPECT_FALSE(client_->healthy());

  // While Redis is down every call fails fast, and connects are spaced by the back-off.
  const auto attempts_before = client_->stats().connect_attempts;
  const auto burst_start = Clock::now();
  int failures = 0;
  std::string message;
  for (int i = 0; i < 200; ++i) {
    auto result = call({"GET", "k"});
    if (!result && result.error().kind == RedisErrorKind::kConnection) ++failures;
    if (!result) message = result.error().message;
  }
  EXPECT_EQ(failures, 200);
  EXPECT_LT(Clock::now() - burst_start, 500ms);
  EXPECT_LE(client_->stats().connect_attempts - attempts_before, 2u);
  EXPECT_NE(message.find(server_.url().substr(8)), std::string::npos) << message;

  ASSERT_TRUE(server_.start());
  const auto restarted_at = Clock::now();
  std::optional<RedisReply> answer;
  while (!answer && Clock::now() - restarted_at < 5s) {
    auto result = call({"PING"});
    if (result) {
      answer = *result;
    } else {
      runFor(io_, 20ms);
    }
  }
  ASSERT_TRUE(answer) << "no reply within 5 s after the restart";
  EXPECT_LT(Clock::now() - restarted_at, 2500ms);  // at most max_backoff (2 s) plus slack
  EXPECT_EQ(answer->string(), "PONG");
  EXPECT_TRUE(client_->healthy());
  EXPECT_EQ(reply({"GET", "k"}), RedisReply());  // a fresh server: nothing persisted
}

class RedisClientAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_TRUE(server_.start());
  }
  std::string url(std::string_view credentials, std::string_view db) const {
    return "redis://" + std::string(credentials) + "127.0.0.1:" + std::to_string(server_.port()) +
           std::string(db);
  }

  boost::asio::io_context io_;
  RedisServer server_{{"--requirepass", "pa ss"}};
};

TEST_F(RedisClientAuthTest, AuthenticatesAndSelectsTheDatabase) {
  RedisClient db3(io_, addressOf(url(":pa%20ss@", "/3")));
  RedisClient db0(io_, addressOf(url(":pa%20ss@", "")));
  const std::array<std::string_view, 3> set{"SET", "where", "db3"};
  auto stored = runTask(io_, db3.call(set));
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->string(), "OK");

  const std::array<std::string_view, 2> get{"GET", "where"};
  auto in_db3 = runTask(io_, db3.call(get));
  auto in_db0 = runTask(io_, db0.call(get));
  ASSERT_TRUE(in_db3 && in_db0);
  EXPECT_EQ(in_db3->string(), "db3");
  EXPECT_TRUE(in_db0->isNil());
}

TEST_F(RedisClientAuthTest, WrongOrMissingPasswordIsAConnectionErrorThatSaysWhy) {
  RedisClient wrong(io_, addressOf(url(":nope@", "")));
  RedisClient missing(io_, addressOf(url("", "")));
  const std::array<std::string_view, 1> ping{"PING"};
  auto refused = runTask(io_, wrong.call(ping));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, RedisErrorKind::kConnection);
  EXPECT_NE(refused.error().message.find("AUTH: WRONGPASS"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(refused.error().message.find("nope"), std::string::npos);  // no password in logs
  EXPECT_FALSE(wrong.healthy());

  auto unauthenticated = runTask(io_, missing.call(ping));
  ASSERT_FALSE(unauthenticated);
  EXPECT_NE(unauthenticated.error().message.find("PING: NOAUTH"), std::string::npos)
      << unauthenticated.error().message;
}

}  // namespace
}  // namespace sluice::redis
