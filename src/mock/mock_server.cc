// `sluice mock`: a deterministic OpenAI/Anthropic upstream for tests and benchmarks.
//
// API endpoints (answers are "tok0 tok1 ... tok{n-1} ", see appendTokenText):
//   POST /v1/chat/completions, /v1/completions, /v1/messages   (stream: true answers SSE)
//   POST /v1/embeddings, /v1/rerank (also /rerank, /v2/rerank);  GET /v1/models
// The same handlers under the paths of other dialects:
//   Azure OpenAI   POST /openai/deployments/{deployment}/chat/completions|completions|embeddings
//                  (the api-version query parameter is required, else 400)
//   GitHub Models  POST /inference/chat/completions, /inference/embeddings
//   SGLang         POST /generate  {"text","sampling_params":{"max_new_tokens"}} answers
//                  {"text","meta_info":{...}} (stream: true: SSE of the text so far, then [DONE])
// /v1/messages requires the anthropic-version header (400 without), as Anthropic does.
// Tool use: a chat or messages request whose `tools` is not empty and whose last message is the
// user's and mentions "weather" (any case), or any such request with `x-mock-tool: NAME`, is
// answered with a call of the first tool (or NAME) with {"city":"Paris"}: tool_use block
// toolu_mock_1 (input_json_delta in 3 fragments when streamed, stop_reason tool_use), or
// tool_calls call_mock_1 (arguments in 3 chunks, finish_reason tool_calls).
// Keys (--require-key, --reject-key): an API request presents a key as `authorization: Bearer
// KEY`, `x-api-key: KEY` or `api-key: KEY`; a --reject-key key gets 429, and when --require-key
// is given a request without one of those keys gets 401 (Anthropic's error shape on
// /v1/messages). Keys are never printed.
// --tls-cert/--tls-key: the same server over HTTPS (TLS 1.2+).
// Test support endpoints (not counted, not recorded, not delayed, no key needed):
//   GET  /mock/stats  {"requests","streams_started","streams_completed","streams_cancelled",
//                      "active_streams","keys":{KEY: requests that presented KEY, for each
//                      configured key},"unauthorized","rejected"}
//   GET  /mock/last   {"method","target","headers":{lowercased name: value},"body": raw text}
//                     of the last non-/mock request; 404 before the first one
//   POST /mock/reset  zeroes the counters (not active_streams), forgets the last request and
//                     makes GET /health answer 200 again
//   GET  /health      what health checks probe: 200 {"status":"ok"}, or the status set by
//                     POST /mock/health ({"status":"ok"} for 2xx, else {"status":"unhealthy"};
//                     no body for 204 and 304)
//   POST /mock/health {"status": NNN} (200-599) makes later GET /health answer NNN;
//                     {"status": 200} restores; answers {"status": NNN}
// Request headers that shape one answer:
//   x-mock-tokens: N          answer length instead of --tokens (max_tokens still caps it)
//   x-mock-token-delay-ms: N  pause before each streamed token instead of --token-delay-ms
//   x-mock-latency-ms: N      pause before the response headers instead of --latency-ms
//   x-mock-status: NNN        answer that status (400-599) with an error body
//   x-mock-tool: NAME         answer with a call of tool NAME (chat and messages)
//   x-mock-cached-tokens: N   usage reports N cached prompt tokens (OpenAI
//                             prompt_tokens_details.cached_tokens, Anthropic
//                             cache_read_input_tokens); 0 otherwise
// x-request-id is echoed back. /v1/messages errors use Anthropic's error shape, the rest
// OpenAI's.
#include "mock/mock_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/json_writer.h"
#include "mock/mock_api.h"

namespace sluice::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;

using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using TlsStream = asio::ssl::stream<Socket>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Request = http::request<http::string_body>;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr uint64_t kMaxBodyBytes = 64ull << 20;
constexpr uint32_t kMaxHeaderBytes = 64u << 10;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// State shared by every connection on every thread.
class MockState {
 public:
  explicit MockState(const MockOptions& options) : options_(options) {
    for (const auto* list : {&options.require_keys, &options.reject_keys}) {
      for (const auto& key : *list) {
        if (!key.empty() && findKey(key) < 0) keys_.push_back(key);
      }
    }
    key_counts_ = std::make_unique<std::atomic<uint64_t>[]>(keys_.size());
    for (size_t i = 0; i < keys_.size(); ++i) key_counts_[i] = 0;
  }

  const MockOptions& options() const { return options_; }

  enum class Auth { kOk, kUnauthorized, kRejected };

  // Checks the key a request presents (Bearer, x-api-key, api-key) and counts it.
  Auth authenticate(const Request& request) {
    if (keys_.empty()) return Auth::kOk;
    std::array<std::string_view, 3> presented{};
    if (auto it = request.find(http::field::authorization); it != request.end()) {
      std::string_view value = it->value();
      if (value.size() > 7 && beast::iequals(value.substr(0, 7), "bearer ")) {
        value.remove_prefix(7);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        presented[0] = value;
      }
    }
    if (auto it = request.find("x-api-key"); it != request.end()) presented[1] = it->value();
    if (auto it = request.find("api-key"); it != request.end()) presented[2] = it->value();
    bool accepted = false;
    bool rejected = false;
    for (size_t i = 0; i < presented.size(); ++i) {
      const auto key = presented[i];
      if (key.empty()) continue;
      if ((i > 0 && key == presented[0]) || (i > 1 && key == presented[1])) continue;  // counted
      const int index = findKey(key);
      if (index < 0) continue;
      key_counts_[index].fetch_add(1, kRelaxed);
      if (contains(options_.reject_keys, key)) {
        rejected = true;
      } else if (contains(options_.require_keys, key)) {
        accepted = true;
      }
    }
    if (rejected) {
      rejected_.fetch_add(1, kRelaxed);
      return Auth::kRejected;
    }
    if (accepted || options_.require_keys.empty()) return Auth::kOk;
    unauthorized_.fetch_add(1, kRelaxed);
    return Auth::kUnauthorized;
  }

  // Draw n of the fail-rate sequence is splitmix64(seed + n): reproducible for a given order.
  bool shouldFail() {
    if (options_.fail_rate <= 0) return false;
    const uint64_t draw = splitmix64(options_.seed + draws_.fetch_add(1, kRelaxed));
    return static_cast<double>(draw >> 11) * 0x1.0p-53 < options_.fail_rate;
  }

  uint64_t nextSequence() { return sequence_.fetch_add(1, kRelaxed) + 1; }

  void countRequest() { requests_.fetch_add(1, kRelaxed); }
  void streamStarted() {
    streams_started_.fetch_add(1, kRelaxed);
    active_streams_.fetch_add(1, kRelaxed);
  }
  void streamEnded(bool completed) {
    (completed ? streams_completed_ : streams_cancelled_).fetch_add(1, kRelaxed);
    active_streams_.fetch_sub(1, kRelaxed);
  }

  void recordLast(std::shared_ptr<const Request> request) {
    {
      std::lock_guard lock(last_mutex_);
      last_.swap(request);
    }
    // The previous request (now in `request`) is freed outside the lock.
  }

  // The status GET /health answers (POST /mock/health).
  int healthStatus() const { return health_status_.load(kRelaxed); }
  void setHealthStatus(int status) { health_status_.store(status, kRelaxed); }

  void reset() {
    for (size_t i = 0; i < keys_.size(); ++i) key_counts_[i] = 0;
    health_status_ = 200;
    unauthorized_ = 0;
    rejected_ = 0;
    requests_ = 0;
    streams_started_ = 0;
    streams_completed_ = 0;
    streams_cancelled_ = 0;
    std::shared_ptr<const Request> dropped;
    std::lock_guard lock(last_mutex_);
    last_.swap(dropped);
  }

  void writeStats(std::string& out) const {
    JsonWriter w(out);
    w.beginObject();
    w.key("requests").value(requests_.load(kRelaxed));
    w.key("streams_started").value(streams_started_.load(kRelaxed));
    w.key("streams_completed").value(streams_completed_.load(kRelaxed));
    w.key("streams_cancelled").value(streams_cancelled_.load(kRelaxed));
    w.key("active_streams").value(active_streams_.load(kRelaxed));
    w.key("keys").beginObject();
    for (size_t i = 0; i < keys_.size(); ++i) w.key(keys_[i]).value(key_counts_[i].load(kRelaxed));
    w.endObject();
    w.key("unauthorized").value(unauthorized_.load(kRelaxed));
    w.key("rejected").value(rejected_.load(kRelaxed));
    w.endObject();
  }

  // Returns false when no request was recorded yet.
  bool writeLast(std::string& out) {
    std::shared_ptr<const Request> request;
    {
      std::lock_guard lock(last_mutex_);
      request = last_;
    }
    if (!request) return false;
    // Repeated headers are joined with ", " so that the object keeps one key per name.
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& field : *request) {
      std::string name(field.name_string());
      for (char& ch : name) {
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      }
      auto it = std::find_if(headers.begin(), headers.end(),
                             [&](const auto& header) { return header.first == name; });
      if (it == headers.end()) {
        headers.emplace_back(std::move(name), std::string(field.value()));
      } else {
        it->second.append(", ").append(field.value());
      }
    }
    JsonWriter w(out);
    w.beginObject();
    w.key("method").value(request->method_string());
    w.key("target").value(request->target());
    w.key("headers").beginObject();
    for (const auto& [name, value] : headers) w.key(name).value(value);
    w.endObject();
    w.key("body").value(request->body());
    w.endObject();
    return true;
  }

 private:
  static constexpr auto kRelaxed = std::memory_order_relaxed;

  static bool contains(const std::vector<std::string>& list, std::string_view key) {
    return std::find(list.begin(), list.end(), key) != list.end();
  }
  int findKey(std::string_view key) const {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] == key) return static_cast<int>(i);
    }
    return -1;
  }

  const MockOptions& options_;
  std::vector<std::string> keys_;  // configured keys, each once
  std::unique_ptr<std::atomic<uint64_t>[]> key_counts_;
  std::atomic<uint64_t> unauthorized_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> draws_{0};
  std::atomic<uint64_t> sequence_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> streams_started_{0};
  std::atomic<uint64_t> streams_completed_{0};
  std::atomic<uint64_t> streams_cancelled_{0};
  std::atomic<int64_t> active_streams_{0};
  std::atomic<int> health_status_{200};
  std::mutex last_mutex_;
  std::shared_ptr<const Request> last_;
};

enum class Route { kChat, kCompletion, kMessages, kEmbeddings, kRerank, kModels, kGenerate };

struct RouteMatch {
  Route route;
  std::string_view deployment;  // Azure paths: the deployment named in the path
};

std::optional<RouteMatch> findRoute(std::string_view path) {
  if (path == "/v1/chat/completions" || path == "/inference/chat/completions") {
    return RouteMatch{Route::kChat, {}};
  }
  if (path == "/v1/completions") return RouteMatch{Route::kCompletion, {}};
  if (path == "/v1/messages") return RouteMatch{Route::kMessages, {}};
  if (path == "/v1/embeddings" || path == "/inference/embeddings") {
    return RouteMatch{Route::kEmbeddings, {}};
  }
  if (path == "/v1/rerank" || path == "/rerank" || path == "/v2/rerank") {
    return RouteMatch{Route::kRerank, {}};
  }
  if (path == "/v1/models") return RouteMatch{Route::kModels, {}};
  if (path == "/generate") return RouteMatch{Route::kGenerate, {}};
  static constexpr std::string_view kAzurePrefix = "/openai/deployments/";
  if (path.starts_with(kAzurePrefix)) {
    const auto rest = path.substr(kAzurePrefix.size());
    const auto slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
    const auto deployment = rest.substr(0, slash);
    const auto api = rest.substr(slash);
    if (api == "/chat/completions") return RouteMatch{Route::kChat, deployment};
    if (api == "/completions") return RouteMatch{Route::kCompletion, deployment};
    if (api == "/embeddings") return RouteMatch{Route::kEmbeddings, deployment};
  }
  return std::nullopt;
}

// True when the query string of `target` has a non-empty `name` parameter.
bool hasQueryParameter(std::string_view target, std::string_view name) {
  const auto question = target.find('?');
  if (question == std::string_view::npos) return false;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto part = query.substr(0, amp);
    if (part.size() > name.size() + 1 && part.starts_with(name) && part[name.size()] == '=') {
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

// Reads a non-negative integer header; nullopt when absent, -1 when malformed.
std::optional<int64_t> integerHeader(const Request& request, std::string_view name) {
  auto it = request.find(name);
  if (it == request.end()) return std::nullopt;
  const std::string_view text = it->value();
  int64_t number = -1;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size() || number < 0) return -1;
  return number;
}

bool isParseError(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// Disconnect watch of one stream: the socket-wait handler marks the socket readable and cuts the
// token delay short.
struct PeerWatch {
  explicit PeerWatch(const Executor& executor) : delay(executor) {}
  Timer delay;
  bool readable = false;
  bool settled = false;  // the readable socket was inspected
};

Socket& tcpOf(Socket& socket) { return socket; }
Socket& tcpOf(TlsStream& stream) { return stream.next_layer(); }

// One client connection: reads requests one after another and answers each in turn. `Stream` is
// the TCP socket, or a TLS stream over it.
template <typename Stream>
class Connection {
 public:
  Connection(Stream stream, MockState& state)
      : socket_(std::move(stream)), state_(state), timer_(socket_.get_executor()) {}

  awaitable<void> run() {
    boost::system::error_code ec;
    tcp().set_option(tcp::no_delay(true), ec);
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(kMaxBodyBytes);
      request_id_ = {};
      keep_alive_ = false;
      chunked_ = true;

      auto [read_ec, read_bytes] =
          co_await http::async_read_header(socket_, buffer_, parser, kNoThrow);
      if (!read_ec && !parser.is_done()) {
        auto& header = parser.get();
        if (beast::iequals(header[http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [write_ec, written] =
              co_await asio::async_write(socket_, asio::buffer(kContinue), kNoThrow);
          if (write_ec) co_return;
        }
        if (auto length = parser.content_length()) header.body().reserve(*length + kParsePadding);
        std::tie(read_ec, read_bytes) =
            co_await http::async_read(socket_, buffer_, parser, kNoThrow);
      }
      if (read_ec) {
        if (read_ec == http::error::body_limit) {
          co_await failAndClose(413, "request body exceeds 64 MiB");
        } else if (read_ec == http::error::header_limit) {
          co_await failAndClose(431, "request headers exceed 64 KiB");
        } else if (isParseError(read_ec)) {
          co_await failAndClose(400, "malformed HTTP request");
        }
        co_return;
      }

      auto request = std::make_shared<Request>(parser.release());
      reserveParsePadding(request->body());
      request_id_ = (*request)["x-request-id"];
      keep_alive_ = request->keep_alive();
      chunked_ = request->version() >= 11;
      if (!co_await handle(std::move(request)) || !keep_alive_) break;
    }
    tcp().shutdown(tcp::socket::shutdown_send, ec);
    tcp().close(ec);
  }

 private:
  Socket& tcp() { return tcpOf(socket_); }

  // Answers one request; false when the connection must be closed.
  awaitable<bool> handle(std::shared_ptr<const Request> request) {
    const Request& req = *request;
    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    if (path.starts_with("/mock/")) co_return co_await handleControl(req, path);
    if (path == "/health") co_return co_await handleHealth(req);

    state_.countRequest();
    state_.recordLast(request);

    const auto match = findRoute(path);
    const std::optional<Route> route = match ? std::optional<Route>(match->route) : std::nullopt;
    const Dialect dialect =
        route == Route::kMessages ? Dialect::kAnthropicMessages : Dialect::kOpenAiChat;
    // Messages are named before co_await (GCC 12 mishandles some temporaries in coroutine calls).
    switch (state_.authenticate(req)) {
      case MockState::Auth::kOk:
        break;
      case MockState::Auth::kUnauthorized:
        co_return co_await respondError(dialect, 401, "invalid or missing API key");
      case MockState::Auth::kRejected:
        co_return co_await respondError(dialect, 429, "rate limit exceeded for this API key");
    }
    if (!route) {
      const std::string message = "unknown path " + std::string(path);
      co_return co_await respondError(dialect, 404, message);
    }
    const auto expected_method = route == Route::kModels ? http::verb::get : http::verb::post;
    if (req.method() != expected_method) {
      const std::string message = "use " + std::string(http::to_string(expected_method));
      co_return co_await respondError(dialect, 405, message);
    }
    if (route == Route::kMessages && req["anthropic-version"].empty()) {
      co_return co_await respondError(dialect, 400, "anthropic-version: header is required");
    }
    if (!match->deployment.empty() && !hasQueryParameter(req.target(), "api-version")) {
      co_return co_await respondError(dialect, 400,
                                      "missing required query parameter: api-version");
    }

    const MockOptions& options = state_.options();
    int64_t tokens = options.tokens;
    int64_t delay_ms = options.token_delay_ms;
    int64_t latency_ms = options.latency_ms;
    int64_t cached_tokens = 0;
    std::optional<int64_t> status;
    struct Override {
      std::string_view header;
      int64_t* target;
    };
    for (auto [header, target] :
         {Override{"x-mock-tokens", &tokens}, Override{"x-mock-token-delay-ms", &delay_ms},
          Override{"x-mock-latency-ms", &latency_ms},
          Override{"x-mock-cached-tokens", &cached_tokens}}) {
      if (auto value = integerHeader(req, header)) {
        if (*value < 0 || *value > 100'000'000) {
          const std::string message = std::string(header) + " must be an integer in [0, 100000000]";
          co_return co_await respondError(dialect, 400, message);
        }
        *target = *value;
      }
    }
    if (auto value = integerHeader(req, "x-mock-status")) {
      if (*value < 400 || *value > 599) {
        co_return co_await respondError(dialect, 400, "x-mock-status must be in [400, 599]");
      }
      status = *value;
    }

    if (latency_ms > 0) {
      timer_.expires_after(std::chrono::milliseconds(latency_ms));
      auto [ec] = co_await timer_.async_wait(kNoThrow);
      if (ec) co_return false;
    }
    if (status) {
      co_return co_await respondError(dialect, static_cast<int>(*status),
                                      "status forced by x-mock-status");
    }
    if (state_.shouldFail()) {
      co_return co_await respondError(dialect, 500, "mock failure injected by --fail-rate");
    }

    body_.clear();
    switch (*route) {
      case Route::kModels:
        writeModelsBody(body_);
        co_return co_await respond(200, "application/json");
      case Route::kEmbeddings: {
        EmbeddingRequest embedding;
        auto message = parseEmbeddingRequest(req.body(), embedding);
        if (!message.empty()) co_return co_await respondError(dialect, 400, message);
        writeEmbeddingBody(embedding, body_);
        co_return co_await respond(200, "application/json");
      }
      case Route::kRerank: {
        RerankRequest rerank;
        auto message = parseRerankRequest(req.body(), rerank);
        if (!message.empty()) co_return co_await respondError(dialect, 400, message);
        writeRerankBody(rerank, state_.nextSequence(), body_);
        co_return co_await respond(200, "application/json");
      }
      case Route::kChat:
      case Route::kCompletion:
      case Route::kMessages:
      case Route::kGenerate:
        break;
    }

    GenerationRequest generation;
    auto message = parseGenerationRequest(req.body(), generation);
    if (!message.empty()) co_return co_await respondError(dialect, 400, message);
    if (generation.model.empty() && !match->deployment.empty()) {
      generation.model.assign(match->deployment);  // Azure: the deployment names the model
    }
    const Dialect answer_dialect = route == Route::kChat         ? Dialect::kOpenAiChat
                                   : route == Route::kCompletion ? Dialect::kOpenAiCompletion
                                   : route == Route::kGenerate   ? Dialect::kSglangGenerate
                                                                 : Dialect::kAnthropicMessages;
    std::string_view tool_name = req["x-mock-tool"];
    if (tool_name.empty() && generation.has_tools && generation.last_user_mentions_weather) {
      tool_name = generation.first_tool_name.empty() ? std::string_view("tool")
                                                     : std::string_view(generation.first_tool_name);
    }
    const int64_t prompt_tokens = std::max<int64_t>(1, static_cast<int64_t>(req.body().size() / 4));
    const Completion completion =
        planCompletion(answer_dialect, generation, static_cast<int>(tokens), state_.nextSequence(),
                       prompt_tokens, std::time(nullptr), tool_name, cached_tokens);
    if (!generation.stream) {
      writeCompletionBody(completion, body_);
      co_return co_await respond(200, "application/json");
    }
    co_return co_await stream(completion, delay_ms);
  }

  awaitable<bool> handleControl(const Request& req, std::string_view path) {
    body_.clear();
    if (path == "/mock/stats" && req.method() == http::verb::get) {
      state_.writeStats(body_);
    } else if (path == "/mock/last" && req.method() == http::verb::get) {
      if (!state_.writeLast(body_)) {
        co_return co_await respondError(Dialect::kOpenAiChat, 404, "no request received yet");
      }
    } else if (path == "/mock/reset" && req.method() == http::verb::post) {
      state_.reset();
      state_.writeStats(body_);
    } else if (path == "/mock/health" && req.method() == http::verb::post) {
      int status = 0;
      auto message = parseHealthStatus(req.body(), status);
      if (!message.empty()) co_return co_await respondError(Dialect::kOpenAiChat, 400, message);
      state_.setHealthStatus(status);
      JsonWriter(body_).beginObject().key("status").value(status).endObject();
    } else {
      const std::string message = "unknown mock endpoint " + std::string(path);
      co_return co_await respondError(Dialect::kOpenAiChat, 404, message);
    }
    co_return co_await respond(200, "application/json");
  }

  // Like the /mock/ endpoints: not counted, not recorded, no key needed, not delayed.
  awaitable<bool> handleHealth(const Request& req) {
    if (req.method() != http::verb::get) {
      co_return co_await respondError(Dialect::kOpenAiChat, 405, "use GET");
    }
    const int status = state_.healthStatus();
    body_.clear();
    if (status != 204 && status != 304) writeHealthBody(status, body_);
    co_return co_await respond(status, "application/json");
  }

  void writeHead(int status, std::string_view content_type, std::optional<size_t> length) {
    head_.clear();
    head_ += "HTTP/1.1 ";
    head_ += std::to_string(status);
    head_ += ' ';
    const std::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
    head_ += reason == "<unknown-status>" ? std::string_view("Status") : reason;
    head_ += "\r\nContent-Type: ";
    head_ += content_type;
    if (length) {
      // 204 and 304 answers have no body and must not announce one.
      if (status != 204 && status != 304) {
        head_ += "\r\nContent-Length: ";
        head_ += std::to_string(*length);
      }
    } else {
      head_ += "\r\nCache-Control: no-cache";
      if (chunked_) head_ += "\r\nTransfer-Encoding: chunked";
    }
    if (!request_id_.empty()) {
      head_ += "\r\nx-request-id: ";
      head_ += request_id_;
    }
    if (!keep_alive_) head_ += "\r\nConnection: close";
    head_ += "\r\n\r\n";
  }

  // Sends body_ as the whole answer.
  awaitable<bool> respond(int status, std::string_view content_type) {
    writeHead(status, content_type, body_.size());
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(body_)};
    auto [ec, written] = co_await asio::async_write(socket_, buffers, kNoThrow);
    co_return !ec;
  }

  awaitable<bool> respondError(Dialect dialect, int status, std::string_view message) {
    body_.clear();
    writeErrorBody(dialect, status, message, body_);
    co_return co_await respond(status, "application/json");
  }

  // Answers a request that could not be read, then closes without resetting the connection so
  // that the client still sees the answer.
  awaitable<void> failAndClose(int status, std::string_view message) {
    keep_alive_ = false;
    if (!co_await respondError(Dialect::kOpenAiChat, status, message)) co_return;
    boost::system::error_code ec;
    tcp().shutdown(tcp::socket::shutdown_send, ec);
    using namespace asio::experimental::awaitable_operators;  // rare path: cost does not matter
    co_await (drain() || sleep(std::chrono::seconds(2)));
    tcp().close(ec);
  }

  awaitable<void> drain() {
    std::array<char, 16384> scratch{};
    for (size_t total = 0; total < 2 * kMaxBodyBytes;) {
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(scratch), kNoThrow);
      if (ec) co_return;
      total += n;
    }
  }

  awaitable<void> sleep(std::chrono::steady_clock::duration duration) {
    Timer timer(socket_.get_executor());
    timer.expires_after(duration);
    co_await timer.async_wait(kNoThrow);
  }

  // Streams the answer, one write per event; a client that goes away cancels it.
  awaitable<bool> stream(const Completion& completion, int64_t delay_ms) {
    if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the end of the stream is the close
    writeHead(200, "text/event-stream", std::nullopt);
    state_.streamStarted();
    bool completed = false;
    auto [ec, written] = co_await asio::async_write(socket_, asio::buffer(head_), kNoThrow);
    if (!ec) {
      // A socket wait rather than a parallel coroutine: the awaitable `||` costs far more per
      // stream. Its handler may outlive this frame, hence the shared watch.
      auto watch = std::make_shared<PeerWatch>(socket_.get_executor());
      tcp().async_wait(tcp::socket::wait_read, [watch](const boost::system::error_code& wait_ec) {
        if (wait_ec) return;
        watch->readable = true;
        watch->delay.cancel();
      });
      StreamEvents events(completion);
      completed = co_await produce(events, *watch, delay_ms);
      boost::system::error_code ignored;
      tcp().cancel(ignored);  // drops the wait if still pending; nothing else is in flight
    }
    state_.streamEnded(completed);
    co_return completed;
  }

  // Writes the events; false when the client went away.
  awaitable<bool> produce(StreamEvents& events, PeerWatch& watch, int64_t delay_ms) {
    bool is_token = false;
    char size_line[24];
    static constexpr std::string_view kCrLf = "\r\n";
    while (events.next(event_, is_token)) {
      if (is_token && delay_ms > 0) {
        if (peerGone(watch)) co_return false;
        watch.delay.expires_after(std::chrono::milliseconds(delay_ms));
        co_await watch.delay.async_wait(kNoThrow);  // cut short when the client goes away
      }
      if (peerGone(watch)) co_return false;
      size_t size_length = 0;
      if (chunked_) {
        auto result = std::to_chars(size_line, size_line + 16, event_.size(), 16);
        result.ptr[0] = '\r';
        result.ptr[1] = '\n';
        size_length = result.ptr + 2 - size_line;
      }
      std::array<asio::const_buffer, 3> buffers{
          asio::buffer(size_line, size_length), asio::buffer(event_),
          asio::buffer(kCrLf.data(), chunked_ ? kCrLf.size() : 0)};
      auto [ec, written] = co_await asio::async_write(socket_, buffers, kNoThrow);
      if (ec) co_return false;
    }
    if (chunked_) {
      static constexpr std::string_view kLastChunk = "0\r\n\r\n";
      auto [ec, written] = co_await asio::async_write(socket_, asio::buffer(kLastChunk), kNoThrow);
      if (ec) co_return false;
    }
    co_return true;
  }

  // After the watch fired: true if the client closed or reset the connection. A client that only
  // half-closes (shuts down its sending side) looks the same and is cancelled too. Bytes instead
  // mean a pipelined request: they stay unread and watching stops.
  bool peerGone(PeerWatch& watch) {
    if (!watch.readable || watch.settled) return false;
    watch.settled = true;
    char byte;
    boost::system::error_code ec;
    const size_t n = tcp().receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
    return ec || n == 0;
  }

  Stream socket_;  // the socket, or TLS over it
  MockState& state_;
  beast::flat_buffer buffer_;
  Timer timer_;  // latency before the headers
  std::string head_;
  std::string body_;
  std::string event_;  // the SSE event being written, reused across tokens
  std::string_view request_id_;
  bool keep_alive_ = false;
  bool chunked_ = true;
};

awaitable<void> serveConnection(Socket socket, MockState& state) {
  Connection<Socket> connection(std::move(socket), state);
  co_await connection.run();
}

// The TLS handshake gets 10 s; a client that does not finish it is dropped.
awaitable<void> serveTlsConnection(Socket socket, asio::ssl::context& tls, MockState& state) {
  TlsStream stream(std::move(socket), tls);
  auto deadline = std::make_shared<Timer>(stream.get_executor());
  auto handshaking = std::make_shared<bool>(true);
  deadline->expires_after(std::chrono::seconds(10));
  deadline->async_wait(
      [deadline, handshaking, &tcp = stream.next_layer()](const boost::system::error_code& ec) {
        // `tcp` is only touched while the handshake is pending, so while this frame is suspended.
        if (!ec && *handshaking) {
          boost::system::error_code ignored;
          tcp.close(ignored);
        }
      });
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kNoThrow);
  *handshaking = false;
  deadline->cancel();
  if (ec) {
    boost::system::error_code ignored;
    stream.next_layer().close(ignored);
    co_return;
  }
  Connection<TlsStream> connection(std::move(stream), state);
  co_await connection.run();
}

// Accepts on one thread and hands connections round-robin to the worker contexts.
awaitable<void> acceptLoop(tcp::acceptor& acceptor,
                           std::vector<std::unique_ptr<asio::io_context>>& contexts,
                           MockState& state, asio::ssl::context* tls) {
  size_t next = 0;
  Timer backoff(contexts[0]->get_executor());  // the acceptor's context
  while (acceptor.is_open()) {
    asio::io_context& context = *contexts[next++ % contexts.size()];
    auto [ec, socket] = co_await acceptor.async_accept(context, kNoThrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Typically out of file descriptors: back off instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(10));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    if (tls) {
      asio::co_spawn(context, serveTlsConnection(std::move(socket), *tls, state), asio::detached);
    } else {
      asio::co_spawn(context, serveConnection(std::move(socket), state), asio::detached);
    }
  }
}

// Splits "host:port" ("[::1]:port" for IPv6, ":port" for every interface).
std::optional<tcp::endpoint> resolveListen(asio::io_context& context, const std::string& listen,
                                           std::string& error) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    error = "expected host:port";
    return std::nullopt;
  }
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  tcp::resolver resolver(context);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, port, tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    error = ec ? ec.message() : "no address";
    return std::nullopt;
  }
  return results.begin()->endpoint();
}

// 1000+ concurrent streams need more descriptors than the usual soft limit of 1024.
void raiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int runMock(const MockOptions& given) {
  raiseDescriptorLimit();
  MockOptions options = given;
  for (auto* list : {&options.require_keys, &options.reject_keys}) {
    std::erase(*list, std::string());
  }
  MockState state(options);

  std::unique_ptr<asio::ssl::context> tls;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    boost::system::error_code tls_ec;
    tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                     tls_ec);
    tls->use_certificate_chain_file(options.tls_cert, tls_ec);
    if (tls_ec) {
      std::fprintf(stderr, "sluice mock: cannot load --tls-cert %s: %s\n", options.tls_cert.c_str(),
                   tls_ec.message().c_str());
      return 2;
    }
    tls->use_private_key_file(options.tls_key, asio::ssl::context::pem, tls_ec);
    if (tls_ec) {
      std::fprintf(stderr, "sluice mock: cannot load --tls-key %s: %s\n", options.tls_key.c_str(),
                   tls_ec.message().c_str());
      return 2;
    }
  }
  const int threads = std::max(1, options.threads);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  contexts.reserve(threads);
  for (int i = 0; i < threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));

  std::string error;
  const auto endpoint = resolveListen(*contexts[0], options.listen, error);
  if (!endpoint) {
    std::fprintf(stderr, "sluice mock: cannot listen on %s: %s\n", options.listen.c_str(),
                 error.c_str());
    return 2;
  }
  tcp::acceptor acceptor(*contexts[0]);
  boost::system::error_code ec;
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "sluice mock: cannot listen on %s: %s\n", options.listen.c_str(),
                 ec.message().c_str());
    return 1;
  }
  const auto bound = acceptor.local_endpoint(ec);
  std::printf("sluice mock listening on %s:%u (%d threads%s)\n",
              bound.address().to_string().c_str(), bound.port(), threads, tls ? ", TLS" : "");
  std::fflush(stdout);

  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& wait_ec, int) {
    if (wait_ec) return;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (auto& context : contexts) context->stop();
  });
  asio::co_spawn(*contexts[0], acceptLoop(acceptor, contexts, state, tls.get()), asio::detached);

  std::vector<asio::executor_work_guard<Executor>> guards;
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) {
    guards.push_back(asio::make_work_guard(*contexts[i]));
    workers.emplace_back([&context = *contexts[i]] { context.run(); });
  }
  contexts[0]->run();
  for (auto& worker : workers) worker.join();
  return 0;
}

}  // namespace sluice::mock
