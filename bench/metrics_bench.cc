// What counting costs on the request path: ns per counter increment, gauge move, histogram
// observation and label-set lookup, on one thread and on two threads counting the same series
// at once (the case per-thread shards are for), next to a plain shared atomic for comparison;
// then the time to render a scrape. Prints a table; timings are not asserted anywhere.
// Usage: metrics_bench [iterations per thread, default 20000000]

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.h"

namespace sluice::metrics {
namespace {

using Clock = std::chrono::steady_clock;

// CPU time of the calling thread: unlike wall time, it does not count the time a thread waits
// for a core, so the figures hold on a loaded machine (but two threads only contend when they
// run at the same moment: compare the shared-atomic row to see whether they did).
double threadCpuNs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

// Runs `body(thread, iterations)` on `threads` threads released together; returns the CPU ns
// per operation of each thread, averaged over the threads, the best of 5 runs.
template <class Body>
double nsPerOp(int threads, uint64_t iterations, Body body) {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    std::barrier start(threads);
    std::vector<double> cpu_ns(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        start.arrive_and_wait();
        const double begin = threadCpuNs();
        body(t, iterations);
        cpu_ns[t] = threadCpuNs() - begin;
      });
    }
    for (auto& worker : workers) worker.join();
    double total = 0;
    for (double ns : cpu_ns) total += ns;
    best = std::min(best, total / threads / static_cast<double>(iterations));
  }
  return best;
}

}  // namespace
}  // namespace sluice::metrics

int main(int argc, char** argv) {
  using namespace sluice::metrics;
  const uint64_t iterations = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20'000'000;

  Registry registry;
  Counter* counter =
      registry.addCounter("bench_requests_total", "h", {"route", "model", "provider", "status"})
          .with({"chat", "gpt-4o", "openai", "200"});
  Gauge* gauge = registry.addGauge("bench_in_flight", "h").with({});
  Histogram* histogram =
      registry.addHistogram("bench_duration_seconds", "h", {"route"}, kLatencyBuckets)
          .with({"chat"});
  auto& lookup_family =
      registry.addCounter("bench_lookup_total", "h", {"route", "model", "provider", "status"});
  const std::array<const char*, 4> models = {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama"};
  const std::array<const char*, 4> statuses = {"200", "400", "429", "500"};
  for (auto* model : models) {
    for (auto* status : statuses) lookup_family.with({"chat", model, "openai", status});
  }
  alignas(64) std::atomic<uint64_t> shared{0};

  // Observations spread over the buckets, so that the search does not always take one path.
  std::array<double, 1024> samples{};
  uint64_t seed = 42;
  for (auto& sample : samples) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    sample = static_cast<double>(seed >> 40) / static_cast<double>(1 << 24) * 20.0;  // 0-20 s
  }

  fmt::print("metrics_bench: {} iterations per thread, {} shards per series, {} hardware threads\n",
             iterations, sluice::metrics::detail::shardCount(),
             std::thread::hardware_concurrency());
  fmt::print("{:<44} {:>12} {:>12}\n", "CPU ns per operation, per thread", "1 thread", "2 threads");

  const auto row = [&](const char* name, uint64_t scale, auto body) {
    const double one = nsPerOp(1, iterations / scale, body);
    const double two = nsPerOp(2, iterations / scale, body);
    fmt::print("{:<44} {:>12.2f} {:>12.2f}\n", name, one, two);
  };
  row("Counter::inc (cached handle)", 1, [&](int, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) counter->inc();
  });
  row("  for comparison: one shared atomic fetch_add", 1, [&](int, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) shared.fetch_add(1, std::memory_order_relaxed);
  });
  row("Gauge::inc + Gauge::dec (per pair)", 2, [&](int, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      gauge->inc();
      gauge->dec();
    }
  });
  row("Histogram::observe (15 bounds)", 2, [&](int, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) histogram->observe(samples[i & 1023]);
  });
  row("Family::with, 4 labels, 16 sets, then inc", 10, [&](int t, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      lookup_family.with({"chat", models[i & 3], "openai", statuses[(i >> 2) & 3]})->inc();
    }
  });

  // A scrape of a busy gateway: 2,000 counter series and 200 histograms of 15 buckets.
  Registry big;
  auto& requests = big.addCounter("sluice_requests_total", "h", {"route", "model", "status"});
  auto& durations =
      big.addHistogram("sluice_request_duration_seconds", "h", {"route", "model"}, kLatencyBuckets);
  for (int i = 0; i < 2000; ++i) {
    requests.with({"route" + std::to_string(i % 10), "model" + std::to_string(i), "200"})->inc(i);
  }
  for (int i = 0; i < 200; ++i) {
    durations.with({"route" + std::to_string(i % 10), "model" + std::to_string(i)})
        ->observe(samples[i]);
  }
  std::string text;
  double best = 1e30;
  for (int run = 0; run < 20; ++run) {
    text.clear();
    const auto begin = Clock::now();
    big.appendPrometheus(text);
    best = std::min(best, std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
  }
  fmt::print("render: 2,000 counter + 200 histogram series ({} KiB): {:.0f} us\n",
             text.size() / 1024, best);
  return 0;
}
