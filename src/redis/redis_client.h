#pragma once

// Only the coroutine type comes from Asio here (a call returns one); sockets, timers and the rest
// of Asio stay in redis_client.cc.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "redis/redis_address.h"
#include "redis/redis_reply.h"
#include "redis/redis_script.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace sluice::redis {

struct RedisClientOptions {
  // One connect attempt: resolve, TCP or unix connect, AUTH, SELECT and a PING.
  std::chrono::milliseconds connect_timeout{1000};
  // For calls that give no timeout of their own.
  std::chrono::milliseconds call_timeout{1000};
  // After a failed attempt calls fail at once for min_backoff, doubling per failure up to
  // max_backoff; attempts are at least min_backoff apart even when each one succeeds.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  size_t max_reply_bytes = 16u << 20;
  size_t max_reply_depth = 16;  // levels of nested arrays
};

struct RedisClientStats {
  uint64_t connect_attempts = 0;
  uint64_t connect_failures = 0;  // attempts that did not end with a working connection
};

// An asynchronous Redis client over one connection, for one worker thread: it lives on that
// thread's io_context and is used only from there (no locks). Any number of coroutines may call
// at once; their commands are pipelined on the connection and the replies matched in order.
//
// Failures never throw and never block the loop; a call gets RedisError instead of a reply:
// - the connection is opened by the first call (or connect()) and reopened by a later call after
//   it drops; all calls waiting on a connection that drops fail at once;
// - after a failed connect attempt, calls fail at once (no connect, no waiting) until the
//   back-off has passed; then one call makes the next attempt;
// - a call that times out fails alone, unless Redis has sent nothing for 100 ms or more while
//   owing replies: then the connection is taken as stuck and reset, failing the calls behind
//   it, and the next call reconnects (a Redis that stopped answering costs one timeout, not one
//   per call);
// - a malformed or oversized reply closes the connection and fails every waiting call.
//
// Not for commands that change the connection's reply pattern (SUBSCRIBE, MONITOR, CLIENT
// REPLY); a blocking command (BLPOP) holds up the calls pipelined behind it.
//
// Destroy the client on its thread, before its io_context.
class RedisClient {
 public:
  RedisClient(boost::asio::io_context& io, RedisAddress address, RedisClientOptions options = {});
  ~RedisClient();  // as close()
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command, e.g. args = {"INCRBY", key, "1"}, and waits for its reply, at most
  // `timeout` (options.call_timeout by default). The arguments are encoded before call()
  // returns, so they need not outlive the awaitable. Name them before `co_await` (GCC 12
  // miscompiles brace-initialised temporaries inside a co_await expression):
  //   const std::array<std::string_view, 2> args{"GET", key};
  //   auto reply = co_await client.call(args);
  boost::asio::awaitable<RedisResult> call(
      std::span<const std::string_view> args,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Runs a Lua script by its SHA1 (EVALSHA) and, when Redis does not have it cached (NOSCRIPT),
  // by its text (EVAL, which caches it); `timeout` covers both. Callers just keep a RedisScript.
  boost::asio::awaitable<RedisResult> evalsha(
      const RedisScript& script, std::span<const std::string_view> keys,
      std::span<const std::string_view> args,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Starts a connect attempt now, unless connected, connecting or in back-off; returns at once.
  // For a worker's start, so that its first request does not wait for the connect.
  void connect();

  // True while connected: the last connect attempt worked and the connection has not failed
  // since. False before the first attempt.
  bool healthy() const;

  RedisClientStats stats() const;
  const RedisAddress& address() const;

  // Closes the connection; waiting and later calls fail with kConnection.
  void close();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with the client's coroutines, which may outlive it
};

}  // namespace sluice::redis
