#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "config/config.h"
#include "routing/route_table.h"

namespace sluice::http {
class UpstreamTlsContext;
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

// Everything a request reads from configuration, as one immutable snapshot: a reload builds a
// new one and swaps the pointer; requests in flight keep the one they started with.
struct GatewayState {
  explicit GatewayState(config::Config c) : config(std::move(c)), routes(config.routes) {}

  config::Config config;
  routing::RouteTable routes;
  std::vector<ProviderRuntime> providers;  // by index of config.providers
};

}  // namespace sluice::proxy
