#include <algorithm>
#include <cmath>

#include "routing/builtin_policies.h"
#include "routing/membership_cache.h"
#include "routing/stable_hash.h"
#include "routing/worker_selection.h"

namespace sluice::routing {
namespace {

// Past this many ring points (huge weights), points per unit of weight shrink to fit.
constexpr uint64_t kMaxRingPoints = uint64_t{1} << 18;

// The ring for one membership: `virtual_nodes * weight` points per worker, each at the hash of
// the worker's id and the point's number. A worker's points depend on nothing else, so adding
// or removing a worker moves only the keys that land on its points.
struct Ring {
  Ring(std::span<const WorkerState> workers, uint32_t virtual_nodes)
      : membership(workers, /*with_weights=*/true) {
    uint64_t total_weight = 0;
    for (const auto& worker : workers) total_weight += worker.weight;
    double per_weight = virtual_nodes;
    if (total_weight * virtual_nodes > kMaxRingPoints) {
      per_weight = static_cast<double>(kMaxRingPoints) / static_cast<double>(total_weight);
    }
    std::vector<std::pair<uint64_t, uint32_t>> points;
    for (size_t slot = 0; slot < workers.size(); ++slot) {
      if (workers[slot].weight == 0) continue;
      const auto count = std::max<uint64_t>(
          1, static_cast<uint64_t>(std::ceil(workers[slot].weight * per_weight)));
      for (uint64_t replica = 0; replica < count; ++replica) {
        points.emplace_back(stableHash(workers[slot].id, replica), static_cast<uint32_t>(slot));
      }
    }
    std::sort(points.begin(), points.end());
    hashes.reserve(points.size());
    slots.reserve(points.size());
    for (const auto& [hash, slot] : points) {
      hashes.push_back(hash);
      slots.push_back(slot);
    }
  }

  Membership membership;
  std::vector<uint64_t> hashes;  // ascending
  std::vector<uint32_t> slots;   // the worker of each point
};

// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016): a key goes to
// the first worker clockwise from its hash that is eligible and would stay within
// ceil((L + 1) * (1 + epsilon) * weight / W), L being the outstanding requests and W the
// weight of all eligible workers. One hot key spills over to the next worker on the ring
// instead of melting its owner; such a worker always exists, since the bounds add up to more
// than L + 1.
class ConsistentHashPolicy : public BalancingPolicy {
 public:
  explicit ConsistentHashPolicy(const ConsistentHashOptions& options) : options_(options) {}

  std::string_view name() const override { return "consistent_hash"; }
  bool usesHashKey() const override { return true; }

  std::optional<size_t> pick(const PickContext& context,
                             std::span<const WorkerState> workers) override {
    uint64_t total_load = 0, total_weight = 0;
    size_t on_ring = 0;  // workers with points: the walk stops once it has seen them all
    for (const auto& worker : workers) {
      if (worker.weight > 0) ++on_ring;
      if (!worker.eligible()) continue;
      total_load += worker.load();
      total_weight += worker.weight;
    }
    if (total_weight == 0) return noWorker(context);
    if (context.hash_key.empty()) {
      if (context.trace) context.trace->reason = PickReason::kHashNoKey;
      return leastLoaded(workers, randomFor(context));
    }

    const uint64_t key = stableHash(context.hash_key);
    const double bound = static_cast<double>(total_load + 1) * (1 + options_.epsilon) /
                         static_cast<double>(total_weight);
    const auto build = [this](std::span<const WorkerState> current, const Ring*) {
      return std::make_unique<const Ring>(current, options_.virtual_nodes);
    };
    const auto chosen = ring_.with(workers, build, [&](const Ring& ring) -> std::optional<size_t> {
      const size_t points = ring.hashes.size();
      size_t at =
          std::lower_bound(ring.hashes.begin(), ring.hashes.end(), key) - ring.hashes.begin();
      thread_local std::vector<bool> seen;
      seen.assign(workers.size(), false);
      size_t distinct = 0;
      bool first_eligible = true;
      for (size_t step = 0; step < points && distinct < on_ring; ++step, ++at) {
        if (at == points) at = 0;
        const uint32_t slot = ring.slots[at];
        if (seen[slot]) continue;
        seen[slot] = true;
        ++distinct;
        const WorkerState& worker = workers[slot];
        if (!worker.eligible()) continue;
        const double capacity = std::ceil(bound * worker.weight);
        if (static_cast<double>(worker.load()) + 1 <= capacity) {
          if (context.trace) {
            context.trace->reason =
                first_eligible ? PickReason::kHashOwner : PickReason::kHashSpill;
          }
          return slot;
        }
        first_eligible = false;
      }
      return std::nullopt;
    });
    if (chosen) return chosen;
    // Only when loads moved under our feet: every worker looked full.
    if (context.trace) context.trace->reason = PickReason::kHashSpill;
    return leastLoaded(workers, randomFor(context));
  }

 private:
  static std::optional<size_t> noWorker(const PickContext& context) {
    if (context.trace) context.trace->reason = PickReason::kNoEligibleWorker;
    return std::nullopt;
  }

  ConsistentHashOptions options_;
  MembershipCache<Ring> ring_;
};

}  // namespace

BalancingPolicyPtr makeConsistentHashPolicy(const BalancerOptions& options) {
  return std::make_unique<ConsistentHashPolicy>(options.consistent_hash);
}

}  // namespace sluice::routing
