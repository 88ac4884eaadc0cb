#include "proxy/health_checker.h"

#include <spdlog/spdlog.h>

#include <set>

namespace sluice::proxy {

using namespace http;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kTick = std::chrono::milliseconds(10);
}

HealthChecker::HealthChecker(asio::io_context& io, Snapshot current)
    : io_(io),
      current_(std::move(current)),
      connections_(io.get_executor(), 0, std::chrono::milliseconds(1)) {}

void HealthChecker::start() { asio::co_spawn(io_, run(), asio::detached); }

Task<void> HealthChecker::run() {
  asio::steady_timer timer(io_);
  while (!stopped_) {
    const auto state = current_();
    const auto now = Clock::now();
    std::set<std::string_view> present;
    for (size_t p = 0; p < state->config.providers.size(); ++p) {
      const auto& settings = state->config.providers[p].health_check;
      if (settings.path.empty()) continue;
      for (const auto& endpoint : state->endpoints[p]) {
        present.insert(endpoint->id);
        auto& entry = schedule_[endpoint->id];
        if (entry.running || now < entry.next) continue;
        entry.running = true;
        entry.next = now + std::chrono::milliseconds(settings.interval_ms);
        asio::co_spawn(io_, check(endpoint, state->providers[p], settings), asio::detached);
      }
    }
    std::erase_if(schedule_, [&](const auto& item) {
      return !item.second.running && !present.contains(item.first);
    });
    timer.expires_after(kTick);
    co_await timer.async_wait(kNoThrow);
  }
}

Task<void> HealthChecker::check(std::shared_ptr<EndpointRuntime> endpoint,
                                std::shared_ptr<const ProviderRuntime> provider,
                                config::HealthCheck settings) {
  const auto timeout = std::chrono::milliseconds(settings.timeout_ms);
  const auto deadline = Clock::now() + timeout;
  const auto& target = endpoint->endpoint;
  bool passed = false;
  std::string why;
  auto [ec, connection] = co_await connections_.connect(target, timeout, provider->tls.get());
  if (!ec) {
    bhttp::request<bhttp::empty_body> request{bhttp::verb::get, target.base_path + settings.path,
                                              11};
    request.set(bhttp::field::host, target.port == 80 || target.port == 443
                                        ? target.host
                                        : target.host + ":" + std::to_string(target.port));
    request.set(bhttp::field::user_agent, "sluice-health-check");
    request.keep_alive(false);
    connection->stream.expires_after(
        std::max(std::chrono::nanoseconds(1), deadline - Clock::now()));
    std::tie(ec, std::ignore) = co_await bhttp::async_write(connection->stream, request, kNoThrow);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024);
    if (!ec) {
      std::tie(ec, std::ignore) =
          co_await bhttp::async_read(connection->stream, connection->buffer, parser, kNoThrow);
    }
    ec = connection->stream.translate(ec);
    const auto status = parser.get().result_int();
    passed = !ec && status >= 200 && status < 300;
    why = ec ? ec.message() : "status " + std::to_string(status);
  } else {
    why = ec.message();
  }
  if (endpoint->health.onCheck(passed, settings.healthy_threshold, settings.unhealthy_threshold)) {
    if (passed) {
      spdlog::info("endpoint {} ({}) is healthy again", endpoint->id, target.url);
    } else {
      spdlog::warn(
          "endpoint {} ({}) failed its health check ({}): no more traffic until it "
          "passes",
          endpoint->id, target.url, why);
    }
  }
  if (auto it = schedule_.find(endpoint->id); it != schedule_.end()) it->second.running = false;
}

}  // namespace sluice::proxy
