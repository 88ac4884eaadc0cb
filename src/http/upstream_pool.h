#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "http/asio.h"

namespace sluice::http {

// The byte stream to an upstream: TLS over TCP for https endpoints, plain TCP otherwise,
// behind one type so that the HTTP code above (Beast's algorithms) is written once.
// Timeouts and the socket always belong to the TCP layer.
class UpstreamStream {
 public:
  using executor_type = asio::any_io_executor;
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  explicit UpstreamStream(const asio::any_io_executor& executor) : tcp_(executor) {}

  executor_type get_executor() { return tcp_.get_executor(); }
  beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : tcp_; }
  tcp::socket& socket() { return tcp().socket(); }
  template <typename Duration>
  void expires_after(Duration duration) {
    tcp().expires_after(duration);
  }
  void expires_never() { tcp().expires_never(); }

  // Wraps the connected TCP stream in TLS (before the handshake).
  TlsStream& startTls(asio::ssl::context& context) {
    tls_ = std::make_unique<TlsStream>(std::move(tcp_), context);
    return *tls_;
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return tcp_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return tcp_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  beast::tcp_stream tcp_;
  std::unique_ptr<TlsStream> tls_;
};

// TLS settings of the upstreams of one provider: a verifying context (system store plus an
// optional CA file), or, only when configured, one that does not verify.
class UpstreamTlsContext {
 public:
  // Errors name the CA file that could not be read.
  static tl::expected<std::shared_ptr<UpstreamTlsContext>, std::string> create(
      const config::UpstreamTls& settings);
  asio::ssl::context& context() { return context_; }
  bool verify() const { return verify_; }

 private:
  UpstreamTlsContext() : context_(asio::ssl::context::tls_client) {}
  asio::ssl::context context_;
  bool verify_ = true;
};

// A keep-alive connection to one upstream endpoint, owned by one worker thread.
struct UpstreamConnection {
  // Reads take what the buffer can hold: without room reserved up front it would stay at
  // Beast's first allocation (512 bytes) and a 2 KiB answer would need four reads, each
  // relayed as its own write.
  explicit UpstreamConnection(const asio::any_io_executor& executor) : stream(executor) {
    buffer.reserve(kReadBytes);
  }

  static constexpr size_t kReadBytes = 4 * 1024;
  UpstreamStream stream;
  beast::flat_buffer buffer{16 * 1024};  // bounded: response headers + one read
  std::string key;                       // pool key of the endpoint
  bool reused = false;                   // came from the pool (may have been closed by the peer)
  std::chrono::steady_clock::time_point idle_since;
};
using UpstreamConnectionPtr = std::unique_ptr<UpstreamConnection>;

// Per-thread pool of idle keep-alive connections per endpoint: no locks, since only the
// owning thread's event loop touches it.
class UpstreamPool {
 public:
  UpstreamPool(asio::any_io_executor executor, size_t max_idle_per_endpoint,
               std::chrono::milliseconds max_idle_time);

  // A live pooled connection when there is one, else a new one (connect bounded by timeout).
  // `tls` is required for https endpoints (connect fails without it).
  Task<std::pair<beast::error_code, UpstreamConnectionPtr>> acquire(
      const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
      UpstreamTlsContext* tls = nullptr);

  // Opens a new connection, never from the pool (used to retry after a stale pooled one).
  Task<std::pair<beast::error_code, UpstreamConnectionPtr>> connect(
      const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout,
      UpstreamTlsContext* tls = nullptr);

  // Gives back a connection whose last response was read completely with keep-alive.
  void release(UpstreamConnectionPtr connection);

  void closeAll() { idle_.clear(); }

 private:
  static std::string keyOf(const config::Endpoint& endpoint);

  asio::any_io_executor executor_;
  tcp::resolver resolver_;
  size_t max_idle_per_endpoint_;
  std::chrono::milliseconds max_idle_time_;
  std::unordered_map<std::string, std::vector<UpstreamConnectionPtr>> idle_;
};

}  // namespace sluice::http
