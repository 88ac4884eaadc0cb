#pragma once

// The Redis backend: limits shared by every replica that uses the same Redis. Each operation is
// one Lua script (admit: check every rule, then charge all or none; settle), so concurrent
// replicas never interleave inside an admission. Time comes from Redis's own clock (TIME inside
// the script; Redis 7 replicates the script's effects, not the script), so replicas whose clocks
// disagree still count alike. Counters are keys "<prefix><storage key>" (limit_rules.h) that
// expire when their limit is fully replenished or their day is over.
//
// When Redis cannot answer (unreachable, timed out, an error reply), admission fails open
// (allowed, nothing counted) or closed (rejected with limiter_unavailable), as configured; every
// such failure is counted and logged at most once per log interval. The client reconnects on its
// own, and limits apply again as soon as Redis answers.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "limits/rate_limiter.h"
#include "redis/redis_client.h"
#include "redis/redis_script.h"

namespace sluice::limits {

struct RedisLimiterOptions {
  // Redis unavailable: allow requests unchecked (true, as Envoy's rate limit filter does by
  // default) or reject them with limiter_unavailable (false).
  bool fail_open = true;
  // Prepended to every key. With Redis Cluster, put every key of an admission in one slot with a
  // hash tag, e.g. "{sluice:rl}:".
  std::string key_prefix = "sluice:rl:";
  std::chrono::milliseconds timeout{250};  // per script call, reconnects included
  std::chrono::milliseconds log_interval{5000};
  // Empty: Redis's clock (TIME), as production wants. Tests set it to move time.
  NowMs clock;
};

class RedisRateLimiter final : public RateLimiter {
 public:
  // The Redis client of the calling worker thread (one per thread, on its io_context): the
  // limiter is shared by all worker threads and calls this at every operation.
  using ClientForThread = std::function<redis::RedisClient&()>;

  RedisRateLimiter(ClientForThread client_for_thread, RedisLimiterOptions options = {});

  Task<Decision> admit(const AdmitRequest& request) override;
  Task<void> settle(Reservation reservation, uint64_t actual_tokens) override;

  // Operations Redis did not answer properly (no reply, an error reply, a malformed reply),
  // admissions and settles alike, since the start.
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

  const RedisLimiterOptions& options() const { return options_; }

 private:
  // Counts a failure, logs it unless one was logged within the log interval, and remembers that
  // Redis is down so that its return is logged once.
  void noteFailure(std::string_view operation, std::string_view cause);
  void noteSuccess();
  // Runs `script` on this thread's Redis client with the limiter's timeout.
  Task<redis::RedisResult> run(const redis::RedisScript& script,
                               const std::vector<std::string>& keys,
                               const std::vector<std::string>& args);

  ClientForThread client_for_thread_;
  RedisLimiterOptions options_;
  redis::RedisScript admit_script_;
  redis::RedisScript settle_script_;
  std::atomic<uint64_t> errors_{0};
  std::atomic<int64_t> next_log_ms_{0};  // steady clock: no failure logged before then
  std::atomic<uint64_t> unlogged_{0};    // failures since the last log line
  std::atomic<bool> down_{false};
};

}  // namespace sluice::limits
