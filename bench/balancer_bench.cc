// What a routing decision costs: ns per pick of each balancing policy at 8, 16 and 64 workers,
// cache_aware with 2 KB prompts from 64 prefix families. Not a test; run
// build-dir/tests/balancer_bench.

#include <benchmark/benchmark.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "routing/balancing_policy.h"

namespace sluice::routing {
namespace {

// Workers with loads between 0 and 9, as a busy pool would show them.
struct BenchPool {
  explicit BenchPool(size_t size) {
    Random random(1);
    for (size_t i = 0; i < size; ++i) {
      ids.push_back("http://10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                    ":8000");
      loads.emplace_back(static_cast<uint32_t>(random.below(10)));
    }
    for (size_t i = 0; i < size; ++i) states.push_back({ids[i], 1, true, &loads[i]});
  }
  std::deque<std::string> ids;
  std::deque<LoadCounter> loads;
  std::vector<WorkerState> states;
};

// 2 KB prompts: a 1.5 KB system prompt shared by a family, then 512 characters of their own.
std::vector<std::string> prompts(size_t count) {
  std::vector<std::string> out;
  Random random(2);
  for (size_t i = 0; i < count; ++i) {
    std::string text = "family " + std::to_string(i % 64) + " ";
    while (text.size() < 1536)
      text += "You are a helpful assistant of team " + std::to_string(i % 64) + ". ";
    text.resize(1536);
    while (text.size() < 2048) text += static_cast<char>('a' + random.below(26));
    out.push_back(std::move(text));
  }
  return out;
}

// One pool and one policy per (policy, size), shared by the benchmark's threads as the
// gateway's worker threads share them, and kept warm across runs.
struct Subject {
  Subject(std::string_view name, size_t size)
      : pool(size), policy(createBalancingPolicy(name, {})) {}
  BenchPool pool;
  BalancingPolicyPtr policy;
};

Subject& subject(std::string_view name, size_t size) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, size_t>, std::unique_ptr<Subject>> subjects;
  std::lock_guard lock(mutex);
  auto& slot = subjects[{std::string(name), size}];
  if (!slot) slot = std::make_unique<Subject>(name, size);
  return *slot;
}

void pickLoop(benchmark::State& state, std::string_view name) {
  Subject& shared = subject(name, static_cast<size_t>(state.range(0)));
  static const std::vector<std::string> texts = prompts(4096);
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    out.reserve(4096);
    for (int i = 0; i < 4096; ++i) out.push_back("session-" + std::to_string(i));
    return out;
  }();
  Random random(3 + state.thread_index());
  PickTrace trace;
  size_t i = static_cast<size_t>(state.thread_index()) * 997, hits = 0;
  for (auto _ : state) {
    PickContext context{.random = &random, .trace = &trace};
    if (shared.policy->usesPrompt()) context.prompt = texts[i % texts.size()];
    if (shared.policy->usesHashKey()) context.hash_key = keys[i % keys.size()];
    benchmark::DoNotOptimize(shared.policy->pick(context, shared.pool.states));
    hits += trace.reason == PickReason::kCacheHit;
    ++i;
  }
  if (name == "cache_aware") {
    state.counters["hit_ratio"] =
        benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kAvgIterations);
  }
}

#define SLUICE_POLICY_BENCH(policy)                                       \
  void BM_##policy(benchmark::State& state) { pickLoop(state, #policy); } \
  BENCHMARK(BM_##policy)->Arg(8)->Arg(16)->Arg(64);                       \
  BENCHMARK(BM_##policy)->Arg(16)->Threads(2)->UseRealTime();

SLUICE_POLICY_BENCH(round_robin)
SLUICE_POLICY_BENCH(random)
SLUICE_POLICY_BENCH(power_of_two)
SLUICE_POLICY_BENCH(least_load)
SLUICE_POLICY_BENCH(consistent_hash)
SLUICE_POLICY_BENCH(cache_aware)

}  // namespace
}  // namespace sluice::routing

BENCHMARK_MAIN();
