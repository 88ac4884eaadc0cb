#pragma once

// Helpers for the rate limiter's tests: running its coroutines to completion, on top of the
// Redis client's test helpers (a real redis-server in a child process).

#include <cstdint>
#include <exception>
#include <string>

#include "../redis/redis_test_support.h"
#include "limits/rate_limiter.h"

namespace sluice::limits::testing {

namespace asio = boost::asio;
using redis::testing::RedisServer;
using redis::testing::runFor;
using redis::testing::runTask;

inline void runTask(asio::io_context& io, Task<void> task) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
    failure = error;
    done = true;
  });
  while (!done) {
    if (io.run_one() == 0) io.restart();
  }
  if (failure) std::rethrow_exception(failure);
}

// 2025-03-10T12:00:00.000Z: the start of a minute, so that slot clocks start at whole numbers.
inline constexpr int64_t kNoon = 1'741'608'000'000;
// 2025-03-10T23:59:59.000Z: one second before midnight (UTC).
inline constexpr int64_t kSecondBeforeMidnight = 1'741'651'199'000;

inline LimitRule rpm(std::string subject, uint64_t limit) {
  return LimitRule{LimitKind::kRequestsPerMinute, std::move(subject), limit};
}
inline LimitRule tpm(std::string subject, uint64_t limit) {
  return LimitRule{LimitKind::kTokensPerMinute, std::move(subject), limit};
}
inline LimitRule tpd(std::string subject, uint64_t limit) {
  return LimitRule{LimitKind::kTokensPerDay, std::move(subject), limit};
}

}  // namespace sluice::limits::testing
