#pragma once

#include <memory>
#include <utility>

#include "http/asio.h"

namespace sluice::http {

// A connection's byte stream: TLS over TCP or plain TCP, behind one type so that the HTTP code
// above it (Beast's algorithms) is written once for clients and upstreams, https and http.
// Timeouts and the socket always belong to the TCP layer. Plain TCP reads and writes that no
// timeout bounds (an event stream's, which its idle watch bounds) go to the socket itself,
// past Beast's timeout bookkeeping: a per-operation cost a stream pays for every event.
class ByteStream {
 public:
  using executor_type = asio::any_io_executor;
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  explicit ByteStream(const asio::any_io_executor& executor) : tcp_(executor) {}
  explicit ByteStream(asio::ip::tcp::socket socket) : tcp_(std::move(socket)) {}

  executor_type get_executor() { return tcp_.get_executor(); }
  beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : tcp_; }
  tcp::socket& socket() { return tcp().socket(); }
  bool secure() const { return tls_ != nullptr; }
  // Bounds the reads and writes started from now on (Beast's timeout: the stream is closed).
  template <typename Duration>
  void expires_after(Duration duration) {
    tcp().expires_after(duration);
    timed_ = true;
  }
  void expires_never() {
    tcp().expires_never();
    timed_ = false;
  }
  void close() { tcp().close(); }

  // Wraps the connected TCP stream in TLS (before the handshake, client or server side).
  TlsStream& startTls(asio::ssl::context& context) {
    tls_ = std::make_unique<TlsStream>(std::move(tcp_), context);
    return *tls_;
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    if (!timed_) return tcp_.socket().async_read_some(buffers, std::forward<Token>(token));
    return tcp_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    if (!timed_) return tcp_.socket().async_write_some(buffers, std::forward<Token>(token));
    return tcp_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  beast::tcp_stream tcp_;
  std::unique_ptr<TlsStream> tls_;
  bool timed_ = false;  // a timeout is set (expires_after): operations go through Beast
};

}  // namespace sluice::http
