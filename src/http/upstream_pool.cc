#include "http/upstream_pool.h"

#include <fmt/format.h>
#include <sys/socket.h>

namespace sluice::http {
namespace {

// A pooled socket is usable when the peer has neither closed it nor sent unsolicited bytes.
bool stillOpen(tcp::socket& socket) {
  if (!socket.is_open()) return false;
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Idle time under which a pooled connection is taken without a probe.
constexpr auto kTrustedIdle = std::chrono::seconds(1);

}  // namespace

UpstreamPool::UpstreamPool(asio::any_io_executor executor, size_t max_idle_per_endpoint,
                           std::chrono::milliseconds max_idle_time)
    : executor_(executor),
      resolver_(executor),
      max_idle_per_endpoint_(max_idle_per_endpoint),
      max_idle_time_(max_idle_time) {}

std::string UpstreamPool::keyOf(const config::Endpoint& endpoint) {
  return fmt::format("{}://{}:{}", endpoint.scheme, endpoint.host, endpoint.port);
}

tl::expected<std::shared_ptr<UpstreamTlsContext>, std::string> UpstreamTlsContext::create(
    const config::UpstreamTls& settings) {
  std::shared_ptr<UpstreamTlsContext> tls(new UpstreamTlsContext());
  auto& context = tls->context_;
  beast::error_code ec;
  context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1);
  context.set_default_verify_paths(ec);
  if (!settings.ca_file.empty()) {
    context.load_verify_file(settings.ca_file, ec);
    if (ec) {
      return tl::make_unexpected(
          fmt::format("cannot load tls.ca_file {}: {}", settings.ca_file, ec.message()));
    }
  }
  tls->verify_ = !settings.insecure_skip_verify;
  context.set_verify_mode(tls->verify_ ? asio::ssl::verify_peer : asio::ssl::verify_none);
  return tls;
}

Task<std::pair<beast::error_code, UpstreamConnectionPtr>> UpstreamPool::acquire(
    const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
    UpstreamTlsContext* tls) {
  if (auto it = idle_.find(keyOf(endpoint)); it != idle_.end()) {
    auto& list = it->second;
    const auto now = std::chrono::steady_clock::now();
    while (!list.empty()) {
      auto connection = std::move(list.back());
      list.pop_back();
      // A connection idle for less than kTrustedIdle is not probed (a syscall per request under
      // load): servers close idle ones after seconds, and a closed one is retried on a new one.
      const auto idle = now - connection->idle_since;
      if (idle < max_idle_time_ && (idle < kTrustedIdle ? connection->stream.socket().is_open()
                                                        : stillOpen(connection->stream.socket()))) {
        connection->reused = true;
        connection->buffer.reserve(UpstreamConnection::kReadBytes);  // a stream may have shrunk it
        co_return std::pair{beast::error_code{}, std::move(connection)};
      }
    }
  }
  co_return co_await connect(endpoint, connect_timeout, tls);
}

Task<std::pair<beast::error_code, UpstreamConnectionPtr>> UpstreamPool::connect(
    const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
    UpstreamTlsContext* tls) {
  auto connection = std::make_unique<UpstreamConnection>(executor_);
  connection->key = keyOf(endpoint);
  beast::error_code ec;
  const auto address = asio::ip::make_address(endpoint.host, ec);
  auto& socket = connection->stream.socket();
  connection->stream.expires_after(connect_timeout);
  if (!ec) {
    std::tie(ec) = co_await socket.async_connect(tcp::endpoint(address, endpoint.port), kNoThrow);
  } else {
    auto [resolve_ec, results] =
        co_await resolver_.async_resolve(endpoint.host, std::to_string(endpoint.port), kNoThrow);
    ec = resolve_ec;
    // The deadline may have passed while the name resolved (closing a socket not yet open).
    if (!ec && connection->stream.timedOut()) ec = beast::error::timeout;
    if (!ec) std::tie(ec, std::ignore) = co_await asio::async_connect(socket, results, kNoThrow);
  }
  ec = connection->stream.translate(ec);
  if (ec) co_return std::pair{ec, nullptr};
  socket.set_option(tcp::no_delay(true), ec);
  if (endpoint.scheme == "https") {
    if (tls == nullptr) co_return std::pair{asio::error::no_protocol_option, nullptr};
    auto& tls_stream = connection->stream.startTls(tls->context());
    // SNI, and the certificate must name the host we asked for.
    if (!SSL_set_tlsext_host_name(tls_stream.native_handle(), endpoint.host.c_str())) {
      co_return std::pair{
          beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()),
          nullptr};
    }
    if (tls->verify())
      tls_stream.set_verify_callback(asio::ssl::host_name_verification(endpoint.host));
    std::tie(ec) = co_await tls_stream.async_handshake(asio::ssl::stream_base::client, kNoThrow);
    ec = connection->stream.translate(ec);
    if (ec) co_return std::pair{ec, nullptr};
  }
  connection->stream.expires_never();
  co_return std::pair{beast::error_code{}, std::move(connection)};
}

void UpstreamPool::release(UpstreamConnectionPtr connection) {
  if (connection->stream.timedOut()) return;  // closed by its deadline
  auto& list = idle_[connection->key];
  if (list.size() >= max_idle_per_endpoint_) return;
  connection->stream.expires_never();  // a deadline would close it while it waits
  connection->buffer.clear();
  connection->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(connection));
}

}  // namespace sluice::http
