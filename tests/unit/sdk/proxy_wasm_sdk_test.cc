// The C guest SDK's helpers, compiled natively against a fake host: the map serialization,
// the JSON reader for configurations, the per-context map, and the helpers that call the host.

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy_wasm.h"

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// What the fake host holds and records.
struct FakeHost {
  std::map<std::string, std::string> request_headers;
  std::map<std::string, std::string> properties;  // path with NUL separators -> value
  std::string config;
  std::string last_property_path;
  uint32_t response_status = 0;
  std::string response_body;
  Pairs response_headers;
  std::vector<std::string> logs;
};
FakeHost* host = nullptr;

// Returns `value` the way a host does: in memory allocated through the guest's allocator.
pw_status_t give(const std::string& value, char** data, size_t* size) {
  *data = static_cast<char*>(proxy_on_memory_allocate(value.size() ? value.size() : 1));
  std::memcpy(*data, value.data(), value.size());
  *size = value.size();
  return PW_STATUS_OK;
}

Pairs parse(const std::string& bytes) {
  std::vector<pw_pair> pairs(64);
  long n = pw_pairs_parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                          pairs.data(), pairs.size());
  EXPECT_GE(n, 0);
  Pairs out;
  for (long i = 0; i < n; i++) {
    out.emplace_back(std::string(pairs[i].key, pairs[i].key_len),
                     std::string(pairs[i].value, pairs[i].value_len));
  }
  return out;
}

std::string serialize(const Pairs& pairs) {
  std::vector<pw_pair> in;
  for (const auto& [k, v] : pairs) in.push_back({k.data(), k.size(), v.data(), v.size()});
  size_t size = 0;
  uint8_t* data = pw_pairs_serialize(in.data(), in.size(), &size);
  std::string out(reinterpret_cast<char*>(data), size);
  free(data);
  return out;
}

class SdkTest : public ::testing::Test {
 protected:
  void SetUp() override { host = &fake_; }
  void TearDown() override { host = nullptr; }
  FakeHost fake_;
};

}  // namespace

// The host side of the ABI, as far as the helpers use it.
extern "C" {
pw_status_t proxy_log(uint32_t, const char* data, size_t size) {
  host->logs.emplace_back(data, size);
  return PW_STATUS_OK;
}
pw_status_t proxy_get_log_level(uint32_t* level) {
  *level = PW_LOG_INFO;
  return PW_STATUS_OK;
}
pw_status_t proxy_get_current_time_nanoseconds(uint64_t* ns) {
  *ns = 42;
  return PW_STATUS_OK;
}
uint32_t pw_wasi_clock_time_get(uint32_t, uint64_t, uint64_t*) { return 58; /* NOTSUP */ }
uint32_t pw_wasi_random_get(void* buf, size_t len) {
  std::memset(buf, 7, len);
  return 0;
}
uint32_t pw_wasi_fd_write(uint32_t, const pw_ciovec*, size_t, size_t*) { return 8; }
pw_status_t proxy_get_buffer_status(uint32_t type, size_t* size, uint32_t* flags) {
  if (type != PW_BUFFER_PLUGIN_CONFIGURATION) return PW_STATUS_NOT_FOUND;
  *size = host->config.size();
  *flags = 0;
  return PW_STATUS_OK;
}
pw_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, char** data,
                                   size_t* size) {
  if (type != PW_BUFFER_PLUGIN_CONFIGURATION) return PW_STATUS_NOT_FOUND;
  return give(host->config.substr(start, max_size), data, size);
}
pw_status_t proxy_get_header_map_value(uint32_t, const char* key, size_t key_size, char** value,
                                       size_t* value_size) {
  auto it = host->request_headers.find(std::string(key, key_size));
  if (it == host->request_headers.end()) return PW_STATUS_NOT_FOUND;
  return give(it->second, value, value_size);
}
pw_status_t proxy_replace_header_map_value(uint32_t, const char* key, size_t key_size,
                                           const char* value, size_t value_size) {
  host->request_headers[std::string(key, key_size)] = std::string(value, value_size);
  return PW_STATUS_OK;
}
pw_status_t proxy_add_header_map_value(uint32_t, const char* key, size_t key_size,
                                       const char* value, size_t value_size) {
  host->request_headers[std::string(key, key_size)] += std::string(value, value_size);
  return PW_STATUS_OK;
}
pw_status_t proxy_remove_header_map_value(uint32_t, const char* key, size_t key_size) {
  host->request_headers.erase(std::string(key, key_size));
  return PW_STATUS_OK;
}
pw_status_t proxy_get_header_map_pairs(uint32_t, char** data, size_t* size) {
  Pairs pairs(host->request_headers.begin(), host->request_headers.end());
  return give(serialize(pairs), data, size);
}
pw_status_t proxy_set_header_map_pairs(uint32_t, const void* data, size_t size) {
  Pairs pairs = parse(std::string(static_cast<const char*>(data), size));
  host->request_headers = {pairs.begin(), pairs.end()};
  return PW_STATUS_OK;
}
pw_status_t proxy_send_local_response(uint32_t status_code, const char*, size_t, const void* body,
                                      size_t body_size, const void* headers, size_t headers_size,
                                      uint32_t grpc_status) {
  EXPECT_EQ(grpc_status, PW_NO_GRPC_STATUS);
  host->response_status = status_code;
  host->response_body.assign(static_cast<const char*>(body), body_size);
  host->response_headers = parse(std::string(static_cast<const char*>(headers), headers_size));
  return PW_STATUS_OK;
}
pw_status_t proxy_get_property(const char* path, size_t path_size, char** value,
                               size_t* value_size) {
  host->last_property_path.assign(path, path_size);
  auto it = host->properties.find(host->last_property_path);
  if (it == host->properties.end()) return PW_STATUS_NOT_FOUND;
  return give(it->second, value, value_size);
}
}

TEST_F(SdkTest, PairsSerializeAsTheSpecExample) {
  // {"a": "1", "b": "22"}: count, lengths, then NUL-terminated keys and values.
  const std::string expected("\x02\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0\x02\0\0\0a\0001\0b\00022\0",
                             29);
  EXPECT_EQ(serialize({{"a", "1"}, {"b", "22"}}), expected);
  EXPECT_EQ(parse(expected), (Pairs{{"a", "1"}, {"b", "22"}}));
}

TEST_F(SdkTest, PairsRoundTripEmptyAndBinaryValues) {
  Pairs pairs{{":status", "200"}, {"x-empty", ""}, {"x-bin", std::string("a\0b", 3)}};
  EXPECT_EQ(parse(serialize(pairs)), pairs);
  EXPECT_EQ(parse(serialize({})), Pairs{});
}

TEST_F(SdkTest, PairsEmptyMapMayBeNothingOrOneZeroByte) {
  EXPECT_EQ(pw_pairs_parse(nullptr, 0, nullptr, 0), 0);
  const uint8_t zero = 0;
  EXPECT_EQ(pw_pairs_parse(&zero, 1, nullptr, 0), 0);
}

TEST_F(SdkTest, PairsParseRejectsMalformedMaps) {
  const std::vector<std::string> malformed = {
      std::string("\xff\xff\xff\xff", 4),                             // huge count
      std::string("\x01\0\0\0\xf0\xff\xff\x7f\x01\0\0\0a\0b\0", 16),  // key past the end
      std::string("\x01\0\0\0\xff\xff\xff\xff\x02\0\0\0a\0\0", 15),   // lengths wrap
      std::string("\x02\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0a\0b\0", 24),  // truncated
      std::string("\0\0\0\x20\0\0\0\0\0\0\0\0", 12),                                // count*8 wraps
      std::string("\x01\0\0\0\x01\0\0\0\x01\0\0\0axb\0", 16),  // no NUL after key
      std::string("\x01\0", 2),                                // short count
  };
  for (const auto& bytes : malformed) {
    EXPECT_EQ(
        pw_pairs_parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr, 0),
        -1)
        << testing::PrintToString(bytes);
  }
}

TEST_F(SdkTest, JsonReadsTheConfigurationShapesOfTheExamples) {
  const std::string text = R"( {"keys": ["k1", "k\u00e9", "\ud83d\ude00\"\\\/\n"],
      "requests_per_minute": 120, "nested": {"a": [1, {"b": null}], "c": true}, "neg": -5 } )";
  pw_json doc, v, it, elem;
  ASSERT_EQ(pw_json_parse(text.data(), text.size(), &doc), 0);

  ASSERT_EQ(pw_json_get(doc, "keys", &v), 0);
  std::vector<std::string> keys;
  it = v;
  int rc;
  while ((rc = pw_json_next(&it, &elem)) == 1) {
    size_t len = 0;
    char* s = pw_json_string(elem, &len);
    ASSERT_NE(s, nullptr);
    keys.emplace_back(s, len);
    free(s);
  }
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(keys, (std::vector<std::string>{"k1", "k\xc3\xa9", "\xf0\x9f\x98\x80\"\\/\n"}));

  int64_t n = 0;
  ASSERT_EQ(pw_json_get(doc, "requests_per_minute", &v), 0);
  ASSERT_EQ(pw_json_int(v, &n), 0);
  EXPECT_EQ(n, 120);
  ASSERT_EQ(pw_json_get(doc, "neg", &v), 0);
  ASSERT_EQ(pw_json_int(v, &n), 0);
  EXPECT_EQ(n, -5);
  ASSERT_EQ(pw_json_get(doc, "nested", &v), 0);
  EXPECT_EQ(pw_json_get(v, "c", &elem), 0);
  EXPECT_NE(pw_json_get(doc, "a", &v), 0);  // only the top level is searched
  EXPECT_NE(pw_json_get(doc, "missing", &v), 0);
}

TEST_F(SdkTest, JsonEmptyArrayAndNonArray) {
  pw_json doc, v, elem;
  const std::string text = R"({"empty": [], "str": "x"})";
  ASSERT_EQ(pw_json_parse(text.data(), text.size(), &doc), 0);
  ASSERT_EQ(pw_json_get(doc, "empty", &v), 0);
  EXPECT_EQ(pw_json_next(&v, &elem), 0);
  ASSERT_EQ(pw_json_get(doc, "str", &v), 0);
  EXPECT_EQ(pw_json_next(&v, &elem), -1);
}

TEST_F(SdkTest, JsonRejectsMalformedDocuments) {
  const std::string too_deep = std::string(100, '[') + std::string(100, ']');
  for (const std::string& text :
       std::vector<std::string>{"", "{", "{\"a\":}", "{\"a\":1,}", "[1,]", "{\"a\" 1}",
                                "{\"a\":1} x", "\"\x01\"", "tru", "{'a':1}", too_deep}) {
    pw_json doc;
    EXPECT_NE(pw_json_parse(text.data(), text.size(), &doc), 0) << text;
  }
}

TEST_F(SdkTest, JsonStringRejectsBadEscapes) {
  for (const std::string text : {R"("\x")", R"("\u12")", R"("\ud83d")", R"("\ude00")",
                                 R"("\ud83dx\ude00")", R"("\u12g4")"}) {
    pw_json v = {text.data(), text.data() + text.size()};
    EXPECT_EQ(pw_json_string(v, nullptr), nullptr) << text;
  }
}

TEST_F(SdkTest, JsonIntRejectsWhatIsNoInteger) {
  int64_t n = 0;
  for (const std::string text : {"1.5", "1e3", "-", "99999999999999999999", "\"1\"", "true"}) {
    pw_json v = {text.data(), text.data() + text.size()};
    EXPECT_NE(pw_json_int(v, &n), 0) << text;
  }
  const std::string max = "9223372036854775807";
  ASSERT_EQ(pw_json_int({max.data(), max.data() + max.size()}, &n), 0);
  EXPECT_EQ(n, INT64_MAX);
}

TEST_F(SdkTest, BufEscapesJsonStrings) {
  pw_buf b = {nullptr, 0, 0, 0};
  const std::string raw("q\"b\\n\n\x01", 7);
  pw_buf_json_string(&b, raw.data(), raw.size());
  pw_buf_puts(&b, " ");
  pw_buf_u64(&b, 0);
  pw_buf_puts(&b, " ");
  pw_buf_u64(&b, UINT64_MAX);
  EXPECT_STREQ(b.data, R"("q\"b\\n\u000a\u0001" 0 18446744073709551615)");
  pw_buf_free(&b);
}

TEST_F(SdkTest, ContextMapMatchesAReferenceUnderChurn) {
  pw_ctx_map m = {nullptr, nullptr, 0, 0};
  std::unordered_map<uint32_t, uintptr_t> reference;
  std::mt19937 rng(1);
  for (int step = 0; step < 20000; step++) {
    uint32_t id = 1 + rng() % 500;
    if (rng() % 3 == 0) {
      void* got = pw_ctx_take(&m, id);
      auto it = reference.find(id);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(got), it == reference.end() ? 0 : it->second);
      if (it != reference.end()) reference.erase(it);
    } else {
      uintptr_t value = step + 1;
      ASSERT_EQ(pw_ctx_put(&m, id, reinterpret_cast<void*>(value)), 0);
      reference[id] = value;
    }
    ASSERT_EQ(m.count, reference.size());
  }
  for (uint32_t id = 1; id <= 500; id++) {
    auto it = reference.find(id);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pw_ctx_get(&m, id)),
              it == reference.end() ? 0 : it->second);
  }
  free(m.ids);
  free(m.values);
}

TEST_F(SdkTest, HeaderHelpersReturnTerminatedCopies) {
  fake_.request_headers = {{"x-api-key", "k1"}, {"x-empty", ""}};
  size_t len = 99;
  char* v = pw_get_request_header("x-api-key", &len);
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, "k1");
  EXPECT_EQ(len, 2u);
  free(v);
  v = pw_get_request_header("x-empty", &len);
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, "");
  free(v);
  EXPECT_EQ(pw_get_request_header("absent", nullptr), nullptr);

  EXPECT_EQ(pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-chain", "ab"), PW_STATUS_OK);
  EXPECT_EQ(pw_remove_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-api-key"), PW_STATUS_OK);
  pw_header_map all;
  ASSERT_EQ(pw_get_header_map(PW_MAP_HTTP_REQUEST_HEADERS, &all), PW_STATUS_OK);
  ASSERT_EQ(all.count, 2u);
  EXPECT_EQ(std::string(all.pairs[0].key, all.pairs[0].key_len), "x-chain");
  pw_header_map_free(&all);
}

TEST_F(SdkTest, PluginConfigIsReadWholeAndTerminated) {
  fake_.config = R"({"keys":["k1"]})";
  size_t len = 0;
  char* config = pw_get_plugin_config(fake_.config.size(), &len);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(std::string(config, len), fake_.config);
  EXPECT_EQ(config[len], '\0');
  free(config);
  config = pw_get_plugin_config(0, &len);  // size asked from the host
  EXPECT_EQ(len, fake_.config.size());
  free(config);
  fake_.config.clear();
  config = pw_get_plugin_config(0, &len);
  ASSERT_NE(config, nullptr);
  EXPECT_STREQ(config, "");
  free(config);
}

TEST_F(SdkTest, SendErrorWritesTheOpenAiShapeAsJson) {
  pw_pair extra[] = {pw_pair_of("retry-after", "7")};
  ASSERT_EQ(pw_send_error(429, "too \"many\"", "rate_limit_error", nullptr, extra, 1),
            PW_STATUS_OK);
  EXPECT_EQ(fake_.response_status, 429u);
  EXPECT_EQ(fake_.response_body,
            R"({"error":{"message":"too \"many\"","type":"rate_limit_error","code":null}})");
  EXPECT_EQ(fake_.response_headers,
            (Pairs{{"content-type", "application/json"}, {"retry-after", "7"}}));
}

TEST_F(SdkTest, PropertiesUseNulSeparatedPaths) {
  fake_.properties[std::string("request\0path", 12)] = "/v1/models";
  fake_.properties[std::string("response\0code", 13)] = std::string("\xf7\x01\0\0\0\0\0\0", 8);
  fake_.properties[std::string("x\0count", 7)] = "1234";
  char* path = pw_get_property("request.path", nullptr);
  ASSERT_NE(path, nullptr);
  EXPECT_STREQ(path, "/v1/models");
  free(path);
  EXPECT_EQ(fake_.last_property_path, std::string("request\0path", 12));
  uint64_t code = 0;
  ASSERT_EQ(pw_get_property_u64("response.code", &code), 0);
  EXPECT_EQ(code, 503u);
  ASSERT_EQ(pw_get_property_u64("x.count", &code), 0);
  EXPECT_EQ(code, 1234u);
  EXPECT_NE(pw_get_property_u64("absent", &code), 0);
}

TEST_F(SdkTest, TimeFallsBackToTheProxyClock) { EXPECT_EQ(pw_now_ns(), 42u); }
