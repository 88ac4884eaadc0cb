#include "routing/endpoint_health.h"

#include <algorithm>
#include <chrono>

namespace sluice::routing {

int64_t steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

EndpointHealth::Admission EndpointHealth::admit(int64_t now_ms) {
  if (!active_healthy_.load(std::memory_order_relaxed)) return Admission::kRefused;
  const auto until = open_until_.load(std::memory_order_acquire);
  if (until == 0) return Admission::kAdmitted;
  if (now_ms < until) return Admission::kRefused;
  bool expected = false;
  return probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)
             ? Admission::kProbe
             : Admission::kRefused;
}

void EndpointHealth::onSuccess(bool probe) {
  failures_.store(0, std::memory_order_relaxed);
  // Any success shows the endpoint works: the breaker closes (a probe still in flight then
  // reports into a closed breaker, which is harmless).
  if (probe || open_until_.load(std::memory_order_relaxed) != 0) {
    open_until_.store(0, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
  }
}

void EndpointHealth::onFailure(bool probe, int64_t now_ms, uint32_t threshold,
                               uint32_t cooldown_ms) {
  const auto failures = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (threshold == 0) return;
  const auto reopen_at = now_ms + std::max<uint32_t>(cooldown_ms, 1);
  if (probe && open_until_.load(std::memory_order_acquire) != 0) {
    // The probe failed: open again for a new cool-down. (A probe that reports after another
    // request's success closed the breaker counts as an ordinary failure below.)
    open_until_.store(reopen_at, std::memory_order_release);
    probing_.store(false, std::memory_order_release);
    return;
  }
  int64_t closed = 0;
  if (failures >= threshold &&
      open_until_.compare_exchange_strong(closed, reopen_at, std::memory_order_acq_rel)) {
    breaker_opens_.fetch_add(1, std::memory_order_relaxed);
  }
}

void EndpointHealth::onNeutral(bool probe) {
  // A probe that proved nothing gives the next request the turn.
  if (probe) probing_.store(false, std::memory_order_release);
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
    : ratio_(ratio), min_per_second_(min_per_second) {}

RetryBudget::Window& RetryBudget::current(int64_t now_ms) {
  const int64_t id = now_ms / kWindowMs;
  auto& window = windows_[id % 2];
  auto seen = window.id.load(std::memory_order_acquire);
  if (seen != id && window.id.compare_exchange_strong(seen, id, std::memory_order_acq_rel)) {
    // This window slot starts over; counts racing with the reset may be lost, which only
    // makes the budget a little looser or tighter for a moment.
    window.requests.store(0, std::memory_order_relaxed);
    window.retries.store(0, std::memory_order_relaxed);
  }
  return window;
}

void RetryBudget::onRequest(int64_t now_ms) {
  current(now_ms).requests.fetch_add(1, std::memory_order_relaxed);
}

bool RetryBudget::freeRetry(int64_t now_ms, bool take) {
  if (min_per_second_ == 0) return false;
  const int64_t second = now_ms / 1000;
  auto seen = second_.load(std::memory_order_relaxed);
  if (seen != second && second_.compare_exchange_strong(seen, second)) {
    free_used_.store(0, std::memory_order_relaxed);
  }
  if (!take) return free_used_.load(std::memory_order_relaxed) < min_per_second_;
  // Taking past the minimum counts on; the counter is reset every second.
  return free_used_.fetch_add(1, std::memory_order_relaxed) < min_per_second_;
}

bool RetryBudget::ratioAllows(int64_t now_ms) {
  const int64_t id = now_ms / kWindowMs;
  const auto& now = current(now_ms);
  const auto& before = windows_[(id + 1) % 2];
  double requests = static_cast<double>(now.requests.load(std::memory_order_relaxed));
  double retries = static_cast<double>(now.retries.load(std::memory_order_relaxed));
  if (before.id.load(std::memory_order_acquire) == id - 1) {
    const double weight = 1.0 - static_cast<double>(now_ms % kWindowMs) / kWindowMs;
    requests += weight * static_cast<double>(before.requests.load(std::memory_order_relaxed));
    retries += weight * static_cast<double>(before.retries.load(std::memory_order_relaxed));
  }
  return retries + 1 <= ratio_ * requests;
}

bool RetryBudget::canRetry(int64_t now_ms) {
  return freeRetry(now_ms, false) || ratioAllows(now_ms);
}

bool RetryBudget::tryRetry(int64_t now_ms) {
  // Free retries do not count against the ratio's share: the two add up.
  if (freeRetry(now_ms, true)) return true;
  if (!ratioAllows(now_ms)) return false;
  current(now_ms).retries.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace sluice::routing
