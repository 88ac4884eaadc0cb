#include "proxy/gateway.h"

#include <simdjson.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <list>
#include <thread>
#include <unordered_set>

#include "admin/admin_server.h"
#include "http/listener_tls.h"
#include "limits/local_rate_limiter.h"
#include "limits/redis_rate_limiter.h"
#include "metrics/registry.h"
#include "proxy/health_checker.h"
#include "proxy/key_sync.h"
#include "proxy/proxy_handler.h"
#include "proxy/wasm_admin.h"
#include "proxy/worker_admin.h"
#include "wasm/plugin_set.h"
#include "wasm/wasm_vm.h"

namespace sluice::proxy {

using namespace http;
using Clock = std::chrono::steady_clock;

// A client connection reads request heads this much at a time, and keeps a read buffer of up to
// kKeptReadBytes between requests (a larger one, grown by a large request, is released).
constexpr size_t kHeadReadBytes = 4 * 1024;
constexpr size_t kKeptReadBytes = 64 * 1024;

namespace {

// One event loop with everything it owns: listener, client connections, upstream pool,
// pipeline. Nothing here is touched by another thread except through post().
class Worker {
 public:
  // `tls`: the listener's TLS context (shared by all workers; OpenSSL locks only inside
  // handshakes), or null for plain HTTP.
  Worker(std::shared_ptr<const GatewayState> state, AccessLog& access_log,
         std::atomic<int>& open_connections, asio::ssl::context* tls)
      : state_(std::move(state)),
        tls_(tls),
        acceptor_(io_),
        pool_(io_.get_executor(), 256, std::chrono::seconds(55)),
        handler_(pool_, access_log),
        open_connections_(open_connections) {
    handler_.setState(state_);
  }

  // Binds with SO_REUSEPORT: every worker has its own accept queue, the kernel spreads
  // connections, and no accept lock is shared between threads.
  void listen(const tcp::endpoint& endpoint) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  void start() {
    asio::post(io_, [this] { usePlugins(state_->plugins); });
    asio::co_spawn(io_, tickPlugins(), asio::detached);
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] {
      if (redis_address_) {
        // This thread's connection to Redis, for the rate limiter (pipelined, on this loop).
        redis_ = std::make_unique<redis::RedisClient>(io_, *redis_address_);
        t_redis = redis_.get();
        redis_->connect();
      }
      if (plugin_redis_address_) {
        // Plugins' proxy_redis_call (Higress ABI): the limiter's connection when it is the same
        // Redis (commands are pipelined), else one of its own.
        if (!plugin_redis_shared_ || !redis_) {
          plugin_redis_ = std::make_unique<redis::RedisClient>(io_, *plugin_redis_address_);
        }
        handler_.setPluginRedis(plugin_redis_ ? plugin_redis_.get() : redis_.get());
      }
      io_.run();
      // Plugin instances (engine isolates) end on the thread that used them.
      handler_.setPlugins(nullptr);
      plugins_.reset();
    });
  }

  // Rate limits: the limiter all threads share; with Redis, each thread gets its own client.
  void setLimiter(limits::RateLimiter* limiter, std::optional<redis::RedisAddress> redis) {
    handler_.setLimiter(limiter);
    redis_address_ = std::move(redis);
  }
  static redis::RedisClient& threadRedis() { return *t_redis; }
  // The Redis of `wasm.redis` for plugins; `shared`: the same as the limiter's.
  void setPluginRedis(std::optional<redis::RedisAddress> address, bool shared) {
    plugin_redis_address_ = std::move(address);
    plugin_redis_shared_ = shared;
  }

  // The next requests use `state`; those in flight finish on the one they started with.
  void setState(std::shared_ptr<const GatewayState> state) {
    asio::post(io_, [this, state = std::move(state)]() mutable {
      usePlugins(state->plugins);
      handler_.setState(state);
      state_ = std::move(state);
    });
  }

  // Stops accepting and closes connections that wait for a next request.
  void drain() {
    asio::post(io_, [this] {
      draining_ = true;
      beast::error_code ec;
      acceptor_.close(ec);
      for (auto* connection : connections_) {
        if (connection->idle) connection->stream.socket().cancel(ec);
      }
    });
  }

  void stop() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  wasm::ThreadHooks pluginHooks() {
    wasm::ThreadHooks hooks;
    hooks.log = [](wasm::abi::LogLevel level, std::string_view plugin, std::string_view message) {
      static constexpr spdlog::level::level_enum kLevels[] = {
          spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
          spdlog::level::warn,  spdlog::level::err,   spdlog::level::critical};
      spdlog::log(kLevels[static_cast<int>(level)], "plugin {}: {}", plugin, message);
    };
    hooks.post = [this](std::function<void()> task) { asio::post(io_, std::move(task)); };
    hooks.redis = plugin_redis_address_.has_value();
    return hooks;
  }

  // Instances of a new plugin set are built here, on the worker's own thread (each owns an
  // engine isolate); those of modules the previous set already ran are shared with it. The old
  // set lives on until the last request that began with it ends.
  void usePlugins(const std::shared_ptr<const wasm::PluginSet>& set) {
    if (set == plugin_set_) return;
    plugin_set_ = set;
    if (!set || set->plugins().empty()) {
      plugins_.reset();
    } else {
      plugins_ = std::make_shared<wasm::ThreadPlugins>(set, pluginHooks(), plugins_.get());
    }
    handler_.setPlugins(plugins_);
  }

  // proxy_on_tick for plugins that asked for it (checked every 20 ms).
  Task<void> tickPlugins() {
    asio::steady_timer timer(io_);
    while (!draining_) {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(kNoThrow);
      if (plugins_) plugins_->tick(Clock::now());
    }
  }

  Task<void> accept() {
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        // Out of descriptors or similar: back off instead of spinning.
        spdlog::warn("accept: {}", ec.message());
        asio::steady_timer pause(io_, std::chrono::milliseconds(50));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  Task<void> serve(tcp::socket socket) {
    ClientConnection client(std::move(socket));
    beast::error_code ec;
    const auto peer = client.stream.socket().remote_endpoint(ec);
    if (!ec) client.peer = peer.address().to_string() + ":" + std::to_string(peer.port());
    connections_.insert(&client);
    open_connections_.fetch_add(1, std::memory_order_relaxed);
    try {
      if (!tls_ || co_await handshake(client)) co_await serveRequests(client);
    } catch (const std::exception& e) {
      spdlog::error("connection {}: {}", client.peer, e.what());
    }
    client.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    client.stream.close();
    connections_.erase(&client);
    open_connections_.fetch_sub(1, std::memory_order_relaxed);
  }

  // TLS before the first request when the listener has a certificate, within client_read_ms. A
  // failed handshake (a plain-HTTP client, an unknown protocol version) closes the connection.
  Task<bool> handshake(ClientConnection& client) {
    auto& tls = client.stream.startTls(*tls_);
    client.idle = true;
    client.stream.expires_after(std::chrono::milliseconds(state_->config.timeouts.client_read_ms));
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, kNoThrow);
    client.stream.expires_never();
    client.idle = false;
    if (ec) spdlog::debug("TLS handshake with {} failed: {}", client.peer, ec.message());
    co_return !ec;
  }

  Task<void> serveRequests(ClientConnection& client) {
    for (bool first = true; !draining_; first = false) {
      const auto state = state_;  // a change of state applies from the next request
      const auto& config = state->config;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(config.limits.max_header_bytes);
      parser.body_limit(config.limits.max_body_bytes);

      client.idle = true;
      client.stream.expires_after(std::chrono::milliseconds(first ? config.timeouts.client_read_ms
                                                                  : config.timeouts.keepalive_ms));
      bool folded = false;
      auto ec = co_await readHead(client, config.limits.max_header_bytes, folded);
      size_t n = 0;
      if (!ec) {
        std::tie(ec, n) =
            co_await bhttp::async_read_header(client.stream, client.buffer, parser, kNoThrow);
        ec = client.stream.translate(ec);
      }
      client.idle = false;
      if (!ec && folded) {
        // Beast would join the folded line into the value (RFC 9112 §5.2 allows that or a 400);
        // a proxy in front of the gateway may read the fold differently, so it is refused.
        const std::string_view what = "obsolete line folding in the request head";
        co_await sendMalformed(client, what, parser.get().target());
        co_return;
      }
      // Error values are named before co_await: GCC 12 destroys a brace-initialised
      // temporary argument of a coroutine call twice.
      if (ec == bhttp::error::header_limit) {
        co_await sendHeadersTooLarge(client, config, parser.get().target());
        co_return;
      }
      if (ec == bhttp::error::body_limit) {  // a Content-Length above the limit
        co_await sendTooLarge(client, config, parser.get().target());
        co_return;
      }
      if (ec) {
        if (client.buffer.size() > 0 && ec != beast::error::timeout && ec != asio::error::eof &&
            ec != asio::error::operation_aborted) {
          co_await sendUnparsable(client, ec, parser.get().target());
        }
        co_return;
      }

      auto& request = parser.get();
      if (request.count(bhttp::field::transfer_encoding) > 0 && !parser.chunked()) {
        // RFC 9112 §6.1: without chunked as the final coding a request's length is unknowable.
        // Beast reads such a request as bodiless, which would make its body the next request on
        // the connection (smuggling): refused, and the connection closed.
        const std::string_view what = "Transfer-Encoding other than chunked";
        co_await sendMalformed(client, what, request.target());
        co_return;
      }
      if (auto length = parser.content_length()) {
        request.body().reserve(*length + simdjson::SIMDJSON_PADDING);
      }
      if (beast::iequals(request[bhttp::field::expect], "100-continue") &&
          !co_await sendContinue(client, config)) {
        co_return;
      }
      client.stream.expires_after(std::chrono::milliseconds(config.timeouts.client_read_ms));
      std::tie(ec, n) = co_await bhttp::async_read(client.stream, client.buffer, parser, kNoThrow);
      ec = client.stream.translate(ec);
      client.stream.expires_never();
      if (ec == bhttp::error::body_limit) {
        co_await sendTooLarge(client, config, request.target());
        co_return;
      }
      if (ec) {
        if (ec != beast::error::timeout && ec != asio::error::eof &&
            ec != bhttp::error::partial_message) {
          const auto what = ec.message();
          co_await sendMalformed(client, what, request.target());
        }
        co_return;
      }
      // A large request grew the read buffer: it is not kept for the next ones.
      if (client.buffer.size() == 0 && client.buffer.capacity() > kKeptReadBytes) {
        client.buffer.shrink_to_fit();
      }
      if (!co_await handler_.handle(request, client, draining_)) co_return;
    }
  }

  // The helpers below are coroutines of their own so that what they hold is not in the frame of
  // serveRequests(), which lasts as long as the connection.

  static Task<bool> sendContinue(ClientConnection& client, const config::Config& config) {
    bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, 11};
    client.stream.expires_after(std::chrono::milliseconds(config.timeouts.client_read_ms));
    auto [ec, n] = co_await bhttp::async_write(client.stream, go_on, kNoThrow);
    co_return !ec;
  }

  // The target an error answer is given for: the one Beast parsed (`parsed_target`) or, when it
  // did not get that far, the request line's still in the buffer (Beast has consumed the request
  // line when the fields overflow; a request line alone over the limit is still there).
  static std::string errorTarget(const ClientConnection& client, std::string_view parsed_target) {
    return parsed_target.empty() ? rawTarget(client.buffer) : std::string(parsed_target);
  }

  static Task<void> sendHeadersTooLarge(ClientConnection& client, const config::Config& config,
                                        std::string_view parsed_target) {
    ApiError error{431, "invalid_request_error", "headers_too_large",
                   fmt::format("request headers exceed {} bytes", config.limits.max_header_bytes)};
    const auto target = errorTarget(client, parsed_target);
    co_await ProxyHandler::sendError(client, error, target);
  }

  static Task<void> sendUnparsable(ClientConnection& client, beast::error_code ec,
                                   std::string_view parsed_target) {
    const auto target = errorTarget(client, parsed_target);
    const auto what = ec.message();
    co_await sendMalformed(client, what, target);
  }

  static Task<void> sendTooLarge(ClientConnection& client, const config::Config& config,
                                 std::string_view target) {
    ApiError error{413, "invalid_request_error", "request_too_large",
                   fmt::format("request body exceeds limits.max_body_bytes ({} bytes)",
                               config.limits.max_body_bytes)};
    co_await ProxyHandler::sendError(client, error, target);
  }

  // `target`: the request's path, for the dialect of the error ("" when unknown).
  static Task<void> sendMalformed(ClientConnection& client, std::string_view what,
                                  std::string_view target) {
    ApiError error{400, "invalid_request_error", "bad_request",
                   fmt::format("malformed HTTP request: {}", what)};
    co_await ProxyHandler::sendError(client, error, target);
  }

  // The target of the request line at the start of `buffer` ("" when there is none), so that
  // an error found before Beast parsed the head still answers in the dialect of the path.
  static std::string rawTarget(const beast::flat_buffer& buffer) {
    std::string_view line(static_cast<const char*>(buffer.data().data()), buffer.size());
    while (line.starts_with("\r\n")) line.remove_prefix(2);
    line = line.substr(0, line.find("\r\n"));
    const auto space = line.find(' ');
    if (space == std::string_view::npos) return {};
    line.remove_prefix(space + 1);
    return std::string(line.substr(0, line.find(' ')));
  }

  // Reads until client.buffer holds a whole request head, or more than `limit` bytes (Beast
  // then reports header_limit), so that the raw head can be checked before Beast parses it;
  // `folded`: a header line is continued on the next (obs-fold). The stream's deadline bounds
  // the reads, as it bounds Beast's.
  static Task<beast::error_code> readHead(ClientConnection& client, size_t limit, bool& folded) {
    constexpr size_t kReadBytes = kHeadReadBytes;  // most heads fit; larger ones take reads
    size_t scanned = 0;
    for (;;) {
      const std::string_view data(static_cast<const char*>(client.buffer.data().data()),
                                  client.buffer.size());
      // Empty lines before the request line are skipped (RFC 9112 §2.2), by Beast too.
      size_t start = 0;
      while (data.substr(start, 2) == "\r\n") start += 2;
      const auto end = data.find("\r\n\r\n", std::max(start, scanned));
      if (end != std::string_view::npos) {
        const auto head = data.substr(start, end + 2 - start);
        for (size_t i = 0; i + 1 < head.size(); ++i) {
          if (head[i] == '\n' && (head[i + 1] == ' ' || head[i + 1] == '\t')) folded = true;
        }
        co_return beast::error_code{};
      }
      if (data.size() > limit) co_return beast::error_code{};
      scanned = data.size() < 3 ? 0 : data.size() - 3;  // "\r\n\r\n" may straddle two reads
      auto [ec, n] =
          co_await client.stream.async_read_some(client.buffer.prepare(kReadBytes), kNoThrow);
      client.buffer.commit(n);
      if (ec) co_return client.stream.translate(ec);
    }
  }

  asio::io_context io_{1};
  std::shared_ptr<const GatewayState> state_;
  asio::ssl::context* tls_;
  std::shared_ptr<const wasm::PluginSet> plugin_set_;
  std::shared_ptr<wasm::ThreadPlugins> plugins_;
  tcp::acceptor acceptor_;
  UpstreamPool pool_;
  ProxyHandler handler_;
  std::atomic<int>& open_connections_;
  std::unordered_set<ClientConnection*> connections_;
  bool draining_ = false;
  std::thread thread_;
  std::optional<redis::RedisAddress> redis_address_;
  std::unique_ptr<redis::RedisClient> redis_;
  std::optional<redis::RedisAddress> plugin_redis_address_;
  bool plugin_redis_shared_ = false;
  std::unique_ptr<redis::RedisClient> plugin_redis_;
  static thread_local redis::RedisClient* t_redis;
};

thread_local redis::RedisClient* Worker::t_redis = nullptr;

void setUpLogging(const config::Config& config) {
  auto logger = spdlog::stderr_color_mt("sluice");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
}

}  // namespace

int runGateway(const config::Config& config) {
  setUpLogging(config);
  // A client that vanishes mid-write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  beast::error_code ec;
  const auto address = asio::ip::make_address(config.listen_host, ec);
  if (ec) {
    spdlog::error("listen: \"{}\" is not an IP address", config.listen_host);
    return 1;
  }
  const tcp::endpoint endpoint(address, config.listen_port);

  // SO_REUSEPORT would let the workers share a port another process already serves: a plain
  // bind first makes a busy port an error, as users expect.
  {
    asio::io_context probe_io;
    tcp::acceptor probe(probe_io);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec) {
      spdlog::error("cannot listen on {}:{}: {}", config.listen_host, config.listen_port,
                    ec.message());
      return 1;
    }
  }

  // Plugins: the config's and those deployed through the admin API before a restart.
  PluginManager plugin_manager(&wasm::v8Engine, config);
  {
    std::vector<std::string> warnings;
    auto started = plugin_manager.start(warnings);
    for (const auto& warning : warnings) spdlog::warn("{}", warning);
    if (!started) {
      spdlog::error("{}", started.error());
      return 1;
    }
    if (!plugin_manager.set()->plugins().empty()) {
      spdlog::info("{} plugins loaded", plugin_manager.set()->plugins().size());
    }
  }

  // Client keys: the config's, with what the admin API saved (created keys, revocations).
  auto key_records = keys::configKeys(config.keys);
  if (!config.state_dir.empty()) {
    const auto path = config.state_dir + "/keys.json";
    auto saved = keys::loadKeyFile(path);
    if (saved) {
      key_records = keys::mergeKeys(std::move(key_records), *saved);
    } else {
      // Reported and set aside, never fatal and never overwritten.
      const auto kept = fmt::format("{}.corrupt-{}", path, std::time(nullptr));
      std::rename(path.c_str(), kept.c_str());
      spdlog::error("{}: skipped (kept as {}): keys created through the admin API are not loaded",
                    saved.error(), kept);
    }
  }
  auto built =
      buildGatewayState(config, nullptr, std::make_shared<keys::KeySet>(std::move(key_records)),
                        plugin_manager.set());
  if (!built) {
    spdlog::error("{}", built.error());
    return 1;
  }
  auto state = std::move(*built);
  for (const auto& provider : config.providers) {
    if (provider.tls.insecure_skip_verify) {
      spdlog::warn(
          "provider {}: tls.insecure_skip_verify is set: upstream certificates are not "
          "verified",
          provider.id);
    }
  }
  // Rate limits: in this process, or shared with other replicas through Redis.
  std::optional<redis::RedisAddress> redis_address;
  std::unique_ptr<limits::RateLimiter> limiter;
  if (config.limits.redis.empty()) {
    limiter = std::make_unique<limits::LocalRateLimiter>();
  } else {
    auto address = redis::parseRedisAddress(config.limits.redis);
    if (!address) {
      spdlog::error("limits.redis: {}", address.error());
      return 1;
    }
    redis_address = *address;
    limits::RedisLimiterOptions options;
    options.fail_open = config.limits.redis_fail_open;
    auto redis_limiter = std::make_unique<limits::RedisRateLimiter>(&Worker::threadRedis, options);
    metrics::defaultRegistry().addCollector([counted = redis_limiter.get()](std::string& out) {
      out +=
          "# HELP sluice_redis_errors_total Rate-limiter operations Redis did not answer "
          "properly.\n# TYPE sluice_redis_errors_total counter\nsluice_redis_errors_total ";
      out += std::to_string(counted->errors());
      out += '\n';
    });
    limiter = std::move(redis_limiter);
    spdlog::info("rate limits shared through Redis at {} (on Redis errors: {})",
                 address->describe(), options.fail_open ? "allow" : "reject");
  }
  // Plugins' Redis (Higress's proxy_redis_call): wasm.redis, which defaults to limits.redis.
  std::optional<redis::RedisAddress> plugin_redis_address;
  if (!config.wasm.redis.empty()) {
    auto address = redis::parseRedisAddress(config.wasm.redis);
    if (!address) {
      spdlog::error("wasm.redis: {}", address.error());
      return 1;
    }
    plugin_redis_address = *address;
  }
  std::unique_ptr<asio::ssl::context> listener_tls;
  if (config.tls.enabled()) {
    auto made = makeListenerTls(config.tls);
    if (!made) {
      spdlog::error("{}", made.error());
      return 1;
    }
    listener_tls = std::move(*made);
  }
  AccessLog access_log(config.access_log);
  std::atomic<int> open_connections{0};
  std::list<Worker> workers;
  try {
    for (int i = 0; i < config.threads; ++i) {
      auto& worker = workers.emplace_back(state, access_log, open_connections, listener_tls.get());
      worker.setLimiter(limiter.get(), redis_address);
      worker.setPluginRedis(plugin_redis_address, config.wasm.redis == config.limits.redis);
      worker.listen(endpoint);
    }
  } catch (const std::exception& e) {
    spdlog::error("cannot listen on {}:{}: {}", config.listen_host, config.listen_port, e.what());
    return 1;
  }

  // The control thread (this one): signals, active health checks, the admin listener.
  asio::io_context main_io;
  asio::signal_set signals(main_io, SIGINT, SIGTERM);
  ControlPlane control{.current = state,
                       .publish =
                           [&workers](std::shared_ptr<const GatewayState> next) {
                             for (auto& worker : workers) worker.setState(next);
                           },
                       .keys_changed = {}};
  HealthChecker health_checker(main_io, [&control] { return control.current; });
  // With Redis, replicas share keys created and revoked through any of them.
  std::unique_ptr<KeySync> key_sync;
  if (redis_address) {
    key_sync = std::make_unique<KeySync>(main_io, *redis_address, control);
    control.keys_changed = [sync = key_sync.get()] { sync->markDirty(); };
  }
  std::unique_ptr<admin::AdminServer> admin_server;
  if (config.admin.port != 0) {
    // Bodies up to 64 MiB: a module of up to 32 MiB, base64-encoded, in POST /wasm.
    admin_server =
        std::make_unique<admin::AdminServer>(main_io, config.admin.token, uint64_t{64} << 20);
    addWorkerApi(*admin_server, control);
    addKeyApi(*admin_server, control);
    addWasmApi(*admin_server, control, plugin_manager);
    if (auto listening = admin_server->listen(config.admin.host, config.admin.port); !listening) {
      spdlog::error("cannot listen for the admin API on {}:{}: {}", config.admin.host,
                    config.admin.port, listening.error());
      return 1;
    }
  }
  for (auto& worker : workers) worker.start();
  health_checker.start();
  if (key_sync) key_sync->start();
  spdlog::info("sluice listening on {}:{} with {} threads{}", config.listen_host,
               config.listen_port, config.threads, listener_tls ? " (TLS)" : "");
  if (admin_server) {
    spdlog::info("admin API on {}:{}", config.admin.host, admin_server->boundPort());
  }

  int received = 0;
  signals.async_wait([&](const beast::error_code&, int signal) {
    received = signal;
    health_checker.stop();
    if (key_sync) key_sync->stop();
    if (admin_server) admin_server->stop();
    main_io.stop();
  });
  main_io.run();

  spdlog::info("signal {}: draining (up to {} ms)", received, config.timeouts.drain_ms);
  for (auto& worker : workers) worker.drain();
  const auto deadline = Clock::now() + std::chrono::milliseconds(config.timeouts.drain_ms);
  while (open_connections.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int left = open_connections.load();
  for (auto& worker : workers) worker.stop();
  if (left > 0) spdlog::warn("drain timeout: closed {} connections still open", left);
  spdlog::info("stopped");
  return 0;
}

}  // namespace sluice::proxy
