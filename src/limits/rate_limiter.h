#pragma once

// Rate limits for the gateway: requests and tokens per minute per client key and per model, and
// a daily token budget per key. One interface, two backends: in this process
// (local_rate_limiter.h, no setup) and shared by replicas through Redis (redis_rate_limiter.h).
// How the limits count is in limit_rules.h.

// Only the coroutine type comes from Asio here; the Redis backend keeps the rest in its .cc.
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::limits {

template <typename T = void>
using Task = boost::asio::awaitable<T>;  // the same type as http::Task

// Wall-clock milliseconds since the Unix epoch (UTC days bound the daily budget). Injectable so
// that tests move time; the Redis backend uses Redis's own clock unless given one.
using NowMs = std::function<int64_t()>;
int64_t systemNowMs();

enum class LimitKind : uint8_t {
  kRequestsPerMinute,  // each request costs 1
  kTokensPerMinute,    // each request costs its token estimate, corrected by settle()
  kTokensPerDay,       // a budget per UTC day, charged like kTokensPerMinute
};

// "rpm", "tpm", "tpd": for logs, headers and storage keys.
std::string_view kindName(LimitKind kind);

struct LimitRule {
  LimitKind kind = LimitKind::kRequestsPerMinute;
  // Whose counter this is, e.g. "key:team-a" or "model:gpt-4o". Rules of one kind and subject
  // share a counter (per-minute ones also need the same limit: a new limit starts afresh).
  std::string subject;
  // Requests or tokens per minute, or tokens per UTC day. 0: not limited (neither checked nor
  // charged).
  uint64_t limit = 0;
};

struct AdmitRequest {
  std::vector<LimitRule> limits;  // checked together: either all are charged or none is
  // What the request will likely use (e.g. prompt tokens + max_tokens), charged to the token
  // limits now; at least 1 is charged, so that an exhausted limit rejects any request.
  uint64_t estimated_tokens = 0;
};

// The usual rules of one request; a 0 leaves a rule out. Subjects are "key:<key>" and
// "model:<model>" (the model limits are shared by all keys).
struct KeyQuota {
  uint64_t rpm = 0;
  uint64_t tpm = 0;
  uint64_t tokens_per_day = 0;
};
struct ModelQuota {
  uint64_t rpm = 0;
  uint64_t tpm = 0;
};
AdmitRequest makeAdmitRequest(std::string_view key, const KeyQuota& key_quota,
                              std::string_view model, const ModelQuota& model_quota,
                              uint64_t estimated_tokens);

// One limit as rate-limit headers show it.
struct LimitStatus {
  uint64_t limit = 0;
  uint64_t remaining = 0;  // what another request could still use now (rounded down)
  int64_t reset_ms = 0;    // until the limit is fully replenished
};

// What an admission charged to token limits, for settle() to correct once the real usage is
// known. Empty when nothing was charged (rejected, no token limits, limiter unavailable).
struct Reservation {
  struct Charge {
    LimitRule rule;
    int64_t day = 0;  // kTokensPerDay: the UTC day (days since the epoch) that was charged
  };
  std::vector<Charge> charges;
  uint64_t tokens = 0;  // charged to each of them

  bool empty() const { return charges.empty(); }
};

enum class RejectReason : uint8_t {
  kNone,
  kRateLimited,         // a limit has no room now; retry_after_ms says when it will
  kCostExceedsLimit,    // the request alone costs more than the limit: waiting does not help
  kLimiterUnavailable,  // the backend could not decide (Redis unreachable or failing)
};

// "rate_limited", "cost_exceeds_limit", "limiter_unavailable" ("" for kNone).
std::string_view reasonName(RejectReason reason);

struct Decision {
  bool allowed = true;
  // kNone when allowed, except kLimiterUnavailable when the backend failed open (allowed with
  // nothing checked or charged).
  RejectReason reason = RejectReason::kNone;
  // Rejected by a limit: its index in AdmitRequest::limits (of several, the one that waits
  // longest, or the first whose cost exceeds it).
  std::optional<size_t> rejected_by;
  // Rejected: the wait until the rejecting limit would allow the request; 0 when no wait helps
  // (kCostExceedsLimit, kLimiterUnavailable).
  int64_t retry_after_ms = 0;
  // One per AdmitRequest::limits, after this admission (zeros for limits of 0). Empty when the
  // backend could not answer.
  std::vector<LimitStatus> statuses;
  Reservation reservation;
};

// A rate limiter backend. Both operations are coroutines because the Redis backend talks to
// Redis; the local one completes without suspending. Neither throws.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // Checks every limit of `request` and charges all of them, or none when one rejects.
  // `request` must outlive the awaitable: co_await it at once.
  virtual Task<Decision> admit(const AdmitRequest& request) = 0;

  // Corrects the token charge of an admission by (actual_tokens - reservation.tokens): a refund
  // when the request used less (0 when it failed), an extra charge when it used more. Takes the
  // reservation by value so that it may run detached after the response.
  virtual Task<void> settle(Reservation reservation, uint64_t actual_tokens) = 0;
};

using RateLimiterPtr = std::unique_ptr<RateLimiter>;

}  // namespace sluice::limits
