#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include "http/asio.h"

namespace sluice::http {

// A connection's byte stream: TLS over TCP or plain TCP, behind one type so that the HTTP code
// above it (Beast's algorithms) is written once for clients and upstreams, https and http.
//
// Timeouts are deadlines: expires_after(d) sets one at now + d, and if it passes before
// expires_never() lifts it, the socket is closed (pending operations fail; timedOut() then says
// why). Unlike Beast's, it counts whether or not an operation is pending, so each bounded
// operation is followed by expires_never(). Beast's tcp_stream arms and cancels a timer around
// every operation (a quarter of the gateway's CPU per request); here one timer per connection
// waits for the earliest deadline and is re-armed only when a deadline comes sooner than the one
// it waits for: setting a deadline is a clock read and a comparison.
class ByteStream {
 public:
  using executor_type = asio::any_io_executor;
  using TlsStream = beast::ssl_stream<tcp::socket>;
  using Clock = std::chrono::steady_clock;

  explicit ByteStream(const asio::any_io_executor& executor) : socket_(executor) {}
  explicit ByteStream(tcp::socket socket) : socket_(std::move(socket)) {}
  ~ByteStream() {
    if (!deadline_) return;
    deadline_->owner = nullptr;
    deadline_->timer.cancel();
  }
  // The deadline's timer points back at this object.
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  bool secure() const { return tls_ != nullptr; }

  void expires_after(Clock::duration duration) {
    const auto at = Clock::now() + duration;
    if (!deadline_) deadline_ = std::make_shared<Deadline>(get_executor(), this);
    deadline_->at = at;
    if (at < deadline_->armed) deadline_->arm();
  }
  void expires_never() {
    if (deadline_) deadline_->at = Clock::time_point::max();
  }
  // A deadline passed and closed the socket.
  bool timedOut() const { return deadline_ && deadline_->timed_out; }
  // `ec`, or beast::error::timeout when it is what a passed deadline caused.
  beast::error_code translate(beast::error_code ec) const {
    return ec && timedOut() ? beast::error_code(beast::error::timeout) : ec;
  }
  void close() {
    beast::error_code ignored;
    socket().close(ignored);
  }

  // Wraps the connected TCP socket in TLS (before the handshake, client or server side).
  TlsStream& startTls(asio::ssl::context& context) {
    tls_ = std::make_unique<TlsStream>(std::move(socket_), context);
    return *tls_;
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return socket_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  // Shared with the timer's pending wait, which may outlive the stream.
  struct Deadline : std::enable_shared_from_this<Deadline> {
    Deadline(const asio::any_io_executor& executor, ByteStream* stream)
        : timer(executor), owner(stream) {}

    void arm() {
      armed = at;
      timer.expires_at(at);
      timer.async_wait([self = shared_from_this()](const beast::error_code& ec) {
        if (!ec && self->owner) self->fire();
      });
    }
    void fire() {
      armed = Clock::time_point::max();
      if (at == Clock::time_point::max()) return;  // no deadline now: the timer rests
      if (Clock::now() < at) return arm();         // moved later since
      timed_out = true;
      at = Clock::time_point::max();
      owner->close();
    }

    asio::steady_timer timer;
    ByteStream* owner;                                   // null once the stream is gone
    Clock::time_point at = Clock::time_point::max();     // the deadline in force
    Clock::time_point armed = Clock::time_point::max();  // what the timer waits for
    bool timed_out = false;
  };

  tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;
  std::shared_ptr<Deadline> deadline_;
};

}  // namespace sluice::http
