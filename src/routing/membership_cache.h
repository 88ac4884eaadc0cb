#pragma once

// What a policy derives from a pool's membership (its workers' ids and weights, in order): a
// hash ring, per-worker prefix trees. Pools change at run time (workers added, removed,
// reweighted) without telling the policy; a pick that sees a different membership builds the
// derived state again, and every other pick reads the current one without a lock or a shared
// reference count.

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "routing/balancing_policy.h"

namespace sluice::routing {

// The ids (and, when they matter, the weights) a derived state was built from.
class Membership {
 public:
  Membership(std::span<const WorkerState> workers, bool with_weights)
      : with_weights_(with_weights) {
    ids_.reserve(workers.size());
    for (const auto& worker : workers) {
      ids_.emplace_back(worker.id);
      if (with_weights) weights_.push_back(worker.weight);
    }
  }

  // O(workers) comparisons of short strings: cheaper than anything that could go stale.
  bool matches(std::span<const WorkerState> workers) const {
    if (workers.size() != ids_.size()) return false;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (with_weights_ && workers[i].weight != weights_[i]) return false;
      if (workers[i].id != ids_[i]) return false;
    }
    return true;
  }

  const std::vector<std::string>& ids() const { return ids_; }

 private:
  bool with_weights_;
  std::vector<std::string> ids_;
  std::vector<uint32_t> weights_;
};

// Holds the current `Derived` (which has a public `Membership membership`), immutable once
// published. Reclamation is epoch-based: a reader announces itself on a counter of the current
// epoch's parity, in one of several stripes chosen per thread (so threads do not share a
// cache line); a rebuild publishes the new state, moves the epoch on, waits until no reader of
// the old epoch remains, and only then frees the old state. Readers never wait for writers.
template <class Derived>
class MembershipCache {
 public:
  MembershipCache() = default;
  MembershipCache(const MembershipCache&) = delete;
  MembershipCache& operator=(const MembershipCache&) = delete;
  ~MembershipCache() { delete current_.load(std::memory_order_acquire); }

  // Returns use(state) for the state of `workers`, first making it with
  // build(workers, previous or null) -> std::unique_ptr<const Derived> when the membership
  // changed. `use` runs inside the read section and must not call back into this cache.
  // Two views of a pool racing (old and new, during a swap) only cost a rebuild or two.
  template <class Build, class Use>
  decltype(auto) with(std::span<const WorkerState> workers, Build&& build, Use&& use) {
    for (;;) {
      {
        ReadSection section(*this);
        const Derived* current = current_.load(std::memory_order_acquire);
        if (current && current->membership.matches(workers)) [[likely]] {
          return use(*current);
        }
      }
      rebuild(workers, build);
    }
  }

  // Calls use(state) with the current state, if there is one.
  template <class Use>
  void withCurrent(Use&& use) const {
    ReadSection section(*this);
    if (const Derived* current = current_.load(std::memory_order_acquire)) use(*current);
  }

 private:
  struct alignas(64) Stripe {
    std::atomic<uint32_t> readers[2] = {0, 0};  // by epoch parity
  };

  class ReadSection {
   public:
    explicit ReadSection(const MembershipCache& cache) {
      Stripe& stripe = cache.stripes_[stripeOfThisThread()];
      for (;;) {
        const uint64_t epoch = cache.epoch_.load(std::memory_order_seq_cst);
        readers_ = &stripe.readers[epoch & 1];
        readers_->fetch_add(1, std::memory_order_seq_cst);
        // Announced before the writer looked at this parity: it waits for us. Otherwise the
        // epoch moved on, and we announce again under the new one.
        if (cache.epoch_.load(std::memory_order_seq_cst) == epoch) return;
        readers_->fetch_sub(1, std::memory_order_release);
      }
    }
    ~ReadSection() { readers_->fetch_sub(1, std::memory_order_release); }
    ReadSection(const ReadSection&) = delete;
    ReadSection& operator=(const ReadSection&) = delete;

   private:
    std::atomic<uint32_t>* readers_;
  };

  static size_t stripeOfThisThread() {
    static std::atomic<size_t> next{0};
    thread_local const size_t stripe = next.fetch_add(1, std::memory_order_relaxed) % kStripes;
    return stripe;
  }

  template <class Build>
  void rebuild(std::span<const WorkerState> workers, Build& build) {
    std::lock_guard lock(writer_mutex_);
    // Only writers free states, and we are the writer: `current` stays valid here.
    const Derived* current = current_.load(std::memory_order_acquire);
    if (current && current->membership.matches(workers)) return;
    std::unique_ptr<const Derived> fresh = build(workers, current);
    const Derived* old = current_.exchange(fresh.release(), std::memory_order_seq_cst);
    const uint64_t parity = epoch_.fetch_add(1, std::memory_order_seq_cst) & 1;
    for (auto& stripe : stripes_) {
      while (stripe.readers[parity].load(std::memory_order_seq_cst) != 0) {
        std::this_thread::yield();
      }
    }
    delete old;
  }

  static constexpr size_t kStripes = 16;
  mutable std::array<Stripe, kStripes> stripes_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<const Derived*> current_{nullptr};
  std::mutex writer_mutex_;  // taken only to rebuild
};

}  // namespace sluice::routing
