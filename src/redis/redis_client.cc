#include "redis/redis_client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "http/asio.h"
#include "redis/resp_parser.h"

namespace sluice::redis {

using namespace http;  // asio, Task, kNoThrow

namespace {

using Clock = std::chrono::steady_clock;
using Socket = asio::generic::stream_protocol::socket;
using GenericEndpoint = asio::generic::stream_protocol::endpoint;

constexpr size_t kReadChunk = 16u << 10;
// Write buffers that grew past this during a burst are released rather than kept.
constexpr size_t kKeptWriteCapacity = 1u << 20;
// A call that times out resets the connection only when Redis has owed a reply for at least
// this long without sending a byte: a caller with a very short timeout must not reset a
// connection that merely answers a little later.
constexpr auto kMinStall = std::chrono::milliseconds(100);

long long millis(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

RedisResult failure(RedisErrorKind kind, std::string message) {
  return tl::unexpected(RedisError{kind, std::move(message)});
}

// One caller waiting for its reply. The timer doubles as the wake-up: it expires at the
// call's deadline and is cancelled as soon as the result is in.
struct PendingCall {
  PendingCall(const asio::any_io_executor& executor, Clock::time_point queued)
      : wake(executor), queued_at(queued) {}

  asio::steady_timer wake;
  Clock::time_point queued_at;
  std::optional<RedisResult> result;
  bool abandoned = false;  // the caller gave up (timed out): its reply is read and dropped
};

// One connect attempt and, when it works, the open connection. A reconnect makes a new one, so
// that the coroutines of an old connection see that they are stale and leave the client alone.
struct Connection {
  Connection(const asio::any_io_executor& executor, RespParser::Limits limits)
      : socket(executor), resolver(executor), watchdog(executor), parser(limits) {}

  Socket socket;
  tcp::resolver resolver;
  asio::steady_timer watchdog;  // bounds the connect attempt
  bool timed_out = false;       // the watchdog fired
  bool dropped = false;         // the client let go of this connection
  RespParser parser;
  std::array<char, kReadChunk> read_buffer;
  Clock::time_point last_read;  // when Redis last sent bytes
  std::string writing;          // the bytes of the write in progress
  bool writer_active = false;
};
using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace

class RedisClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, RedisAddress address, RedisClientOptions options)
      : executor_(io.get_executor()),
        address_(std::move(address)),
        name_(address_.describe()),
        options_(options),
        backoff_(options.min_backoff) {}

  const RedisAddress& address() const { return address_; }
  bool healthy() const { return state_ == State::kConnected; }
  RedisClientStats stats() const { return stats_; }
  Clock::duration defaultTimeout() const { return options_.call_timeout; }

  void connectNow() {
    if (state_ == State::kDisconnected && Clock::now() >= next_attempt_) startConnect();
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    drop(RedisErrorKind::kConnection, fmt::format("the client for redis at {} is closed", name_),
         false);
  }

  // Queues an encoded command and waits for its reply until `timeout` has passed. `self`
  // keeps the client alive from the moment the awaitable exists, even before it is awaited.
  Task<RedisResult> exchange(std::shared_ptr<Impl> self, std::string command,
                             Clock::duration timeout);

  // EVALSHA, then EVAL on NOSCRIPT; `tail` is "numkeys key... arg..." already encoded and
  // `count` the number of elements of the whole command.
  Task<RedisResult> evalsha(std::shared_ptr<Impl> self, RedisScript script, std::string tail,
                            size_t count, Clock::duration timeout);

 private:
  enum class State { kDisconnected, kConnecting, kConnected, kClosed };

  void startConnect();
  Task<void> connect(ConnectionPtr connection);
  // Resolves and connects the socket; an error message, empty on success.
  Task<std::string> openSocket(Connection& connection);
  // AUTH, SELECT and PING; an error message, empty on success.
  Task<std::string> handshake(Connection& connection);
  void connectFailed(std::string message);
  Task<void> readLoop(ConnectionPtr connection);
  void startWriter();
  Task<void> writeLoop(ConnectionPtr connection);
  // Closes the connection (if any) and fails every waiting call with `message`.
  void drop(RedisErrorKind kind, std::string message, bool log = true);

  asio::any_io_executor executor_;
  RedisAddress address_;
  std::string name_;  // address_.describe(), for messages
  RedisClientOptions options_;

  State state_ = State::kDisconnected;
  ConnectionPtr connection_;  // the open connection or the attempt in progress
  std::string out_;           // queued commands not yet handed to the writer
  std::deque<std::shared_ptr<PendingCall>> queue_;  // calls waiting for replies, in send order

  Clock::time_point next_attempt_{};  // no connect attempt before this
  Clock::duration backoff_;           // the wait after the next failed attempt
  std::string last_error_;            // why the client is down
  bool reported_down_ = false;        // the current outage has been logged
  RedisClientStats stats_;
};

Task<RedisResult> RedisClient::Impl::exchange(std::shared_ptr<Impl> self, std::string command,
                                              Clock::duration timeout) {
  const auto now = Clock::now();
  if (state_ == State::kClosed) {
    co_return failure(RedisErrorKind::kConnection,
                      fmt::format("the client for redis at {} is closed", name_));
  }
  if (state_ == State::kDisconnected) {
    if (now < next_attempt_) {
      co_return failure(
          RedisErrorKind::kConnection,
          fmt::format("redis at {} is unavailable (next connect attempt in {} ms): {}", name_,
                      std::max(1LL, millis(next_attempt_ - now)), last_error_));
    }
    startConnect();
  }
  auto call = std::make_shared<PendingCall>(executor_, now);
  out_ += command;
  queue_.push_back(call);
  startWriter();

  call->wake.expires_at(now + std::max(timeout, Clock::duration(std::chrono::milliseconds(1))));
  if (!call->result) co_await call->wake.async_wait(kNoThrow);
  if (call->result) co_return std::move(*call->result);

  call->abandoned = true;
  const auto waited = millis(Clock::now() - now);
  if (state_ == State::kConnected) {
    // Silent since the oldest unanswered command was sent: Redis or the path to it is stuck.
    const auto since = std::max(connection_->last_read, queue_.front()->queued_at);
    const auto silence = Clock::now() - since;
    if (silence >= kMinStall) {
      drop(RedisErrorKind::kConnection,
           fmt::format("connection to redis at {} reset: no reply for {} ms", name_,
                       millis(silence)));
    }
  }
  co_return failure(RedisErrorKind::kTimeout,
                    fmt::format("no reply from redis at {} within {} ms", name_, waited));
}

Task<RedisResult> RedisClient::Impl::evalsha(std::shared_ptr<Impl> self, RedisScript script,
                                             std::string tail, size_t count,
                                             Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string command = fmt::format("*{}\r\n", count);
  appendBulk(command, "EVALSHA");
  appendBulk(command, script.sha1());
  command += tail;
  auto result = co_await exchange(self, std::move(command), timeout);
  if (!result || !result->isError() || !result->errorMessage().starts_with("NOSCRIPT")) {
    co_return result;
  }
  std::string eval = fmt::format("*{}\r\n", count);
  appendBulk(eval, "EVAL");
  appendBulk(eval, script.source());
  eval += tail;
  const auto remaining = deadline - Clock::now();
  if (remaining <= Clock::duration::zero()) {
    co_return failure(
        RedisErrorKind::kTimeout,
        fmt::format("no reply from redis at {} within {} ms", name_, millis(timeout)));
  }
  co_return co_await exchange(self, std::move(eval), remaining);
}

void RedisClient::Impl::startConnect() {
  state_ = State::kConnecting;
  ++stats_.connect_attempts;
  RespParser::Limits limits{options_.max_reply_bytes, options_.max_reply_depth};
  connection_ = std::make_shared<Connection>(executor_, limits);
  asio::co_spawn(executor_, connect(connection_), asio::detached);
}

Task<void> RedisClient::Impl::connect(ConnectionPtr connection) {
  auto self = shared_from_this();
  const auto started = Clock::now();
  connection->watchdog.expires_after(options_.connect_timeout);
  connection->watchdog.async_wait([weak = std::weak_ptr<Connection>(connection)](auto ec) {
    auto connection = weak.lock();
    if (ec || !connection) return;
    connection->timed_out = true;
    beast::error_code ignored;
    connection->socket.close(ignored);
    connection->resolver.cancel();
  });

  std::string error = co_await openSocket(*connection);
  if (error.empty()) error = co_await handshake(*connection);
  connection->watchdog.cancel();
  if (connection != connection_) co_return;  // closed meanwhile
  if (connection->timed_out) {
    error = fmt::format("no answer within {} ms", options_.connect_timeout.count());
  }
  if (!error.empty()) {
    connectFailed(fmt::format("cannot connect to redis at {}: {}", name_, error));
    co_return;
  }

  state_ = State::kConnected;
  backoff_ = options_.min_backoff;
  next_attempt_ = started + options_.min_backoff;
  connection->last_read = Clock::now();
  if (reported_down_ || stats_.connect_attempts == 1) {
    spdlog::info("redis at {}: connected", name_);
    reported_down_ = false;
  }
  asio::co_spawn(executor_, readLoop(connection), asio::detached);
  startWriter();
}

Task<std::string> RedisClient::Impl::openSocket(Connection& connection) {
  if (address_.kind == RedisAddress::Kind::kUnix) {
    if (address_.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      co_return "the unix socket path is too long";
    }
    const asio::local::stream_protocol::endpoint local(address_.path);
    const GenericEndpoint endpoint(local);
    const auto [ec] = co_await connection.socket.async_connect(endpoint, kNoThrow);
    co_return ec ? ec.message() : std::string();
  }

  std::vector<tcp::endpoint> endpoints;
  beast::error_code ec;
  const auto ip = asio::ip::make_address(address_.host, ec);
  if (!ec) {
    endpoints.emplace_back(ip, address_.port);
  } else {
    const std::string port = std::to_string(address_.port);
    auto [resolve_ec, results] =
        co_await connection.resolver.async_resolve(address_.host, port, kNoThrow);
    if (resolve_ec) {
      co_return fmt::format("cannot resolve {}: {}", address_.host, resolve_ec.message());
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  std::string error = "no address";
  for (const auto& candidate : endpoints) {
    if (connection.timed_out || connection.dropped) break;
    beast::error_code ignored;
    connection.socket.close(ignored);
    const GenericEndpoint endpoint(candidate);
    const auto [connect_ec] = co_await connection.socket.async_connect(endpoint, kNoThrow);
    if (!connect_ec) {
      // Small pipelined commands must not wait for Nagle.
      connection.socket.set_option(tcp::no_delay(true), ignored);
      co_return std::string();
    }
    error = connect_ec.message();
  }
  co_return error;
}

Task<std::string> RedisClient::Impl::handshake(Connection& connection) {
  std::string hello;
  std::vector<std::string_view> steps;
  if (!address_.password.empty()) {
    if (address_.username.empty()) {
      const std::array<std::string_view, 2> auth{"AUTH", address_.password};
      appendCommand(hello, auth);
    } else {
      const std::array<std::string_view, 3> auth{"AUTH", address_.username, address_.password};
      appendCommand(hello, auth);
    }
    steps.push_back("AUTH");
  }
  const std::string db = std::to_string(address_.db);
  if (address_.db != 0) {
    const std::array<std::string_view, 2> select{"SELECT", db};
    appendCommand(hello, select);
    steps.push_back("SELECT");
  }
  // Proves that Redis answers (not merely that the kernel accepted the connection).
  const std::array<std::string_view, 1> ping{"PING"};
  appendCommand(hello, ping);
  steps.push_back("PING");

  const auto [write_ec, written] =
      co_await asio::async_write(connection.socket, asio::buffer(hello), kNoThrow);
  if (write_ec) co_return write_ec.message();
  for (const auto step : steps) {
    while (true) {
      auto reply = connection.parser.next();
      if (!reply) co_return fmt::format("malformed reply: {}", reply.error());
      if (*reply) {
        if ((*reply)->isError()) co_return fmt::format("{}: {}", step, (*reply)->errorMessage());
        break;
      }
      const auto [read_ec, n] = co_await connection.socket.async_read_some(
          asio::buffer(connection.read_buffer), kNoThrow);
      if (read_ec == asio::error::eof) co_return "the server closed the connection";
      if (read_ec) co_return read_ec.message();
      connection.parser.feed(std::string_view(connection.read_buffer.data(), n));
    }
  }
  co_return std::string();
}

void RedisClient::Impl::connectFailed(std::string message) {
  ++stats_.connect_failures;
  next_attempt_ = Clock::now() + backoff_;
  backoff_ = std::min<Clock::duration>(backoff_ * 2, options_.max_backoff);
  drop(RedisErrorKind::kConnection, std::move(message));
}

Task<void> RedisClient::Impl::readLoop(ConnectionPtr connection) {
  auto self = shared_from_this();
  while (true) {
    const auto [ec, n] = co_await connection->socket.async_read_some(
        asio::buffer(connection->read_buffer), kNoThrow);
    if (connection != connection_) co_return;  // reset meanwhile
    if (ec) {
      drop(RedisErrorKind::kConnection,
           ec == asio::error::eof
               ? fmt::format("connection to redis at {} closed by the server", name_)
               : fmt::format("connection to redis at {} lost: {}", name_, ec.message()));
      co_return;
    }
    connection->last_read = Clock::now();
    connection->parser.feed(std::string_view(connection->read_buffer.data(), n));
    while (true) {
      auto reply = connection->parser.next();
      if (!reply) {
        drop(RedisErrorKind::kProtocol,
             fmt::format("malformed reply from redis at {}: {}", name_, reply.error()));
        co_return;
      }
      if (!*reply) break;
      if (queue_.empty()) {
        drop(RedisErrorKind::kProtocol,
             fmt::format("redis at {} sent a reply to no command", name_));
        co_return;
      }
      auto call = std::move(queue_.front());
      queue_.pop_front();
      if (!call->abandoned) {
        call->result = std::move(**reply);
        call->wake.cancel();
      }
    }
  }
}

void RedisClient::Impl::startWriter() {
  if (state_ != State::kConnected || connection_->writer_active || out_.empty()) return;
  connection_->writer_active = true;
  asio::co_spawn(executor_, writeLoop(connection_), asio::detached);
}

// Everything queued while a write is in progress goes out in the next write: under load,
// commands leave in batches.
Task<void> RedisClient::Impl::writeLoop(ConnectionPtr connection) {
  auto self = shared_from_this();
  while (connection == connection_ && !out_.empty()) {
    connection->writing.clear();
    std::swap(connection->writing, out_);
    const auto [ec, n] =
        co_await asio::async_write(connection->socket, asio::buffer(connection->writing), kNoThrow);
    if (connection != connection_) co_return;
    if (ec) {
      drop(RedisErrorKind::kConnection,
           fmt::format("connection to redis at {} lost: {}", name_, ec.message()));
      co_return;
    }
    if (connection->writing.capacity() > kKeptWriteCapacity)
      std::string().swap(connection->writing);
  }
  connection->writer_active = false;
}

void RedisClient::Impl::drop(RedisErrorKind kind, std::string message, bool log) {
  if (connection_) {
    connection_->dropped = true;
    beast::error_code ignored;
    connection_->socket.close(ignored);
    connection_->watchdog.cancel();
    connection_->resolver.cancel();
    connection_.reset();
  }
  if (state_ != State::kClosed) state_ = State::kDisconnected;
  out_.clear();
  if (log && !reported_down_) {
    spdlog::warn("{}", message);
    reported_down_ = true;
  }
  last_error_ = message;
  const RedisError error{kind, std::move(message)};
  auto waiting = std::move(queue_);
  queue_.clear();
  for (auto& call : waiting) {
    if (call->abandoned) continue;
    call->result = tl::unexpected(error);
    call->wake.cancel();
  }
}

RedisClient::RedisClient(asio::io_context& io, RedisAddress address, RedisClientOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(address), options)) {}

RedisClient::~RedisClient() { impl_->close(); }

Task<RedisResult> RedisClient::call(std::span<const std::string_view> args,
                                    std::optional<std::chrono::milliseconds> timeout) {
  std::string command;
  appendCommand(command, args);
  const Clock::duration wait = timeout ? *timeout : impl_->defaultTimeout();
  return impl_->exchange(impl_, std::move(command), wait);
}

Task<RedisResult> RedisClient::evalsha(const RedisScript& script,
                                       std::span<const std::string_view> keys,
                                       std::span<const std::string_view> args,
                                       std::optional<std::chrono::milliseconds> timeout) {
  std::string tail;
  appendBulk(tail, std::to_string(keys.size()));
  for (const auto key : keys) appendBulk(tail, key);
  for (const auto arg : args) appendBulk(tail, arg);
  const size_t count = 3 + keys.size() + args.size();
  const Clock::duration wait = timeout ? *timeout : impl_->defaultTimeout();
  return impl_->evalsha(impl_, script, std::move(tail), count, wait);
}

void RedisClient::connect() { impl_->connectNow(); }
bool RedisClient::healthy() const { return impl_->healthy(); }
RedisClientStats RedisClient::stats() const { return impl_->stats(); }
const RedisAddress& RedisClient::address() const { return impl_->address(); }
void RedisClient::close() { impl_->close(); }

}  // namespace sluice::redis
