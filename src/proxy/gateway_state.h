#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "config/config.h"
#include "keys/key_set.h"
#include "routing/balancing_policy.h"
#include "routing/endpoint_health.h"
#include "routing/route_table.h"

namespace sluice::http {
class UpstreamTlsContext;
}
namespace sluice::wasm {
class PluginSet;
}

namespace sluice::proxy {

// What a provider needs at run time beside its config: its TLS context and the rest periods
// of its API tokens (a token answered 401/403/429 is left out until its rest ends; every
// thread sees it, hence atomics).
struct ProviderRuntime {
  std::shared_ptr<http::UpstreamTlsContext> tls;  // null when no endpoint is https
  std::vector<std::unique_ptr<std::atomic<int64_t>>> token_rest_until;  // steady-clock ns

  // The token to use next (round robin over those not resting; when all rest, the one whose
  // rest ends first), or -1 without tokens. `tried` tokens are skipped.
  int pickToken(size_t& cursor, const std::vector<bool>& tried) const;
  void rest(int token, std::chrono::milliseconds period) const;
};

// One upstream endpoint (a worker) with the state every thread and every route shares: load,
// health, counters. Kept across snapshots while the endpoint stays configured.
struct EndpointRuntime {
  config::Endpoint endpoint;
  std::string id;  // "<provider>-<hash of the URL>": stable across restarts, URL-safe
  std::string provider;
  routing::LoadCounter outstanding{0};
  routing::EndpointHealth health;
  std::atomic<uint64_t> requests{0};  // attempts sent
  std::atomic<uint64_t> failures{0};  // attempts that failed (connect, timeout, 5xx)
};

// Counters of one route's routing decisions, for /metrics.
struct RouteCounters {
  std::array<std::atomic<uint64_t>, routing::kPickReasons> picks{};  // by routing::PickReason
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> retries_denied{0};  // wanted, but over the retry budget
  std::atomic<uint64_t> fallbacks{0};
  std::atomic<uint64_t> no_healthy{0};  // the pool had no available worker
};

struct PoolWorker {
  EndpointRuntime* endpoint;  // owned by GatewayState::endpoints
  size_t provider_index;
  uint32_t weight;
};

// A route's workers and the objects that outlive a snapshot: the policy (its per-worker state,
// such as cache-aware prefix trees, follows worker ids), the retry budget, the counters.
struct RoutePool {
  std::vector<PoolWorker> workers;
  std::shared_ptr<routing::BalancingPolicy> policy;
  std::shared_ptr<routing::RetryBudget> budget;
  std::shared_ptr<RouteCounters> counters;
};

// Everything a request reads from configuration, as one immutable snapshot: a change builds a
// new one and swaps the pointer; requests in flight keep the one they started with.
struct GatewayState {
  explicit GatewayState(config::Config c) : config(std::move(c)), routes(config.routes) {}

  config::Config config;
  routing::RouteTable routes;
  std::vector<std::shared_ptr<const ProviderRuntime>> providers;  // by index of config.providers
  // By provider index, parallel to config.providers[i].endpoints.
  std::vector<std::vector<std::shared_ptr<EndpointRuntime>>> endpoints;
  std::vector<RoutePool> pools;                    // by route index
  std::shared_ptr<const keys::KeySet> keys;        // client keys; none: no key needed
  std::shared_ptr<const wasm::PluginSet> plugins;  // null: none

  const EndpointRuntime* findEndpoint(std::string_view id) const;
};

// Builds a snapshot of `config`. Runtime objects of `previous` (token rests, TLS contexts,
// endpoint health and load, policies, budgets, counters) are kept where the config names the
// same provider, endpoint or route, so that a change of workers loses nothing. `keys` and
// `plugins` null: those of `previous` (keys: or else the config's).
tl::expected<std::shared_ptr<const GatewayState>, std::string> buildGatewayState(
    config::Config config, const GatewayState* previous = nullptr,
    std::shared_ptr<const keys::KeySet> keys = nullptr,
    std::shared_ptr<const wasm::PluginSet> plugins = nullptr);

// Prometheus series of routing: balancer decisions, retries, fallbacks, endpoint health/load.
void appendRoutingMetrics(const GatewayState& state, std::string& out);

// The id an endpoint of `provider` gets.
std::string endpointId(std::string_view provider, std::string_view url);

}  // namespace sluice::proxy
