#pragma once

#include <memory>

#include "config/config.h"
#include "routing/route_table.h"

namespace sluice::proxy {

// Everything a request reads from configuration, as one immutable snapshot: a reload builds a
// new one and swaps the pointer; requests in flight keep the one they started with.
struct GatewayState {
  explicit GatewayState(config::Config c) : config(std::move(c)), routes(config.routes) {}

  config::Config config;
  routing::RouteTable routes;
};

}  // namespace sluice::proxy
