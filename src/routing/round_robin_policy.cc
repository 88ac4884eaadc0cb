#include <algorithm>
#include <atomic>
#include <numeric>

#include "routing/builtin_policies.h"

namespace sluice::routing {
namespace {

// Weighted round robin without locks or per-pool state: one atomic cursor walks the "weight
// line" (each eligible worker owning `weight` consecutive slots) in strides of about 0.618 of
// its length, a stride coprime with the length. Every period of `total weight` picks visits
// each slot once, so shares are exact; the golden stride interleaves them (weights 5,1,1 give
// a a a b a c a, not a a a a a b c). With equal weights the stride is 1: a plain cycle.
// Unhealthy workers leave the line, so the healthy ones keep an exact cycle among themselves.
class RoundRobinPolicy : public BalancingPolicy {
 public:
  std::string_view name() const override { return "round_robin"; }

  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override {
    uint64_t total = 0;
    size_t eligible = 0;
    uint32_t first_weight = 0;
    bool equal_weights = true;
    for (const auto& worker : workers) {
      if (!worker.eligible()) continue;
      total += worker.weight;
      ++eligible;
      if (first_weight == 0) {
        first_weight = worker.weight;
      } else if (worker.weight != first_weight) {
        equal_weights = false;
      }
    }
    if (eligible == 0) {
      if (context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
      return std::nullopt;
    }
    const uint64_t turn = cursor_.fetch_add(1, std::memory_order_relaxed);
    if (equal_weights) return nthEligible(workers, turn % eligible);

    const uint64_t slot = static_cast<uint64_t>(static_cast<unsigned __int128>(turn % total) *
                                                strideFor(total) % total);
    uint64_t start = 0;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (!workers[i].eligible()) continue;
      start += workers[i].weight;
      if (slot < start) return i;
    }
    return std::nullopt;  // unreachable: slot < total
  }

 private:
  static size_t nthEligible(std::span<const WorkerState> workers, uint64_t n) {
    for (size_t i = 0; i < workers.size(); ++i) {
      if (workers[i].eligible() && n-- == 0) return i;
    }
    return 0;  // unreachable: n < eligible
  }

  // The stride for a line of `total` slots; remembered per thread, as totals rarely change.
  static uint64_t strideFor(uint64_t total) {
    thread_local uint64_t cached_total = 0, cached_stride = 1;
    if (total != cached_total) {
      uint64_t stride = std::max<uint64_t>(
          1, static_cast<uint64_t>(static_cast<double>(total) * 0.6180339887498949));
      while (std::gcd(stride, total) != 1) ++stride;
      cached_total = total;
      cached_stride = stride;
    }
    return cached_stride;
  }

  std::atomic<uint64_t> cursor_{0};
};

}  // namespace

BalancingPolicyPtr makeRoundRobinPolicy(const BalancerOptions&) {
  return std::make_unique<RoundRobinPolicy>();
}

}  // namespace sluice::routing
