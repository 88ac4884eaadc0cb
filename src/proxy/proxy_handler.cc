#include "proxy/proxy_handler.h"

#include <poll.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>

#include "common/json_writer.h"
#include "common/request_id.h"
#include "limits/rate_limiter.h"
#include "providers/provider_type.h"
#include "proxy/body_transform.h"
#include "proxy/gateway_metrics.h"
#include "proxy/request_fields.h"
#include "proxy/sse_event_splitter.h"
#include "proxy/usage_meter.h"
#include "redis/redis_client.h"
#include "translate/translate.h"
#include "wasm/shared_state.h"

namespace sluice::proxy {

using namespace http;
using Clock = std::chrono::steady_clock;

namespace {

// Counts a request on its worker (the load policies read) until the worker has sent the whole
// answer: finish() comes before the last bytes go to the client, so that a client's next request
// never sees the previous one as still outstanding. `self` points here while it lives.
class WorkerLoad {
 public:
  WorkerLoad(const RoutePool& pool, size_t index, const routing::PickContext& context,
             WorkerLoad*& self)
      : pool_(pool), index_(index), self_(self) {
    pool.workers[index].endpoint->outstanding.fetch_add(1, std::memory_order_relaxed);
    pool.workers[index].endpoint->requests.fetch_add(1, std::memory_order_relaxed);
    pool.policy->onStart(index, context);
    self_ = this;
  }
  ~WorkerLoad() {
    finish();
    self_ = nullptr;
  }
  WorkerLoad(const WorkerLoad&) = delete;
  WorkerLoad& operator=(const WorkerLoad&) = delete;

  void finish() {
    if (finished_) return;
    finished_ = true;
    pool_.policy->onFinish(index_);
    pool_.workers[index_].endpoint->outstanding.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  const RoutePool& pool_;
  size_t index_;
  WorkerLoad*& self_;
  bool finished_ = false;
};

}  // namespace

// State of one request from arrival to the access-log line.
struct ProxyHandler::Exchange {
  Exchange(Request& r, ClientConnection& c, std::shared_ptr<const GatewayState> s)
      : request(r), client(c), state(std::move(s)) {}

  Request& request;
  ClientConnection& client;
  std::shared_ptr<const GatewayState> state;
  Clock::time_point start = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();  // the route's total timeout
  std::string request_id;
  std::string_view path;
  bool keep_alive = true;

  RequestFields fields;
  providers::Capability capability = providers::Capability::kChat;
  bool anthropic_client = false;  // came in on /v1/messages: errors in Anthropic's shape
  const config::Route* route = nullptr;
  const config::Provider* provider = nullptr;
  const ProviderRuntime* runtime = nullptr;
  const providers::ProviderType* type = nullptr;
  providers::Capability upstream_capability = providers::Capability::kChat;
  std::string upstream_model;
  std::string upstream_model_override;  // set by a plugin through ai.upstream_model
  std::string plugin_target;            // upstream path a plugin set as :path (empty: none)
  // Credential headers a plugin set itself, sent to providers that have no api_tokens.
  std::vector<std::pair<std::string, std::string>> plugin_credentials;
  Translation translation = Translation::kNone;
  std::string upstream;
  uint32_t retries = 0;
  uint64_t bytes_in = 0;  // the client's body, as it sent it
  int status = 0;
  uint64_t bytes_out = 0;
  std::optional<Clock::time_point> first_byte;
  std::optional<Clock::time_point> first_body;  // the first byte of the answer's body
  Clock::time_point last_body;                  // the last write of a stream, for its gaps
  metrics::Histogram* token_gap = nullptr;      // its series, looked up at the first gap
  std::string error;

  const keys::KeyRecord* key = nullptr;  // the client's key, when keys are configured
  bool strip_usage = false;  // the gateway asked the upstream for stream usage, not the client
  Usage usage;               // what the answer used (estimated for a cut stream)
  limits::Reservation reservation;  // tokens charged at admission, settled at the end
  std::vector<std::pair<std::string_view, std::string>> extra_headers;  // x-ratelimit-*

  // Present when plugins apply to this request; `plugins` outlives the chain that uses them.
  std::shared_ptr<const wasm::ThreadPlugins> plugins;
  std::unique_ptr<wasm::StreamData> stream;
  std::unique_ptr<wasm::PluginChain> chain;
  // Workers the plugins' upstream filter rejected, and "<id> <reason>" of each for the error.
  std::vector<const EndpointRuntime*> filtered_out;
  std::string filter_rejections;
  WorkerLoad* worker_load = nullptr;  // of the attempt running now

  // Accounts for `written` bytes of the answer's body: its first byte, or a stream's gap.
  void noteBodyWritten(size_t written, Clock::time_point now) {
    bytes_out += written;
    if (!first_body) {
      first_body = now;
    } else if (fields.stream && route) {
      if (!token_gap) token_gap = gatewayMetrics().token_gap.with({route->name});
      token_gap->observe(std::chrono::duration<double>(now - last_body).count());
    }
    last_body = now;
  }
};

namespace {

// The buffers of one write of an answer's body: `piece`, framed as a chunk when the answer is
// chunked (Beast's chunk_body allocates its size line; this one lives in the object).
class BodyPiece {
 public:
  BodyPiece(bool chunked, std::string_view piece) {
    buffers_[1] = asio::buffer(piece.data(), piece.size());
    if (!chunked || piece.empty()) return;
    const auto end = fmt::format_to(size_line_, "{:x}\r\n", piece.size());
    buffers_[0] = asio::buffer(size_line_, static_cast<size_t>(end - size_line_));
    buffers_[2] = asio::buffer("\r\n", 2);
  }
  BodyPiece(const BodyPiece&) = delete;
  BodyPiece& operator=(const BodyPiece&) = delete;

  const std::array<asio::const_buffer, 3>& buffers() const { return buffers_; }

 private:
  char size_line_[20];  // 16 hex digits and CRLF
  std::array<asio::const_buffer, 3> buffers_{};
};

constexpr size_t kMaxPromptBytes = 256 * 1024;          // cache-aware routing looks no further
constexpr size_t kMaxUsageBodyBytes = 4 * 1024 * 1024;  // larger answers are not metered
// A non-streamed answer that plugins read is held up to this size, so that it goes out with its
// length in one write rather than chunked in three (head, body, last chunk).
constexpr size_t kCoalesceBytes = 64 * 1024;

// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1), plus those the
// gateway sets itself.
bool isHopByHop(bhttp::field field) {
  switch (field) {
    case bhttp::field::connection:
    case bhttp::field::keep_alive:
    case bhttp::field::proxy_connection:
    case bhttp::field::transfer_encoding:
    case bhttp::field::te:
    case bhttp::field::trailer:
    case bhttp::field::upgrade:
    case bhttp::field::proxy_authorization:
    case bhttp::field::proxy_authenticate:
    case bhttp::field::content_length:
      return true;
    default:
      return false;
  }
}

bool isClientOnly(bhttp::field field, std::string_view name) {
  switch (field) {
    case bhttp::field::host:
    case bhttp::field::authorization:
    case bhttp::field::accept_encoding:  // relayed bytes must stay readable for the gateway
    case bhttp::field::expect:
      return true;
    default:
      return beast::iequals(name, "x-api-key");
  }
}

// A client-supplied id is kept only when it is short and printable: it goes into logs.
bool acceptableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string upstreamTarget(const config::Endpoint& endpoint, std::string_view target) {
  if (endpoint.base_path.ends_with("/v1") && target.starts_with("/v1/")) target.remove_prefix(3);
  std::string out;
  out.reserve(endpoint.base_path.size() + target.size());
  out += endpoint.base_path;
  out += target;
  return out;
}

std::string hostHeader(const config::Endpoint& endpoint) {
  const bool default_port = (endpoint.scheme == "http" && endpoint.port == 80) ||
                            (endpoint.scheme == "https" && endpoint.port == 443);
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  std::string host = ipv6 ? "[" + endpoint.host + "]" : endpoint.host;
  if (!default_port) host += ":" + std::to_string(endpoint.port);
  return host;
}

double millisSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// Waits (without reading) until the client socket is readable: EOF or an error means the
// client left; bytes mean a pipelined request, which stays in the kernel for the next turn,
// unless the peer has also shut down its side (bytes then FIN: a TLS client's close_notify).
void watchForDisconnect(const std::shared_ptr<DisconnectWatch>& watch, tcp::socket& socket) {
  socket.async_wait(tcp::socket::wait_read, [watch, &socket](beast::error_code ec) {
    if (!watch->armed) return;  // the request ended; `socket` may be gone
    char byte;
    auto n = ec ? 0 : ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      pollfd hangup{.fd = socket.native_handle(), .events = POLLRDHUP, .revents = 0};
      if (::poll(&hangup, 1, 0) == 1 && (hangup.revents & (POLLRDHUP | POLLHUP | POLLERR))) n = 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      watchForDisconnect(watch, socket);
    } else if (n <= 0) {
      watch->client_gone = true;
      if (watch->upstream) {
        beast::error_code ignored;
        watch->upstream->close(ignored);
      }
    }
  });
}

// Arms the disconnect watch for the duration of one exchange.
class DisconnectScope {
 public:
  explicit DisconnectScope(ClientConnection& client) : client_(client) {
    if (!client.watch) client.watch = std::make_shared<DisconnectWatch>();
    *client.watch = DisconnectWatch{.armed = true};
    watchForDisconnect(client.watch, client.stream.socket());
  }
  ~DisconnectScope() {
    *client_.watch = DisconnectWatch{};
    beast::error_code ignored;
    client_.stream.socket().cancel(ignored);
  }
  DisconnectScope(const DisconnectScope&) = delete;
  DisconnectScope& operator=(const DisconnectScope&) = delete;

 private:
  ClientConnection& client_;
};

}  // namespace

ProxyHandler::ProxyHandler(UpstreamPool& pool, AccessLog& access_log)
    : pool_(pool), access_log_(access_log) {}

Task<void> ProxyHandler::sendError(ClientConnection& client, const ApiError& error,
                                   std::string_view target) {
  bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(error.status), 11};
  response.set(bhttp::field::content_type, "application/json");
  const bool anthropic = target.substr(0, target.find('?')) == "/v1/messages";
  response.body() = anthropic ? anthropicErrorBody(error) : openAiErrorBody(error);
  response.keep_alive(false);
  response.prepare_payload();
  client.stream.expires_after(std::chrono::seconds(10));
  co_await bhttp::async_write(client.stream, response, kNoThrow);
  client.stream.expires_never();
}

namespace {

// Counts the request in sluice_requests_in_flight while it lives.
class InFlight {
 public:
  InFlight() : gauge_(*gatewayMetrics().in_flight.with({})) { gauge_.inc(); }
  ~InFlight() { gauge_.dec(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  metrics::Gauge& gauge_;
};

}  // namespace

Task<bool> ProxyHandler::handle(Request& request, ClientConnection& client, bool draining) {
  InFlight in_flight;
  Exchange x{request, client, state_};
  const auto client_id = request["x-request-id"];
  x.request_id = acceptableRequestId(client_id) ? std::string(client_id) : newRequestId();
  const auto target = request.target();
  x.path = target.substr(0, target.find('?'));
  x.keep_alive = request.keep_alive() && !draining;
  x.bytes_in = request.body().size();

  const bool is_post = request.method() == bhttp::verb::post;
  const bool is_get = request.method() == bhttp::verb::get;
  // Errors are built as named values before any co_await: GCC 12 destroys a brace-initialised
  // temporary argument of a coroutine call twice.
  std::optional<ApiError> error;
  if (auto capability = providers::capabilityOfPath(x.path)) {
    x.capability = *capability;
    x.anthropic_client = *capability == providers::Capability::kMessages;
    if (is_post) {
      error = authenticate(x);
      if (!error) co_await proxy(x);
    } else {
      error = ApiError{405, "invalid_request_error", "method_not_allowed",
                       fmt::format("{} requires POST", x.path)};
    }
  } else if (x.path == "/v1/models") {
    if (is_get) {
      error = authenticate(x);
      if (!error) co_await listModels(x);
    } else {
      error =
          ApiError{405, "invalid_request_error", "method_not_allowed", "/v1/models requires GET"};
    }
  } else if (x.path == "/metrics" && is_get) {
    // Prometheus text exposition: routing, and the metrics plugins define.
    std::string body;
    appendMetrics(*x.state, body);
    co_await respond(x, bhttp::status::ok, std::move(body), "text/plain; version=0.0.4");
  } else if (x.path == "/health" && is_get) {
    std::string body = R"({"status":"ok"})";
    co_await respond(x, bhttp::status::ok, std::move(body));
  } else {
    error = ApiError{
        404, "invalid_request_error", "unknown_url",
        fmt::format("unknown endpoint {} {}", std::string_view(request.method_string()), x.path)};
  }
  if (error) co_await fail(x, std::move(*error));
  std::string plugin_actions;
  if (x.chain) {
    x.stream->response_code = static_cast<uint32_t>(x.status);
    fillAiProperties(x);
    fillFinalProperties(x, Clock::now());
    x.chain->onLog();
    x.chain->finish();
    sendLateRedisCalls(x);
    plugin_actions = x.chain->actions();
  }
  const bool usage_known = x.usage.reported || x.usage.input + x.usage.output > 0;
  if (!x.reservation.empty() && (x.status >= 400 || usage_known)) {
    // The real usage replaces the estimate (nothing, for an answer that failed); off the
    // request's path. A successful answer whose usage is unknown keeps the estimate.
    const uint64_t used = x.status < 400 ? x.usage.input + x.usage.output : 0;
    asio::co_spawn(client.stream.get_executor(), limiter_->settle(std::move(x.reservation), used),
                   asio::detached);
  }

  const auto end = Clock::now();
  recordMetrics(x, end);
  access_log_.write(AccessRecord{
      .request_id = x.request_id,
      .method = request.method_string(),
      .path = x.path,
      .route = x.route ? std::string_view(x.route->name) : std::string_view(),
      .model = x.fields.model,
      .provider = x.provider ? std::string_view(x.provider->id) : std::string_view(),
      .upstream = x.upstream,
      .key_id = x.key ? std::string_view(x.key->id) : std::string_view(),
      .retries = x.retries,
      .input_tokens = x.usage.input,
      .output_tokens = x.usage.output,
      .cached_tokens = x.usage.cached,
      .usage_reported = x.usage.reported,
      .peer = client.peer,
      .status = x.status,
      .stream = x.fields.stream,
      .bytes_in = x.bytes_in,
      .bytes_out = x.bytes_out,
      .duration_ms = millisSince(x.start, end),
      .ttfb_ms = x.first_byte ? millisSince(x.start, *x.first_byte) : -1.0,
      .error = x.error,
      .plugin_actions = plugin_actions,
  });
  co_return x.keep_alive;
}

namespace {

// The model limit that applies: an exact name, else the longest prefix pattern, else "*".
const config::ModelLimit* modelLimit(const config::Limits& limits, std::string_view model) {
  const config::ModelLimit* best = nullptr;
  size_t best_rank = 0;
  for (const auto& limit : limits.models) {
    const auto rank = config::modelPatternRank(limit.model, model);
    if (rank > best_rank) {
      best = &limit;
      best_rank = rank;
    }
  }
  return best;
}

// OpenAI's rate-limit headers for the tightest request and token limits of an admission.
void addRateLimitHeaders(const limits::AdmitRequest& request, const limits::Decision& decision,
                         std::vector<std::pair<std::string_view, std::string>>& headers) {
  const limits::LimitStatus* tightest[2] = {nullptr, nullptr};  // requests, tokens
  for (size_t i = 0; i < request.limits.size() && i < decision.statuses.size(); ++i) {
    const auto& rule = request.limits[i];
    if (rule.limit == 0) continue;
    const int slot = rule.kind == limits::LimitKind::kRequestsPerMinute ? 0 : 1;
    const auto& status = decision.statuses[i];
    if (tightest[slot] == nullptr || status.remaining < tightest[slot]->remaining) {
      tightest[slot] = &status;
    }
  }
  static constexpr std::string_view kNames[2][3] = {
      {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
       "x-ratelimit-reset-requests"},
      {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}};
  for (int slot = 0; slot < 2; ++slot) {
    if (tightest[slot] == nullptr) continue;
    headers.emplace_back(kNames[slot][0], std::to_string(tightest[slot]->limit));
    headers.emplace_back(kNames[slot][1], std::to_string(tightest[slot]->remaining));
    headers.emplace_back(kNames[slot][2], fmt::format("{}ms", tightest[slot]->reset_ms));
  }
}

}  // namespace

Task<bool> ProxyHandler::admit(Exchange& x) {
  const auto* model_limit = modelLimit(x.state->config.limits, x.fields.model);
  limits::KeyQuota key_quota;
  if (x.key != nullptr) {
    key_quota = {x.key->rpm, x.key->tpm, x.key->daily_tokens};
  }
  limits::ModelQuota model_quota;
  if (model_limit != nullptr) model_quota = {model_limit->rpm, model_limit->tpm};
  if (limiter_ == nullptr ||
      (key_quota.rpm == 0 && key_quota.tpm == 0 && key_quota.tokens_per_day == 0 &&
       model_quota.rpm == 0 && model_quota.tpm == 0)) {
    co_return true;
  }
  // What the request may use: its prompt (about 4 bytes a token) and what it may generate.
  const uint64_t estimate = x.request.body().size() / 4 + x.fields.max_tokens;
  const auto request = limits::makeAdmitRequest(x.key ? std::string_view(x.key->id) : "", key_quota,
                                                x.fields.model, model_quota, estimate);
  auto decision = co_await limiter_->admit(request);
  addRateLimitHeaders(request, decision, x.extra_headers);
  const bool unavailable = decision.reason == limits::RejectReason::kLimiterUnavailable;
  gatewayMetrics()
      .ratelimit.with({unavailable        ? "unavailable"
                       : decision.allowed ? "allowed"
                                          : "rejected"})
      ->inc();
  if (decision.allowed) {
    x.reservation = std::move(decision.reservation);
    co_return true;
  }
  if (decision.reason == limits::RejectReason::kLimiterUnavailable) {
    ApiError error{503, "rate_limit_error", "limiter_unavailable",
                   "the rate limiter is unavailable; try again later"};
    co_await fail(x, std::move(error));
    co_return false;
  }
  std::string what = "a rate limit";
  if (decision.rejected_by && *decision.rejected_by < request.limits.size()) {
    const auto& rule = request.limits[*decision.rejected_by];
    what = fmt::format("the limit of {} {} for {}", rule.limit,
                       rule.kind == limits::LimitKind::kRequestsPerMinute ? "requests per minute"
                       : rule.kind == limits::LimitKind::kTokensPerMinute ? "tokens per minute"
                                                                          : "tokens per day",
                       rule.subject.starts_with("key:") ? "this key" : "this model");
  }
  if (decision.reason == limits::RejectReason::kCostExceedsLimit) {
    ApiError error{
        429, "rate_limit_error", "request_too_costly",
        fmt::format("the request needs more tokens ({}) than {} allows", estimate, what)};
    co_await fail(x, std::move(error));
    co_return false;
  }
  const auto seconds = std::max<int64_t>(1, (decision.retry_after_ms + 999) / 1000);
  x.extra_headers.emplace_back("retry-after", std::to_string(seconds));
  ApiError error{429, "rate_limit_error", "rate_limit_exceeded",
                 fmt::format("{} is reached; retry after {} s", what, seconds)};
  co_await fail(x, std::move(error));
  co_return false;
}

std::optional<ApiError> ProxyHandler::authenticate(Exchange& x) {
  const auto& keys = *x.state->keys;
  if (!keys.enabled()) return std::nullopt;
  std::string_view presented = x.request[bhttp::field::authorization];
  if (presented.size() > 7 && beast::iequals(presented.substr(0, 7), "bearer ")) {
    presented.remove_prefix(7);
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  } else {
    presented = x.request["x-api-key"];
  }
  if (presented.empty()) {
    return ApiError{401, "invalid_request_error", "missing_api_key",
                    "an API key is required (Authorization: Bearer KEY or x-api-key: KEY)"};
  }
  const auto* key = keys.find(presented);
  if (key == nullptr || key->revoked) {
    return ApiError{401, "invalid_request_error", "invalid_api_key",
                    key ? "the API key was revoked" : "the API key is not valid"};
  }
  x.key = key;
  return std::nullopt;
}

void ProxyHandler::recordMetrics(const Exchange& x, Clock::time_point end) {
  if (x.status == 0) return;  // nothing was answered (the client left before)
  auto& metrics = gatewayMetrics();
  const std::string_view route = x.route ? std::string_view(x.route->name) : "";
  // Only routed models become label values: a client cannot invent series with unknown names.
  const std::string_view model = x.route ? std::string_view(x.fields.model) : "";
  const std::string_view provider = x.provider ? std::string_view(x.provider->id) : "";
  char status[8];
  const auto length = fmt::format_to_n(status, sizeof status, "{}", x.status).size;
  metrics.requests.with({route, model, provider, std::string_view(status, length)})->inc();
  if (x.route == nullptr) return;
  metrics.duration.with({route})->observe(std::chrono::duration<double>(end - x.start).count());
  if (x.first_body) {
    metrics.first_token.with({route})->observe(
        std::chrono::duration<double>(*x.first_body - x.start).count());
  }
  if (x.usage.input || x.usage.output) {
    const std::string_view key = x.key ? std::string_view(x.key->id) : "";
    metrics.tokens.with({model, key, "input"})->inc(x.usage.input);
    metrics.tokens.with({model, key, "output"})->inc(x.usage.output);
    metrics.tokens.with({model, key, "cached"})->inc(x.usage.cached);
  }
}

Task<void> ProxyHandler::respond(Exchange& x, bhttp::status status, std::string body,
                                 std::string_view content_type) {
  bhttp::response<bhttp::string_body> response{status, x.request.version()};
  response.set(bhttp::field::content_type, content_type);
  response.set("x-request-id", x.request_id);
  for (const auto& [name, value] : x.extra_headers) response.set(name, value);
  response.body() = std::move(body);
  response.keep_alive(x.keep_alive);
  response.prepare_payload();
  x.status = static_cast<int>(status);
  x.first_byte = Clock::now();
  x.client.stream.expires_after(std::chrono::milliseconds(x.state->config.timeouts.idle_ms));
  auto [ec, n] = co_await bhttp::async_write(x.client.stream, response, kNoThrow);
  x.client.stream.expires_never();
  x.bytes_out += n;
  if (ec) x.keep_alive = false;
}

Task<void> ProxyHandler::fail(Exchange& x, ApiError error) {
  x.error = error.message;
  auto body = x.anthropic_client ? anthropicErrorBody(error) : openAiErrorBody(error);
  co_await respond(x, static_cast<bhttp::status>(error.status), std::move(body));
}

namespace {

// What plugins see of the request: pseudo headers first, then the fields, names lower-case.
void fillRequestHeaders(const Request& request, bool secure, wasm::HeaderMap& map) {
  map.emplace_back(":method", std::string(request.method_string()));
  map.emplace_back(":path", std::string(request.target()));
  map.emplace_back(":authority", std::string(request[bhttp::field::host]));
  map.emplace_back(":scheme", secure ? "https" : "http");
  for (const auto& field : request) {
    if (isHopByHop(field.name())) continue;
    map.emplace_back(wasm::lowerCase(field.name_string()), std::string(field.value()));
  }
}

// Credential headers the gateway never forwards from the client; a plugin may set them.
constexpr std::string_view kCredentialHeaders[] = {"authorization", "x-api-key", "api-key"};

// Writes the plugins' view of the headers back into the request. A changed :path goes to
// `plugin_target` rather than into the request: routing already used the client's, and the
// request's target backs the exchange's `path`.
void applyRequestHeaders(const wasm::HeaderMap& map, Request& request, std::string& plugin_target) {
  for (auto it = request.begin(); it != request.end();) {
    it = isHopByHop(it->name()) ? std::next(it) : request.erase(it);
  }
  for (const auto& [name, value] : map) {
    if (name == ":method") {
      if (value != request.method_string()) request.method_string(value);
    } else if (name == ":path") {
      if (!value.empty() && value.front() == '/' && value != std::string_view(request.target())) {
        plugin_target = value;
      }
    } else if (name == ":authority") {
      request.set(bhttp::field::host, value);
    } else if (!name.starts_with(':')) {
      request.insert(name, value);
    }
  }
}

void fillResponseHeaders(const bhttp::response_header<>& response, wasm::HeaderMap& map) {
  map.clear();
  map.emplace_back(":status", std::to_string(response.result_int()));
  for (const auto& field : response) {
    if (isHopByHop(field.name())) continue;
    map.emplace_back(wasm::lowerCase(field.name_string()), std::string(field.value()));
  }
}

}  // namespace

Task<bool> ProxyHandler::answerChain(Exchange& x, wasm::ChainStatus status) {
  if (status == wasm::ChainStatus::kLocalResponse) {
    co_await respondLocal(x, *x.stream->local_response);
    co_return true;
  }
  if (status == wasm::ChainStatus::kFailed) {
    ApiError error{503, "plugin_error", "plugin_failed", x.chain->failure()};
    co_await fail(x, std::move(error));
    co_return true;
  }
  co_return false;
}

void ProxyHandler::fillFinalProperties(Exchange& x, Clock::time_point end) {
  auto& properties = x.stream->properties;
  const auto millis = [&](Clock::time_point at) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(at - x.start).count());
  };
  properties["ai.duration_ms"] = millis(end);
  if (x.first_byte) properties["ai.ttfb_ms"] = millis(*x.first_byte);
  if (x.first_body) properties["ai.ttft_ms"] = millis(*x.first_body);
  if (!x.error.empty()) properties["ai.error"] = x.error;
}

void ProxyHandler::fillAiProperties(Exchange& x) {
  auto& properties = x.stream->properties;
  if (x.route) properties["ai.route"] = x.route->name;
  if (x.provider) {
    properties["ai.provider"] = x.provider->id;
    properties["ai.upstream_model"] = x.upstream_model;
    properties["ai.upstream"] = x.upstream;
  }
  if (x.usage.input || x.usage.output) {
    properties["ai.usage.input_tokens"] = std::to_string(x.usage.input);
    properties["ai.usage.output_tokens"] = std::to_string(x.usage.output);
    properties["ai.usage.cache_read_tokens"] = std::to_string(x.usage.cached);
  }
}

Task<bool> ProxyHandler::runRequestPlugins(Exchange& x, int route_index) {
  x.stream = std::make_unique<wasm::StreamData>();
  auto& stream = *x.stream;
  stream.request_id = x.request_id;
  stream.source_address = x.client.peer;
  fillRequestHeaders(x.request, x.client.stream.secure(), stream.request_headers);
  if (x.request.find("x-request-id") == x.request.end()) {
    stream.request_headers.emplace_back("x-request-id", x.request_id);
  }
  auto& properties = stream.properties;
  properties["ai.model"] = x.fields.model;
  properties["ai.stream"] = x.fields.stream ? "true" : "false";
  if (route_index >= 0) properties["ai.route"] = x.state->config.routes[route_index].name;
  if (x.key != nullptr) properties["ai.api_key_id"] = x.key->id;
  x.chain = std::make_unique<wasm::PluginChain>(x.plugins->chainFor(route_index), stream);
  if (x.chain->usesHigressAbi()) fillUpstreamHosts(x, route_index);

  auto& body = x.request.body();
  auto status = co_await settle(x, x.chain->onRequestHeaders(body.empty()));
  if (status == wasm::ChainStatus::kContinue && !body.empty() && x.chain->wantsRequestBody()) {
    stream.request_body = std::move(body);
    status = co_await settle(x, x.chain->onRequestBody());
    body = std::move(stream.request_body);
  }
  if (co_await answerChain(x, status)) co_return false;

  for (auto name : kCredentialHeaders) {
    const auto set = std::find_if(stream.request_headers.begin(), stream.request_headers.end(),
                                  [&](const auto& pair) { return pair.first == name; });
    if (set != stream.request_headers.end() && !set->second.empty() &&
        set->second != std::string_view(x.request[name])) {
      x.plugin_credentials.emplace_back(name, set->second);
    }
  }
  applyRequestHeaders(stream.request_headers, x.request, x.plugin_target);
  // A rewritten :method moves the request line's storage, which x.path viewed.
  const auto target = x.request.target();
  x.path = target.substr(0, target.find('?'));
  if (stream.request_body_changed) {
    auto fields = parseRequestFields(body);
    if (!fields) {
      ApiError error = fields.error();
      error.message = "after plugins: " + error.message;
      co_await fail(x, std::move(error));
      co_return false;
    }
    x.fields = std::move(*fields);
  }
  co_return true;
}

Task<wasm::ChainStatus> ProxyHandler::settle(Exchange& x, wasm::ChainStatus status) {
  while (status == wasm::ChainStatus::kPause &&
         (!x.stream->http_calls.empty() || !x.stream->redis_calls.empty())) {
    auto calls = std::move(x.stream->http_calls);
    x.stream->http_calls.clear();
    auto redis_calls = std::move(x.stream->redis_calls);
    x.stream->redis_calls.clear();
    for (const auto& call : calls) {
      auto response = co_await performHttpCall(x, call);
      x.chain->deliver(call, response);
    }
    for (const auto& call : redis_calls) {
      auto response = co_await performRedisCall(call);
      x.chain->deliver(call, response);
    }
    status = x.chain->resume();
  }
  co_return status;
}

Task<wasm::RedisCallResponse> ProxyHandler::performRedisCall(const wasm::RedisCallRequest& call) {
  wasm::RedisCallResponse answer;
  if (plugin_redis_ == nullptr) co_return answer;
  const std::vector<std::string_view> args(call.args.begin(), call.args.end());
  const std::optional<std::chrono::milliseconds> timeout =
      std::chrono::milliseconds(call.timeout_ms);
  auto result = co_await plugin_redis_->call(args, timeout);
  if (!result) {
    spdlog::debug("plugin {}: redis call failed: {}", call.instance->name(),
                  result.error().message);
    co_return answer;
  }
  std::string reply;
  result->appendResp(reply);
  // What a plugin may receive is bounded like a body it may set.
  if (reply.size() > call.instance->plugin().settings().limits.max_body_bytes) {
    spdlog::warn("plugin {}: redis reply of {} bytes is over the plugin's max_body_bytes",
                 call.instance->name(), reply.size());
    co_return answer;
  }
  answer.status = wasm::abi::RedisCallStatus::kOk;
  answer.reply = std::move(reply);
  co_return answer;
}

void ProxyHandler::sendLateRedisCalls(Exchange& x) {
  if (x.stream->redis_calls.empty() || plugin_redis_ == nullptr) return;
  auto calls = std::move(x.stream->redis_calls);
  x.stream->redis_calls.clear();
  auto* client = plugin_redis_;
  asio::co_spawn(
      x.client.stream.get_executor(),
      [](redis::RedisClient* client, std::vector<wasm::RedisCallRequest> calls) -> Task<void> {
        for (const auto& call : calls) {
          const std::vector<std::string_view> args(call.args.begin(), call.args.end());
          const std::optional<std::chrono::milliseconds> timeout =
              std::chrono::milliseconds(call.timeout_ms);
          auto result = co_await client->call(args, timeout);
          if (!result)
            spdlog::debug("plugin redis call after the request failed: {}", result.error().message);
        }
      }(client, std::move(calls)),
      asio::detached);
}

void ProxyHandler::fillUpstreamHosts(Exchange& x, int route_index) {
  if (route_index < 0) return;
  const auto& pool = x.state->pools[static_cast<size_t>(route_index)];
  const auto now = routing::steadyNowMs();
  for (const auto& worker : pool.workers) {
    const auto& runtime = *worker.endpoint;
    const auto& endpoint = runtime.endpoint;
    wasm::UpstreamHost host;
    const bool ipv6 = endpoint.host.find(':') != std::string::npos;
    host.address =
        (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
    host.id = runtime.id;
    JsonWriter json(host.info);
    json.beginObject()
        .key("id")
        .value(runtime.id)
        .key("provider")
        .value(runtime.provider)
        .key("url")
        .value(endpoint.url)
        .key("health_status")
        .value(runtime.health.available(now) ? "Healthy" : "Unhealthy")
        .key("outstanding")
        .value(static_cast<uint64_t>(runtime.outstanding.load(std::memory_order_relaxed)))
        .endObject();
    x.stream->upstream_hosts.push_back(std::move(host));
  }
}

Task<wasm::HttpCallResponse> ProxyHandler::performHttpCall(Exchange& x,
                                                           const wasm::HttpCallRequest& call) {
  wasm::HttpCallResponse answer;
  const auto& config = x.state->config;
  const config::Provider* provider = nullptr;
  http::UpstreamTlsContext* tls = nullptr;
  for (size_t i = 0; i < config.providers.size(); ++i) {
    if (config.providers[i].id == call.upstream) {
      provider = &config.providers[i];
      tls = x.state->providers[i]->tls.get();
    }
  }
  if (provider == nullptr || provider->endpoints.empty()) {
    spdlog::warn("request {}: plugin http call to unknown upstream \"{}\"", x.request_id,
                 call.upstream);
    co_return answer;
  }
  const auto& endpoint = provider->endpoints.front();
  bhttp::request<bhttp::string_body> request{bhttp::verb::get, "/", 11};
  request.set(bhttp::field::host, hostHeader(endpoint));
  for (const auto& [name, value] : call.headers) {
    if (name == ":method") {
      if (value != request.method_string()) request.method_string(value);
    } else if (name == ":path") {
      if (!value.empty() && value.front() == '/') request.target(upstreamTarget(endpoint, value));
    } else if (name == ":authority") {
      request.set(bhttp::field::host, value);
    } else if (!name.starts_with(':') && !isHopByHop(bhttp::string_to_field(name))) {
      request.insert(name, value);
    }
  }
  request.body() = call.body;
  request.prepare_payload();

  const auto timeout = std::chrono::milliseconds(call.timeout_ms);
  auto [ec, connection] = co_await pool_.acquire(endpoint, timeout, tls);
  if (ec) co_return answer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(call.instance->plugin().settings().limits.max_body_bytes);
  connection->stream.expires_after(timeout);
  std::tie(ec, std::ignore) = co_await bhttp::async_write(connection->stream, request, kNoThrow);
  if (!ec) {
    std::tie(ec, std::ignore) =
        co_await bhttp::async_read(connection->stream, connection->buffer, parser, kNoThrow);
  }
  if (ec) co_return answer;
  fillResponseHeaders(parser.get().base(), answer.headers);
  answer.body = std::move(parser.get().body());
  if (parser.keep_alive()) {
    pool_.release(std::move(connection));
  }
  co_return answer;
}

Task<void> ProxyHandler::respondLocal(Exchange& x, const wasm::LocalResponse& local) {
  bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(local.status),
                                               x.request.version()};
  bool has_type = false;
  for (const auto& [name, value] : local.headers) {
    has_type = has_type || name == "content-type";
    response.insert(name, value);
  }
  if (!has_type && !local.body.empty()) {
    response.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  }
  response.set("x-request-id", x.request_id);
  response.body() = local.body;
  response.keep_alive(x.keep_alive);
  response.prepare_payload();
  x.status = static_cast<int>(local.status);
  x.error = local.details.empty() ? "local response from a plugin" : local.details;
  x.first_byte = Clock::now();
  x.client.stream.expires_after(std::chrono::milliseconds(x.state->config.timeouts.idle_ms));
  auto [ec, n] = co_await bhttp::async_write(x.client.stream, response, kNoThrow);
  x.client.stream.expires_never();
  x.bytes_out += n;
  if (ec) x.keep_alive = false;
}

Task<void> ProxyHandler::proxy(Exchange& x) {
  const auto& state = *x.state;
  // Every way this coroutine fails shares one slot of its frame, which lasts as long as a
  // stream: a stream's memory.
  std::optional<ApiError> error;
  // SGLang's native /generate names no model: it goes to the first route whose provider
  // serves it.
  bool generate_without_model = false;
  int route_index = -1;
  [&] {  // a plain call: what it parses with stays off the frame
    auto fields = parseRequestFields(x.request.body());
    generate_without_model = !fields && fields.error().code == "missing_model" &&
                             x.capability == providers::Capability::kGenerate;
    if (!fields && !generate_without_model) {
      error = std::move(fields.error());
      return;
    }
    if (fields) x.fields = std::move(*fields);
    // A stream can last minutes: the client's read buffer is not kept for it when it holds
    // nothing (no pipelined request behind this one).
    if (x.fields.stream && x.client.buffer.size() == 0) x.client.buffer.shrink_to_fit();
    route_index = state.routes.find(x.fields.model);
    if (!generate_without_model) return;
    for (size_t i = 0; i < state.config.routes.size() && route_index < 0; ++i) {
      const auto& provider = state.config.providers[state.config.routes[i].providerIndex()];
      if (providers::providerType(provider.type).supports(providers::Capability::kGenerate)) {
        route_index = static_cast<int>(i);
      }
    }
  }();
  if (error) co_return co_await fail(x, std::move(*error));
  x.plugins = plugins_;  // the set in effect when the request began, for its whole life
  if (x.plugins != nullptr && !x.plugins->chainFor(route_index).empty()) {
    const std::string before =
        route_index >= 0 ? state.config.routes[route_index].name : std::string();
    if (!co_await runRequestPlugins(x, route_index)) co_return;
    // A plugin may re-route: by naming a route in ai.route, or by changing the model.
    const auto& properties = x.stream->properties;
    const auto named = properties.find("ai.route");
    if (named != properties.end() && named->second != before) {
      route_index = -1;
      for (size_t i = 0; i < state.config.routes.size(); ++i) {
        if (state.config.routes[i].name == named->second) route_index = static_cast<int>(i);
      }
      if (route_index < 0) {
        error = ApiError{500, "server_error", "plugin_bad_route",
                         fmt::format("a plugin routed the request to \"{}\", which is no route",
                                     named->second.substr(0, 128))};
        co_return co_await fail(x, std::move(*error));
      }
    } else if (!generate_without_model) {
      route_index = state.routes.find(x.fields.model);
    }
    if (auto forced = properties.find("ai.upstream_model"); forced != properties.end()) {
      x.upstream_model_override = forced->second;
    }
  }
  if (x.key != nullptr && !x.key->allows(x.fields.model)) {
    error = ApiError{
        403, "permission_error", "model_not_allowed",
        fmt::format("the API key \"{}\" may not use the model \"{}\"", x.key->id, x.fields.model)};
    co_return co_await fail(x, std::move(*error));
  }
  if (route_index < 0) {
    error = ApiError{404, "invalid_request_error", "model_not_found",
                     fmt::format("no route serves the model \"{}\"", x.fields.model)};
    co_return co_await fail(x, std::move(*error));
  }
  x.route = &state.config.routes[route_index];
  if (!co_await admit(x)) co_return;

  DisconnectScope watch_client(x.client);
  co_await forward(x, static_cast<size_t>(route_index));
  if (x.client.watch->client_gone) {
    x.keep_alive = false;
    x.error = "client closed the connection";
    if (x.status == 0) x.status = 499;
  }
}

namespace {

// What the upstream of `type` is asked for a client request of `capability`: the same, or
// chat ⇄ messages with translation both ways.
providers::Capability upstreamCapability(providers::Capability capability,
                                         const providers::ProviderType& type,
                                         Translation& translation) {
  const bool anthropic_upstream = type.dialect() == providers::Dialect::kAnthropic;
  translation = Translation::kNone;
  if (capability == providers::Capability::kChat && anthropic_upstream) {
    translation = Translation::kAnthropicToOpenAi;
    return providers::Capability::kMessages;
  }
  if (capability == providers::Capability::kMessages && !anthropic_upstream) {
    translation = Translation::kOpenAiToAnthropic;
    return providers::Capability::kChat;
  }
  return capability;
}

bool serves(const config::Provider& provider, providers::Capability capability) {
  Translation ignored;
  const auto& type = providers::providerType(provider.type);
  return type.supports(upstreamCapability(capability, type, ignored));
}

bool retryableStatus(unsigned status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

// The time left before `deadline`, at most `limit`, at least 1 ms. Rounded up: a timer that
// fires a fraction of a millisecond before the deadline would be taken for the shorter
// timeout, and a stream cut by total_ms logged as a plain socket timeout.
std::chrono::milliseconds within(Clock::time_point deadline, uint32_t limit_ms) {
  const auto limit = std::chrono::milliseconds(limit_ms);
  if (deadline == Clock::time_point::max()) return limit;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(std::chrono::milliseconds(1), std::min(limit, left));
}

}  // namespace

std::optional<ApiError> ProxyHandler::prepareUpstream(Exchange& x, size_t provider_index,
                                                      Request& upstream, bool keep_client_body) {
  const auto& state = *x.state;
  x.provider = &state.config.providers[provider_index];
  x.runtime = state.providers[provider_index].get();
  x.type = &providers::providerType(x.provider->type);
  x.upstream_capability = upstreamCapability(x.capability, *x.type, x.translation);
  if (!x.type->supports(x.upstream_capability)) {
    return ApiError{400, "invalid_request_error", "unsupported_capability",
                    fmt::format("provider {} (type {}) does not serve {}", x.provider->id,
                                x.provider->type, providers::capabilityName(x.capability))};
  }

  // Model mapping, then the body the upstream gets: the client's bytes when nothing changes,
  // moved rather than copied unless another provider may need them later.
  x.upstream_model = x.upstream_model_override.empty()
                         ? x.provider->model_mapping.map(x.fields.model)
                         : x.upstream_model_override;
  std::string body = keep_client_body ? x.request.body() : std::move(x.request.body());
  if (x.translation != Translation::kNone) {
    auto translated = x.translation == Translation::kOpenAiToAnthropic
                          ? translate::anthropicToOpenAiRequest(body, x.upstream_model)
                          : translate::openAiToAnthropicRequest(body, x.upstream_model,
                                                                x.provider->max_tokens_default);
    if (!translated) {
      if (!keep_client_body) x.request.body() = std::move(body);
      return ApiError{translated.error().status, "invalid_request_error", "invalid_request",
                      translated.error().message};
    }
    body = std::move(*translated);
  } else if (x.upstream_model != x.fields.model) {
    renameModel(body, x.fields.model, x.upstream_model);
  }
  // Usage is counted for streams too: ask for the final usage chunk, then hide it again.
  x.strip_usage = x.translation == Translation::kNone && x.fields.stream &&
                  !x.fields.include_usage && x.type->dialect() == providers::Dialect::kOpenAi &&
                  (x.capability == providers::Capability::kChat ||
                   x.capability == providers::Capability::kCompletions) &&
                  addIncludeUsage(body);

  upstream = Request{x.request.method(), "", 11};
  for (const auto& field : x.request) {
    if (isHopByHop(field.name()) || isClientOnly(field.name(), field.name_string()) ||
        beast::iequals(field.name_string(), "x-request-id") ||
        (x.translation != Translation::kNone &&
         (beast::iequals(field.name_string(), "anthropic-version") ||
          beast::iequals(field.name_string(), "anthropic-beta")))) {
      continue;
    }
    upstream.insert(field.name_string(), field.value());
  }
  upstream.set("x-request-id", x.request_id);
  if (x.translation != Translation::kNone) {
    upstream.set(bhttp::field::content_type, "application/json");
  }
  upstream.body() = std::move(body);
  upstream.prepare_payload();
  return std::nullopt;
}

std::optional<size_t> ProxyHandler::overriddenWorker(Exchange& x, const RoutePool& pool) {
  const auto& wanted = x.stream->upstream_override;
  const auto now = routing::steadyNowMs();
  const auto& providers = x.state->config.providers;
  for (size_t i = 0; i < pool.workers.size(); ++i) {
    const auto& worker = pool.workers[i];
    const auto& endpoint = worker.endpoint->endpoint;
    const bool named = worker.endpoint->id == wanted ||
                       wanted == endpoint.host + ":" + std::to_string(endpoint.port) ||
                       wanted == "[" + endpoint.host + "]:" + std::to_string(endpoint.port);
    if (named && worker.endpoint->health.available(now) &&
        serves(providers[worker.provider_index], x.capability)) {
      return i;
    }
  }
  return std::nullopt;
}

std::optional<size_t> ProxyHandler::pickWorker(Exchange& x, const config::Route& route,
                                               const RoutePool& pool,
                                               std::span<const EndpointRuntime* const> tried,
                                               std::string_view prompt) {
  // A Higress plugin's proxy_set_upstream_override_host decides the first attempt.
  if (x.stream && !x.stream->upstream_override.empty() && tried.empty()) {
    if (auto forced = overriddenWorker(x, pool)) return forced;
  }
  thread_local std::vector<routing::WorkerState> workers;
  const auto now = routing::steadyNowMs();
  const auto& providers = x.state->config.providers;
  routing::PickTrace trace;
  routing::PickContext context{.prompt = prompt, .trace = &trace};
  if (pool.policy->usesHashKey()) {
    const auto& header = route.balancer.consistent_hash.hash_header;
    if (!header.empty()) {
      context.hash_key = x.request[header];
    } else {
      // The client's API key (hashed inside the policy, never stored).
      context.hash_key = x.request[bhttp::field::authorization];
      if (context.hash_key.empty()) context.hash_key = x.request["x-api-key"];
    }
  }
  // Workers already tried by this request are avoided while another one is available.
  for (const bool avoid_tried : {true, false}) {
    workers.clear();
    bool any_tried = false;
    for (const auto& worker : pool.workers) {
      const bool was_tried = std::find(tried.begin(), tried.end(), worker.endpoint) != tried.end();
      const bool filtered = std::find(x.filtered_out.begin(), x.filtered_out.end(),
                                      worker.endpoint) != x.filtered_out.end();
      any_tried = any_tried || was_tried;
      workers.push_back(routing::WorkerState{
          .id = worker.endpoint->id,
          .weight = worker.weight,
          .healthy = worker.endpoint->health.available(now) && !(avoid_tried && was_tried) &&
                     !filtered && serves(providers[worker.provider_index], x.capability),
          .outstanding = &worker.endpoint->outstanding,
      });
    }
    // A retry takes the least loaded worker not tried yet rather than the policy's next
    // choice: the policy's rule already pointed at a worker that failed, and a round-robin
    // turn spent on a retry would send the next request to that worker again.
    thread_local const auto least_loaded = routing::createBalancingPolicy("least_load", {});
    auto& policy = tried.empty() ? *pool.policy : *least_loaded;
    if (auto picked = policy.pick(context, workers)) {
      pool.counters->picks[static_cast<size_t>(trace.reason)].fetch_add(1,
                                                                        std::memory_order_relaxed);
      return picked;
    }
    if (!any_tried) break;
  }
  pool.counters->picks[static_cast<size_t>(routing::PickReason::kNoEligibleWorker)].fetch_add(
      1, std::memory_order_relaxed);
  return std::nullopt;
}

Task<bool> ProxyHandler::filterUpstreams(Exchange& x, const RoutePool& pool,
                                         std::string_view prompt) {
  auto& stream = *x.stream;
  const auto now = routing::steadyNowMs();
  const auto& providers = x.state->config.providers;
  thread_local std::vector<routing::WorkerState> workers;
  thread_local std::vector<double> matches;
  workers.clear();
  for (const auto& worker : pool.workers) {
    workers.push_back(routing::WorkerState{.id = worker.endpoint->id,
                                           .weight = worker.weight,
                                           .outstanding = &worker.endpoint->outstanding});
  }
  matches.assign(workers.size(), 0.0);
  pool.policy->predictCacheMatch(prompt, workers, matches);
  stream.candidates.clear();
  for (size_t i = 0; i < pool.workers.size(); ++i) {
    const auto& worker = pool.workers[i];
    stream.candidates.push_back(wasm::UpstreamCandidate{
        .id = worker.endpoint->id,
        .provider = worker.endpoint->provider,
        .url = worker.endpoint->endpoint.url,
        .healthy = worker.endpoint->health.available(now) &&
                   serves(providers[worker.provider_index], x.capability),
        .outstanding = workers[i].load(),
        .cache_match = matches[i],
        .rejected = {},
        .rejected_by = {},
    });
  }
  stream.properties["ai.route"] = x.route->name;
  const auto status = co_await settle(x, x.chain->onUpstreamFilter());
  if (co_await answerChain(x, status)) co_return false;
  for (size_t i = 0; i < stream.candidates.size(); ++i) {
    const auto& candidate = stream.candidates[i];
    if (candidate.rejected.empty()) continue;
    x.filtered_out.push_back(pool.workers[i].endpoint);
    ++stream.candidates_rejected;
    if (!x.filter_rejections.empty()) x.filter_rejections += ", ";
    x.filter_rejections += candidate.id;
    x.filter_rejections += ' ';
    x.filter_rejections += candidate.rejected;
  }
  stream.candidates.clear();
  co_return true;
}

namespace {

// Waits `duration`; a coroutine of its own, so that the timer is not in its caller's frame for
// as long as the caller lives (a stream's memory).
Task<void> pause(asio::any_io_executor executor, Clock::duration duration) {
  asio::steady_timer timer(executor, duration);
  co_await timer.async_wait(kNoThrow);
}

}  // namespace

Task<void> ProxyHandler::forward(Exchange& x, size_t route_index) {
  const auto& state = *x.state;
  const auto& first_route = state.config.routes[route_index];
  auto& watch = *x.client.watch;

  // The route, then its fallbacks in order.
  std::vector<size_t> routes{route_index};
  routes.insert(routes.end(), first_route.fallback_indexes.begin(),
                first_route.fallback_indexes.end());
  bool several_providers = false;
  bool wants_prompt = false;
  for (auto index : routes) {
    for (const auto& target : state.config.routes[index].targets) {
      several_providers |= target.provider_index != first_route.providerIndex();
    }
    wants_prompt |= state.pools[index].policy->usesPrompt();
  }
  std::string prompt;
  if (wants_prompt) prompt = promptText(x.request.body(), kMaxPromptBytes);
  if (first_route.timeouts.total_ms > 0) {
    x.deadline = x.start + std::chrono::milliseconds(first_route.timeouts.total_ms);
  }
  state.pools[route_index].budget->onRequest(routing::steadyNowMs());

  Request upstream_request;
  std::optional<size_t> prepared;  // the provider upstream_request is built for
  std::vector<const EndpointRuntime*> tried;
  ApiError last_error{503, "upstream_error", "no_healthy_upstream",
                      fmt::format("route {} has no healthy upstream", first_route.name)};
  bool any_candidate = false;
  for (size_t r = 0; r < routes.size(); ++r) {
    const auto& route = state.config.routes[routes[r]];
    const auto& pool = state.pools[routes[r]];
    if (Clock::now() >= x.deadline) break;
    if (r > 0) {
      pool.budget->onRequest(routing::steadyNowMs());
      pool.counters->fallbacks.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("request {}: route {} failed: falling back to route {}", x.request_id,
                   x.route->name, route.name);
    }
    x.route = &route;
    if (x.chain && x.chain->wantsUpstreamFilter() && !co_await filterUpstreams(x, pool, prompt)) {
      co_return;  // the plugins answered
    }
    uint32_t attempts = 0;
    size_t refused = 0;  // half-open breakers that turned the request away
    while (attempts < route.retry.attempts) {
      const auto picked = pickWorker(x, route, pool, tried, prompt);
      if (!picked) {
        if (attempts == 0) pool.counters->no_healthy.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      any_candidate = true;
      const auto& worker = pool.workers[*picked];
      const auto admission = worker.endpoint->health.admit(routing::steadyNowMs());
      if (admission == routing::EndpointHealth::Admission::kRefused) {
        // Another request holds this endpoint's half-open probe.
        tried.push_back(worker.endpoint);
        if (++refused > pool.workers.size()) break;
        continue;
      }
      if (prepared != worker.provider_index) {
        if (auto error =
                prepareUpstream(x, worker.provider_index, upstream_request, several_providers)) {
          worker.endpoint->health.onNeutral(admission ==
                                            routing::EndpointHealth::Admission::kProbe);
          co_return co_await fail(x, std::move(*error));
        }
        prepared = worker.provider_index;
      }
      ++attempts;
      // The budget bounds retries within a pool; a fallback route is another pool.
      const bool time_left = Clock::now() < x.deadline;
      const bool attempts_left = attempts < route.retry.attempts && time_left;
      const bool pool_retry = attempts_left && pool.budget->canRetry(routing::steadyNowMs());
      const bool fallback_left = r + 1 < routes.size() && time_left;
      const bool probe = admission == routing::EndpointHealth::Admission::kProbe;
      Attempt outcome;
      try {
        outcome = co_await tryEndpoint(x, upstream_request, route, pool, *picked, probe,
                                       pool_retry || fallback_left, last_error);
      } catch (...) {
        // Every admitted attempt reports an outcome: a half-open breaker's probe must not
        // stay taken.
        worker.endpoint->health.onNeutral(probe);
        throw;
      }
      if (outcome == Attempt::kAnswered) co_return;
      if (outcome == Attempt::kClientGone || watch.client_gone) co_return;
      tried.push_back(worker.endpoint);
      if (!pool_retry || !pool.budget->tryRetry(routing::steadyNowMs())) {
        if (attempts_left) pool.counters->retries_denied.fetch_add(1, std::memory_order_relaxed);
        if (fallback_left && Clock::now() < x.deadline) {
          ++x.retries;  // the next route's pool gets the request
        } else {
          r = routes.size();
        }
        break;
      }
      pool.counters->retries.fetch_add(1, std::memory_order_relaxed);
      ++x.retries;
      // Exponential backoff with jitter: a random wait in [d/2, d].
      const uint64_t base = route.retry.backoff_base_ms;
      const uint64_t delay = std::min<uint64_t>(route.retry.backoff_max_ms,
                                                base << std::min<uint32_t>(attempts - 1, 20));
      const auto wait = std::chrono::milliseconds(
          delay / 2 + routing::Random::forThisThread().below(delay / 2 + 1));
      if (wait.count() > 0) {
        co_await pause(x.client.stream.get_executor(),
                       std::min<Clock::duration>(wait, x.deadline - Clock::now()));
        if (watch.client_gone) co_return;
      }
      if (Clock::now() >= x.deadline) break;
    }
  }
  if (Clock::now() >= x.deadline) {
    last_error = {504, "upstream_error", "upstream_timeout",
                  fmt::format("no upstream answered within the route's total timeout ({} ms)",
                              first_route.timeouts.total_ms)};
  } else if (!any_candidate && !x.filter_rejections.empty()) {
    last_error = {503, "upstream_error", "no_upstream_accepted",
                  "no upstream accepted: " + x.filter_rejections};
  } else if (!any_candidate) {
    // Nothing could be asked; say why in the client's terms.
    bool served = false;
    for (auto index : routes) {
      for (const auto& target : state.config.routes[index].targets) {
        served |= serves(state.config.providers[target.provider_index], x.capability);
      }
    }
    if (!served) {
      const auto& provider = state.config.providers[first_route.providerIndex()];
      last_error = {400, "invalid_request_error", "unsupported_capability",
                    fmt::format("provider {} (type {}) does not serve {}", provider.id,
                                provider.type, providers::capabilityName(x.capability))};
    }
  }
  co_await fail(x, last_error);
}

Task<ProxyHandler::Attempt> ProxyHandler::tryEndpoint(Exchange& x, Request& upstream_request,
                                                      const config::Route& route,
                                                      const RoutePool& pool, size_t index,
                                                      bool probe, bool may_retry,
                                                      ApiError& last_error) {
  const auto& provider = *x.provider;
  const auto& worker = pool.workers[index];
  auto& health = worker.endpoint->health;
  const auto& endpoint = worker.endpoint->endpoint;
  const auto& outlier = provider.outlier;
  auto& watch = *x.client.watch;
  const routing::PickContext context{};
  WorkerLoad load(pool, index, context, x.worker_load);
  auto failed = [&] {
    if (Clock::now() >= x.deadline) {
      // The route's total timeout ended the attempt: no verdict on the endpoint.
      health.onNeutral(probe);
      return;
    }
    worker.endpoint->failures.fetch_add(1, std::memory_order_relaxed);
    health.onFailure(probe, routing::steadyNowMs(), outlier.consecutive_failures,
                     outlier.cooldown_ms);
  };

  const auto provider_index = worker.provider_index;
  if (next_token_.size() < x.state->config.providers.size()) {
    next_token_.resize(x.state->config.providers.size());
  }
  // Sets the auth headers of one token (none when the provider has no tokens).
  std::vector<bool> tried(provider.api_tokens.size(), false);
  int token = x.runtime->pickToken(next_token_[provider_index], tried);
  auto authenticate = [&] {
    for (const char* name : {"authorization", "x-api-key", "api-key", "anthropic-version"}) {
      upstream_request.erase(name);
    }
    providers::Headers headers;
    x.type->addHeaders(provider, token >= 0 ? std::string_view(provider.api_tokens[token]) : "",
                       headers);
    for (const auto& [name, value] : headers) upstream_request.set(name, value);
    if (token < 0) {
      for (const auto& [name, value] : x.plugin_credentials) upstream_request.set(name, value);
    }
  };
  authenticate();
  x.upstream = endpoint.url;
  upstream_request.target(x.plugin_target.empty() ? x.type->target(x.upstream_capability, provider,
                                                                   endpoint, x.upstream_model)
                                                  : x.plugin_target);
  upstream_request.set(bhttp::field::host, hostHeader(endpoint));

  auto* tls = x.runtime->tls.get();
  const auto connect_timeout = within(x.deadline, route.timeouts.connect_ms);
  auto [ec, connection] = co_await pool_.acquire(endpoint, connect_timeout, tls);
  // A stale pooled connection gets one fresh retry; a token refused with 401/403/429 gives
  // way to the next token.
  for (int round = 0; round < 2 + static_cast<int>(tried.size()) && !ec; ++round) {
    if (watch.client_gone) {
      health.onNeutral(probe);
      co_return Attempt::kClientGone;
    }
    watch.upstream = &connection->stream.socket();
    UpstreamParser parser;
    parser.body_limit(boost::none);
    connection->stream.expires_after(within(x.deadline, route.timeouts.first_byte_ms));
    auto [write_ec, written] =
        co_await bhttp::async_write(connection->stream, upstream_request, kNoThrow);
    if (!write_ec) {
      std::tie(ec, std::ignore) = co_await bhttp::async_read_header(
          connection->stream, connection->buffer, parser, kNoThrow);
    } else {
      ec = write_ec;
    }
    ec = connection->stream.translate(ec);
    connection->stream.expires_never();  // relay() bounds each read of the body
    const auto status = parser.get().result_int();
    if (!ec && token >= 0 && (status == 401 || status == 403 || status == 429)) {
      // This token is refused: it rests, and another one gets the request.
      x.runtime->rest(token, std::chrono::milliseconds(provider.token_cooldown_ms));
      tried[token] = true;
      const int next = x.runtime->pickToken(next_token_[provider_index], tried);
      if (next >= 0) {
        spdlog::warn("request {}: provider {} refused token #{} ({}): trying token #{}",
                     x.request_id, provider.id, token, status, next);
        token = next;
        authenticate();
        watch.upstream = nullptr;
        std::tie(ec, connection) = co_await pool_.connect(endpoint, connect_timeout, tls);
        continue;
      }
    }
    if (!ec && may_retry && retryableStatus(status)) {
      // Another endpoint gets the request; this answer is dropped with its connection.
      watch.upstream = nullptr;
      if (status == 429) {
        health.onNeutral(probe);
      } else {
        failed();
      }
      last_error = {static_cast<int>(status), "upstream_error", "upstream_status",
                    fmt::format("the upstream answered {}", status)};
      spdlog::warn("request {}: upstream {} answered {}: retrying", x.request_id, endpoint.url,
                   status);
      co_return Attempt::kFailed;
    }
    if (!ec) {
      // Answered: the request is not sent again, and a stream need not hold it while it runs.
      upstream_request = Request{};
      const bool upstream_ok = co_await relay(x, route, *connection, parser);
      watch.upstream = nullptr;
      if (!upstream_ok || (status >= 500 && status != 501)) {
        failed();
      } else if (watch.client_gone || status == 429) {
        health.onNeutral(probe);
      } else {
        health.onSuccess(probe);
      }
      if (parser.is_done() && parser.keep_alive() && !watch.client_gone) {
        pool_.release(std::move(connection));
      }
      co_return Attempt::kAnswered;
    }
    watch.upstream = nullptr;
    if (watch.client_gone) {
      health.onNeutral(probe);
      co_return Attempt::kClientGone;
    }
    if (ec == beast::error::timeout) {
      failed();
      last_error = {
          504, "upstream_error", "upstream_timeout",
          fmt::format("the upstream sent no response within {} ms", route.timeouts.first_byte_ms)};
      spdlog::warn("request {}: upstream {}: no response within {} ms", x.request_id, endpoint.url,
                   route.timeouts.first_byte_ms);
      co_return Attempt::kFailed;
    }
    if (!connection->reused) break;
    // A pooled connection the upstream had closed: retry once on a new one.
    std::tie(ec, connection) = co_await pool_.connect(endpoint, connect_timeout, tls);
  }
  failed();
  if (ec == beast::error::timeout) {
    last_error = {504, "upstream_error", "upstream_timeout",
                  fmt::format("connecting to the upstream took longer than {} ms",
                              route.timeouts.connect_ms)};
  } else {
    last_error = {502, "upstream_error", "upstream_unreachable",
                  fmt::format("upstream {} failed: {}", endpoint.url, ec.message())};
  }
  spdlog::warn("request {}: upstream {}: {}", x.request_id, endpoint.url, ec.message());
  co_return Attempt::kFailed;
}

Task<bool> ProxyHandler::writeBody(Exchange& x, bool chunked, std::string_view piece) {
  if (piece.empty()) co_return true;
  const BodyPiece framed(chunked, piece);
  x.client.stream.expires_after(std::chrono::milliseconds(x.state->config.timeouts.idle_ms));
  auto [ec, written] = co_await asio::async_write(x.client.stream, framed.buffers(), kNoThrow);
  x.client.stream.expires_never();
  x.noteBodyWritten(written, Clock::now());
  co_return !ec;
}

Task<bool> ProxyHandler::relay(Exchange& x, const config::Route& route,
                               UpstreamConnection& connection, UpstreamParser& parser) {
  const auto& upstream = parser.get();
  const auto idle_timeout = std::chrono::milliseconds(route.timeouts.idle_ms);
  x.status = static_cast<int>(upstream.result_int());
  // The worker is done once its answer is read, before the client has all of it.
  auto workerDone = [&x, &parser] {
    if (parser.is_done() && x.worker_load) x.worker_load->finish();
  };
  workerDone();

  enum class Framing { kLength, kChunked, kClose };
  // By number: Beast writes codes it has no name for (Anthropic's 529) as "000".
  bhttp::response<bhttp::empty_body> head;
  head.version(x.request.version());
  head.result(upstream.result_int());
  const bool body_plugins = x.chain && x.chain->wantsResponseBody();
  TransformSpec spec;
  spec.translation = x.translation;
  spec.event_stream =
      upstream[bhttp::field::content_type].find("text/event-stream") != std::string_view::npos;
  spec.status = x.status;
  spec.client_model = x.fields.model;
  spec.upstream_model = x.upstream_model;
  spec.include_usage = x.fields.include_usage;
  spec.strip_usage_chunk = x.strip_usage;
  spec.max_body_bytes = x.state->config.limits.max_upstream_body_bytes;
  auto transform = makeBodyTransform(spec);
  // An event stream arrives a small event at a time, for as long as the answer runs: the
  // connection's read buffer, sized for answers that come at once, shrinks to what it holds and
  // grows again only if the events do.
  if (spec.event_stream) connection.buffer.shrink_to_fit();
  const bool rewritten = body_plugins || transform != nullptr;
  if (x.chain) {
    auto& stream = *x.stream;
    fillResponseHeaders(upstream.base(), stream.response_headers);
    fillAiProperties(x);
    stream.response_code = static_cast<uint32_t>(x.status);
    if (spec.event_stream) {
      x.chain->setEventSplitter([](size_t max_event_bytes) -> std::unique_ptr<wasm::EventSplitter> {
        return std::make_unique<SseEventSplitter>(max_event_bytes);
      });
    }
    auto status = co_await settle(x, x.chain->onResponseHeaders(parser.is_done()));
    if (co_await answerChain(x, status)) co_return true;  // the upstream answer is dropped
    for (const auto& [name, value] : stream.response_headers) {
      if (name == ":status") {
        unsigned code = 0;
        std::from_chars(value.data(), value.data() + value.size(), code);
        if (code >= 100 && code <= 599) {
          head.result(code);
          x.status = static_cast<int>(code);
        }
      } else if (!name.starts_with(':') && name != "x-request-id" &&
                 !(rewritten && name == "content-length")) {
        head.insert(name, value);
      }
    }
  } else {
    for (const auto& field : upstream) {
      if (isHopByHop(field.name()) || beast::iequals(field.name_string(), "x-request-id")) {
        continue;
      }
      head.insert(field.name_string(), field.value());
    }
  }
  head.set("x-request-id", x.request_id);
  for (const auto& [name, value] : x.extra_headers) head.set(name, value);
  Framing framing = Framing::kClose;
  const bool no_body = upstream.result() == bhttp::status::no_content ||
                       upstream.result() == bhttp::status::not_modified ||
                       x.request.method() == bhttp::verb::head;
  const auto length = parser.content_length();
  // Sets the framing of an answer whose length is not known before it is sent.
  auto frameUnknownLength = [&] {
    if (x.request.version() >= 11) {
      framing = Framing::kChunked;
      head.chunked(true);
    } else {
      framing = Framing::kClose;
      x.keep_alive = false;
    }
    head.keep_alive(x.keep_alive);
  };
  // Plugins see each piece of a non-streamed answer as it arrives; what they make of it waits in
  // `held` (up to kCoalesceBytes), so that it goes out whole with its length. The head waits too,
  // so that an upstream breaking off before the end can still be told as a 502.
  bool coalesce = body_plugins && !spec.event_stream && !no_body && !parser.is_done();
  std::string held;
  if (no_body || (length && !rewritten)) {
    framing = Framing::kLength;
    head.content_length(no_body ? 0 : *length);
    head.keep_alive(x.keep_alive);
  } else if (!coalesce) {
    frameUnknownLength();
  }

  beast::error_code ec;
  size_t n = 0;
  // A body of known length goes out with its head: the head is serialised here and written
  // together with the first piece of the body, one write instead of two.
  std::string pending_head;
  auto serializeHead = [&] {
    bhttp::response_serializer<bhttp::empty_body> serializer{head};
    serializer.split(true);
    while (!serializer.is_header_done() && !ec) {
      serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
        const auto size = asio::buffer_size(buffers);
        const auto start = pending_head.size();
        pending_head.resize(start + size);
        asio::buffer_copy(asio::buffer(pending_head.data() + start, size), buffers);
        serializer.consume(size);
      });
    }
  };
  // A non-streamed answer that is translated is only written once it is whole: its head waits
  // too, for the same reason.
  const bool whole_answer = transform && !spec.event_stream && !body_plugins;
  if (coalesce) {
    // The head is serialised once the answer's length is known.
  } else if ((framing == Framing::kLength || whole_answer) && !no_body && !parser.is_done()) {
    serializeHead();
  } else {
    // Serialised to a string first: a serializer held across the write would sit in this
    // coroutine's frame for the whole answer (a stream's memory).
    serializeHead();
    if (!ec) {
      x.client.stream.expires_after(idle_timeout);
      std::tie(ec, n) =
          co_await asio::async_write(x.client.stream, asio::buffer(pending_head), kNoThrow);
      x.client.stream.expires_never();
      x.first_byte = Clock::now();
      x.bytes_out += n;
    }
    pending_head.clear();
    pending_head.shrink_to_fit();
    // Sent: its fields, and the upstream's it was made from, need not live as long as the answer.
    head.clear();
    parser.get().clear();
  }
  // While coalescing: holds `piece`; false when it should be written now, because the answer
  // outgrew kCoalesceBytes and goes out chunked from here on (`piece` is then all held so far).
  auto hold = [&](std::string_view& piece) {
    if (!coalesce) return false;
    held.append(piece);
    if (held.size() <= kCoalesceBytes) return true;
    coalesce = false;
    frameUnknownLength();
    serializeHead();
    piece = held;
    return false;
  };
  if (ec) {
    x.keep_alive = false;
    co_return true;
  }
  // Writes what is left of the head, with `piece` after it.
  auto writeHead = [&](std::string_view piece) -> Task<bool> {
    const BodyPiece framed(framing == Framing::kChunked, piece);
    const auto& body = framed.buffers();
    const std::array<asio::const_buffer, 4> buffers{asio::buffer(pending_head), body[0], body[1],
                                                    body[2]};
    x.client.stream.expires_after(idle_timeout);
    auto [write_ec, written] = co_await asio::async_write(x.client.stream, buffers, kNoThrow);
    x.client.stream.expires_never();
    x.first_byte = Clock::now();
    if (!piece.empty()) {
      x.first_body = x.first_byte;
      x.last_body = *x.first_byte;  // the next write's gap counts from here
    }
    x.bytes_out += written;
    pending_head.clear();
    co_return !write_ec;
  };

  // Passes a piece through the response-body plugins; false when the stream must end.
  bool plugins_saw_end = false;
  auto plugin_status = wasm::ChainStatus::kContinue;  // of the last response-body callback
  auto filter = [&](std::string_view piece, bool end) -> bool {
    auto& stream = *x.stream;
    stream.response_body.assign(piece);
    plugins_saw_end = end;
    const auto status = plugin_status = x.chain->onResponseBody(end);
    if (status == wasm::ChainStatus::kPause) {
      stream.response_body.clear();
      return true;
    }
    if (status != wasm::ChainStatus::kContinue) {
      // Headers are out: a failure or a late local response can only cut the stream.
      x.error = status == wasm::ChainStatus::kFailed ? x.chain->failure()
                                                     : "plugin answered after the response began";
      return false;
    }
    return !stream.close_requested;
  };

  // Usage: read from the upstream's bytes before any transform, from the stream's events or
  // from the whole (bounded) JSON answer.
  const bool count_usage = x.status >= 200 && x.status < 300;
  std::optional<UsageMeter> meter;
  std::string answer;  // a non-streamed answer, for its usage
  bool answer_complete = true;
  if (count_usage && spec.event_stream) meter.emplace(x.type->dialect());

  std::string transformed;  // reused: what the transform made of the last read
  bool transform_finished = false;
  bool complete = true;
  bool upstream_ok = true;
  while (!parser.is_done()) {
    parser.get().body().piece = {};
    connection.stream.expires_after(within(x.deadline, route.timeouts.idle_ms));
    std::tie(ec, std::ignore) =
        co_await bhttp::async_read_some(connection.stream, connection.buffer, parser, kNoThrow);
    if (ec == bhttp::error::need_buffer) ec = {};
    ec = connection.stream.translate(ec);
    connection.stream.expires_never();  // the client may take its time
    workerDone();
    if (ec) {
      // The answer cannot be completed: close the client connection so it sees the truncation.
      x.error = ec == beast::error::timeout && Clock::now() >= x.deadline
                    ? fmt::format("the route's total timeout ({} ms) ended the answer",
                                  route.timeouts.total_ms)
                    : fmt::format("upstream body: {}", ec.message());
      complete = false;
      upstream_ok = x.client.watch->client_gone;
      break;
    }
    // In the connection's read buffer: used up before the next read.
    std::string_view piece = parser.get().body().piece;
    const size_t got = piece.size();
    if (meter) {
      meter->feed(piece);
    } else if (count_usage && answer_complete) {
      answer_complete = answer.size() + piece.size() <= kMaxUsageBodyBytes;
      if (answer_complete) answer.append(piece);
    }
    if (transform) {
      transformed.clear();
      if (!transform->feed(piece, transformed)) {
        x.error = "the upstream answer could not be transformed (too large or malformed)";
        complete = false;
        upstream_ok = false;
        break;
      }
      if (parser.is_done()) {
        transform->finish(transformed);
        transform_finished = true;
      }
      piece = transformed;
    }
    if (body_plugins) {
      if (got == 0 && !parser.is_done()) continue;
      if (!filter(piece, parser.is_done())) {
        complete = false;
        break;
      }
      piece = x.stream->response_body;
    }
    if (whole_answer && !pending_head.empty() && piece.empty()) continue;  // nothing to say yet
    if (hold(piece)) continue;
    bool written = true;
    if (!pending_head.empty()) {
      written = co_await writeHead(piece);
    } else if (!piece.empty()) {
      // As writeBody(), written out: a coroutine call per event would allocate its frame. An
      // event stream's writes are bounded by the route's total timeout too, as its reads are.
      const BodyPiece framed(framing == Framing::kChunked, piece);
      x.client.stream.expires_after(spec.event_stream ? within(x.deadline, route.timeouts.idle_ms)
                                                      : idle_timeout);
      std::tie(ec, n) = co_await asio::async_write(x.client.stream, framed.buffers(), kNoThrow);
      x.client.stream.expires_never();
      x.noteBodyWritten(n, Clock::now());
      written = !ec;
    }
    if (!coalesce && !held.empty()) {  // what was held went out with the head
      held.clear();
      held.shrink_to_fit();
    }
    if (!written) {
      x.error = "client write failed";
      complete = false;
      break;
    }
  }
  if (coalesce && complete) {
    // What the plugins make of the end of the answer.
    if (transform && !transform_finished) {
      transformed.clear();
      transform->finish(transformed);
      transform_finished = true;
      complete = filter(transformed, true);
      if (complete) held.append(x.stream->response_body);
    }
    if (complete && !plugins_saw_end) {
      complete = filter({}, true);
      if (complete) held.append(x.stream->response_body);
    }
    if (complete) {
      coalesce = false;
      framing = Framing::kLength;
      head.content_length(held.size());
      head.keep_alive(x.keep_alive);
      serializeHead();
      complete = co_await writeHead(held);
      plugins_saw_end = true;
    }
  }
  const std::string_view no_body_piece;
  if (!pending_head.empty() && complete && !co_await writeHead(no_body_piece)) complete = false;
  if (coalesce && x.stream && x.stream->close_requested) {
    // A plugin closed the stream before anything was sent: the client sees the connection end.
    x.error = "a plugin closed the stream";
    x.keep_alive = false;
    co_return upstream_ok;
  }
  if (coalesce && !x.client.watch->client_gone &&
      (plugin_status == wasm::ChainStatus::kFailed ||
       plugin_status == wasm::ChainStatus::kLocalResponse)) {
    // Nothing was sent: a plugin's failure or local response is still answered as such.
    x.error.clear();
    co_await answerChain(x, plugin_status);
    co_return upstream_ok;
  }
  if ((coalesce || !pending_head.empty()) && !x.client.watch->client_gone) {
    // The upstream broke off before any byte reached the client: an error can still be told.
    pending_head.clear();
    ApiError error{502, "upstream_error", "upstream_broken", x.error};
    co_await fail(x, std::move(error));
    co_return upstream_ok;
  }
  // An answer without a body (HEAD, 204, 304) went out with a length of 0: whatever the
  // transform or the plugins make of its end is dropped rather than break the framing.
  if (complete && transform && !transform_finished) {  // the answer had no body to read
    transformed.clear();
    transform->finish(transformed);
    if (body_plugins) {
      complete = filter(transformed, true);
      if (complete && !no_body)
        complete = co_await writeBody(x, framing == Framing::kChunked, x.stream->response_body);
    } else if (!no_body) {
      complete = co_await writeBody(x, framing == Framing::kChunked, transformed);
    }
  }
  if (complete && body_plugins && !plugins_saw_end) {
    complete = filter({}, true);
    if (complete && !no_body)
      complete = co_await writeBody(x, framing == Framing::kChunked, x.stream->response_body);
  }
  if (!complete) {
    x.keep_alive = false;
  } else if (framing == Framing::kChunked) {
    x.client.stream.expires_after(idle_timeout);
    std::tie(ec, n) =
        co_await asio::async_write(x.client.stream, bhttp::make_chunk_last(), kNoThrow);
    x.bytes_out += n;
    if (ec) x.keep_alive = false;
  }
  x.client.stream.expires_never();
  if (meter) {
    meter->finish();
    x.usage = meter->usage();
    // A cut OpenAI stream reports no prompt tokens: the upstream did read the prompt.
    if (!x.usage.reported && x.usage.input == 0) x.usage.input = x.bytes_in / 4;
  } else if (count_usage && answer_complete && !answer.empty()) {
    x.usage = usageFromBody(answer, x.type->dialect());
  }
  co_return upstream_ok;
}

Task<void> ProxyHandler::listModels(Exchange& x) {
  const auto& config = x.state->config;
  // id → owner; std::map keeps the answer in a stable order.
  std::map<std::string, std::string, std::less<>> models;
  for (const auto& route : config.routes) {
    for (const auto& model : route.models) {
      if (!model.ends_with('*')) models.emplace(model, route.provider());
    }
  }
  const auto timeout =
      std::chrono::milliseconds(std::min<uint32_t>(config.timeouts.first_byte_ms, 5000));
  for (size_t index = 0; index < config.providers.size(); ++index) {
    const auto& provider = config.providers[index];
    const auto& type = providers::providerType(provider.type);
    if (!type.supports(providers::Capability::kModels)) continue;
    for (const auto& endpoint : provider.endpoints) {
      auto [ec, connection] =
          co_await pool_.acquire(endpoint, std::chrono::milliseconds(config.timeouts.connect_ms),
                                 x.state->providers[index]->tls.get());
      if (ec) continue;
      bhttp::request<bhttp::empty_body> request{
          bhttp::verb::get, type.target(providers::Capability::kModels, provider, endpoint, ""),
          11};
      request.set(bhttp::field::host, hostHeader(endpoint));
      request.set("x-request-id", x.request_id);
      providers::Headers headers;
      type.addHeaders(provider, provider.api_tokens.empty() ? "" : provider.api_tokens.front(),
                      headers);
      for (const auto& [name, value] : headers) request.set(name, value);
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(4 * 1024 * 1024);
      connection->stream.expires_after(timeout);
      std::tie(ec, std::ignore) =
          co_await bhttp::async_write(connection->stream, request, kNoThrow);
      if (!ec) {
        std::tie(ec, std::ignore) =
            co_await bhttp::async_read(connection->stream, connection->buffer, parser, kNoThrow);
      }
      if (ec || parser.get().result() != bhttp::status::ok) continue;
      if (parser.keep_alive()) {
        pool_.release(std::move(connection));
      }
      simdjson::padded_string body(parser.get().body());
      thread_local simdjson::ondemand::parser json;
      simdjson::ondemand::document doc;
      simdjson::ondemand::array data;
      if (json.iterate(body).get(doc) || doc["data"].get_array().get(data)) break;
      for (auto item : data) {
        std::string_view id;
        if (!item["id"].get_string().get(id)) models.emplace(std::string(id), provider.id);
      }
      break;  // one endpoint per provider answers for all of them
    }
  }
  std::string body;
  JsonWriter json(body);
  json.beginObject().key("object").value("list").key("data").beginArray();
  for (const auto& [id, owner] : models) {
    json.beginObject().key("id").value(id).key("object").value("model");
    json.key("created").value(0).key("owned_by").value(owner).endObject();
  }
  json.endArray().endObject();
  co_await respond(x, bhttp::status::ok, std::move(body));
}

}  // namespace sluice::proxy
