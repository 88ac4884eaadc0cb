#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "http/asio.h"
#include "http/byte_stream.h"

namespace sluice::http {

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
  ByteStream stream;
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

  // Gives back a connection whose last response was read completely with keep-alive; its
  // deadline, if one is set, is lifted.
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
