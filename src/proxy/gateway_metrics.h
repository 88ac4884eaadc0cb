#pragma once

// The gateway's own Prometheus series (requests, latency, tokens, limits), registered once in
// the process-wide registry; handles are looked up per request (about 40 ns) and incremented
// without locks.

#include <cstdint>
#include <string>
#include <string_view>

#include "metrics/registry.h"

namespace sluice::proxy {

struct GatewayState;

struct GatewayMetrics {
  metrics::CounterFamily& requests;          // route, model, provider, status
  metrics::HistogramFamily& duration;        // route
  metrics::HistogramFamily& first_token;     // route: time to the first byte of the answer body
  metrics::HistogramFamily& token_gap;       // route: gaps between the writes of a stream
  metrics::CounterFamily& tokens;            // model, key, kind (input, output, cached)
  metrics::GaugeFamily& in_flight;           // (none)
  metrics::CounterFamily& ratelimit;         // decision
};

GatewayMetrics& gatewayMetrics();

// Everything /metrics shows, on the client and admin listeners alike: the series above, routing
// (gateway_state.h) and the metrics plugins define.
void appendMetrics(const GatewayState& state, std::string& out);

}  // namespace sluice::proxy
