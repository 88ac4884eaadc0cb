#pragma once

// Private to src/proxy: includes Asio/Beast.

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "http/client_connection.h"
#include "http/upstream_pool.h"
#include "http/view_body.h"
#include "limits/rate_limiter.h"
#include "proxy/access_log.h"
#include "proxy/api_error.h"
#include "proxy/gateway_state.h"
#include "wasm/plugin_chain.h"
#include "wasm/plugin_set.h"

namespace sluice::redis {
class RedisClient;
}  // namespace sluice::redis

namespace sluice::proxy {

using Request = http::bhttp::request<http::bhttp::string_body>;
using UpstreamParser = http::bhttp::response_parser<http::ViewBody>;

// The request pipeline of one worker thread: parse → route → pick endpoint → forward →
// relay. One instance per thread, so its counters need no synchronisation.
class ProxyHandler {
 public:
  ProxyHandler(http::UpstreamPool& pool, AccessLog& access_log);

  void setState(std::shared_ptr<const GatewayState> state) { state_ = std::move(state); }
  // This thread's plugin instances (null: none). Each request keeps those it started with.
  void setPlugins(std::shared_ptr<const wasm::ThreadPlugins> plugins) {
    plugins_ = std::move(plugins);
  }
  // The rate limiter shared by all threads (none: no limits apply).
  void setLimiter(limits::RateLimiter* limiter) { limiter_ = limiter; }
  // This thread's Redis client for plugins' proxy_redis_call (none: such calls fail).
  void setPluginRedis(redis::RedisClient* client) { plugin_redis_ = client; }

  // Answers one request. Returns whether the connection may carry another one.
  http::Task<bool> handle(Request& request, http::ClientConnection& client, bool draining);

  // Answers a request the handler never saw (limits, malformed HTTP) and closes: in Anthropic's
  // shape when the request line named /v1/messages, else in OpenAI's.
  static http::Task<void> sendError(http::ClientConnection& client, const ApiError& error,
                                    std::string_view target);

 private:
  struct Exchange;

  enum class Attempt { kAnswered, kFailed, kClientGone };

  http::Task<void> proxy(Exchange& x);
  // Admission by the rate limits of the key and the model; false when it answered 429.
  http::Task<bool> admit(Exchange& x);
  // Checks the client's key when keys are configured (401 when missing, unknown or revoked).
  std::optional<ApiError> authenticate(Exchange& x);
  // Sends the request to a worker of the route's pool, retrying and falling back as the route
  // says, and relays the answer; or answers the error.
  http::Task<void> forward(Exchange& x, size_t route_index);
  // The plugins' upstream filter over the workers of `pool`: rejected ones join
  // x.filtered_out. False when the chain answered instead (local response, failure).
  http::Task<bool> filterUpstreams(Exchange& x, const RoutePool& pool, std::string_view prompt);
  std::optional<size_t> pickWorker(Exchange& x, const config::Route& route, const RoutePool& pool,
                                   std::span<const EndpointRuntime* const> tried,
                                   std::string_view prompt);
  // Builds the request for provider `provider_index` (dialect, model, body, headers).
  std::optional<ApiError> prepareUpstream(Exchange& x, size_t provider_index, Request& upstream,
                                          bool keep_client_body);
  // One try on worker `index` (`probe`: the half-open breaker's probe). With `may_retry`, a
  // retryable answer is dropped (kFailed) rather than relayed; `last_error` says what failed.
  http::Task<Attempt> tryEndpoint(Exchange& x, Request& upstream_request,
                                  const config::Route& route, const RoutePool& pool, size_t index,
                                  bool probe, bool may_retry, ApiError& last_error);
  // Relays the answer; false when the upstream failed it (a broken or malformed body).
  http::Task<bool> relay(Exchange& x, const config::Route& route,
                         http::UpstreamConnection& connection, UpstreamParser& parser);
  // Writes one piece of a response body in the client's framing; false when the client is gone.
  static http::Task<bool> writeBody(Exchange& x, bool chunked, std::string_view piece);
  http::Task<void> listModels(Exchange& x);
  void recordMetrics(const Exchange& x, std::chrono::steady_clock::time_point end);
  http::Task<void> respond(Exchange& x, http::bhttp::status status, std::string body,
                           std::string_view content_type = "application/json");
  http::Task<void> fail(Exchange& x, ApiError error);

  // Plugin steps: run the request phases, wait out pauses, answer local responses.
  http::Task<bool> runRequestPlugins(Exchange& x, int route_index);
  // The ai.* properties plugins read: route, provider, upstream model and endpoint, usage.
  static void fillAiProperties(Exchange& x);
  // What proxy_on_log reads beside them: ai.duration_ms, ai.ttfb_ms, ai.ttft_ms, ai.error.
  static void fillFinalProperties(Exchange& x, std::chrono::steady_clock::time_point end);
  http::Task<wasm::ChainStatus> settle(Exchange& x, wasm::ChainStatus status);
  http::Task<wasm::HttpCallResponse> performHttpCall(Exchange& x,
                                                     const wasm::HttpCallRequest& call);
  http::Task<wasm::RedisCallResponse> performRedisCall(const wasm::RedisCallRequest& call);
  // Redis calls a plugin made in proxy_on_log: sent, their answers dropped (the request is over).
  void sendLateRedisCalls(Exchange& x);
  // The route's endpoints for proxy_get_upstream_hosts (Higress ABI).
  static void fillUpstreamHosts(Exchange& x, int route_index);
  // The worker a plugin named with proxy_set_upstream_override_host, when it is in `pool`,
  // available and serves the request; else none (the policy picks as usual).
  std::optional<size_t> overriddenWorker(Exchange& x, const RoutePool& pool);
  http::Task<void> respondLocal(Exchange& x, const wasm::LocalResponse& response);
  // Answers a kLocalResponse or kFailed chain status; false when there was nothing to answer.
  http::Task<bool> answerChain(Exchange& x, wasm::ChainStatus status);

  http::UpstreamPool& pool_;
  AccessLog& access_log_;
  std::shared_ptr<const GatewayState> state_;
  std::shared_ptr<const wasm::ThreadPlugins> plugins_;
  limits::RateLimiter* limiter_ = nullptr;
  redis::RedisClient* plugin_redis_ = nullptr;
  std::vector<size_t> next_token_;  // round-robin cursor per provider
};

}  // namespace sluice::proxy
