#include "proxy/gateway_state.h"

namespace sluice::proxy {
namespace {

int64_t nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int ProviderRuntime::pickToken(size_t& cursor, const std::vector<bool>& tried) const {
  const size_t count = token_rest_until.size();
  if (count == 0) return -1;
  const auto now = nowNanos();
  int earliest = -1;
  int64_t earliest_end = INT64_MAX;
  for (size_t step = 0; step < count; ++step) {
    const size_t index = (cursor + step) % count;
    if (index < tried.size() && tried[index]) continue;
    const auto rest_end = token_rest_until[index]->load(std::memory_order_relaxed);
    if (rest_end <= now) {
      cursor = index + 1;
      return static_cast<int>(index);
    }
    if (rest_end < earliest_end) {
      earliest_end = rest_end;
      earliest = static_cast<int>(index);
    }
  }
  if (earliest >= 0) cursor = static_cast<size_t>(earliest) + 1;
  return earliest;
}

void ProviderRuntime::rest(int token, std::chrono::milliseconds period) const {
  if (token < 0 || static_cast<size_t>(token) >= token_rest_until.size()) return;
  const auto until =
      nowNanos() + std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
  token_rest_until[token]->store(until, std::memory_order_relaxed);
}

}  // namespace sluice::proxy
