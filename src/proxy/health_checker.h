#pragma once

// Private to src/proxy: includes Asio/Beast.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "http/asio.h"
#include "http/upstream_pool.h"
#include "proxy/gateway_state.h"

namespace sluice::proxy {

// Active health checks: every endpoint of a provider with `health_check` gets
// GET base_path + path at its interval, on a new connection each time; 2xx within the timeout
// passes. Verdicts go to EndpointRuntime::health, which every worker thread reads. Runs on the
// control thread's loop and follows the current snapshot, so added workers are checked and
// removed ones are dropped.
class HealthChecker {
 public:
  using Snapshot = std::function<std::shared_ptr<const GatewayState>()>;
  HealthChecker(http::asio::io_context& io, Snapshot current);
  void start();
  void stop() { stopped_ = true; }

 private:
  http::Task<void> run();
  http::Task<void> check(std::shared_ptr<EndpointRuntime> endpoint,
                         std::shared_ptr<const ProviderRuntime> provider,
                         config::HealthCheck settings);

  http::asio::io_context& io_;
  Snapshot current_;
  http::UpstreamPool connections_;
  struct Schedule {
    std::chrono::steady_clock::time_point next;
    bool running = false;
  };
  std::map<std::string, Schedule, std::less<>> schedule_;  // by endpoint id
  bool stopped_ = false;
};

}  // namespace sluice::proxy
