#pragma once

// The health of one upstream endpoint as every thread sees it: the verdict of active checks and
// a circuit breaker fed by the outcome of real requests. Lock-free; shared by all routes whose
// pools contain the endpoint.

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sluice::routing {

// Milliseconds of std::chrono::steady_clock.
int64_t steadyNowMs();

class EndpointHealth {
 public:
  enum class State : uint8_t { kHealthy, kUnhealthy, kOpen, kHalfOpen };

  // Whether a request may be sent now: the active check passes and the breaker is closed or its
  // cool-down has passed (half-open: one probe allowed, see admit).
  bool available(int64_t now_ms) const {
    if (!active_healthy_.load(std::memory_order_relaxed)) return false;
    const auto until = open_until_.load(std::memory_order_relaxed);
    return until == 0 || (now_ms >= until && !probing_.load(std::memory_order_relaxed));
  }

  // Called for the endpoint the balancer chose: true when the request may go. A half-open
  // breaker lets exactly one request through (the probe); others are refused until it ends.
  bool admit(int64_t now_ms);

  // The outcome of a request admitted earlier. Every admitted request reports exactly one.
  void onSuccess();
  // A connect error, a timeout or a 5xx: `threshold` consecutive ones open the breaker for
  // `cooldown_ms` (0 never opens); a failed probe opens it again.
  void onFailure(int64_t now_ms, uint32_t threshold, uint32_t cooldown_ms);
  // The request ended without a verdict on the endpoint (the client left, a 4xx answer).
  void onNeutral();

  // One active check; returns true when the endpoint changed between healthy and unhealthy.
  bool onCheck(bool passed, uint32_t healthy_threshold, uint32_t unhealthy_threshold);

  State state(int64_t now_ms) const;
  bool activeHealthy() const { return active_healthy_.load(std::memory_order_relaxed); }
  uint64_t breakerOpens() const { return breaker_opens_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> active_healthy_{true};
  std::atomic<uint32_t> check_streak_{0};  // consecutive checks disagreeing with the verdict
  std::atomic<uint32_t> failures_{0};      // consecutive failed requests
  std::atomic<int64_t> open_until_{0};     // 0: closed; else open until then, half-open after
  std::atomic<bool> probing_{false};       // the half-open probe is in flight
  std::atomic<uint64_t> breaker_opens_{0};
};

std::string_view stateName(EndpointHealth::State state);

// Caps retries at a share of requests, so that a failing pool is not hit with attempts × load.
// A token bucket in thousandths: each request deposits `ratio`, each retry takes one; besides,
// `min_per_second` retries a second are always allowed. The balance is capped at ten seconds of
// the minimum plus ten retries, so a quiet period cannot save up a storm.
class RetryBudget {
 public:
  RetryBudget(double ratio, uint32_t min_per_second);
  void onRequest();
  // Whether a retry would be allowed now (without taking it).
  bool canRetry(int64_t now_ms) const;
  bool tryRetry(int64_t now_ms);

 private:
  const int64_t deposit_;
  const int64_t min_per_second_;
  const int64_t cap_;
  std::atomic<int64_t> balance_;
  std::atomic<int64_t> second_{0};            // the second the free retries count in
  std::atomic<uint32_t> free_used_{0};        // free retries used in that second
};

}  // namespace sluice::routing
