// Higress's ABI extension (0.2.100), driven through higress_probe.wat: Redis call-outs queued on
// the stream and answered through proxy_on_redis_call_response with buffer 9, the route's
// endpoints and the override host, and the start-up calls of Higress's Go SDK. Bad pointers,
// lengths and queries must give statuses, never crashes.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "probe_fixture.h"
#include "wasm/header_map.h"
#include "wasm/plugin.h"

namespace sluice::wasm {
namespace {

using abi::Status;

class HigressTest : public ProbeFixture {
 protected:
  void start(bool redis) {
    settings_.name = "higress";
    settings_.root_id = "root-a";
    settings_.limits.max_body_bytes = 64;
    auto plugin = Plugin::load(v8Engine(), settings_, readModule("higress_probe.wasm"));
    ASSERT_TRUE(plugin) << plugin.error();
    plugin_ = *plugin;
    ThreadHooks hooks;
    hooks.redis = redis;
    instance_ = std::make_unique<PluginInstance>(plugin_, hooks);
    auto started = instance_->start();
    ASSERT_TRUE(started) << started.error();
  }
  Status redisCall(std::string_view query) {
    const auto cluster = put("outbound|6379||redis.static");
    const auto q = put(query, 64);
    return call("t_redis_call", {cluster, 27, q, query.size(), kOut + 8});
  }

  config::Plugin settings_;
  std::shared_ptr<const Plugin> plugin_;
};

TEST_F(HigressTest, ModuleIsRecognisedAsAbi0_2_100) {
  start(true);
  EXPECT_EQ(plugin_->version(), abi::Version::k0_2_100);
}

TEST_F(HigressTest, RedisInitAnswersOkWithARedisAndNotFoundWithout) {
  start(true);
  const auto cluster = put("outbound|6379||redis.static?db=1");
  EXPECT_EQ(call("t_redis_init", {cluster, 32, 0, 0, 0, 0, 250}), Status::kOk);
  EXPECT_EQ(call("t_redis_init", {kFar, 32, 0, 0, 0, 0, 250}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_redis_init", {cluster, 32, kFar, 5, 0, 0, 250}), Status::kInvalidMemoryAccess);
  start(false);
  EXPECT_EQ(call("t_redis_init", {put("redis"), 5, 0, 0, 0, 0, 250}), Status::kNotFound);
}

TEST_F(HigressTest, RedisCallQueuesTheParsedCommandWithATokenAndTheInitTimeout) {
  start(true);
  EXPECT_EQ(call("t_redis_init", {put("r"), 1, 0, 0, 0, 0, 250}), Status::kOk);
  ASSERT_EQ(redisCall("*3\r\n$6\r\nINCRBY\r\n$5\r\nq:k:1\r\n$2\r\n42\r\n"), Status::kOk);
  ASSERT_EQ(stream_.redis_calls.size(), 1u);
  const auto& queued = stream_.redis_calls[0];
  EXPECT_EQ(queued.args, (std::vector<std::string>{"INCRBY", "q:k:1", "42"}));
  EXPECT_EQ(queued.token, u32At(kOut + 8));
  EXPECT_EQ(queued.timeout_ms, 250u);
  EXPECT_EQ(queued.instance, instance_.get());
  // Binary-safe arguments, including CR LF and NUL inside a bulk string.
  ASSERT_EQ(redisCall(std::string("*2\r\n$3\r\nSET\r\n$4\r\na\r\n\0\r\n", 23)), Status::kOk);
  EXPECT_EQ(stream_.redis_calls[1].args[1], std::string("a\r\n\0", 4));
}

TEST_F(HigressTest, RedisCallRefusesMalformedQueriesBadMemoryAndMissingRedis) {
  start(true);
  for (std::string_view bad :
       {"GET k\r\n", "*1\r\n", "*1\r\n$3\r\nGET\r\nextra", "*1\r\n:3\r\n", "*1\r\n$9\r\nGET\r\n",
        "*0\r\n", "*-1\r\n", "*1\r\n$3\r\nGETX\r\n", "*99999999999\r\n", "*1\r\n$-1\r\n", ""}) {
    EXPECT_EQ(redisCall(bad), Status::kBadArgument) << bad;
  }
  EXPECT_TRUE(stream_.redis_calls.empty());
  const auto cluster = put("r");
  EXPECT_EQ(call("t_redis_call", {kFar, 1, cluster, 1, kOut}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_redis_call", {cluster, 1, kFar, 10, kOut}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_redis_call", {cluster, 1, cluster, 0x7fffffff, kOut}), Status::kBadArgument);
  const auto query = put("*1\r\n$4\r\nPING\r\n", 64);
  EXPECT_EQ(call("t_redis_call", {cluster, 1, query, 14, kFar}), Status::kInvalidMemoryAccess);
  EXPECT_TRUE(stream_.redis_calls.empty());
  // At most 16 calls per callback.
  for (int i = 0; i < 16; ++i) ASSERT_EQ(redisCall("*1\r\n$4\r\nPING\r\n"), Status::kOk);
  EXPECT_EQ(redisCall("*1\r\n$4\r\nPING\r\n"), Status::kBadArgument);
  start(false);
  EXPECT_EQ(redisCall("*1\r\n$4\r\nPING\r\n"), Status::kNotFound);
}

TEST_F(HigressTest, RedisAnswerGoesToTheRootContextWithTheReplyInBuffer9) {
  start(true);
  ASSERT_EQ(redisCall("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), Status::kOk);
  const auto request = stream_.redis_calls.at(0);
  RedisCallResponse response;
  response.status = abi::RedisCallStatus::kOk;
  response.reply = "$2\r\n42\r\n";
  auto outcome = instance_->deliverRedisCallResponse(request, response, stream_);
  ASSERT_TRUE(outcome.ok) << outcome.error;
  EXPECT_EQ(u32At(256), 1u);  // the root context, as Higress's SDKs expect
  EXPECT_EQ(u32At(260), request.token);
  EXPECT_EQ(u32At(264), 0u);
  EXPECT_EQ(u32At(268), 8u);
  EXPECT_EQ(u32At(272), static_cast<uint32_t>(Status::kOk));
  EXPECT_EQ(returned(), "$2\r\n42\r\n");
  // Outside the callback there is no buffer 9.
  EXPECT_EQ(call("t_get_buffer", {9, 0, 8, kOut, kOut + 4}), Status::kNotFound);

  RedisCallResponse failed;  // no answer: non-zero status, empty buffer
  outcome = instance_->deliverRedisCallResponse(request, failed, stream_);
  ASSERT_TRUE(outcome.ok) << outcome.error;
  EXPECT_EQ(u32At(264), 1u);
  EXPECT_EQ(u32At(268), 0u);
}

TEST_F(HigressTest, UpstreamHostsAreThePairsTheGatewayFilledIn) {
  start(true);
  stream_.upstream_hosts = {{"127.0.0.1:9001", "mock-a", R"({"health_status":"Healthy"})"},
                            {"[::1]:9002", "mock-b", R"({"health_status":"Unhealthy"})"}};
  ASSERT_EQ(call("t_get_hosts", {kOut, kOut + 4}), Status::kOk);
  const auto bytes = returned();
  auto pairs = deserializeHeaderMap({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  ASSERT_TRUE(pairs);
  EXPECT_EQ(*pairs, (HeaderMap{{"127.0.0.1:9001", R"({"health_status":"Healthy"})"},
                               {"[::1]:9002", R"({"health_status":"Unhealthy"})"}}));
  EXPECT_EQ(call("t_get_hosts", {kFar, kOut + 4}), Status::kInvalidMemoryAccess);
}

TEST_F(HigressTest, OverrideHostIsRecordedOnTheStream) {
  start(true);
  EXPECT_EQ(call("t_set_override", {put("127.0.0.1:9002"), 14}), Status::kOk);
  EXPECT_EQ(stream_.upstream_override, "127.0.0.1:9002");
  EXPECT_EQ(call("t_set_override", {kFar, 14}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_set_override", {put("x"), 0x7fffffff}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(stream_.upstream_override, "127.0.0.1:9002");
}

TEST_F(HigressTest, GoSdkStartUpCallsAreAnswered) {
  start(true);
  const char kForeign[] = "set_global_max_requests_per_io_cycle";
  const auto name = put(kForeign);
  EXPECT_EQ(call("t_foreign", {name, sizeof kForeign - 1, put("\x14", 200), 8, kOut, kOut + 4}),
            Status::kOk);
  EXPECT_EQ(call("t_foreign", {put("no_such_function"), 16, 0, 0, kOut, kOut + 4}),
            Status::kNotFound);
  EXPECT_EQ(call("t_foreign", {kFar, 10, 0, 0, kOut, kOut + 4}), Status::kInvalidMemoryAccess);

  auto property = [&](std::string_view path) -> std::optional<std::string> {
    if (call("t_get_property", {put(path), path.size(), kOut, kOut + 4}) != Status::kOk) {
      return std::nullopt;
    }
    return returned();
  };
  EXPECT_EQ(property("plugin_name"), "higress");
  EXPECT_EQ(property("plugin_root_id"), "root-a");
  stream_.properties["ai.route"] = "chat";
  stream_.properties["ai.api_key_id"] = "team-a";
  stream_.request_id = "req-7";
  EXPECT_EQ(property("route_name"), "chat");
  EXPECT_EQ(property("cluster_name"), "");  // no provider chosen yet
  EXPECT_EQ(property("consumer_name"), "team-a");
  EXPECT_EQ(property("x_request_id"), "req-7");
  stream_.properties["x_request_id"] = "set-by-plugin";
  EXPECT_EQ(property("x_request_id"), "set-by-plugin");
}

}  // namespace
}  // namespace sluice::wasm
