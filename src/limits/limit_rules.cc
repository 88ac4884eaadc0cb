#include "limits/limit_rules.h"

#include <algorithm>
#include <cmath>

namespace sluice::limits::rules {

std::string storageKey(const LimitRule& rule) {
  std::string key(kindName(rule.kind));
  key += ':';
  if (rule.kind != LimitKind::kTokensPerDay) {
    key += std::to_string(rule.limit);
    key += ':';
  }
  key += rule.subject;
  return key;
}

uint64_t chargedTokens(uint64_t estimated_tokens) {
  return std::max<uint64_t>(estimated_tokens, 1);
}

uint64_t costOf(const LimitRule& rule, uint64_t estimated_tokens) {
  return rule.kind == LimitKind::kRequestsPerMinute ? 1 : chargedTokens(estimated_tokens);
}

double slotClock(int64_t now_ms, uint64_t limit) {
  const int64_t since = now_ms - kSlotEpochMs;
  int64_t minute = since / kMinuteMs;
  int64_t into = since % kMinuteMs;
  if (into < 0) {  // floor division, as Lua's math.floor
    into += kMinuteMs;
    --minute;
  }
  const double n = static_cast<double>(limit);
  return static_cast<double>(minute) * n + static_cast<double>(into) * n / 60000.0;
}

int64_t slotsToMs(double slots, uint64_t limit) {
  if (slots <= 0) return 0;
  const double ms = std::ceil(slots * 60000.0 / static_cast<double>(limit) - kMsSlack);
  return ms <= 0 ? 0 : static_cast<int64_t>(ms);
}

MinuteCheck checkMinute(std::optional<double> stored_tat, int64_t now_ms, uint64_t limit,
                        uint64_t cost) {
  MinuteCheck check;
  const double n = static_cast<double>(limit);
  check.now = slotClock(now_ms, limit);
  check.tat = stored_tat.value_or(check.now);
  if (check.tat < check.now) check.tat = check.now;
  if (check.tat > check.now + n) check.tat = check.now + n;
  check.tat_after = check.tat + static_cast<double>(cost);
  if (cost > limit) {
    check.fit = Fit::kTooLarge;
  } else if (check.tat_after - check.now <= n + kSlack) {
    check.fit = Fit::kFits;
  } else {
    check.fit = Fit::kFull;
  }
  return check;
}

RuleOutcome minuteOutcome(const MinuteCheck& check, uint64_t limit, bool charged) {
  const double n = static_cast<double>(limit);
  const double tat = charged ? check.tat_after : check.tat;
  RuleOutcome outcome;
  outcome.fit = check.fit;
  outcome.status.limit = limit;
  const double remaining = std::floor(n - (tat - check.now) + kSlack);
  outcome.status.remaining = remaining <= 0 ? 0 : std::min(limit, static_cast<uint64_t>(remaining));
  outcome.status.reset_ms = slotsToMs(tat - check.now, limit);
  if (check.fit == Fit::kFull) {
    outcome.retry_after_ms = slotsToMs(check.tat_after - n - check.now, limit);
  }
  return outcome;
}

std::optional<double> settleMinute(std::optional<double> stored_tat, int64_t now_ms, uint64_t limit,
                                   int64_t delta) {
  if (!stored_tat && delta <= 0) return std::nullopt;
  const double now = slotClock(now_ms, limit);
  double tat = stored_tat.value_or(now);
  if (tat < now) tat = now;
  tat = tat + static_cast<double>(delta);
  if (tat < now) tat = now;
  if (tat > now + static_cast<double>(limit)) tat = now + static_cast<double>(limit);
  return tat;
}

int64_t utcDay(int64_t now_ms) {
  int64_t day = now_ms / kDayMs;
  if (now_ms % kDayMs < 0) --day;
  return day;
}

DayCheck checkDay(std::optional<int64_t> stored_day, uint64_t stored_used, int64_t now_ms,
                  uint64_t budget, uint64_t cost) {
  DayCheck check;
  check.day = utcDay(now_ms);
  if (stored_day && *stored_day > check.day) check.day = *stored_day;
  check.used = stored_day == check.day ? stored_used : 0;
  check.used_after = check.used + cost;
  if (cost > budget) {
    check.fit = Fit::kTooLarge;
  } else if (check.used_after <= budget) {
    check.fit = Fit::kFits;
  } else {
    check.fit = Fit::kFull;
  }
  return check;
}

RuleOutcome dayOutcome(const DayCheck& check, int64_t now_ms, uint64_t budget, bool charged) {
  const uint64_t used = charged ? check.used_after : check.used;
  const int64_t day_end_in = (check.day + 1) * kDayMs - now_ms;
  RuleOutcome outcome;
  outcome.fit = check.fit;
  outcome.status.limit = budget;
  outcome.status.remaining = used >= budget ? 0 : budget - used;
  outcome.status.reset_ms = used == 0 ? 0 : day_end_in;
  if (check.fit == Fit::kFull) outcome.retry_after_ms = day_end_in;
  return outcome;
}

uint64_t settleDay(uint64_t used, int64_t delta) {
  if (delta >= 0) return used + static_cast<uint64_t>(delta);
  const auto refund = static_cast<uint64_t>(-delta);
  return refund >= used ? 0 : used - refund;
}

void decide(std::span<const RuleOutcome> outcomes, Decision& decision) {
  decision.allowed = true;
  decision.reason = RejectReason::kNone;
  decision.rejected_by.reset();
  decision.retry_after_ms = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& outcome = outcomes[i];
    if (outcome.fit == Fit::kTooLarge) {
      decision.allowed = false;
      decision.reason = RejectReason::kCostExceedsLimit;
      decision.rejected_by = i;
      decision.retry_after_ms = 0;
      return;
    }
    if (outcome.fit == Fit::kFull &&
        (decision.allowed || outcome.retry_after_ms > decision.retry_after_ms)) {
      decision.allowed = false;
      decision.reason = RejectReason::kRateLimited;
      decision.rejected_by = i;
      decision.retry_after_ms = outcome.retry_after_ms;
    }
  }
}

}  // namespace sluice::limits::rules
