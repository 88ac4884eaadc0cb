#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace sluice::config {
namespace {

constexpr const char* kIssueExample = R"(listen: 127.0.0.1:8080
threads: 2
providers:
  - id: local
    type: openai
    endpoints: ["http://127.0.0.1:18001", "http://127.0.0.1:18002"]
    api_tokens: ["${SLUICE_TEST_TOKEN}"]
routes:
  - models: ["*"]
    provider: local
)";

TEST(Config, ParsesTheQuickStartExample) {
  ::setenv("SLUICE_TEST_TOKEN", "sk-secret", 1);
  auto config = parseConfig(kIssueExample, "sluice.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->listen_host, "127.0.0.1");
  EXPECT_EQ(config->listen_port, 8080);
  EXPECT_EQ(config->threads, 2);
  ASSERT_EQ(config->providers.size(), 1u);
  const auto& provider = config->providers[0];
  EXPECT_EQ(provider.id, "local");
  ASSERT_EQ(provider.endpoints.size(), 2u);
  EXPECT_EQ(provider.endpoints[1].host, "127.0.0.1");
  EXPECT_EQ(provider.endpoints[1].port, 18002);
  ASSERT_EQ(provider.api_tokens.size(), 1u);
  EXPECT_EQ(provider.api_tokens[0], "sk-secret");
  ASSERT_EQ(config->routes.size(), 1u);
  EXPECT_EQ(config->routes[0].providerIndex(), 0u);
  EXPECT_EQ(config->routes[0].name, "route0");
}

TEST(Config, UnsetEnvironmentVariableNamesVariableKeyAndLine) {
  ::unsetenv("SLUICE_TEST_TOKEN");
  auto config = parseConfig(kIssueExample, "sluice.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("sluice.yaml:7: providers[0].api_tokens[0]: environment variable "
                                "SLUICE_TEST_TOKEN is not set"),
            std::string::npos)
      << config.error();
}

TEST(Config, UnknownProviderTypeNamesKeyAndLine) {
  auto config = parseConfig(R"(providers:
  - id: a
    type: foo
    endpoints: ["http://127.0.0.1:1"]
routes:
  - models: ["*"]
    provider: a
)",
                            "f.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("f.yaml:3: providers[0].type: unknown provider type \"foo\""),
            std::string::npos)
      << config.error();
}

TEST(Config, ReportsEveryProblemNotOnlyTheFirst) {
  auto config = parseConfig(R"(listen: nowhere
threads: -1
colour: blue
providers:
  - id: a
    type: openai
    endpoints: ["ftp://x"]
routes:
  - models: ["gp*t"]
    provider: b
)",
                            "f.yaml");
  ASSERT_FALSE(config);
  const auto& error = config.error();
  EXPECT_NE(error.find("f.yaml:1: listen:"), std::string::npos) << error;
  EXPECT_NE(error.find("f.yaml:2: threads: expected an integer from 0 to 1024"), std::string::npos)
      << error;
  EXPECT_NE(error.find("f.yaml:3: colour: unknown key"), std::string::npos) << error;
  EXPECT_NE(error.find("f.yaml:7: providers[0].endpoints[0]: unsupported scheme \"ftp\""),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("f.yaml:9: routes[0].models[0]:"), std::string::npos) << error;
  EXPECT_NE(error.find("f.yaml:10: routes[0].provider: no provider with id \"b\""),
            std::string::npos)
      << error;
}

TEST(Config, MissingSectionsAreRequired) {
  auto config = parseConfig("listen: 127.0.0.1:1\n", "f.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("providers: required"), std::string::npos) << config.error();
  EXPECT_NE(config.error().find("routes: required"), std::string::npos) << config.error();
}

TEST(Config, InvalidYamlGivesLine) {
  auto config = parseConfig("listen: [1, 2\nthreads: 2\n", "f.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("f.yaml:"), std::string::npos);
  EXPECT_NE(config.error().find("invalid YAML"), std::string::npos) << config.error();
}

TEST(Config, LimitsAndTimeoutsOverrideDefaults) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: openai, endpoints: ["http://h:1"]}
routes:
  - {models: ["*"], provider: a}
limits: {max_body_bytes: 2048}
timeouts: {first_byte_ms: 500, drain_ms: 100}
access_log: "off"
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->limits.max_body_bytes, 2048u);
  EXPECT_EQ(config->timeouts.first_byte_ms, 500u);
  EXPECT_EQ(config->timeouts.drain_ms, 100u);
  EXPECT_EQ(config->timeouts.connect_ms, Timeouts{}.connect_ms);
  EXPECT_EQ(config->access_log, "off");
}

TEST(EndpointUrl, SplitsSchemeHostPortAndPath) {
  auto endpoint = parseEndpointUrl("https://api.example.com/v1/");
  ASSERT_TRUE(endpoint);
  EXPECT_EQ(endpoint->scheme, "https");
  EXPECT_EQ(endpoint->host, "api.example.com");
  EXPECT_EQ(endpoint->port, 443);
  EXPECT_EQ(endpoint->base_path, "/v1");

  endpoint = parseEndpointUrl("http://[::1]:9000");
  ASSERT_TRUE(endpoint);
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, 9000);
  EXPECT_EQ(endpoint->base_path, "");

  EXPECT_FALSE(parseEndpointUrl("127.0.0.1:8000"));
  EXPECT_FALSE(parseEndpointUrl("http://h:99999"));
  EXPECT_FALSE(parseEndpointUrl("http://"));
}

TEST(InterpolateEnv, ReplacesVariablesAndKeepsEscapes) {
  ::setenv("SLUICE_A", "alpha", 1);
  EXPECT_EQ(*interpolateEnv("x-${SLUICE_A}-y"), "x-alpha-y");
  EXPECT_EQ(*interpolateEnv("$${SLUICE_A}"), "${SLUICE_A}");
  EXPECT_FALSE(interpolateEnv("${SLUICE_A"));
  EXPECT_FALSE(interpolateEnv("${}"));
}

}  // namespace
}  // namespace sluice::config

namespace sluice::config {
namespace {

TEST(ModelMapping, ExactThenLongestPrefixThenStarAndEmptyKeepsTheName) {
  ModelMapping mapping;
  mapping.rules = {{"*", "fallback"},
                   {"gpt-4*", "four"},
                   {"gpt-4o*", "four-o"},
                   {"gpt-4o-mini", ""},
                   {"claude", "sonnet"}};
  EXPECT_EQ(mapping.map("gpt-4o-mini"), "gpt-4o-mini");
  EXPECT_EQ(mapping.map("gpt-4o-2024"), "four-o");
  EXPECT_EQ(mapping.map("gpt-4.1"), "four");
  EXPECT_EQ(mapping.map("claude"), "sonnet");
  EXPECT_EQ(mapping.map("llama"), "fallback");
  EXPECT_EQ(ModelMapping{}.map("anything"), "anything");
}

TEST(Config, ProviderTypesDefaultsAndOptions) {
  auto config = parseConfig(R"(providers:
  - {id: oa, type: openai, api_tokens: [a, b], model_mapping: {"gpt-4*": "gpt-4o", "*": ""}}
  - {id: an, type: anthropic, max_tokens_default: 1024}
  - {id: vl, type: vllm, custom_url: "http://vllm:8000/v1/chat/completions"}
  - {id: legacy, type: vllm, server_host: "vllm:8000"}
  - {id: az, type: azure, endpoints: ["https://r.openai.azure.com"], deployment: d1}
  - {id: sec, type: generic, endpoints: ["https://h:8443"], tls: {ca_file: /ca.pem}}
routes:
  - {models: ["*"], provider: oa}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& p = config->providers;
  EXPECT_EQ(p[0].endpoints[0].host, "api.openai.com");
  EXPECT_EQ(p[0].endpoints[0].base_path, "/v1");
  EXPECT_EQ(p[0].model_mapping.map("gpt-4-turbo"), "gpt-4o");
  EXPECT_EQ(p[1].endpoints[0].host, "api.anthropic.com");
  EXPECT_EQ(p[1].max_tokens_default, 1024u);
  EXPECT_TRUE(p[2].full_path);
  EXPECT_EQ(p[2].endpoints[0].base_path, "/v1/chat/completions");
  EXPECT_EQ(p[3].endpoints[0].host, "vllm");
  EXPECT_EQ(p[3].endpoints[0].port, 8000);
  EXPECT_FALSE(p[3].full_path);
  EXPECT_EQ(p[4].deployment, "d1");
  EXPECT_EQ(p[5].tls.ca_file, "/ca.pem");
  EXPECT_FALSE(p[5].tls.insecure_skip_verify);
}

TEST(Config, GenericProviderNeedsAnEndpoint) {
  auto config = parseConfig(R"(providers:
  - {id: g, type: generic}
routes:
  - {models: ["*"], provider: g}
)",
                            "f.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("f.yaml:2: providers[0].endpoints: required for type generic"),
            std::string::npos)
      << config.error();
}

TEST(Config, WasmSectionRootsAndRedisFallsBackToLimits) {
  constexpr const char* kBase = R"(providers:
  - {id: g, type: openai, endpoints: ["http://127.0.0.1:1"]}
routes:
  - {models: ["*"], provider: g}
limits: {redis: "redis://127.0.0.1:6379"}
)";
  auto config = parseConfig(std::string(kBase) + "wasm: {module_roots: [/srv/wasm]}\n", "f.yaml");
  ASSERT_TRUE(config) << config.error();
  ASSERT_EQ(config->wasm.module_roots.size(), 1u);
  EXPECT_EQ(config->wasm.module_roots[0], "/srv/wasm");
  EXPECT_EQ(config->wasm.redis, "redis://127.0.0.1:6379");

  config = parseConfig(std::string(kBase) + "wasm: {redis: \"unix:///r.sock\"}\n", "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->wasm.redis, "unix:///r.sock");

  config =
      parseConfig(std::string(kBase) + "wasm: {module_roots: [relative], redis: x}\n", "f.yaml");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("wasm.module_roots: \"relative\" is not an absolute path"),
            std::string::npos)
      << config.error();
  EXPECT_NE(config.error().find("wasm.redis: expected redis://"), std::string::npos)
      << config.error();
}

}  // namespace
}  // namespace sluice::config
