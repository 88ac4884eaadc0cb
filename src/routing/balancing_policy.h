#pragma once

// Balancing policies: which worker (upstream endpoint) of a route's pool takes the next request.
// One small class per config `policy` name, created by name from the registry below. Policies
// are shared by every worker thread of the gateway and picked from concurrently; none takes a
// lock shared by all picks.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::routing {

// Requests in flight on one worker. The pool owns it and counts up when a request starts and
// down when it finishes; policies only read it.
using LoadCounter = std::atomic<uint32_t>;

// What a policy sees of one worker. A worker's index is its position in the span given to
// `pick`; per-worker state a policy keeps (hash-ring points, prefix trees) follows `id`, so a
// worker may change position when others are added or removed.
struct WorkerState {
  std::string_view id;  // stable identity, e.g. the endpoint URL; hashed by consistent_hash
  uint32_t weight = 1;  // relative share of traffic; 0 takes no new requests (draining)
  bool healthy = true;  // unhealthy workers are never picked
  const LoadCounter* outstanding = nullptr;  // live count owned by the pool; null reads as 0

  uint32_t load() const { return outstanding ? outstanding->load(std::memory_order_relaxed) : 0; }
  bool eligible() const { return healthy && weight > 0; }
};

// A small, fast generator (wyrand): one 64-bit state, not for cryptography. Give each thread
// its own; `Random::forThisThread()` is one, seeded at random.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0xa0761d6478bd642fULL;
    const auto product = static_cast<unsigned __int128>(state_) * (state_ ^ 0xe7037ed1a0b428dbULL);
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
  }
  // Uniform in [0, bound) for bound > 0 (multiply-shift; bias below 2^-32 for bounds < 2^32).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }
  static Random& forThisThread();

 private:
  uint64_t state_;
};

// Why a policy chose what it chose: for metrics (policy decisions, cache hits and misses) and
// the access log. Written only when the caller passes a trace.
enum class PickReason : uint8_t {
  kPolicy,            // the policy's ordinary rule (round robin, random, fewest outstanding, ...)
  kNoEligibleWorker,  // every worker is unhealthy or drained: pick returned nullopt
  kHashOwner,         // consistent_hash: the key's owner on the ring
  kHashSpill,         // consistent_hash: the owner was over its load bound; a later ring worker
  kHashNoKey,         // consistent_hash: the request had no key; fewest outstanding instead
  kCacheHit,          // cache_aware: the longest matching prefix passed cache_threshold
  kCacheMiss,         // cache_aware: no prefix matched enough; least loaded instead
  kCacheImbalanced,   // cache_aware: load beyond the balance thresholds; least loaded instead
  kCacheNoPrompt,     // cache_aware: the request carried no prompt text; least loaded instead
};

// The reason's label in metrics: "policy", "no_eligible_worker", "hash_owner", ...
std::string_view pickReasonName(PickReason reason);
inline constexpr size_t kPickReasons = 9;

struct PickTrace {
  PickReason reason = PickReason::kPolicy;
  double cache_match = 0;  // cache_aware: longest match found / prompt characters
};

// What a policy may know about the request. Fill only what the policy uses (see
// `usesPrompt`, `usesHashKey`); the views must outlive the call.
struct PickContext {
  std::string_view prompt{};    // cache_aware: the text of the messages, concatenated
  std::string_view hash_key{};  // consistent_hash: the configured header's value or the API key id
  Random* random = nullptr;     // null: Random::forThisThread()
  PickTrace* trace = nullptr;
};

class BalancingPolicy {
 public:
  virtual ~BalancingPolicy() = default;
  virtual std::string_view name() const = 0;

  // The index in `workers` of the worker that takes the request, or nullopt when no worker is
  // eligible (all unhealthy or drained). Called concurrently from any thread.
  virtual std::optional<size_t> pick(const PickContext& context,
                                     std::span<const WorkerState> workers) = 0;

  // Hooks around the request's life on the chosen worker, for policies that keep their own
  // per-request state. The built-in ones read loads from WorkerState::outstanding instead, and
  // learn prompts in `pick`.
  virtual void onStart(size_t worker, const PickContext& context) {}
  virtual void onFinish(size_t worker) {}

  // How much of `prompt` each worker's cache likely holds, in [0, 1], into `matches` (parallel
  // to `workers`), without changing anything; policies that track no caches leave it alone.
  // For the upstream filter of plugins (ai.candidates).
  virtual void predictCacheMatch(std::string_view prompt, std::span<const WorkerState> workers,
                                 std::span<double> matches) const {}

  // Whether `pick` reads PickContext::prompt / hash_key, so that callers build them only then.
  virtual bool usesPrompt() const { return false; }
  virtual bool usesHashKey() const { return false; }
};

using BalancingPolicyPtr = std::unique_ptr<BalancingPolicy>;

struct ConsistentHashOptions {
  std::string hash_header;       // the header whose value is the key; empty: the API key id
  double epsilon = 0.25;         // bounded load: a worker takes at most ceil(avg * (1 + epsilon))
  uint32_t virtual_nodes = 160;  // ring points per unit of weight
};

// The knobs of SGLang's cache-aware router.
struct CacheAwareOptions {
  double cache_threshold = 0.5;            // least matched/prompt characters to follow the cache
  uint32_t balance_abs_threshold = 32;     // load is imbalanced when max - min > this ...
  double balance_rel_threshold = 1.1;      // ... and max > min * this
  uint32_t eviction_interval_ms = 60000;   // a prefix not routed for this long is forgotten
  size_t max_tree_size = size_t{1} << 20;  // characters remembered per worker
  uint32_t chunk_chars = 64;               // prefixes are matched in chunks of this many characters
};

struct BalancerOptions {
  ConsistentHashOptions consistent_hash;
  CacheAwareOptions cache_aware;
  // Milliseconds of a monotonic clock; empty: std::chrono::steady_clock. For tests.
  std::function<int64_t()> now_ms;
};

// The config names of the policies, in documentation order.
std::span<const std::string_view> balancingPolicyNames();

// Problems with `options`, each naming its key ("cache_aware.cache_threshold must be ..."),
// for the config loader; empty when the options are valid.
std::vector<std::string> checkBalancerOptions(const BalancerOptions& options);

// A new policy for one pool, or null when no policy has that name. Raise config errors at load
// with balancingPolicyNames() and checkBalancerOptions(); this is not the place.
BalancingPolicyPtr createBalancingPolicy(std::string_view name, const BalancerOptions& options);

}  // namespace sluice::routing
