#include "wasm/plugin_stats.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace sluice::wasm {
namespace {

TEST(PluginStats, CountsFromManyThreadsAddUp) {
  PluginStats stats;
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {  // more threads than shards: some share one
    threads.emplace_back([&stats, t] {
      for (int i = 0; i < 1000; ++i) stats.call(1000 + t);
      stats.trap();
      stats.deadlineMiss();
      stats.reject();
      stats.modification();
      stats.startFailure();
    });
  }
  for (auto& thread : threads) thread.join();
  const auto t = stats.totals();
  EXPECT_EQ(t.calls, 12000u);
  EXPECT_EQ(t.traps, 12u);
  EXPECT_EQ(t.deadline_misses, 12u);
  EXPECT_EQ(t.errors, 36u);  // traps + deadline misses + start failures
  EXPECT_EQ(t.rejects, 12u);
  EXPECT_EQ(t.modifications, 12u);
  EXPECT_EQ(t.max_ns, 1011u);
  uint64_t expected_total = 0;
  for (int i = 0; i < 12; ++i) expected_total += 1000u * (1000 + i);
  EXPECT_EQ(t.total_ns, expected_total);
}

TEST(PluginStats, QuantilesFollowTheBuckets) {
  PluginStats stats;
  EXPECT_EQ(stats.totals().quantileNs(0.99), 0u);   // nothing measured
  for (int i = 0; i < 990; ++i) stats.call(800);    // bucket <= 1 us
  for (int i = 0; i < 10; ++i) stats.call(40'000);  // bucket (25 us, 50 us]
  const auto t = stats.totals();
  EXPECT_LE(t.quantileNs(0.5), 1'000u);
  EXPECT_LE(t.quantileNs(0.99), 1'000u);
  const auto p999 = t.quantileNs(0.999);
  EXPECT_GT(p999, 25'000u);
  EXPECT_LE(p999, 40'000u);  // never above the largest time seen
  EXPECT_EQ(t.buckets[0], 990u);
}

TEST(PluginStats, TimesBeyondTheLastBoundStayBelowTheMaximum) {
  PluginStats stats;
  stats.call(5'000'000'000);  // 5 s: the +Inf bucket
  const auto t = stats.totals();
  EXPECT_EQ(t.buckets.back(), 1u);
  EXPECT_EQ(t.quantileNs(0.99), 4'960'000'000u);
  EXPECT_LE(t.quantileNs(1.0), 5'000'000'000u);
}

}  // namespace
}  // namespace sluice::wasm
