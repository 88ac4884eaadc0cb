#include "proxy/gateway_state.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "http/upstream_pool.h"
#include "metrics/exposition.h"
#include "routing/stable_hash.h"

namespace sluice::proxy {
namespace {

int64_t nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int ProviderRuntime::pickToken(size_t& cursor, const std::vector<bool>& tried) const {
  const size_t count = token_rest_until.size();
  if (count == 0) return -1;
  const auto now = nowNanos();
  int earliest = -1;
  int64_t earliest_end = INT64_MAX;
  for (size_t step = 0; step < count; ++step) {
    const size_t index = (cursor + step) % count;
    if (index < tried.size() && tried[index]) continue;
    const auto rest_end = token_rest_until[index]->load(std::memory_order_relaxed);
    if (rest_end <= now) {
      cursor = index + 1;
      return static_cast<int>(index);
    }
    if (rest_end < earliest_end) {
      earliest_end = rest_end;
      earliest = static_cast<int>(index);
    }
  }
  if (earliest >= 0) cursor = static_cast<size_t>(earliest) + 1;
  return earliest;
}

void ProviderRuntime::rest(int token, std::chrono::milliseconds period) const {
  if (token < 0 || static_cast<size_t>(token) >= token_rest_until.size()) return;
  const auto until =
      nowNanos() + std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
  token_rest_until[token]->store(until, std::memory_order_relaxed);
}

std::string endpointId(std::string_view provider, std::string_view url) {
  return fmt::format("{}-{:08x}", provider, routing::stableHash(url) & 0xffffffffu);
}

const EndpointRuntime* GatewayState::findEndpoint(std::string_view id) const {
  for (const auto& list : endpoints) {
    for (const auto& endpoint : list) {
      if (endpoint->id == id) return endpoint.get();
    }
  }
  return nullptr;
}

namespace {

bool sameTls(const config::Provider& a, const config::Provider& b) {
  return a.tls.ca_file == b.tls.ca_file && a.tls.insecure_skip_verify == b.tls.insecure_skip_verify;
}

tl::expected<std::shared_ptr<const ProviderRuntime>, std::string> providerRuntime(
    const config::Provider& provider, const config::Provider* before,
    std::shared_ptr<const ProviderRuntime> kept) {
  const bool https = std::any_of(provider.endpoints.begin(), provider.endpoints.end(),
                                 [](const auto& e) { return e.scheme == "https"; });
  if (kept && before && before->api_tokens == provider.api_tokens && sameTls(*before, provider) &&
      (kept->tls || !https)) {
    return kept;
  }
  auto runtime = std::make_shared<ProviderRuntime>();
  for (size_t i = 0; i < provider.api_tokens.size(); ++i) {
    runtime->token_rest_until.push_back(std::make_unique<std::atomic<int64_t>>(0));
  }
  if (https) {
    auto tls = http::UpstreamTlsContext::create(provider.tls);
    if (!tls) return tl::make_unexpected(fmt::format("provider {}: {}", provider.id, tls.error()));
    runtime->tls = std::move(*tls);
  }
  return runtime;
}

}  // namespace

tl::expected<std::shared_ptr<const GatewayState>, std::string> buildGatewayState(
    config::Config config, const GatewayState* previous, std::shared_ptr<const keys::KeySet> keys,
    std::shared_ptr<const wasm::PluginSet> plugins) {
  auto state = std::make_shared<GatewayState>(std::move(config));
  state->plugins = plugins ? std::move(plugins) : previous ? previous->plugins : nullptr;
  if (!keys && previous) keys = previous->keys;
  if (!keys) keys = std::make_shared<keys::KeySet>(keys::configKeys(state->config.keys));
  state->keys = std::move(keys);
  const auto& providers = state->config.providers;

  // What the previous snapshot had, by provider id and by endpoint id.
  std::map<std::string, size_t, std::less<>> previous_provider;
  std::map<std::string, std::shared_ptr<EndpointRuntime>, std::less<>> previous_endpoint;
  if (previous) {
    for (size_t i = 0; i < previous->config.providers.size(); ++i) {
      previous_provider.emplace(previous->config.providers[i].id, i);
      for (const auto& endpoint : previous->endpoints[i]) {
        previous_endpoint.emplace(endpoint->id, endpoint);
      }
    }
  }

  for (const auto& provider : providers) {
    const config::Provider* before = nullptr;
    std::shared_ptr<const ProviderRuntime> kept;
    if (auto it = previous_provider.find(provider.id); it != previous_provider.end()) {
      before = &previous->config.providers[it->second];
      kept = previous->providers[it->second];
    }
    auto runtime = providerRuntime(provider, before, std::move(kept));
    if (!runtime) return tl::make_unexpected(runtime.error());
    state->providers.push_back(std::move(*runtime));

    auto& endpoints = state->endpoints.emplace_back();
    for (const auto& endpoint : provider.endpoints) {
      auto id = endpointId(provider.id, endpoint.url);
      auto it = previous_endpoint.find(id);
      if (it != previous_endpoint.end()) {
        endpoints.push_back(it->second);
      } else {
        auto created = std::make_shared<EndpointRuntime>();
        created->endpoint = endpoint;
        created->id = std::move(id);
        created->provider = provider.id;
        endpoints.push_back(std::move(created));
      }
    }
  }

  for (const auto& route : state->config.routes) {
    auto& pool = state->pools.emplace_back();
    for (const auto& target : route.targets) {
      const auto& endpoints = state->endpoints[target.provider_index];
      for (size_t e = 0; e < endpoints.size(); ++e) {
        const auto weight = target.weight * providers[target.provider_index].endpoints[e].weight;
        pool.workers.push_back(PoolWorker{endpoints[e].get(), target.provider_index, weight});
      }
    }
    const RoutePool* before = nullptr;
    if (previous) {
      for (size_t r = 0; r < previous->config.routes.size(); ++r) {
        if (previous->config.routes[r].name == route.name) before = &previous->pools[r];
      }
    }
    const auto& old_route =
        before ? previous->config.routes[before - previous->pools.data()] : route;
    if (before && old_route.policy == route.policy) {
      pool.policy = before->policy;
    } else {
      pool.policy = routing::createBalancingPolicy(route.policy, route.balancer);
      if (!pool.policy) return tl::make_unexpected(fmt::format("unknown policy {}", route.policy));
    }
    if (before && old_route.retry.budget_ratio == route.retry.budget_ratio &&
        old_route.retry.min_retries_per_second == route.retry.min_retries_per_second) {
      pool.budget = before->budget;
    } else {
      pool.budget = std::make_shared<routing::RetryBudget>(route.retry.budget_ratio,
                                                           route.retry.min_retries_per_second);
    }
    pool.counters = before ? before->counters : std::make_shared<RouteCounters>();
  }
  return std::shared_ptr<const GatewayState>(std::move(state));
}

namespace {

// A label value, escaped as the exposition format requires.
std::string label(std::string_view value) {
  std::string out;
  metrics::appendLabelValue(out, value);
  return out;
}

}  // namespace

void appendRoutingMetrics(const GatewayState& state, std::string& out) {
  auto it = std::back_inserter(out);
  const auto load = [](const std::atomic<uint64_t>& value) {
    return value.load(std::memory_order_relaxed);
  };
  const auto& routes = state.config.routes;
  fmt::format_to(it,
                 "# HELP sluice_balancer_picks_total Balancer decisions by reason.\n"
                 "# TYPE sluice_balancer_picks_total counter\n");
  for (size_t r = 0; r < routes.size(); ++r) {
    const auto& counters = *state.pools[r].counters;
    for (size_t reason = 0; reason < routing::kPickReasons; ++reason) {
      const auto count = load(counters.picks[reason]);
      if (count == 0) continue;
      fmt::format_to(it,
                     "sluice_balancer_picks_total{{route=\"{}\",policy=\"{}\",reason=\"{}\"}} {}\n",
                     label(routes[r].name), routes[r].policy,
                     routing::pickReasonName(static_cast<routing::PickReason>(reason)), count);
    }
  }
  const std::pair<const char*, std::atomic<uint64_t> RouteCounters::*> route_series[] = {
      {"sluice_upstream_retries_total", &RouteCounters::retries},
      {"sluice_upstream_retries_denied_total", &RouteCounters::retries_denied},
      {"sluice_route_fallbacks_total", &RouteCounters::fallbacks},
      {"sluice_route_no_healthy_upstream_total", &RouteCounters::no_healthy},
  };
  for (const auto& [name, member] : route_series) {
    fmt::format_to(it, "# TYPE {} counter\n", name);
    for (size_t r = 0; r < routes.size(); ++r) {
      fmt::format_to(it, "{}{{route=\"{}\"}} {}\n", name, label(routes[r].name),
                     load((*state.pools[r].counters).*member));
    }
  }

  const auto now = routing::steadyNowMs();
  fmt::format_to(it,
                 "# HELP sluice_upstream_state Endpoint state: 1 for the current one.\n"
                 "# TYPE sluice_upstream_state gauge\n");
  for (const auto& list : state.endpoints) {
    for (const auto& endpoint : list) {
      const auto current = endpoint->health.state(now);
      for (auto candidate :
           {routing::EndpointHealth::State::kHealthy, routing::EndpointHealth::State::kUnhealthy,
            routing::EndpointHealth::State::kOpen, routing::EndpointHealth::State::kHalfOpen}) {
        fmt::format_to(it,
                       "sluice_upstream_state{{endpoint=\"{}\",provider=\"{}\",state=\"{}\"}} {}\n",
                       label(endpoint->id), label(endpoint->provider),
                       routing::stateName(candidate), candidate == current ? 1 : 0);
      }
    }
  }
  const auto endpoint_series = [&](const char* name, const char* type, auto value) {
    fmt::format_to(it, "# TYPE {} {}\n", name, type);
    for (const auto& list : state.endpoints) {
      for (const auto& endpoint : list) {
        fmt::format_to(it, "{}{{endpoint=\"{}\",provider=\"{}\"}} {}\n", name, label(endpoint->id),
                       label(endpoint->provider), value(*endpoint));
      }
    }
  };
  endpoint_series("sluice_upstream_outstanding_requests", "gauge", [](const EndpointRuntime& e) {
    return uint64_t{e.outstanding.load(std::memory_order_relaxed)};
  });
  endpoint_series("sluice_upstream_attempts_total", "counter",
                  [&](const EndpointRuntime& e) { return load(e.requests); });
  endpoint_series("sluice_upstream_failures_total", "counter",
                  [&](const EndpointRuntime& e) { return load(e.failures); });
  endpoint_series("sluice_upstream_breaker_opens_total", "counter",
                  [](const EndpointRuntime& e) { return e.health.breakerOpens(); });
}

}  // namespace sluice::proxy
