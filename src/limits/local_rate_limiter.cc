#include "limits/local_rate_limiter.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "limits/limit_rules.h"

namespace sluice::limits {
namespace {

// Enough that worker threads (one per core) rarely meet on one mutex.
constexpr size_t kShards = 64;
// A shard sweeps when it holds twice what it held after its last sweep (at least this many), or
// after this many operations, so that memory also shrinks when traffic moves to other keys.
constexpr size_t kMinSweepSize = 256;
constexpr uint32_t kSweepEveryOps = 1u << 14;

}  // namespace

struct LocalRateLimiter::Counter {
  double tat = 0;          // per-minute limits: the TAT on the limit's slot clock
  int64_t day = 0;         // daily budgets: the day counted
  uint64_t used = 0;       // and the tokens used that day
  int64_t idle_at_ms = 0;  // from then on the counter is as good as absent
};

struct alignas(64) LocalRateLimiter::Shard {
  std::mutex mutex;
  std::unordered_map<std::string, Counter> counters;
  size_t sweep_at = kMinSweepSize;
  uint32_t ops = 0;
};

LocalRateLimiter::LocalRateLimiter(NowMs clock)
    : clock_(std::move(clock)), shards_(std::make_unique<Shard[]>(kShards)) {}

LocalRateLimiter::~LocalRateLimiter() = default;

Task<Decision> LocalRateLimiter::admit(const AdmitRequest& request) { co_return admitNow(request); }

Task<void> LocalRateLimiter::settle(Reservation reservation, uint64_t actual_tokens) {
  settleNow(reservation, actual_tokens);
  co_return;
}

size_t LocalRateLimiter::shardIndex(const std::string& key) const {
  return std::hash<std::string>{}(key) % kShards;
}

Decision LocalRateLimiter::admitNow(const AdmitRequest& request) {
  const int64_t now = clock_();
  const size_t count = request.limits.size();

  // One per rule: where its counter lives and what checking it found.
  struct Item {
    std::string key;
    size_t shard = 0;
    Counter* counter = nullptr;  // nullptr: none yet
    rules::MinuteCheck minute;
    rules::DayCheck day;
  };
  std::vector<Item> items(count);
  std::vector<size_t> shards;
  shards.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (request.limits[i].limit == 0) continue;
    items[i].key = rules::storageKey(request.limits[i]);
    items[i].shard = shardIndex(items[i].key);
    shards.push_back(items[i].shard);
  }
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(shards.size());
  for (const size_t shard : shards) locks.emplace_back(shards_[shard].mutex);

  // Check every rule, then charge all of them or none.
  std::vector<rules::RuleOutcome> outcomes(count);
  for (size_t i = 0; i < count; ++i) {
    const auto& rule = request.limits[i];
    if (rule.limit == 0) continue;
    auto& item = items[i];
    auto& counters = shards_[item.shard].counters;
    const auto found = counters.find(item.key);
    if (found != counters.end()) item.counter = &found->second;
    const uint64_t cost = rules::costOf(rule, request.estimated_tokens);
    if (rule.kind == LimitKind::kTokensPerDay) {
      const auto day = item.counter ? std::optional<int64_t>(item.counter->day) : std::nullopt;
      item.day = rules::checkDay(day, item.counter ? item.counter->used : 0, now, rule.limit, cost);
      outcomes[i].fit = item.day.fit;
    } else {
      const auto tat = item.counter ? std::optional<double>(item.counter->tat) : std::nullopt;
      item.minute = rules::checkMinute(tat, now, rule.limit, cost);
      outcomes[i].fit = item.minute.fit;
    }
  }
  const bool charge = std::all_of(outcomes.begin(), outcomes.end(), [](const auto& outcome) {
    return outcome.fit == rules::Fit::kFits;
  });

  Decision decision;
  decision.statuses.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const auto& rule = request.limits[i];
    if (rule.limit == 0) continue;
    auto& item = items[i];
    const bool day = rule.kind == LimitKind::kTokensPerDay;
    outcomes[i] = day ? rules::dayOutcome(item.day, now, rule.limit, charge)
                      : rules::minuteOutcome(item.minute, rule.limit, charge);
    decision.statuses[i] = outcomes[i].status;
    if (!charge) continue;
    if (!item.counter) item.counter = &shards_[item.shard].counters[item.key];
    if (day) {
      item.counter->day = item.day.day;
      item.counter->used = item.day.used_after;
      item.counter->idle_at_ms = (item.day.day + 1) * rules::kDayMs;
    } else {
      item.counter->tat = item.minute.tat_after;
      item.counter->idle_at_ms =
          now + rules::slotsToMs(item.minute.tat_after - item.minute.now, rule.limit) + 1;
    }
    if (rule.kind != LimitKind::kRequestsPerMinute) {
      decision.reservation.charges.push_back(Reservation::Charge{rule, item.day.day});
    }
  }
  if (!decision.reservation.empty()) {
    decision.reservation.tokens = rules::chargedTokens(request.estimated_tokens);
  }
  rules::decide(outcomes, decision);
  for (const size_t shard : shards) maybeSweep(shards_[shard], now);
  return decision;
}

void LocalRateLimiter::settleNow(const Reservation& reservation, uint64_t actual_tokens) {
  const int64_t delta =
      static_cast<int64_t>(actual_tokens) - static_cast<int64_t>(reservation.tokens);
  if (delta == 0 || reservation.empty()) return;
  const int64_t now = clock_();
  for (const auto& charge : reservation.charges) {
    const auto& rule = charge.rule;
    const std::string key = rules::storageKey(rule);
    auto& shard = shards_[shardIndex(key)];
    const std::lock_guard lock(shard.mutex);
    const auto found = shard.counters.find(key);
    if (rule.kind == LimitKind::kTokensPerDay) {
      // Only the day that was charged; once it is over, its counter no longer limits anything.
      if (found != shard.counters.end() && found->second.day == charge.day) {
        found->second.used = rules::settleDay(found->second.used, delta);
      }
      continue;
    }
    const auto stored =
        found != shard.counters.end() ? std::optional<double>(found->second.tat) : std::nullopt;
    const auto tat = rules::settleMinute(stored, now, rule.limit, delta);
    if (!tat) continue;
    const double clock = rules::slotClock(now, rule.limit);
    if (*tat <= clock) {
      if (found != shard.counters.end()) shard.counters.erase(found);
      continue;
    }
    auto& counter = found != shard.counters.end() ? found->second : shard.counters[key];
    counter.tat = *tat;
    counter.idle_at_ms = now + rules::slotsToMs(*tat - clock, rule.limit) + 1;
  }
}

void LocalRateLimiter::maybeSweep(Shard& shard, int64_t now_ms) {
  if (++shard.ops < kSweepEveryOps && shard.counters.size() < shard.sweep_at) return;
  std::erase_if(shard.counters,
                [now_ms](const auto& entry) { return entry.second.idle_at_ms <= now_ms; });
  shard.ops = 0;
  shard.sweep_at = std::max(kMinSweepSize, 2 * shard.counters.size());
}

size_t LocalRateLimiter::counterCount() const {
  size_t total = 0;
  for (size_t i = 0; i < kShards; ++i) {
    const std::lock_guard lock(shards_[i].mutex);
    total += shards_[i].counters.size();
  }
  return total;
}

void LocalRateLimiter::sweep() {
  const int64_t now = clock_();
  for (size_t i = 0; i < kShards; ++i) {
    const std::lock_guard lock(shards_[i].mutex);
    std::erase_if(shards_[i].counters,
                  [now](const auto& entry) { return entry.second.idle_at_ms <= now; });
    shards_[i].ops = 0;
    shards_[i].sweep_at = std::max(kMinSweepSize, 2 * shards_[i].counters.size());
  }
}

}  // namespace sluice::limits
