#include "proxy/gateway_metrics.h"

#include "metrics/exposition.h"
#include "proxy/gateway_state.h"
#include "proxy/wasm_admin.h"
#include "wasm/shared_state.h"

namespace sluice::proxy {

GatewayMetrics& gatewayMetrics() {
  static GatewayMetrics metrics = [] {
    auto& registry = metrics::defaultRegistry();
    return GatewayMetrics{
        .requests = registry.addCounter("sluice_requests_total",
                                        "Requests answered, by route, model, provider and status.",
                                        {"route", "model", "provider", "status"}),
        .duration = registry.addHistogram("sluice_request_duration_seconds",
                                          "Time from a request's arrival to the end of its answer.",
                                          {"route"}, metrics::kLatencyBuckets),
        .first_token = registry.addHistogram(
            "sluice_time_to_first_token_seconds",
            "Time from a request's arrival to the first byte of the answer's body.", {"route"},
            metrics::kLatencyBuckets),
        .token_gap = registry.addHistogram("sluice_inter_token_seconds",
                                           "Gaps between consecutive writes of a streamed answer.",
                                           {"route"}, metrics::kTokenGapBuckets),
        .tokens = registry.addCounter("sluice_tokens_total",
                                      "Tokens by model, client key id and kind (input, output, "
                                      "cached: part of input).",
                                      {"model", "key", "kind"}),
        .in_flight = registry.addGauge("sluice_requests_in_flight", "Requests being answered."),
        .ratelimit = registry.addCounter(
            "sluice_ratelimit_decisions_total",
            "Rate-limit admissions by decision (allowed, rejected, unavailable).", {"decision"}),
    };
  }();
  return metrics;
}

void appendMetrics(const GatewayState& state, std::string& out) {
  gatewayMetrics();  // registered even before the first request
  metrics::defaultRegistry().appendPrometheus(out);
  appendRoutingMetrics(state, out);
  appendPluginMetrics(state.plugins.get(), out);
  wasm::sharedState().metrics.appendPrometheus(out);
}

}  // namespace sluice::proxy
