#pragma once

// How the limits count: the arithmetic every backend applies. redis_rate_limiter.cc's Lua
// scripts repeat these formulas step for step on the same IEEE doubles, so that both backends
// decide alike (the same tests run against both).
//
// Per-minute limits use GCRA, the generic cell rate algorithm. A limit of N per minute has an
// emission interval T = 60 s / N and stores one number, the theoretical arrival time (TAT): the
// time at which the limit would be fully replenished. A request of cost c is allowed iff
//   new_tat = max(tat, now) + c·T   satisfies   new_tat − now ≤ 60 s,
// and then new_tat is stored. The burst is the whole minute: N requests at once pass and the
// N+1-th does not. Why GCRA rather than a sliding window:
// - exact at the boundary: the N+1-th request of a burst is rejected and one more passes exactly
//   T later; a sliding-window counter interpolates between two fixed windows and lets a burst
//   at a window edge through or rejects early, and a sliding-window log is exact but keeps one
//   timestamp per request (memory and time grow with the limit: 100k tokens is 100k entries);
// - one value per key, O(1) per check, whatever the limit;
// - smooth refill: capacity comes back continuously (1 per T), not all at once when a window
//   rolls over, so clients are not synchronised into bursts at minute boundaries;
// - trivially atomic: read one value, compare, write one value; in Redis a few lines of Lua.
//
// Exactness: time is counted in slots of the limit (one slot = T), so that charging c adds the
// integer c to the TAT and comparisons of integer sums stay exact in a double. The slot clock is
// minutes·N + (ms into the minute)·N / 60000, counted from 2024 so that minutes·N stays an exact
// integer (below 2^53) for limits up to 10^9 per minute for decades. Because the stored value is
// in slots of N, a per-minute counter is keyed by its limit as well: a changed limit starts
// afresh.
//
// Clamping keeps now ≤ TAT ≤ now + 60 s ("between full and empty"):
// - an idle limit (TAT in the past) is simply full: unused capacity is not banked;
// - a TAT more than a window ahead (the clock went back, or a large settle) is brought back to
//   one window: a limit is never more than empty, so a clock that goes back neither allows a
//   burst (the bucket stays empty) nor blocks a key for longer than a minute;
// - settle() moves the TAT by (actual − estimate) slots within the same bounds: a refund cannot
//   make a limit more than full, and an extra charge can empty it but carries no debt beyond one
//   window (one bad estimate blocks a key for at most a minute; the daily budget, below, still
//   counts every token).
//
// The daily budget is a fixed window: one counter per subject and UTC day, {day, used}, which
// expires at the end of its day. A counter never moves back to an earlier day (a clock that goes
// back across midnight keeps counting into the later day rather than opening a fresh budget).
// settle() corrects the day that was charged; once that day is over the correction is dropped.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "limits/rate_limiter.h"

namespace sluice::limits::rules {

inline constexpr int64_t kMinuteMs = 60'000;
inline constexpr int64_t kDayMs = 86'400'000;
inline constexpr int64_t kSlotEpochMs = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
// Absorbs the rounding of the slot clock's fraction (far below one token or request).
inline constexpr double kSlack = 1e-6;
// The same for durations: slots turned into ms carry ~1e-5 ms of that rounding, which must not
// round a wait of exactly 1 ms up to 2.
inline constexpr double kMsSlack = 1e-3;

// The counter's name, the same in both backends (Redis adds its prefix):
// "rpm:<limit>:<subject>", "tpm:<limit>:<subject>", "tpd:<subject>".
std::string storageKey(const LimitRule& rule);

// What admission charges a token limit: the estimate, at least 1 (so that an exhausted limit
// rejects even a request that expects nothing).
uint64_t chargedTokens(uint64_t estimated_tokens);
// What admission charges a rule: 1 per request, chargedTokens() per token.
uint64_t costOf(const LimitRule& rule, uint64_t estimated_tokens);

enum class Fit : int8_t { kTooLarge = -1, kFull = 0, kFits = 1 };

// One rule's verdict, the same shape from both backends.
struct RuleOutcome {
  Fit fit = Fit::kFits;
  LimitStatus status;          // after this admission (unchanged when it is rejected)
  int64_t retry_after_ms = 0;  // kFull: until it would fit
};

// --- Per-minute limits (GCRA) ---

// `now_ms` on the slot clock of a limit of `limit` per minute.
double slotClock(int64_t now_ms, uint64_t limit);
// Slots of a limit of `limit` per minute as milliseconds, rounded up (less kMsSlack); 0 when not
// positive.
int64_t slotsToMs(double slots, uint64_t limit);

struct MinuteCheck {
  Fit fit = Fit::kFits;
  double now = 0;        // the slot clock
  double tat = 0;        // the stored TAT, clamped
  double tat_after = 0;  // tat + cost: what to store when every rule fits
};
MinuteCheck checkMinute(std::optional<double> stored_tat, int64_t now_ms, uint64_t limit,
                        uint64_t cost);
// `charged`: whether the admission was allowed (the status then shows tat_after).
RuleOutcome minuteOutcome(const MinuteCheck& check, uint64_t limit, bool charged);
// The TAT after settling `delta` tokens (may be negative); nullopt: nothing to store (no counter
// and a refund). A result <= the slot clock means "full": the counter may be deleted.
std::optional<double> settleMinute(std::optional<double> stored_tat, int64_t now_ms, uint64_t limit,
                                   int64_t delta);

// --- Daily budgets (fixed UTC-day window) ---

int64_t utcDay(int64_t now_ms);  // days since 1970-01-01, UTC

struct DayCheck {
  Fit fit = Fit::kFits;
  int64_t day = 0;  // the day counted: today, or a later stored day if the clock went back
  uint64_t used = 0;
  uint64_t used_after = 0;
};
DayCheck checkDay(std::optional<int64_t> stored_day, uint64_t stored_used, int64_t now_ms,
                  uint64_t budget, uint64_t cost);
RuleOutcome dayOutcome(const DayCheck& check, int64_t now_ms, uint64_t budget, bool charged);
// The counter after settling `delta` tokens: never below 0.
uint64_t settleDay(uint64_t used, int64_t delta);

// --- Combining ---

// Fills allowed, reason, rejected_by and retry_after_ms of `decision` from the outcome of each
// rule (outcomes[i] for AdmitRequest::limits[i]; rules with limit 0 count as fitting): a rule
// whose cost exceeds it wins (no wait helps), else the full rule that waits longest.
void decide(std::span<const RuleOutcome> outcomes, Decision& decision);

}  // namespace sluice::limits::rules
