#pragma once

// Helpers for the Redis client's tests: running a coroutine to completion, a real redis-server
// in a child process, and a scripted fake server for faults a real one does not produce.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/asio.h"
#include "redis/resp_parser.h"

namespace sluice::redis::testing {

namespace asio = boost::asio;
using http::kNoThrow;
using http::Task;

// Runs `task` on `io` (on this thread) until it completes, and returns its result.
template <typename T>
T runTask(asio::io_context& io, Task<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error, T value) {
    failure = error;
    result = std::move(value);
  });
  while (!result) {
    if (io.run_one() == 0) io.restart();
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

// Lets `io` run for `duration` (timers, replies, reconnects), sleeping when it has nothing to do.
inline void runFor(asio::io_context& io, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
    io.restart();
    if (io.run_one_until(until) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  io.restart();
}

// A TCP port on 127.0.0.1 that nothing listens on (just now).
inline uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A redis-server child process on a free port of 127.0.0.1 and a unix socket, with no
// persistence, in a temporary directory removed afterwards.
class RedisServer {
 public:
  // Whether redis-server is on the PATH (scripts/deps.sh installs it).
  static bool available() { return std::system("redis-server --version >/dev/null 2>&1") == 0; }

  explicit RedisServer(std::vector<std::string> extra_args = {})
      : extra_args_(std::move(extra_args)), port_(freePort()) {
    char pattern[] = "/tmp/sluice-redis-XXXXXX";
    dir_ = ::mkdtemp(pattern);
  }
  ~RedisServer() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  std::string socketPath() const { return dir_ + "/redis.sock"; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // Starts the server (again, on the same port and socket) and waits until it answers PING.
  bool start() {
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--unixsocket",
                                     socketPath(),
                                     "--unixsocketperm",
                                     "700",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     dir_ + "/redis.log"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (answersPing()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // SIGKILL: the server vanishes without closing anything gracefully.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  // Any reply to an inline PING (+PONG, or -NOAUTH when a password is required) means ready.
  bool answersPing() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port_);
    bool ready = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
      timeval timeout{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      char reply[64];
      ready = ::write(fd, "PING\r\n", 6) == 6 && ::read(fd, reply, sizeof(reply)) > 0 &&
              (reply[0] == '+' || reply[0] == '-');
    }
    ::close(fd);
    return ready;
  }

  std::vector<std::string> extra_args_;
  uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
};

// A fake Redis on 127.0.0.1 that answers each command (parsed with RespParser: commands are
// RESP arrays) with what `respond` returns: raw bytes to send, or nothing (stay silent).
// Replies leave in order, each after `delay`. Runs on the test's io_context.
class FakeRedis {
 public:
  using Command = std::vector<std::string>;
  using Respond = std::function<std::optional<std::string>(const Command&)>;

  FakeRedis(asio::io_context& io, Respond respond,
            std::chrono::milliseconds delay = std::chrono::milliseconds(0))
      : io_(io),
        acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
        respond_(std::move(respond)),
        delay_(delay) {
    asio::co_spawn(io_, accept(), asio::detached);
  }
  ~FakeRedis() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port()); }
  int accepted() const { return accepted_; }
  // Connections that ended: the client closed them (reading or writing then failed).
  int closedByClient() const { return closed_by_client_; }
  const std::vector<Command>& commands() const { return commands_; }

 private:
  Task<void> accept() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) co_return;
      ++accepted_;
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  Task<void> serve(asio::ip::tcp::socket socket) {
    RespParser parser;
    std::array<char, 4096> buffer;
    asio::steady_timer timer(io_);
    while (true) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), kNoThrow);
      if (ec) {
        ++closed_by_client_;
        co_return;
      }
      parser.feed(std::string_view(buffer.data(), n));
      while (true) {
        auto next = parser.next();
        if (!next || !*next) break;
        Command command;
        for (const auto& arg : (*next)->array()) command.push_back(arg.string());
        commands_.push_back(command);
        auto reply = respond_(command);
        if (!reply) continue;
        if (delay_.count() > 0) {
          timer.expires_after(delay_);
          co_await timer.async_wait(kNoThrow);
        }
        auto [write_ec, written] =
            co_await asio::async_write(socket, asio::buffer(*reply), kNoThrow);
        if (write_ec) {
          ++closed_by_client_;
          co_return;
        }
      }
    }
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  Respond respond_;
  std::chrono::milliseconds delay_;
  int accepted_ = 0;
  int closed_by_client_ = 0;
  std::vector<Command> commands_;
};

}  // namespace sluice::redis::testing
