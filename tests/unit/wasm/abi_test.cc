// The proxy-wasm host functions, driven through abi_probe.wat: each test writes its inputs
// into guest memory, calls a trampoline export and checks the status and what the host
// wrote back. Bad pointers and lengths must give statuses, never crashes.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "probe_fixture.h"
#include "wasm/header_map.h"
#include "wasm/plugin.h"
#include "wasm/shared_state.h"

namespace sluice::wasm {
namespace {

using abi::Status;

class AbiTest : public ProbeFixture {
 protected:
  void SetUp() override {
    settings_.name = "probe";
    settings_.configuration = R"({"greeting":"hello"})";
    settings_.limits.max_body_bytes = 64;
    settings_.limits.max_header_bytes = 128;
    settings_.limits.max_local_response_bytes = 32;
    auto plugin = Plugin::load(v8Engine(), settings_, readModule("abi_probe.wasm"));
    ASSERT_TRUE(plugin) << plugin.error();
    ThreadHooks hooks;
    hooks.log = [this](abi::LogLevel, std::string_view, std::string_view message) {
      logged_.emplace_back(message);
    };
    instance_ = std::make_unique<PluginInstance>(*plugin, hooks);
    auto started = instance_->start();
    ASSERT_TRUE(started) << started.error();
    stream_.request_headers = {{":method", "POST"},
                               {":path", "/v1/chat/completions?x=1"},
                               {"content-type", "application/json"},
                               {"authorization", "Bearer secret"},
                               {"x-model", "m"}};
    stream_.request_id = "req-1";
  }

  config::Plugin settings_;
  std::vector<std::string> logged_;
};

constexpr RawVal kRequestHeaders = 0;
constexpr RawVal kResponseHeaders = 2;

TEST_F(AbiTest, GetHeaderValue) {
  const auto key = put("Content-Type");
  EXPECT_EQ(call("t_get_value", {kRequestHeaders, key, 12, kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "application/json");
  const auto missing = put("x-none");
  EXPECT_EQ(call("t_get_value", {kRequestHeaders, missing, 6, kOut, kOut + 4}), Status::kNotFound);
}

TEST_F(AbiTest, CredentialsAreHiddenUnlessGranted) {
  const auto key = put("authorization");
  EXPECT_EQ(call("t_get_value", {kRequestHeaders, key, 13, kOut, kOut + 4}), Status::kNotFound);
  EXPECT_EQ(call("t_get_pairs", {kRequestHeaders, kOut, kOut + 4}), Status::kOk);
  auto pairs = returned();
  auto map = deserializeHeaderMap({reinterpret_cast<const uint8_t*>(pairs.data()), pairs.size()});
  ASSERT_TRUE(map);
  EXPECT_EQ(map->size(), 4u);
  for (const auto& [name, value] : *map) EXPECT_NE(name, "authorization");
  // Replacing the whole map keeps what the plugin could not see.
  const auto serialized = serializeHeaderMap({{":method", "GET"}, {"x-new", "1"}});
  const auto at = put(serialized);
  EXPECT_EQ(call("t_set_pairs", {kRequestHeaders, at, serialized.size()}), Status::kOk);
  EXPECT_EQ(stream_.request_headers,
            (HeaderMap{{":method", "GET"}, {"x-new", "1"}, {"authorization", "Bearer secret"}}));
}

TEST_F(AbiTest, HeaderMapRoundTripAndEdits) {
  const auto name = put("X-Added");
  const auto value = put("one", 100);
  EXPECT_EQ(call("t_add_value", {kResponseHeaders, name, 7, value, 3}), Status::kOk);
  EXPECT_EQ(call("t_add_value", {kResponseHeaders, name, 7, value, 3}), Status::kOk);
  EXPECT_EQ(stream_.response_headers.size(), 2u);
  const auto two = put("two", 200);
  EXPECT_EQ(call("t_replace_value", {kResponseHeaders, name, 7, two, 3}), Status::kOk);
  EXPECT_EQ(stream_.response_headers, (HeaderMap{{"x-added", "two"}}));
  EXPECT_EQ(call("t_remove_value", {kResponseHeaders, name, 7}), Status::kOk);
  EXPECT_TRUE(stream_.response_headers.empty());
}

TEST_F(AbiTest, HopByHopHeadersFromPluginsAreIgnored) {
  const auto name = put("Transfer-Encoding");
  const auto value = put("chunked", 100);
  EXPECT_EQ(call("t_add_value", {kResponseHeaders, name, 17, value, 7}), Status::kOk);
  EXPECT_TRUE(stream_.response_headers.empty());
}

TEST_F(AbiTest, HeaderBytesAreBounded) {
  const auto name = put("x-big");
  const std::string big(200, 'v');
  const auto value = put(big, 100);
  EXPECT_EQ(call("t_add_value", {kResponseHeaders, name, 5, value, big.size()}),
            Status::kBadArgument);
  EXPECT_TRUE(stream_.response_headers.empty());
}

TEST_F(AbiTest, MalformedSerializedMapIsRejected) {
  std::string bytes = serializeHeaderMap({{"a", "b"}});
  bytes[4] = 100;  // the first name claims 100 bytes
  const auto at = put(bytes);
  EXPECT_EQ(call("t_set_pairs", {kRequestHeaders, at, bytes.size()}), Status::kBadArgument);
  const std::string count_only("\xff\xff\xff\x7f", 4);
  const auto huge = put(count_only);
  EXPECT_EQ(call("t_set_pairs", {kRequestHeaders, huge, 4}), Status::kBadArgument);
  EXPECT_EQ(stream_.request_headers.size(), 5u);
}

TEST_F(AbiTest, OutOfBoundsPointersGiveInvalidMemoryAccess) {
  EXPECT_EQ(call("t_get_value", {kRequestHeaders, kFar, 4, kOut, kOut + 4}),
            Status::kInvalidMemoryAccess);
  const auto key = put("content-type");
  EXPECT_EQ(call("t_get_value", {kRequestHeaders, key, 12, kFar, kFar + 4}),
            Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_set_pairs", {kRequestHeaders, 131070, 100}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_log", {2, kFar, 10}), Status::kInvalidMemoryAccess);
  EXPECT_EQ(call("t_get_pairs", {kRequestHeaders, 0xfffffffe, 4}), Status::kInvalidMemoryAccess);
  EXPECT_TRUE(instance_->healthy());
}

TEST_F(AbiTest, UnknownMapAndBufferTypes) {
  const auto key = put("a");
  EXPECT_EQ(call("t_get_value", {99, key, 1, kOut, kOut + 4}), Status::kNotFound);
  EXPECT_EQ(call("t_get_buffer", {42, 0, 10, kOut, kOut + 4}), Status::kNotFound);
}

TEST_F(AbiTest, PluginConfigurationBuffer) {
  EXPECT_EQ(call("t_get_buffer", {7, 0, 1000, kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), R"({"greeting":"hello"})");
  EXPECT_EQ(call("t_get_buffer", {7, 2, 8, kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "greeting");
}

TEST_F(AbiTest, BodyEditsAreBoundedByTheLimit) {
  stream_.request_body = "0123456789";
  const auto data = put("abc");
  EXPECT_EQ(call("t_set_buffer", {0, 0, 3, data, 3}), Status::kOk);  // replace a prefix
  EXPECT_EQ(stream_.request_body, "abc3456789");
  EXPECT_TRUE(stream_.request_body_changed);
  EXPECT_EQ(call("t_set_buffer", {0, 10, 0, data, 3}), Status::kOk);  // append
  EXPECT_EQ(stream_.request_body, "abc3456789abc");
  const std::string big(100, 'x');
  const auto too_big = put(big);
  EXPECT_EQ(call("t_set_buffer", {0, 0, 13, too_big, big.size()}), Status::kBadArgument);
  EXPECT_EQ(stream_.request_body, "abc3456789abc");
  EXPECT_EQ(call("t_get_buffer", {0, 3, 4, kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "3456");
}

TEST_F(AbiTest, Properties) {
  const std::string path("request\0path", 12);
  const auto at = put(path);
  EXPECT_EQ(call("t_get_property", {at, path.size(), kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "/v1/chat/completions?x=1");
  const std::string url_path("request\0url_path", 16);
  const auto at2 = put(url_path);
  EXPECT_EQ(call("t_get_property", {at2, url_path.size(), kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "/v1/chat/completions");
  const std::string id("request\0id", 10);
  const auto at3 = put(id);
  EXPECT_EQ(call("t_get_property", {at3, id.size(), kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "req-1");
  const std::string name("plugin_name");
  const auto at4 = put(name);
  EXPECT_EQ(call("t_get_property", {at4, name.size(), kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "probe");
  const std::string secret("request\0headers\0authorization", 29);
  const auto at5 = put(secret);
  EXPECT_EQ(call("t_get_property", {at5, secret.size(), kOut, kOut + 4}), Status::kNotFound);

  const std::string custom("my\0key", 6);
  const auto key = put(custom);
  const auto value = put("v1", 100);
  EXPECT_EQ(call("t_set_property", {key, custom.size(), value, 2}), Status::kOk);
  EXPECT_EQ(stream_.properties.at("my.key"), "v1");
  EXPECT_EQ(call("t_get_property", {key, custom.size(), kOut, kOut + 4}), Status::kOk);
  EXPECT_EQ(returned(), "v1");
}

TEST_F(AbiTest, LocalResponse) {
  const auto body = put("denied");
  const auto headers = serializeHeaderMap({{"Content-Type", "text/plain"}, {"connection", "x"}});
  const auto at = put(headers, 100);
  EXPECT_EQ(call("t_local_response", {403, 0, 0, body, 6, at, headers.size(), 0}), Status::kOk);
  ASSERT_TRUE(stream_.local_response);
  EXPECT_EQ(stream_.local_response->status, 403u);
  EXPECT_EQ(stream_.local_response->body, "denied");
  EXPECT_EQ(stream_.local_response->headers, (HeaderMap{{"content-type", "text/plain"}}));
}

TEST_F(AbiTest, LocalResponseBoundsAndStatus) {
  const std::string big(100, 'x');
  const auto body = put(big);
  EXPECT_EQ(call("t_local_response", {403, 0, 0, body, big.size(), 0, 0, 0}), Status::kBadArgument);
  EXPECT_EQ(call("t_local_response", {99, 0, 0, body, 1, 0, 0, 0}), Status::kBadArgument);
  EXPECT_EQ(call("t_local_response", {700, 0, 0, body, 1, 0, 0, 0}), Status::kBadArgument);
  EXPECT_FALSE(stream_.local_response);
}

TEST_F(AbiTest, SharedDataCompareAndSwap) {
  const auto key = put("abi-test-counter");
  const auto one = put("1", 100);
  EXPECT_EQ(call("t_set_shared", {key, 16, one, 1, 0}), Status::kOk);
  EXPECT_EQ(call("t_get_shared", {key, 16, kOut, kOut + 4, kOut + 8}), Status::kOk);
  EXPECT_EQ(returned(), "1");
  const auto cas = u32At(kOut + 8);
  EXPECT_NE(cas, 0u);
  const auto two = put("2", 200);
  EXPECT_EQ(call("t_set_shared", {key, 16, two, 1, cas + 1}), Status::kCasMismatch);
  EXPECT_EQ(call("t_set_shared", {key, 16, two, 1, cas}), Status::kOk);
  EXPECT_EQ(call("t_set_shared", {key, 16, one, 1, cas}), Status::kCasMismatch);
  EXPECT_EQ(sharedState().data.get("abi-test-counter")->bytes, "2");
}

TEST_F(AbiTest, Metrics) {
  const auto name = put("abi_test_requests");
  EXPECT_EQ(call("t_define_metric", {0, name, 17, kOut}), Status::kOk);
  const auto id = u32At(kOut);
  EXPECT_EQ(call("t_increment_metric", {id, 3}), Status::kOk);
  EXPECT_EQ(call("t_increment_metric", {id, 4}), Status::kOk);
  EXPECT_EQ(call("t_get_metric", {id, kOut}), Status::kOk);
  EXPECT_EQ(u32At(kOut), 7u);
  EXPECT_EQ(call("t_get_metric", {99999, kOut}), Status::kNotFound);
  std::string text;
  sharedState().metrics.appendPrometheus(text);
  EXPECT_NE(text.find("sluice_plugin_abi_test_requests 7"), std::string::npos) << text;
}

TEST_F(AbiTest, LogReachesTheGatewayLog) {
  const auto message = put("hello from the guest");
  EXPECT_EQ(call("t_log", {2, message, 20}), Status::kOk);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_EQ(logged_[0], "hello from the guest");
}

TEST_F(AbiTest, UnsupportedCallsAreUnimplemented) {
  EXPECT_EQ(call("t_grpc_cancel", {1}), Status::kUnimplemented);
}

std::vector<uint8_t> readTestModule(const std::string& name) {
  std::ifstream file(std::string(SLUICE_TEST_WASM_DIR) + "/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), {}};
}

TEST(PluginInstance, TrapEndsTheCallAndTheInstanceIsRebuiltWithBackOff) {
  config::Plugin settings;
  settings.name = "trap";
  auto plugin = Plugin::load(v8Engine(), settings, readTestModule("trap.wasm"));
  ASSERT_TRUE(plugin) << plugin.error();
  PluginInstance instance(*plugin, ThreadHooks{});
  ASSERT_TRUE(instance.start());
  StreamData stream;
  const auto first_generation = instance.generation();
  uint32_t context = instance.createContext();
  ASSERT_NE(context, 0u);
  auto outcome = instance.callStream("proxy_on_request_headers", context, stream, {0, 1});
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.error.find("trapped"), std::string::npos) << outcome.error;
  EXPECT_FALSE(instance.healthy());
  // First rebuild: immediate.
  EXPECT_TRUE(instance.ensureHealthy());
  EXPECT_GT(instance.generation(), first_generation);
  // A second failure in a row waits before the next rebuild.
  context = instance.createContext();
  EXPECT_FALSE(instance.callStream("proxy_on_request_headers", context, stream, {0, 1}).ok);
  EXPECT_FALSE(instance.ensureHealthy());
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
  EXPECT_TRUE(instance.ensureHealthy());
  const auto totals = (*plugin)->stats().totals();
  EXPECT_EQ(totals.traps, 2u);
  EXPECT_EQ(totals.errors, 2u);
  EXPECT_GE(totals.calls, 2u);
}

TEST(PluginInstance, InfiniteLoopIsStoppedAtTheDeadline) {
  config::Plugin settings;
  settings.name = "loop";
  settings.limits.deadline_ms = 30;
  auto plugin = Plugin::load(v8Engine(), settings, readTestModule("infinite_loop.wasm"));
  ASSERT_TRUE(plugin) << plugin.error();
  PluginInstance instance(*plugin, ThreadHooks{});
  ASSERT_TRUE(instance.start());
  StreamData stream;
  const auto context = instance.createContext();
  const auto start = std::chrono::steady_clock::now();
  auto outcome = instance.callStream("proxy_on_request_headers", context, stream, {0, 1});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.error.find("deadline"), std::string::npos) << outcome.error;
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ((*plugin)->stats().totals().deadline_misses, 1u);
  EXPECT_EQ((*plugin)->stats().totals().errors, 1u);
  EXPECT_GE((*plugin)->stats().totals().max_ns, 30'000'000u);
  EXPECT_TRUE(instance.ensureHealthy());
}

TEST(PluginLoad, ModuleWithoutAbiVersionIsRejected) {
  config::Plugin settings;
  settings.name = "no_abi";
  auto plugin = Plugin::load(v8Engine(), settings, readModule("basic.wasm"));
  ASSERT_FALSE(plugin);
  EXPECT_NE(plugin.error().find("proxy_abi_version"), std::string::npos) << plugin.error();
}

TEST(PluginLoad, BytesThatAreNotWasmAreRejected) {
  config::Plugin settings;
  const std::string text = "not a module";
  auto plugin = Plugin::load(v8Engine(), settings,
                             {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  ASSERT_FALSE(plugin);
}

TEST(HeaderMap, SerializationRoundTrip) {
  const HeaderMap map = {{":status", "200"}, {"x-a", ""}, {"", "v"}, {"k", std::string("\0b", 2)}};
  const auto bytes = serializeHeaderMap(map);
  auto back = deserializeHeaderMap({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, map);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(deserializeHeaderMap({reinterpret_cast<const uint8_t*>(bytes.data()), cut}))
        << cut;
  }
}

}  // namespace
}  // namespace sluice::wasm
