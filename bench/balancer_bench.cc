// What a balancing decision costs and what it buys, in one run:
//  1. ns per pick of every policy at 8 and 64 workers, one thread, with the context the gateway
//     passes (prompts of 2-4 KiB, a hash key per request) and outstanding counts that move;
//  2. a shared-prefix workload replayed through every policy on 8 workers: how often the chosen
//     worker still holds the request's prefix in its KV cache, and how evenly requests spread.
// Prints a table; `--json FILE` also writes the figures for machines. bench/run.sh runs it.
// Timed by hand rather than with Google Benchmark so that one binary prints both parts side by
// side and one JSON carries them.

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "routing/balancing_policy.h"

namespace sluice::routing {
namespace {

// Keys in the order written: the file reads like the table.
using json = nlohmann::ordered_json;

constexpr size_t kFamilies = 32;

// Text for prompts; its content does not matter, only that families differ from their first
// characters on (cache_aware keys its trees by 64-character chunks).
std::string words(Random& random, size_t chars) {
  static constexpr std::array<std::string_view, 16> kWords = {
      "the ",   "invoice ", "customer ", "returns ", "policy ", "answer ", "briefly ", "with ",
      "order ", "refund ",  "support ",  "ticket ",  "status ", "never ",  "always ",  "cite "};
  std::string text;
  while (text.size() < chars) text += kWords[random.below(kWords.size())];
  return text;
}

// A request of the shared-prefix workload: its family's prefix (system prompt and few-shot
// examples, as agents and RAG templates repeat them), then a user turn of its own.
struct Request {
  // Writes `n` as the 16 hex digits that open the user turn: real user turns never repeat.
  void stamp(uint64_t n) {
    for (size_t k = 16; k-- > 0; n >>= 4) prompt[stamp_at + k] = "0123456789abcdef"[n & 15];
  }

  size_t family;
  std::string prompt;
  size_t stamp_at;  // where the user turn's digits start
  std::string key;  // a per-request hash key (session id) for consistent_hash
};

// Zipf (s = 1: family 0 takes a quarter of the traffic, the last under 1 %) or uniform.
std::vector<Request> workload(size_t count, bool zipf) {
  Random random(42);
  std::vector<std::string> prefixes;
  for (size_t f = 0; f < kFamilies; ++f) {
    std::string text = "<|system|>You are the assistant of team " + std::to_string(f) + ". ";
    const size_t length = 2048 + random.below(2049);
    while (text.size() < length) {
      text += "\n<|user|>" + words(random, 150) + "\n<|assistant|>" + words(random, 250);
    }
    text.resize(length);
    prefixes.push_back(std::move(text));
  }
  std::vector<double> cumulative;
  double total = 0;
  for (size_t f = 0; f < kFamilies; ++f)
    cumulative.push_back(total += zipf ? 1.0 / static_cast<double>(f + 1) : 1);

  std::vector<Request> requests;
  for (size_t i = 0; i < count; ++i) {
    const double draw = static_cast<double>(random.next()) * 0x1p-64 * total;
    const size_t family =
        std::upper_bound(cumulative.begin(), cumulative.end(), draw) - cumulative.begin();
    Request request{family, prefixes[family] + "\n<|user|>#", 0, fmt::format("s{:x}", i)};
    request.stamp_at = request.prompt.size();
    request.prompt += std::string(16, '0') + " " + words(random, 180);
    request.stamp(i);
    requests.push_back(std::move(request));
  }
  return requests;
}

// Workers whose outstanding counters move as the gateway moves them: +1 when a request is
// picked, -1 when it finishes. Requests finish in pick order `in_flight` picks later, so the
// pool always carries that many and load-reading policies see live, shifting numbers.
class Pool {
 public:
  Pool(size_t workers, size_t in_flight) : loads_(workers), ring_(in_flight, kEmpty) {
    for (size_t i = 0; i < workers; ++i) ids_.push_back(fmt::format("http://10.0.0.{}:8000", i));
    for (size_t i = 0; i < workers; ++i) states_.push_back({ids_[i], 1, true, &loads_[i]});
  }
  Pool(const Pool&) = delete;  // states_ point into ids_ and loads_

  std::span<const WorkerState> workers() const { return states_; }
  void start(size_t worker) {
    size_t& oldest = ring_[next_];
    if (oldest != kEmpty) loads_[oldest].fetch_sub(1, std::memory_order_relaxed);
    oldest = worker;
    loads_[worker].fetch_add(1, std::memory_order_relaxed);
    if (++next_ == ring_.size()) next_ = 0;
  }

 private:
  static constexpr size_t kEmpty = std::numeric_limits<size_t>::max();
  std::vector<std::string> ids_;
  std::vector<LoadCounter> loads_;
  std::vector<WorkerState> states_;
  std::vector<size_t> ring_;  // the workers of the requests in flight, oldest at next_
  size_t next_ = 0;
};

// One request through `policy` as the gateway makes it: the context carries only what the
// policy reads, and the chosen worker's count goes up.
size_t pick(BalancingPolicy& policy, Pool& pool, const Request& request, std::string_view key,
            Random& random, PickTrace& trace) {
  PickContext context{.random = &random, .trace = &trace};
  if (policy.usesPrompt()) context.prompt = request.prompt;
  if (policy.usesHashKey()) context.hash_key = key;
  const size_t worker = *policy.pick(context, pool.workers());
  pool.start(worker);
  return worker;
}

// ns per pick in the fastest of 7 rounds of at least 20 ms each (other processes on the machine
// only ever add time), after one pass over the requests has filled trees and rings as in a
// running gateway. Includes the counter bookkeeping of the pool (a few ns).
double nsPerPick(std::string_view name, size_t workers, std::vector<Request>& requests) {
  auto policy = createBalancingPolicy(name, {});
  const bool uses_prompt = policy->usesPrompt();
  Pool pool(workers, 2 * workers);
  Random random(7);
  PickTrace trace;
  size_t next = 0;          // the request to send next: the list is replayed in a cycle ...
  uint64_t sent = 1 << 20;  // ... with user turns stamped past the ones workload() wrote
  const auto run = [&](size_t picks) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t n = 0; n < picks; ++n) {
      Request& request = requests[next];
      if (++next == requests.size()) next = 0;
      // Repeated prompts would let cache_aware's trees stop growing and evicting.
      if (uses_prompt) request.stamp(++sent);
      pick(*policy, pool, request, request.key, random, trace);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    return std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(picks);
  };
  run(requests.size());
  size_t picks = 1000;
  while (run(picks) * static_cast<double>(picks) < 20e6) picks *= 2;
  double fastest = run(picks);
  for (int round = 1; round < 7; ++round) fastest = std::min(fastest, run(picks));
  return fastest;
}

json measurePicks() {
  std::vector<Request> requests = workload(4096, /*zipf=*/true);
  fmt::print("ns per pick: 1 thread, 2-4 KiB prompts (cache_aware), a hash key per request\n");
  fmt::print("(consistent_hash), 2 requests in flight per worker\n");
  fmt::print("{:<16} {:>11} {:>11}\n", "policy", "8 workers", "64 workers");
  json out;
  for (const std::string_view name : balancingPolicyNames()) {
    fmt::print("{:<16}", name);
    for (const size_t workers : {size_t{8}, size_t{64}}) {
      const double ns = nsPerPick(name, workers, requests);
      fmt::print(" {:>11.1f}", ns);
      out[name][std::to_string(workers)] = std::round(ns * 10) / 10;
    }
    fmt::print("\n");
  }
  return out;
}

// The shared-prefix replay. A continuous-batching server runs tens of sequences at once: 32 per
// worker also makes cache_aware's default balance_abs_threshold (32) reachable.
constexpr size_t kWorkers = 8;
constexpr size_t kRequests = 20000;
constexpr size_t kInFlight = 32 * kWorkers;
// KV cache room for 8 prefixes of ~1k tokens beside the running batch: the 32 families fit
// when each worker keeps to its own 4, not when every worker sees them all.
constexpr size_t kCachedFamilies = 8;

// A worker's KV cache as the last kCachedFamilies distinct families it served.
class FamilyCache {
 public:
  // Whether `family` was cached; it becomes the most recent either way.
  bool serve(size_t family) {
    const auto found = std::find(recent_.begin(), recent_.end(), family);
    const bool hit = found != recent_.end();
    if (hit) {
      recent_.erase(found);
    } else if (recent_.size() == kCachedFamilies) {
      recent_.pop_back();
    }
    recent_.insert(recent_.begin(), family);
    return hit;
  }

 private:
  std::vector<size_t> recent_;  // most recent first
};

json replay(std::string_view name, const std::vector<Request>& requests) {
  auto policy = createBalancingPolicy(name, {});
  Pool pool(kWorkers, kInFlight);
  Random random(11);
  PickTrace trace;
  std::vector<FamilyCache> caches(kWorkers);
  std::vector<size_t> served(kWorkers);
  // consistent_hash hashes the family, as when clients name their template in hash_header: the
  // reference for affinity that reads no prompt text.
  std::vector<std::string> family_keys;
  for (size_t f = 0; f < kFamilies; ++f) family_keys.push_back("family-" + std::to_string(f));
  size_t hits = 0;
  for (const Request& request : requests) {
    const size_t worker = pick(*policy, pool, request, family_keys[request.family], random, trace);
    hits += caches[worker].serve(request.family);
    ++served[worker];
  }
  const auto [fewest, most] = std::minmax_element(served.begin(), served.end());
  const double spread = static_cast<double>(*most) / static_cast<double>(*fewest);
  return {{"hit_ratio", static_cast<double>(hits) / static_cast<double>(requests.size())},
          {"max_over_min", *fewest ? json(spread) : json(nullptr)},  // null: a worker got none
          {"requests_per_worker", served}};
}

json simulateSharedPrefix() {
  fmt::print(
      "\nshared prefix: {} requests, {} families (2-4 KiB prefix + ~200-char user turn), {} "
      "workers,\n{} in flight, KV cache = last {} families per worker; consistent_hash keyed "
      "by family\n",
      kRequests, kFamilies, kWorkers, kInFlight, kCachedFamilies);
  fmt::print("(hit: the chosen worker held the family; max/min: requests per worker)\n");
  fmt::print("{:<16} {:^21} {:^21}\n", "", "zipf (s=1)", "uniform");
  fmt::print("{:<16} {:>10} {:>10} {:>10} {:>10}\n", "policy", "hit ratio", "max/min", "hit ratio",
             "max/min");
  json out = {{"requests", kRequests},
              {"families", kFamilies},
              {"workers", kWorkers},
              {"in_flight", kInFlight},
              {"cached_families_per_worker", kCachedFamilies}};
  const std::array<std::pair<const char*, std::vector<Request>>, 2> mixes = {
      {{"zipf", workload(kRequests, /*zipf=*/true)},
       {"uniform", workload(kRequests, /*zipf=*/false)}}};
  for (const std::string_view name : balancingPolicyNames()) {
    fmt::print("{:<16}", name);
    for (const auto& [label, requests] : mixes) {
      json result = replay(name, requests);
      const json& ratio = result["max_over_min"];
      fmt::print(" {:>10.3f} {:>10}", result["hit_ratio"].get<double>(),
                 ratio.is_null() ? "inf" : fmt::format("{:.2f}", ratio.get<double>()));
      out[label][name] = std::move(result);
    }
    fmt::print("\n");
  }
  return out;
}

}  // namespace
}  // namespace sluice::routing

int main(int argc, char** argv) {
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      fmt::print(stderr, "usage: {} [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  const sluice::routing::json result = {{"pick_ns", sluice::routing::measurePicks()},
                                        {"shared_prefix", sluice::routing::simulateSharedPrefix()}};
  if (!json_path.empty()) {
    std::ofstream file(json_path);
    file << result.dump(2) << '\n';
    if (!file) {
      fmt::print(stderr, "cannot write {}\n", json_path);
      return 1;
    }
  }
  return 0;
}
