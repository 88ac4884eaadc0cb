#pragma once

// The in-process backend: limits counted by this process alone, shared by all its worker
// threads, with no setup. Counters live in a map split into shards, each behind its own mutex,
// held only while one admission reads and writes its few counters; an admission locks the
// shards of its rules in index order, so two admissions never deadlock and no lock is global.
// Counters that are as good as absent (a per-minute limit fully replenished, a past day's
// budget) are dropped when their shard is swept: memory follows the subjects active within the
// last minute and today.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "limits/rate_limiter.h"

namespace sluice::limits {

class LocalRateLimiter final : public RateLimiter {
 public:
  explicit LocalRateLimiter(NowMs clock = systemNowMs);
  ~LocalRateLimiter() override;
  LocalRateLimiter(const LocalRateLimiter&) = delete;
  LocalRateLimiter& operator=(const LocalRateLimiter&) = delete;

  // Complete without suspending: they run admitNow and settleNow.
  Task<Decision> admit(const AdmitRequest& request) override;
  Task<void> settle(Reservation reservation, uint64_t actual_tokens) override;

  Decision admitNow(const AdmitRequest& request);
  void settleNow(const Reservation& reservation, uint64_t actual_tokens);

  // Counters held now, including idle ones not swept yet.
  size_t counterCount() const;
  // Drops every idle counter now; shards also sweep themselves as they grow.
  void sweep();

 private:
  struct Counter;
  struct Shard;

  size_t shardIndex(const std::string& key) const;
  // Drops the shard's idle counters when it has grown or served many operations since the last
  // sweep. The shard's mutex is held.
  void maybeSweep(Shard& shard, int64_t now_ms);

  NowMs clock_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace sluice::limits
