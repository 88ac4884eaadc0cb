// `sluice mock`: a deterministic OpenAI/Anthropic upstream for tests and benchmarks.
//
// API endpoints (answers are "tok0 tok1 ... tok{n-1} ", see appendTokenText):
//   POST /v1/chat/completions, /v1/completions, /v1/messages   (stream: true answers SSE)
//   POST /v1/embeddings, /v1/rerank (also /rerank, /v2/rerank);  GET /v1/models
// Test support endpoints (not counted, not recorded, not delayed):
//   GET  /mock/stats  {"requests","streams_started","streams_completed","streams_cancelled",
//                      "active_streams"}
//   GET  /mock/last   {"method","target","headers":{lowercased name: value},"body": raw text}
//                     of the last non-/mock request; 404 before the first one
//   POST /mock/reset  zeroes the counters (not active_streams) and forgets the last request
// Request headers that shape one answer:
//   x-mock-tokens: N          answer length instead of --tokens (max_tokens still caps it)
//   x-mock-token-delay-ms: N  pause before each streamed token instead of --token-delay-ms
//   x-mock-latency-ms: N      pause before the response headers instead of --latency-ms
//   x-mock-status: NNN        answer that status (400-599) with an error body
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
  explicit MockState(const MockOptions& options) : options_(options) {}

  const MockOptions& options() const { return options_; }

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

  void reset() {
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

  const MockOptions& options_;
  std::atomic<uint64_t> draws_{0};
  std::atomic<uint64_t> sequence_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> streams_started_{0};
  std::atomic<uint64_t> streams_completed_{0};
  std::atomic<uint64_t> streams_cancelled_{0};
  std::atomic<int64_t> active_streams_{0};
  std::mutex last_mutex_;
  std::shared_ptr<const Request> last_;
};

enum class Route { kChat, kCompletion, kMessages, kEmbeddings, kRerank, kModels };

std::optional<Route> findRoute(std::string_view path) {
  if (path == "/v1/chat/completions") return Route::kChat;
  if (path == "/v1/completions") return Route::kCompletion;
  if (path == "/v1/messages") return Route::kMessages;
  if (path == "/v1/embeddings") return Route::kEmbeddings;
  if (path == "/v1/rerank" || path == "/rerank" || path == "/v2/rerank") return Route::kRerank;
  if (path == "/v1/models") return Route::kModels;
  return std::nullopt;
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

// One client connection: reads requests one after another and answers each in turn.
class Connection {
 public:
  Connection(Socket socket, MockState& state)
      : socket_(std::move(socket)), state_(state), timer_(socket_.get_executor()) {}

  awaitable<void> run() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
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
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
  }

 private:
  // Answers one request; false when the connection must be closed.
  awaitable<bool> handle(std::shared_ptr<const Request> request) {
    const Request& req = *request;
    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    if (path.starts_with("/mock/")) co_return co_await handleControl(req, path);

    state_.countRequest();
    state_.recordLast(request);

    const auto route = findRoute(path);
    const Dialect dialect =
        route == Route::kMessages ? Dialect::kAnthropicMessages : Dialect::kOpenAiChat;
    // Messages are named before co_await (GCC 12 mishandles some temporaries in coroutine calls).
    if (!route) {
      const std::string message = "unknown path " + std::string(path);
      co_return co_await respondError(dialect, 404, message);
    }
    const auto expected_method = route == Route::kModels ? http::verb::get : http::verb::post;
    if (req.method() != expected_method) {
      const std::string message = "use " + std::string(http::to_string(expected_method));
      co_return co_await respondError(dialect, 405, message);
    }

    const MockOptions& options = state_.options();
    int64_t tokens = options.tokens;
    int64_t delay_ms = options.token_delay_ms;
    int64_t latency_ms = options.latency_ms;
    std::optional<int64_t> status;
    struct Override {
      std::string_view header;
      int64_t* target;
    };
    for (auto [header, target] :
         {Override{"x-mock-tokens", &tokens}, Override{"x-mock-token-delay-ms", &delay_ms},
          Override{"x-mock-latency-ms", &latency_ms}}) {
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
        break;
    }

    GenerationRequest generation;
    auto message = parseGenerationRequest(req.body(), generation);
    if (!message.empty()) co_return co_await respondError(dialect, 400, message);
    const Dialect answer_dialect = route == Route::kChat         ? Dialect::kOpenAiChat
                                   : route == Route::kCompletion ? Dialect::kOpenAiCompletion
                                                                 : Dialect::kAnthropicMessages;
    const int64_t prompt_tokens = std::max<int64_t>(1, static_cast<int64_t>(req.body().size() / 4));
    const Completion completion =
        planCompletion(answer_dialect, generation, static_cast<int>(tokens), state_.nextSequence(),
                       prompt_tokens, std::time(nullptr));
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
    } else {
      const std::string message = "unknown mock endpoint " + std::string(path);
      co_return co_await respondError(Dialect::kOpenAiChat, 404, message);
    }
    co_return co_await respond(200, "application/json");
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
      head_ += "\r\nContent-Length: ";
      head_ += std::to_string(*length);
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
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    using namespace asio::experimental::awaitable_operators;  // rare path: cost does not matter
    co_await (drain() || sleep(std::chrono::seconds(2)));
    socket_.close(ec);
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
      socket_.async_wait(tcp::socket::wait_read, [watch](const boost::system::error_code& wait_ec) {
        if (wait_ec) return;
        watch->readable = true;
        watch->delay.cancel();
      });
      StreamEvents events(completion);
      completed = co_await produce(events, *watch, delay_ms);
      boost::system::error_code ignored;
      socket_.cancel(ignored);  // drops the wait if still pending; nothing else is in flight
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
    const size_t n = socket_.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
    return ec || n == 0;
  }

  Socket socket_;
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
  Connection connection(std::move(socket), state);
  co_await connection.run();
}

// Accepts on one thread and hands connections round-robin to the worker contexts.
awaitable<void> acceptLoop(tcp::acceptor& acceptor,
                           std::vector<std::unique_ptr<asio::io_context>>& contexts,
                           MockState& state) {
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
    asio::co_spawn(context, serveConnection(std::move(socket), state), asio::detached);
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

int runMock(const MockOptions& options) {
  raiseDescriptorLimit();
  MockState state(options);
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
  std::printf("sluice mock listening on %s:%u (%d threads)\n", bound.address().to_string().c_str(),
              bound.port(), threads);
  std::fflush(stdout);

  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& wait_ec, int) {
    if (wait_ec) return;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (auto& context : contexts) context->stop();
  });
  asio::co_spawn(*contexts[0], acceptLoop(acceptor, contexts, state), asio::detached);

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
