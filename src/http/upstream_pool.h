#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "http/asio.h"

namespace sluice::http {

// A keep-alive connection to one upstream endpoint, owned by one worker thread.
struct UpstreamConnection {
  explicit UpstreamConnection(const asio::any_io_executor& executor) : stream(executor) {}

  beast::tcp_stream stream;
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
  Task<std::pair<beast::error_code, UpstreamConnectionPtr>> acquire(
      const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout);

  // Opens a new connection, never from the pool (used to retry after a stale pooled one).
  Task<std::pair<beast::error_code, UpstreamConnectionPtr>> connect(
      const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout);

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
