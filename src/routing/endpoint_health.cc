#include "routing/endpoint_health.h"

#include <algorithm>
#include <chrono>

namespace sluice::routing {

int64_t steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool EndpointHealth::admit(int64_t now_ms) {
  const auto until = open_until_.load(std::memory_order_acquire);
  if (until == 0) return true;
  if (now_ms < until) return false;
  bool expected = false;
  return probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
}

void EndpointHealth::onSuccess() {
  failures_.store(0, std::memory_order_relaxed);
  if (open_until_.load(std::memory_order_relaxed) != 0) {
    open_until_.store(0, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
  }
}

void EndpointHealth::onFailure(int64_t now_ms, uint32_t threshold, uint32_t cooldown_ms) {
  const auto failures = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (threshold == 0) return;
  const bool probe_failed = probing_.load(std::memory_order_acquire);
  if (failures >= threshold || probe_failed) {
    const bool was_closed = open_until_.exchange(now_ms + std::max<uint32_t>(cooldown_ms, 1),
                                                 std::memory_order_acq_rel) == 0;
    if (was_closed) breaker_opens_.fetch_add(1, std::memory_order_relaxed);
    probing_.store(false, std::memory_order_release);
  }
}

void EndpointHealth::onNeutral() {
  // A probe that proved nothing gives the next request the chance.
  if (open_until_.load(std::memory_order_relaxed) != 0) {
    probing_.store(false, std::memory_order_release);
  }
}

bool EndpointHealth::onCheck(bool passed, uint32_t healthy_threshold,
                             uint32_t unhealthy_threshold) {
  const bool healthy = active_healthy_.load(std::memory_order_relaxed);
  if (passed == healthy) {
    check_streak_.store(0, std::memory_order_relaxed);
    return false;
  }
  const auto streak = check_streak_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (streak < (healthy ? unhealthy_threshold : healthy_threshold)) return false;
  check_streak_.store(0, std::memory_order_relaxed);
  active_healthy_.store(passed, std::memory_order_relaxed);
  if (passed) {
    // Back in service: a fresh start for the breaker too.
    failures_.store(0, std::memory_order_relaxed);
    open_until_.store(0, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
  }
  return true;
}

EndpointHealth::State EndpointHealth::state(int64_t now_ms) const {
  if (!active_healthy_.load(std::memory_order_relaxed)) return State::kUnhealthy;
  const auto until = open_until_.load(std::memory_order_relaxed);
  if (until == 0) return State::kHealthy;
  return now_ms < until ? State::kOpen : State::kHalfOpen;
}

std::string_view stateName(EndpointHealth::State state) {
  switch (state) {
    case EndpointHealth::State::kHealthy: return "healthy";
    case EndpointHealth::State::kUnhealthy: return "unhealthy";
    case EndpointHealth::State::kOpen: return "open";
    case EndpointHealth::State::kHalfOpen: return "half_open";
  }
  return "unknown";
}

RetryBudget::RetryBudget(double ratio, uint32_t min_per_second)
    : deposit_(static_cast<int64_t>(ratio * 1000)),
      min_per_second_(min_per_second),
      cap_((10 * int64_t{min_per_second} + 10) * 1000),
      balance_(0) {}

void RetryBudget::onRequest() {
  if (deposit_ == 0) return;
  // Capped add: a lost race overshoots by one deposit at most, which is harmless.
  if (balance_.fetch_add(deposit_, std::memory_order_relaxed) + deposit_ > cap_) {
    balance_.store(cap_, std::memory_order_relaxed);
  }
}

bool RetryBudget::canRetry(int64_t now_ms) const {
  if (min_per_second_ > 0 && (second_.load(std::memory_order_relaxed) != now_ms / 1000 ||
                              free_used_.load(std::memory_order_relaxed) < min_per_second_)) {
    return true;
  }
  return balance_.load(std::memory_order_relaxed) >= 1000;
}

bool RetryBudget::tryRetry(int64_t now_ms) {
  if (min_per_second_ > 0) {
    const int64_t second = now_ms / 1000;
    auto seen = second_.load(std::memory_order_relaxed);
    if (seen != second && second_.compare_exchange_strong(seen, second)) {
      free_used_.store(0, std::memory_order_relaxed);
    }
    if (free_used_.fetch_add(1, std::memory_order_relaxed) < min_per_second_) return true;
  }
  auto balance = balance_.load(std::memory_order_relaxed);
  while (balance >= 1000) {
    if (balance_.compare_exchange_weak(balance, balance - 1000, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

}  // namespace sluice::routing
