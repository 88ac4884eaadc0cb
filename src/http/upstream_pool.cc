#include "http/upstream_pool.h"

#include <sys/socket.h>

#include <fmt/format.h>

namespace sluice::http {
namespace {

// A pooled socket is usable when the peer has neither closed it nor sent unsolicited bytes.
bool stillOpen(tcp::socket& socket) {
  if (!socket.is_open()) return false;
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

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

Task<std::pair<beast::error_code, UpstreamConnectionPtr>> UpstreamPool::acquire(
    const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout) {
  if (auto it = idle_.find(keyOf(endpoint)); it != idle_.end()) {
    auto& list = it->second;
    const auto now = std::chrono::steady_clock::now();
    while (!list.empty()) {
      auto connection = std::move(list.back());
      list.pop_back();
      if (now - connection->idle_since < max_idle_time_ &&
          stillOpen(connection->stream.socket())) {
        connection->reused = true;
        co_return std::pair{beast::error_code{}, std::move(connection)};
      }
    }
  }
  co_return co_await connect(endpoint, connect_timeout);
}

Task<std::pair<beast::error_code, UpstreamConnectionPtr>> UpstreamPool::connect(
    const config::Endpoint& endpoint, std::chrono::milliseconds connect_timeout) {
  auto connection = std::make_unique<UpstreamConnection>(executor_);
  connection->key = keyOf(endpoint);
  beast::error_code ec;
  const auto address = asio::ip::make_address(endpoint.host, ec);
  connection->stream.expires_after(connect_timeout);
  if (!ec) {
    std::tie(ec) = co_await connection->stream.async_connect(tcp::endpoint(address, endpoint.port),
                                                             kNoThrow);
  } else {
    auto [resolve_ec, results] =
        co_await resolver_.async_resolve(endpoint.host, std::to_string(endpoint.port), kNoThrow);
    ec = resolve_ec;
    if (!ec) std::tie(ec, std::ignore) = co_await connection->stream.async_connect(results, kNoThrow);
  }
  connection->stream.expires_never();
  if (ec) co_return std::pair{ec, nullptr};
  connection->stream.socket().set_option(tcp::no_delay(true), ec);
  co_return std::pair{beast::error_code{}, std::move(connection)};
}

void UpstreamPool::release(UpstreamConnectionPtr connection) {
  auto& list = idle_[connection->key];
  if (list.size() >= max_idle_per_endpoint_) return;
  connection->buffer.clear();
  connection->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(connection));
}

}  // namespace sluice::http
