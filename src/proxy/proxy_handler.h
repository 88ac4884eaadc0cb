#pragma once

// Private to src/proxy: includes Asio/Beast.

#include <memory>
#include <string>
#include <vector>

#include "http/asio.h"
#include "http/upstream_pool.h"
#include "proxy/access_log.h"
#include "proxy/api_error.h"
#include "proxy/gateway_state.h"

namespace sluice::proxy {

using Request = http::bhttp::request<http::bhttp::string_body>;
using UpstreamParser = http::bhttp::response_parser<http::bhttp::buffer_body>;

// The request pipeline of one worker thread: parse → route → pick endpoint → forward →
// relay. One instance per thread, so its counters need no synchronisation.
class ProxyHandler {
 public:
  ProxyHandler(http::UpstreamPool& pool, AccessLog& access_log);

  void setState(std::shared_ptr<const GatewayState> state) { state_ = std::move(state); }

  // Answers one request. Returns whether the connection may carry another one.
  http::Task<bool> handle(Request& request, http::ClientConnection& client, bool draining);

  // Writes a small error response in the OpenAI dialect (used by the connection loop too).
  static http::Task<bool> sendError(http::ClientConnection& client, const ApiError& error,
                                    std::string_view request_id, bool keep_alive);

 private:
  struct Exchange;

  http::Task<void> proxy(Exchange& x);
  http::Task<void> forward(Exchange& x, Request& upstream_request);
  http::Task<void> relay(Exchange& x, http::UpstreamConnection& connection,
                         UpstreamParser& parser);
  http::Task<void> listModels(Exchange& x);
  http::Task<void> respond(Exchange& x, http::bhttp::status status, std::string body);
  http::Task<void> fail(Exchange& x, ApiError error);

  http::UpstreamPool& pool_;
  AccessLog& access_log_;
  std::shared_ptr<const GatewayState> state_;
  std::vector<size_t> next_endpoint_;  // round-robin cursor per provider
  std::vector<size_t> next_token_;     // round-robin cursor per provider
};

}  // namespace sluice::proxy
