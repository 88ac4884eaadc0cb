// Route pools (targets, policy and its options, retry, fallback, timeouts), provider endpoints
// with weights, health checks, outlier detection and the admin listener.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "config/config.h"

namespace sluice::config {
namespace {

// The error of a config that must not load ("" when it loads).
std::string errorOf(std::string_view yaml) {
  auto config = parseConfig(yaml, "f.yaml");
  return config ? std::string() : config.error();
}

// Expects `error` to contain `line` ("f.yaml:N: key: what", or a prefix of it).
#define EXPECT_ERROR_LINE(error, line) \
  EXPECT_NE((error).find(line), std::string::npos) << "missing: " << (line) << "\nin:\n" << (error)

TEST(RouteConfig, TargetsGiveEachProviderAWeight) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
  - {id: b, type: generic, endpoints: ["http://b:1"]}
routes:
  - models: ["*"]
    targets:
      - {provider: b, weight: 3}
      - {provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& route = config->routes[0];
  ASSERT_EQ(route.targets.size(), 2u);
  EXPECT_EQ(route.targets[0].provider, "b");
  EXPECT_EQ(route.targets[0].provider_index, 1u);
  EXPECT_EQ(route.targets[0].weight, 3u);
  EXPECT_EQ(route.targets[1].provider, "a");
  EXPECT_EQ(route.targets[1].provider_index, 0u);
  EXPECT_EQ(route.targets[1].weight, 1u);
  EXPECT_EQ(route.provider(), "b");
  EXPECT_EQ(route.providerIndex(), 1u);
}

TEST(RouteConfig, ProviderIsOneTargetOfWeightOne) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
  - {id: b, type: generic, endpoints: ["http://b:1"]}
routes:
  - {models: ["*"], provider: b}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& route = config->routes[0];
  ASSERT_EQ(route.targets.size(), 1u);
  EXPECT_EQ(route.targets[0].provider, "b");
  EXPECT_EQ(route.targets[0].provider_index, 1u);
  EXPECT_EQ(route.targets[0].weight, 1u);
}

TEST(RouteConfig, ProviderAndTargetsTogetherIsAnError) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    targets: [{provider: a}]
)");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:6: routes[0].targets: give either provider or targets, not both");
}

TEST(RouteConfig, NeitherProviderNorTargetsIsAnError) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
)");
  EXPECT_ERROR_LINE(error, "f.yaml:4: routes[0].provider: required");
}

TEST(RouteConfig, MalformedTargetsNameKeyAndLine) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    targets:
      - {weight: 2}
      - {provider: a, wieght: 2}
      - {provider: a, weight: -1}
      - just-a-name
  - models: ["x"]
    targets: []
)");
  EXPECT_ERROR_LINE(error, "f.yaml:6: routes[0].targets[0].provider: required");
  EXPECT_ERROR_LINE(error, "f.yaml:7: routes[0].targets[1].wieght: unknown key");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:8: routes[0].targets[2].weight: expected an integer from 0 to 1000000");
  EXPECT_ERROR_LINE(error, "f.yaml:9: routes[0].targets[3]: expected a mapping");
  EXPECT_ERROR_LINE(error, "f.yaml:11: routes[1].targets: expected a list of {provider, weight}");
}

TEST(RouteConfig, TargetNamingAnUnknownProviderGivesItsLine) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    targets:
      - {provider: a}
      - {provider: nope}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:7: ");
  EXPECT_ERROR_LINE(error, "no provider with id \"nope\"");
}

// The key path names the list item, like every other error about a target.
TEST(RouteConfig, TargetNamingAnUnknownProviderNamesTheTargetKey) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    targets:
      - {provider: a}
      - {provider: nope}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:7: routes[0].targets[1].provider: no provider with id \"nope\"");
}

TEST(RouteConfig, PolicyDefaultsToRoundRobinAndAcceptsEveryKnownName) {
  for (const auto name : routing::balancingPolicyNames()) {
    auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {models: ["*"], provider: a, policy: )" +
                                  std::string(name) + "}\n",
                              "f.yaml");
    ASSERT_TRUE(config) << name << ": " << config.error();
    EXPECT_EQ(config->routes[0].policy, name);
  }
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {models: ["*"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->routes[0].policy, "round_robin");
}

TEST(RouteConfig, UnknownPolicyListsTheKnownOnes) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    policy: fastest
)");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:6: routes[0].policy: unknown policy \"fastest\" (known: round_robin, "
                    "random, power_of_two, least_load, consistent_hash, cache_aware)");
}

TEST(RouteConfig, ConsistentHashOptions) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    policy: consistent_hash
    consistent_hash: {header: x-session-id, epsilon: 0.5, virtual_nodes: 40}
  - {models: ["x"], provider: a, name: defaults}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& options = config->routes[0].balancer.consistent_hash;
  EXPECT_EQ(options.hash_header, "x-session-id");
  EXPECT_DOUBLE_EQ(options.epsilon, 0.5);
  EXPECT_EQ(options.virtual_nodes, 40u);
  const auto& defaults = config->routes[1].balancer.consistent_hash;
  EXPECT_EQ(defaults.hash_header, "");
  EXPECT_DOUBLE_EQ(defaults.epsilon, routing::ConsistentHashOptions{}.epsilon);
  EXPECT_EQ(defaults.virtual_nodes, routing::ConsistentHashOptions{}.virtual_nodes);
}

TEST(RouteConfig, ConsistentHashOptionsAreRangeChecked) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    consistent_hash:
      epsilon: 101
      virtual_nodes: 0
      replicas: 3
  - models: ["x"]
    provider: a
    consistent_hash: {epsilon: 0}
  - models: ["y"]
    provider: a
    consistent_hash: sticky
)");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:7: routes[0].consistent_hash.epsilon: expected a number from 0 to 100");
  EXPECT_ERROR_LINE(
      error, "f.yaml:8: routes[0].consistent_hash.virtual_nodes: expected an integer from 1 to");
  EXPECT_ERROR_LINE(error, "f.yaml:9: routes[0].consistent_hash.replicas: unknown key");
  // In range for the reader, refused by the policy's own check (at the route's line).
  EXPECT_ERROR_LINE(error, "f.yaml:10: routes[1]: consistent_hash.epsilon must be greater than 0");
  EXPECT_ERROR_LINE(error, "f.yaml:15: routes[2].consistent_hash: expected a mapping");
}

TEST(RouteConfig, CacheAwareOptions) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    policy: cache_aware
    cache_aware:
      cache_threshold: 0.75
      balance_abs_threshold: 8
      balance_rel_threshold: 1.5
      eviction_interval_ms: 1000
      max_tree_size: 4096
      chunk_chars: 16
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& options = config->routes[0].balancer.cache_aware;
  EXPECT_DOUBLE_EQ(options.cache_threshold, 0.75);
  EXPECT_EQ(options.balance_abs_threshold, 8u);
  EXPECT_DOUBLE_EQ(options.balance_rel_threshold, 1.5);
  EXPECT_EQ(options.eviction_interval_ms, 1000u);
  EXPECT_EQ(options.max_tree_size, 4096u);
  EXPECT_EQ(options.chunk_chars, 16u);
}

TEST(RouteConfig, CacheAwareOptionsAreRangeChecked) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    cache_aware:
      cache_threshold: 1.5
      balance_abs_threshold: -1
      balance_rel_threshold: 0.5
      eviction_interval_ms: 0
      max_tree_size: 100
      chunk_chars: 0
      size: 3
  - models: ["x"]
    provider: a
    cache_aware: {max_tree_size: 1024, chunk_chars: 2048}
)");
  const std::string prefix = "routes[0].cache_aware.";
  EXPECT_ERROR_LINE(error,
                    "f.yaml:7: " + prefix + "cache_threshold: expected a number from 0 to 1");
  EXPECT_ERROR_LINE(error, "f.yaml:8: " + prefix + "balance_abs_threshold: expected an integer");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:9: " + prefix + "balance_rel_threshold: expected a number from 1 to");
  EXPECT_ERROR_LINE(error, "f.yaml:10: " + prefix + "eviction_interval_ms: expected an integer");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:11: " + prefix + "max_tree_size: expected an integer from 1024 to");
  EXPECT_ERROR_LINE(error, "f.yaml:12: " + prefix + "chunk_chars: expected an integer from 1 to");
  EXPECT_ERROR_LINE(error, "f.yaml:13: " + prefix + "size: unknown key");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:14: routes[1]: cache_aware.max_tree_size must hold at least one");
}

TEST(RouteConfig, RetryBlock) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    retry:
      attempts: 5
      backoff_base_ms: 10
      backoff_max_ms: 200
      budget_ratio: 0.5
      min_retries_per_second: 0
  - {models: ["x"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& retry = config->routes[0].retry;
  EXPECT_EQ(retry.attempts, 5u);
  EXPECT_EQ(retry.backoff_base_ms, 10u);
  EXPECT_EQ(retry.backoff_max_ms, 200u);
  EXPECT_DOUBLE_EQ(retry.budget_ratio, 0.5);
  EXPECT_EQ(retry.min_retries_per_second, 0u);
  const auto& defaults = config->routes[1].retry;
  EXPECT_EQ(defaults.attempts, Retry{}.attempts);
  EXPECT_EQ(defaults.backoff_base_ms, Retry{}.backoff_base_ms);
  EXPECT_EQ(defaults.backoff_max_ms, Retry{}.backoff_max_ms);
  EXPECT_DOUBLE_EQ(defaults.budget_ratio, Retry{}.budget_ratio);
  EXPECT_EQ(defaults.min_retries_per_second, Retry{}.min_retries_per_second);
}

TEST(RouteConfig, RetryBlockIsRangeChecked) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    retry:
      attempts: 0
      budget_ratio: -0.1
      backoff_max_ms: soon
      tries: 2
  - models: ["x"]
    provider: a
    retry: 3
)");
  EXPECT_ERROR_LINE(error, "f.yaml:7: routes[0].retry.attempts: expected an integer from 1 to 20");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:8: routes[0].retry.budget_ratio: expected a number from 0 to 100");
  EXPECT_ERROR_LINE(error, "f.yaml:9: routes[0].retry.backoff_max_ms: expected an integer");
  EXPECT_ERROR_LINE(error, "f.yaml:10: routes[0].retry.tries: unknown key");
  EXPECT_ERROR_LINE(error, "f.yaml:13: routes[1].retry: expected a mapping");
}

TEST(RouteConfig, FallbackNamesResolveToRouteIndexes) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {name: main, models: ["*"], provider: a, fallback: [spare, route2]}
  - {name: spare, models: ["s"], provider: a, fallback: [main]}
  - {models: ["t"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->routes[0].fallback, (std::vector<std::string>{"spare", "route2"}));
  EXPECT_EQ(config->routes[0].fallback_indexes, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(config->routes[1].fallback_indexes, (std::vector<size_t>{0}));
  EXPECT_TRUE(config->routes[2].fallback_indexes.empty());
}

TEST(RouteConfig, FallbackToAnUnknownRouteOrItselfIsAnError) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - name: main
    models: ["*"]
    provider: a
    fallback:
      - ghost
      - main
)");
  EXPECT_ERROR_LINE(error, "f.yaml:8: routes[0].fallback[0]: no route named \"ghost\"");
  EXPECT_ERROR_LINE(error, "f.yaml:9: routes[0].fallback[1]: a route cannot fall back to itself");
}

TEST(RouteConfig, TimeoutsInheritTheGlobalOnesWhenNotSet) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {models: ["*"], provider: a, timeouts: {idle_ms: 50, total_ms: 9000}}
  - {models: ["x"], provider: a}
timeouts: {connect_ms: 111, first_byte_ms: 222, idle_ms: 333}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& set = config->routes[0].timeouts;
  EXPECT_EQ(set.connect_ms, 111u);
  EXPECT_EQ(set.first_byte_ms, 222u);
  EXPECT_EQ(set.idle_ms, 50u);
  EXPECT_EQ(set.total_ms, 9000u);
  const auto& inherited = config->routes[1].timeouts;
  EXPECT_EQ(inherited.connect_ms, 111u);
  EXPECT_EQ(inherited.first_byte_ms, 222u);
  EXPECT_EQ(inherited.idle_ms, 333u);
  EXPECT_EQ(inherited.total_ms, 0u);  // no total limit
}

TEST(RouteConfig, TimeoutsInheritTheGlobalDefaults) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {models: ["*"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& timeouts = config->routes[0].timeouts;
  EXPECT_EQ(timeouts.connect_ms, Timeouts{}.connect_ms);
  EXPECT_EQ(timeouts.first_byte_ms, Timeouts{}.first_byte_ms);
  EXPECT_EQ(timeouts.idle_ms, Timeouts{}.idle_ms);
  EXPECT_EQ(timeouts.total_ms, 0u);
}

TEST(RouteConfig, RouteTimeoutsAreRangeChecked) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - models: ["*"]
    provider: a
    timeouts:
      connect_ms: 0
      drain_ms: 5
)");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:7: routes[0].timeouts.connect_ms: expected an integer from 1 to");
  EXPECT_ERROR_LINE(error, "f.yaml:8: routes[0].timeouts.drain_ms: unknown key");
}

TEST(RouteConfig, DuplicateRouteNamesAreRejected) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {name: chat, models: ["a"], provider: a}
  - {name: other, models: ["b"], provider: a}
  - {name: chat, models: ["c"], provider: a}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:6: routes[2].name: duplicate route name \"chat\"");
}

// A route without a name is called "route<N>"; a clash with that name still needs a line.
TEST(RouteConfig, DuplicateOfADefaultRouteNameGivesALine) {
  const auto error = errorOf(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {name: route1, models: ["a"], provider: a}
  - {models: ["b"], provider: a}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:5: routes[1]");
  EXPECT_ERROR_LINE(error, "duplicate route name \"route1\"");
}

TEST(ProviderConfig, EndpointsAsStringsOrUrlAndWeight) {
  auto config = parseConfig(R"(providers:
  - id: a
    type: generic
    endpoints:
      - "http://a:1"
      - {url: "https://b:2/v1", weight: 3}
      - {url: "http://c:3", weight: 0}
      - {url: "http://d:4"}
routes:
  - {models: ["*"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& endpoints = config->providers[0].endpoints;
  ASSERT_EQ(endpoints.size(), 4u);
  EXPECT_EQ(endpoints[0].host, "a");
  EXPECT_EQ(endpoints[0].weight, 1u);
  EXPECT_EQ(endpoints[1].scheme, "https");
  EXPECT_EQ(endpoints[1].host, "b");
  EXPECT_EQ(endpoints[1].port, 2);
  EXPECT_EQ(endpoints[1].base_path, "/v1");
  EXPECT_EQ(endpoints[1].weight, 3u);
  EXPECT_EQ(endpoints[2].weight, 0u);  // draining
  EXPECT_EQ(endpoints[3].host, "d");
  EXPECT_EQ(endpoints[3].weight, 1u);
}

TEST(ProviderConfig, MalformedEndpointsNameKeyAndLine) {
  const auto error = errorOf(R"(providers:
  - id: a
    type: generic
    endpoints:
      - {weight: 2}
      - {url: "http://b:2", wieght: 2}
      - {url: "ftp://c", weight: 1}
      - {url: "http://d:4", weight: many}
  - id: b
    type: generic
    endpoints: []
routes:
  - {models: ["*"], provider: a}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:5: providers[0].endpoints[0].url: required");
  EXPECT_ERROR_LINE(error, "f.yaml:6: providers[0].endpoints[1].wieght: unknown key");
  EXPECT_ERROR_LINE(error, "f.yaml:7: providers[0].endpoints[2]: unsupported scheme \"ftp\"");
  EXPECT_ERROR_LINE(error, "f.yaml:8: providers[0].endpoints[3].weight: expected an integer");
  EXPECT_ERROR_LINE(error, "f.yaml:11: providers[1].endpoints: expected a list of URLs");
}

TEST(ProviderConfig, HealthCheck) {
  auto config = parseConfig(R"(providers:
  - id: a
    type: generic
    endpoints: ["http://a:1"]
    health_check:
      path: /health
      interval_ms: 2000
      timeout_ms: 300
      healthy_threshold: 1
      unhealthy_threshold: 4
  - {id: b, type: generic, endpoints: ["http://b:1"], health_check: {path: /ready}}
  - {id: c, type: generic, endpoints: ["http://c:1"]}
routes:
  - {models: ["*"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  const auto& check = config->providers[0].health_check;
  EXPECT_EQ(check.path, "/health");
  EXPECT_EQ(check.interval_ms, 2000u);
  EXPECT_EQ(check.timeout_ms, 300u);
  EXPECT_EQ(check.healthy_threshold, 1u);
  EXPECT_EQ(check.unhealthy_threshold, 4u);
  const auto& defaults = config->providers[1].health_check;
  EXPECT_EQ(defaults.path, "/ready");
  EXPECT_EQ(defaults.interval_ms, HealthCheck{}.interval_ms);
  EXPECT_EQ(defaults.timeout_ms, HealthCheck{}.timeout_ms);
  EXPECT_EQ(defaults.healthy_threshold, HealthCheck{}.healthy_threshold);
  EXPECT_EQ(defaults.unhealthy_threshold, HealthCheck{}.unhealthy_threshold);
  EXPECT_EQ(config->providers[2].health_check.path, "");  // off
}

TEST(ProviderConfig, HealthCheckNeedsAnAbsolutePath) {
  const auto error = errorOf(R"(providers:
  - id: a
    type: generic
    endpoints: ["http://a:1"]
    health_check:
      interval_ms: 2000
  - id: b
    type: generic
    endpoints: ["http://b:1"]
    health_check:
      path: health
      healthy_threshold: 0
      every: 5
  - {id: c, type: generic, endpoints: ["http://c:1"], health_check: /health}
routes:
  - {models: ["*"], provider: a}
)");
  EXPECT_ERROR_LINE(error, "f.yaml:6: providers[0].health_check.path: required");
  EXPECT_ERROR_LINE(error, "f.yaml:11: providers[1].health_check.path: must start with /");
  EXPECT_ERROR_LINE(
      error, "f.yaml:12: providers[1].health_check.healthy_threshold: expected an integer from 1");
  EXPECT_ERROR_LINE(error, "f.yaml:13: providers[1].health_check.every: unknown key");
  EXPECT_ERROR_LINE(error, "f.yaml:14: providers[2].health_check: expected a mapping");
}

TEST(ProviderConfig, Outlier) {
  auto config = parseConfig(R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"],
     outlier: {consecutive_failures: 2, cooldown_ms: 2500}}
  - {id: b, type: generic, endpoints: ["http://b:1"], outlier: {consecutive_failures: 0}}
  - {id: c, type: generic, endpoints: ["http://c:1"]}
routes:
  - {models: ["*"], provider: a}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->providers[0].outlier.consecutive_failures, 2u);
  EXPECT_EQ(config->providers[0].outlier.cooldown_ms, 2500u);
  EXPECT_EQ(config->providers[1].outlier.consecutive_failures, 0u);  // off
  EXPECT_EQ(config->providers[1].outlier.cooldown_ms, OutlierDetection{}.cooldown_ms);
  EXPECT_EQ(config->providers[2].outlier.consecutive_failures,
            OutlierDetection{}.consecutive_failures);
}

TEST(ProviderConfig, OutlierIsRangeChecked) {
  const auto error = errorOf(R"(providers:
  - id: a
    type: generic
    endpoints: ["http://a:1"]
    outlier:
      consecutive_failures: -1
      interval_ms: 5
  - {id: b, type: generic, endpoints: ["http://b:1"], outlier: 5}
routes:
  - {models: ["*"], provider: a}
)");
  EXPECT_ERROR_LINE(error,
                    "f.yaml:6: providers[0].outlier.consecutive_failures: expected an integer");
  EXPECT_ERROR_LINE(error, "f.yaml:7: providers[0].outlier.interval_ms: unknown key");
  EXPECT_ERROR_LINE(error, "f.yaml:8: providers[1].outlier: expected a mapping");
}

constexpr std::string_view kMinimal = R"(providers:
  - {id: a, type: generic, endpoints: ["http://a:1"]}
routes:
  - {models: ["*"], provider: a}
)";

TEST(AdminConfig, OffUnlessConfigured) {
  auto config = parseConfig(kMinimal, "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->admin.port, 0u);
  EXPECT_EQ(config->admin.token, "");
}

TEST(AdminConfig, ListenAndToken) {
  ::setenv("SLUICE_TEST_ADMIN_TOKEN", "0123456789abcdef-from-env", 1);
  auto config = parseConfig(std::string(kMinimal) + R"(admin:
  listen: 0.0.0.0:9191
  token: ${SLUICE_TEST_ADMIN_TOKEN}
)",
                            "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->admin.host, "0.0.0.0");
  EXPECT_EQ(config->admin.port, 9191);
  EXPECT_EQ(config->admin.token, "0123456789abcdef-from-env");
}

TEST(AdminConfig, ListenDefaultsToLoopback9090) {
  auto config = parseConfig(std::string(kMinimal) + "admin: {token: 0123456789abcdef}\n", "f.yaml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->admin.host, "127.0.0.1");
  EXPECT_EQ(config->admin.port, 9090);
  EXPECT_EQ(config->admin.token, "0123456789abcdef");  // exactly 16 characters is enough
}

TEST(AdminConfig, TokenIsRequired) {
  const auto error = errorOf(std::string(kMinimal) + R"(admin:
  listen: 127.0.0.1:9191
)");
  EXPECT_ERROR_LINE(error, "f.yaml:6: admin.token: required");
}

TEST(AdminConfig, ShortTokenBadListenAndUnknownKeys) {
  const auto error = errorOf(std::string(kMinimal) + R"(admin:
  listen: nowhere
  token: 0123456789abcde
  user: root
)");
  EXPECT_ERROR_LINE(error, "f.yaml:6: admin.listen: expected host:port");
  EXPECT_ERROR_LINE(error, "f.yaml:7: admin.token: too short: use at least 16 characters");
  EXPECT_ERROR_LINE(error, "f.yaml:8: admin.user: unknown key");
  EXPECT_EQ(error.find("0123456789abcde"), std::string::npos) << "the token leaked:\n" << error;

  EXPECT_ERROR_LINE(errorOf(std::string(kMinimal) + "admin: on\n"),
                    "f.yaml:5: admin: expected a mapping");
}

}  // namespace
}  // namespace sluice::config
