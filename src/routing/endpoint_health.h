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

  enum class Admission : uint8_t { kRefused, kAdmitted, kProbe };

  // Called for the endpoint the balancer chose. A closed breaker admits; an open one refuses
  // until its cool-down ends, then admits exactly one request as the probe (half-open) and
  // refuses the others until the probe reports. An endpoint failing its active check refuses.
  Admission admit(int64_t now_ms);

  // The outcome of an admitted request; every admitted request reports exactly one, passing
  // whether it was the probe. Only the probe's outcome decides a half-open breaker: a request
  // admitted before the breaker opened cannot free or spend the probe's turn.
  void onSuccess(bool probe);
  // A connect error, a timeout or a 5xx: `threshold` consecutive ones open a closed breaker for
  // `cooldown_ms` (threshold 0: never); a failed probe opens it again for a new cool-down.
  void onFailure(bool probe, int64_t now_ms, uint32_t threshold, uint32_t cooldown_ms);
  // The request ended without a verdict on the endpoint (the client left, a 429).
  void onNeutral(bool probe);

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

// Caps retries at a share of requests, so that a failing pool is not hit with attempts × load:
// over the last ten seconds (a sliding window of two fixed ones, the older weighted by how
// much of it is still inside), retries may reach `ratio` × requests; besides,
// `min_per_second` retries a second are always allowed, so quiet routes can retry too.
class RetryBudget {
 public:
  RetryBudget(double ratio, uint32_t min_per_second);
  void onRequest(int64_t now_ms);
  // Whether a retry would be allowed now (without taking it).
  bool canRetry(int64_t now_ms);
  bool tryRetry(int64_t now_ms);

 private:
  static constexpr int64_t kWindowMs = 10000;
  struct Window {
    std::atomic<int64_t> id{-1};  // now_ms / kWindowMs of the window counted here
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> retries{0};
  };
  Window& current(int64_t now_ms);
  bool freeRetry(int64_t now_ms, bool take);
  bool ratioAllows(int64_t now_ms);

  const double ratio_;
  const uint32_t min_per_second_;
  Window windows_[2];                   // by window id % 2
  std::atomic<int64_t> second_{-1};     // the second the free retries count in
  std::atomic<uint32_t> free_used_{0};  // free retries used in that second
};

}  // namespace sluice::routing
