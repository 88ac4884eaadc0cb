#include "admin/admin_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <exception>
#include <optional>
#include <unordered_set>

#include "admin/admin_router.h"
#include "admin/bearer_token.h"
#include "common/json_writer.h"
#include "http/asio.h"

namespace sluice::admin {

using namespace http;

namespace {

constexpr uint32_t kMaxHeaderBytes = 16u << 10;
constexpr auto kReadTimeout = std::chrono::seconds(10);  // a whole request, or an idle gap
constexpr auto kWriteTimeout = std::chrono::seconds(10);
// After an error that closes the connection, unread request bytes are drained for this long so
// that closing does not reset the connection before the client has read the answer.
constexpr auto kDrainTime = std::chrono::seconds(2);
// The admin API serves a few operators and scripts; this keeps a flood of connections from
// taking descriptors and control-thread time from the gateway.
constexpr size_t kMaxConnections = 64;

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// An answer with the headers only the listener sets.
struct Answer {
  AdminResponse response;
  std::string allow;       // 405: the Allow header
  bool challenge = false;  // 401: www-authenticate: Bearer
  bool close = false;      // close the connection after writing
};

Answer errorAnswer(int status, std::string_view message, std::string_view type) {
  Answer answer;
  answer.response = errorResponse(status, message, type);
  return answer;
}

// A read error that deserves an answer before closing; nullopt for a client that went away or
// stayed silent.
std::optional<Answer> readFailure(const beast::error_code& ec, uint64_t max_body_bytes) {
  if (ec == bhttp::error::header_limit) {
    return errorAnswer(431, fmt::format("request headers exceed {} bytes", kMaxHeaderBytes),
                       "invalid_request_error");
  }
  if (ec == bhttp::error::body_limit) {
    return errorAnswer(413, fmt::format("request body exceeds {} bytes", max_body_bytes),
                       "invalid_request_error");
  }
  const bool parse_error =
      ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
  if (parse_error) {
    return errorAnswer(400, fmt::format("malformed HTTP request: {}", ec.message()),
                       "invalid_request_error");
  }
  return std::nullopt;
}

Response toResponse(Answer& answer, unsigned version, bool keep_alive) {
  Response response;
  response.version(version);
  response.result(static_cast<unsigned>(answer.response.status));
  response.set(bhttp::field::content_type, answer.response.content_type);
  response.set(bhttp::field::cache_control, "no-store");
  if (answer.challenge) response.set(bhttp::field::www_authenticate, "Bearer");
  if (!answer.allow.empty()) response.set(bhttp::field::allow, answer.allow);
  response.body() = std::move(answer.response.body);
  response.keep_alive(keep_alive && !answer.close);
  // 204 and 304 have no body and must not announce one (prepare_payload would send length 0).
  if (response.result() != bhttp::status::no_content &&
      response.result() != bhttp::status::not_modified) {
    response.prepare_payload();
  }
  return response;
}

}  // namespace

AdminResponse errorResponse(int status, std::string_view message, std::string_view type) {
  AdminResponse response;
  response.status = status;
  JsonWriter json(response.body);
  json.beginObject().key("error").beginObject();
  json.key("message").value(message);
  json.key("type").value(type);
  json.endObject().endObject();
  return response;
}

class AdminServer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, std::string_view token, uint64_t max_body_bytes)
      : io_(io), token_(token), max_body_bytes_(max_body_bytes), acceptor_(io) {}

  void handle(std::string method, std::string path_prefix, AdminHandler handler) {
    router_.add(std::move(method), std::move(path_prefix), std::move(handler));
  }

  tl::expected<void, std::string> listen(const std::string& host, uint16_t port) {
    if (token_.empty()) {
      return tl::unexpected(std::string(
          "the admin token is empty: the admin listener needs a token to check requests against"));
    }
    if (acceptor_.is_open()) {
      return tl::unexpected(fmt::format("the admin listener already listens on port {}", port_));
    }
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return tl::unexpected(fmt::format("admin listen: \"{}\" is not an IP address", host));
    const tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) port_ = acceptor_.local_endpoint(ec).port();
    if (ec) {
      beast::error_code ignored;
      acceptor_.close(ignored);
      return tl::unexpected(
          fmt::format("cannot listen for the admin API on {}:{}: {}", host, port, ec.message()));
    }
    asio::co_spawn(io_, accept(shared_from_this()), asio::detached);
    return {};
  }

  uint16_t boundPort() const { return port_; }

  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto* stream : connections_) stream->socket().close(ec);
  }

 private:
  // `self` keeps this object alive while the loop runs.
  Task<void> accept(std::shared_ptr<Impl> self) {
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        spdlog::warn("admin accept: {}", ec.message());
        asio::steady_timer pause(io_, std::chrono::milliseconds(50));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (connections_.size() >= kMaxConnections) {
        spdlog::warn("admin: {} connections are open, refusing another", connections_.size());
        socket.close(ec);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io_, serve(self, std::move(socket)), asio::detached);
    }
  }

  Task<void> serve(std::shared_ptr<Impl> self, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    connections_.insert(&stream);
    try {
      co_await serveRequests(stream);
    } catch (const std::exception& e) {
      spdlog::warn("admin connection: {}", e.what());
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
    connections_.erase(&stream);
  }

  Task<void> serveRequests(beast::tcp_stream& stream) {
    beast::flat_buffer buffer;
    while (acceptor_.is_open()) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(max_body_bytes_);

      stream.expires_after(kReadTimeout);
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kNoThrow);
      if (ec) {
        if (auto answer = readFailure(ec, max_body_bytes_)) {
          co_await answerAndClose(stream, *answer, 11);
        }
        co_return;
      }
      Request& request = parser.get();
      const std::string_view credentials = bearerCredentials(request[bhttp::field::authorization]);
      const bool authorized = token_.matches(credentials);
      // The body of a client without the token is never read (nor buffered): it is answered
      // at once and the connection closed.
      if (!parser.is_done() && !authorized) {
        Answer answer = unauthorized(credentials);
        co_await answerAndClose(stream, answer, request.version());
        co_return;
      }
      if (!parser.is_done() && beast::iequals(request[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> go_on(bhttp::status::continue_, request.version());
        std::tie(ec, n) = co_await bhttp::async_write(stream, go_on, kNoThrow);
        if (ec) co_return;
      }
      if (!parser.is_done()) {
        std::tie(ec, n) = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
        if (ec) {
          if (auto answer = readFailure(ec, max_body_bytes_)) {
            co_await answerAndClose(stream, *answer, request.version());
          }
          co_return;
        }
      }

      Answer answer = authorized ? dispatch(request) : unauthorized(credentials);
      Response response = toResponse(answer, request.version(), request.keep_alive());
      stream.expires_after(kWriteTimeout);
      std::tie(ec, n) = co_await bhttp::async_write(stream, response, kNoThrow);
      if (ec || !response.keep_alive()) co_return;
    }
  }

  static Answer unauthorized(std::string_view credentials) {
    Answer answer =
        errorAnswer(401,
                    credentials.empty() ? "missing admin token: send Authorization: Bearer <token>"
                                        : "invalid admin token",
                    "authentication_error");
    answer.challenge = true;
    return answer;
  }

  Answer dispatch(Request& request) {
    const std::string_view target = request.target();
    if (target.empty() || target.front() != '/') {
      Answer answer = errorAnswer(400, "the request target must be a path starting with '/'",
                                  "invalid_request_error");
      answer.close = true;
      return answer;
    }
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view method = request.method_string();
    const auto match = router_.find(method, path);
    if (!match.handler && match.allow.empty()) {
      return errorAnswer(404, fmt::format("no admin endpoint at {}", path),
                         "invalid_request_error");
    }
    if (!match.handler) {
      Answer answer = errorAnswer(
          405, fmt::format("{} is not allowed on {}; use {}", method, path, match.allow),
          "invalid_request_error");
      answer.allow = match.allow;
      return answer;
    }
    AdminRequest admin;
    admin.method = method;
    admin.path = path;
    if (question != std::string_view::npos) admin.query = target.substr(question + 1);
    admin.body = std::move(request.body());
    Answer answer;
    try {
      answer.response = (*match.handler)(admin);
    } catch (const std::exception& e) {
      spdlog::error("admin {} {}: {}", admin.method, admin.path, e.what());
      answer = errorAnswer(500, fmt::format("internal error: {}", e.what()), "server_error");
    }
    const int status = answer.response.status;
    if (status < 200 || status > 599) {
      spdlog::error("admin {} {}: the handler answered status {}", admin.method, admin.path,
                    status);
      answer = errorAnswer(500, fmt::format("internal error: invalid status {}", status),
                           "server_error");
    } else if (status == 204 || status == 304) {
      answer.response.body.clear();  // these answers carry no body
    }
    return answer;
  }

  // Writes `answer` with `Connection: close`, then closes without resetting the connection.
  Task<void> answerAndClose(beast::tcp_stream& stream, Answer& answer, unsigned version) {
    Response response = toResponse(answer, version, false);
    stream.expires_after(kWriteTimeout);
    auto [ec, n] = co_await bhttp::async_write(stream, response, kNoThrow);
    if (ec) co_return;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(kDrainTime);
    std::array<char, 16384> scratch{};
    for (size_t total = 0; total < 2 * max_body_bytes_; total += n) {
      std::tie(ec, n) = co_await stream.async_read_some(asio::buffer(scratch), kNoThrow);
      if (ec) break;
    }
  }

  asio::io_context& io_;
  BearerToken token_;
  uint64_t max_body_bytes_;
  AdminRouter router_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::unordered_set<beast::tcp_stream*> connections_;
};

AdminServer::AdminServer(boost::asio::io_context& io, std::string_view token,
                         uint64_t max_body_bytes)
    : impl_(std::make_shared<Impl>(io, token, max_body_bytes)) {}

AdminServer::~AdminServer() { impl_->stop(); }

void AdminServer::handle(std::string method, std::string path_prefix, AdminHandler handler) {
  impl_->handle(std::move(method), std::move(path_prefix), std::move(handler));
}

tl::expected<void, std::string> AdminServer::listen(const std::string& host, uint16_t port) {
  return impl_->listen(host, port);
}

uint16_t AdminServer::boundPort() const { return impl_->boundPort(); }

void AdminServer::stop() { impl_->stop(); }

}  // namespace sluice::admin
