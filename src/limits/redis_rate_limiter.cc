#include "limits/redis_rate_limiter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "limits/limit_rules.h"

namespace sluice::limits {
namespace {

// The two scripts repeat limit_rules.cc step for step (same order of double operations), so
// that both backends decide alike. Both start with this prelude: Redis 7 replicates a script's
// effects, which lets it read TIME and then write; older Redis needs replicate_commands() first.
constexpr std::string_view kPrelude = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local DAY, EPOCH, SLACK, MS_SLACK = 86400000, 1704067200000, 1e-6, 1e-3
local since = now - EPOCH
local minute = math.floor(since / 60000)
local into = since - minute * 60000
local function clock(limit) return minute * limit + into * limit / 60000 end
local function ms(slots, limit)
  if slots <= 0 then return 0 end
  local ms = math.ceil(slots * 60000 / limit - MS_SLACK)
  if ms <= 0 then return 0 end
  return ms
end
)lua";

// KEYS[i]: the counter of rule i. ARGV[1]: now in ms, or '' for Redis's clock; then three values
// per rule: 'm' (per minute, GCRA) or 'd' (per UTC day), the limit, the cost.
// Returns {charged (1 or 0), then per rule: fit (1 fits, 0 full, -1 cost exceeds the limit),
// remaining, reset ms, retry-after ms, day counted (per-day rules)}. A per-minute counter expires
// 1 ms after it is full again (PX must be positive, even for limits whose slot is below 1 ms).
constexpr std::string_view kAdmitScript = R"lua(
local checks = {}
local charge = true
for i = 1, #KEYS do
  local c = {kind = ARGV[3 * i - 1], limit = tonumber(ARGV[3 * i])}
  local cost = tonumber(ARGV[3 * i + 1])
  if c.kind == 'm' then
    c.now = clock(c.limit)
    local tat = tonumber(redis.call('GET', KEYS[i])) or c.now
    if tat < c.now then tat = c.now end
    if tat > c.now + c.limit then tat = c.now + c.limit end
    c.tat = tat
    c.after = tat + cost
    if cost > c.limit then c.fit = -1
    elseif c.after - c.now <= c.limit + SLACK then c.fit = 1
    else c.fit = 0 end
  else
    local stored = redis.call('HMGET', KEYS[i], 'd', 'u')
    local stored_day = tonumber(stored[1])
    c.day = math.floor(now / DAY)
    if stored_day ~= nil and stored_day > c.day then c.day = stored_day end
    c.used = 0
    if stored_day == c.day then c.used = tonumber(stored[2]) or 0 end
    c.after = c.used + cost
    if cost > c.limit then c.fit = -1
    elseif c.after <= c.limit then c.fit = 1
    else c.fit = 0 end
  end
  if c.fit ~= 1 then charge = false end
  checks[i] = c
end
local reply = {charge and 1 or 0}
for i = 1, #KEYS do
  local c = checks[i]
  local remaining, reset, retry, day = 0, 0, 0, 0
  if c.kind == 'm' then
    local tat = c.tat
    if charge then
      tat = c.after
      redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', ms(tat - c.now, c.limit) + 1)
    end
    remaining = math.floor(c.limit - (tat - c.now) + SLACK)
    if remaining < 0 then remaining = 0 end
    if remaining > c.limit then remaining = c.limit end
    reset = ms(tat - c.now, c.limit)
    if c.fit == 0 then retry = ms(c.after - c.limit - c.now, c.limit) end
  else
    local used = c.used
    local day_end_in = (c.day + 1) * DAY - now
    if charge then
      used = c.after
      redis.call('HSET', KEYS[i], 'd', c.day, 'u', used)
      redis.call('PEXPIRE', KEYS[i], day_end_in)
    end
    if used < c.limit then remaining = c.limit - used end
    if used > 0 then reset = day_end_in end
    if c.fit == 0 then retry = day_end_in end
    day = c.day
  end
  reply[#reply + 1] = c.fit
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
  reply[#reply + 1] = day
end
return reply
)lua";
constexpr size_t kAdmitValuesPerRule = 5;

// KEYS[i]: the counter of charge i. ARGV[1]: now in ms, or ''; then four values per charge:
// 'm' or 'd', the limit, the correction in tokens (negative: a refund), the day charged.
constexpr std::string_view kSettleScript = R"lua(
for i = 1, #KEYS do
  local kind, limit = ARGV[4 * i - 2], tonumber(ARGV[4 * i - 1])
  local delta, day = tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1])
  if kind == 'm' then
    local now_slots = clock(limit)
    local stored = tonumber(redis.call('GET', KEYS[i]))
    if stored ~= nil or delta > 0 then
      local tat = stored or now_slots
      if tat < now_slots then tat = now_slots end
      tat = tat + delta
      if tat < now_slots then tat = now_slots end
      if tat > now_slots + limit then tat = now_slots + limit end
      if tat <= now_slots then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', ms(tat - now_slots, limit) + 1)
      end
    end
  else
    local stored = redis.call('HMGET', KEYS[i], 'd', 'u')
    if tonumber(stored[1]) == day then
      local used = (tonumber(stored[2]) or 0) + delta
      if used < 0 then used = 0 end
      redis.call('HSET', KEYS[i], 'u', used)
    end
  end
end
return #KEYS
)lua";

int64_t steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view kindCode(LimitKind kind) { return kind == LimitKind::kTokensPerDay ? "d" : "m"; }

std::vector<std::string_view> viewsOf(const std::vector<std::string>& strings) {
  return std::vector<std::string_view>(strings.begin(), strings.end());
}

// Why `result` is not a usable reply of `values` integers; empty when it is.
std::string problemWith(const redis::RedisResult& result, size_t values) {
  if (!result) return result.error().message;
  if (result->isError()) return "error reply: " + result->errorMessage();
  bool usable = result->isArray() && result->array().size() == values;
  if (usable) {
    for (const auto& value : result->array()) usable = usable && value.isInteger();
  }
  return usable ? std::string() : "unexpected reply: " + result->describe();
}

}  // namespace

RedisRateLimiter::RedisRateLimiter(ClientForThread client_for_thread, RedisLimiterOptions options)
    : client_for_thread_(std::move(client_for_thread)),
      options_(std::move(options)),
      admit_script_(std::string(kPrelude) + std::string(kAdmitScript)),
      settle_script_(std::string(kPrelude) + std::string(kSettleScript)) {}

Task<redis::RedisResult> RedisRateLimiter::run(const redis::RedisScript& script,
                                               const std::vector<std::string>& keys,
                                               const std::vector<std::string>& args) {
  // Views and spans are named before co_await (GCC 12 and temporaries in coroutine calls).
  const auto key_views = viewsOf(keys);
  const auto arg_views = viewsOf(args);
  const std::span<const std::string_view> key_span(key_views);
  const std::span<const std::string_view> arg_span(arg_views);
  const std::optional<std::chrono::milliseconds> timeout = options_.timeout;
  redis::RedisClient& client = client_for_thread_();
  co_return co_await client.evalsha(script, key_span, arg_span, timeout);
}

Task<Decision> RedisRateLimiter::admit(const AdmitRequest& request) {
  const size_t count = request.limits.size();
  std::vector<std::string> keys;
  std::vector<std::string> args;
  std::vector<size_t> rule_of_key;  // the index in request.limits of each key
  args.push_back(options_.clock ? std::to_string(options_.clock()) : std::string());
  for (size_t i = 0; i < count; ++i) {
    const auto& rule = request.limits[i];
    if (rule.limit == 0) continue;
    keys.push_back(options_.key_prefix + rules::storageKey(rule));
    args.emplace_back(kindCode(rule.kind));
    args.push_back(std::to_string(rule.limit));
    args.push_back(std::to_string(rules::costOf(rule, request.estimated_tokens)));
    rule_of_key.push_back(i);
  }
  Decision decision;
  decision.statuses.resize(count);
  if (keys.empty()) co_return decision;

  const redis::RedisResult result = co_await run(admit_script_, keys, args);

  const std::string problem = problemWith(result, 1 + kAdmitValuesPerRule * keys.size());
  if (!problem.empty()) {
    noteFailure("admit", problem);
    Decision unavailable;
    unavailable.allowed = options_.fail_open;
    unavailable.reason = RejectReason::kLimiterUnavailable;
    co_return unavailable;
  }
  noteSuccess();

  const auto& values = result->array();
  const bool charged = values[0].integer() == 1;
  std::vector<rules::RuleOutcome> outcomes(count);
  for (size_t k = 0; k < keys.size(); ++k) {
    const size_t i = rule_of_key[k];
    const auto* rule_values = &values[1 + kAdmitValuesPerRule * k];
    auto& outcome = outcomes[i];
    outcome.fit = static_cast<rules::Fit>(rule_values[0].integer());
    outcome.status.limit = request.limits[i].limit;
    outcome.status.remaining =
        static_cast<uint64_t>(std::max<int64_t>(rule_values[1].integer(), 0));
    outcome.status.reset_ms = rule_values[2].integer();
    outcome.retry_after_ms = rule_values[3].integer();
    decision.statuses[i] = outcome.status;
    if (charged && request.limits[i].kind != LimitKind::kRequestsPerMinute) {
      decision.reservation.charges.push_back(
          Reservation::Charge{request.limits[i], rule_values[4].integer()});
    }
  }
  if (!decision.reservation.empty()) {
    decision.reservation.tokens = rules::chargedTokens(request.estimated_tokens);
  }
  rules::decide(outcomes, decision);
  co_return decision;
}

Task<void> RedisRateLimiter::settle(Reservation reservation, uint64_t actual_tokens) {
  const int64_t delta =
      static_cast<int64_t>(actual_tokens) - static_cast<int64_t>(reservation.tokens);
  if (delta == 0 || reservation.empty()) co_return;
  std::vector<std::string> keys;
  std::vector<std::string> args;
  args.push_back(options_.clock ? std::to_string(options_.clock()) : std::string());
  const std::string correction = std::to_string(delta);
  for (const auto& charge : reservation.charges) {
    keys.push_back(options_.key_prefix + rules::storageKey(charge.rule));
    args.emplace_back(kindCode(charge.rule.kind));
    args.push_back(std::to_string(charge.rule.limit));
    args.push_back(correction);
    args.push_back(std::to_string(charge.day));
  }

  const redis::RedisResult result = co_await run(settle_script_, keys, args);

  std::string problem;
  if (!result) {
    problem = result.error().message;
  } else if (result->isError()) {
    problem = "error reply: " + result->errorMessage();
  } else if (!result->isInteger()) {
    problem = "unexpected reply: " + result->describe();
  }
  if (!problem.empty()) {
    noteFailure("settle", problem);
  } else {
    noteSuccess();
  }
}

void RedisRateLimiter::noteFailure(std::string_view operation, std::string_view cause) {
  const uint64_t total = errors_.fetch_add(1, std::memory_order_relaxed) + 1;
  unlogged_.fetch_add(1, std::memory_order_relaxed);
  down_.store(true, std::memory_order_relaxed);
  const int64_t now = steadyNowMs();
  int64_t next = next_log_ms_.load(std::memory_order_relaxed);
  if (now < next || !next_log_ms_.compare_exchange_strong(next, now + options_.log_interval.count(),
                                                          std::memory_order_relaxed)) {
    return;
  }
  const uint64_t failures = unlogged_.exchange(0, std::memory_order_relaxed);
  const std::string_view consequence =
      operation == "settle" ? "token corrections are lost"
      : options_.fail_open  ? "requests pass unchecked (fail open)"
                            : "requests are rejected with limiter_unavailable (fail closed)";
  spdlog::warn(
      "rate limits: redis {} failed: {}; {} until redis answers ({} failures in the last "
      "report interval, {} in all)",
      operation, cause, consequence, failures, total);
}

void RedisRateLimiter::noteSuccess() {
  if (down_.load(std::memory_order_relaxed) && down_.exchange(false, std::memory_order_relaxed)) {
    spdlog::info("rate limits: redis answers again; limits apply");
  }
}

}  // namespace sluice::limits
