#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <barrier>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.h"
#include "metrics/shard.h"

namespace sluice::metrics {
namespace {

constexpr int kThreads = 4;
constexpr int kPerThread = 250'000;

template <class Body>
void onThreads(int count, Body body) {
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (int t = 0; t < count; ++t) threads.emplace_back(body, t);
  for (auto& thread : threads) thread.join();
}

TEST(Concurrency, CounterIncrementsFromFourThreadsSumExactly) {
  Registry registry;
  auto* counter = registry.addCounter("c_total", "h", {"route"}).with({"chat"});
  onThreads(kThreads, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) counter->inc(t + 1);
  });
  EXPECT_EQ(counter->value(), uint64_t{kPerThread} * (1 + 2 + 3 + 4));
}

TEST(Concurrency, GaugeMovedFromFourThreadsSumsExactly) {
  Registry registry;
  auto* in_flight = registry.addGauge("g", "h").with({});
  // Two threads start requests, two finish more of them than they started: a request may end
  // on another thread than the one it began on.
  onThreads(kThreads, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) t < 2 ? in_flight->inc() : in_flight->add(-2);
  });
  EXPECT_EQ(in_flight->value(), -int64_t{2} * kPerThread);
}

TEST(Concurrency, HistogramObservationsFromFourThreadsSumExactly) {
  Registry registry;
  auto* histogram = registry.addHistogram("h_seconds", "h", {}, std::array{0.5, 1.0}).with({});
  onThreads(kThreads, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) histogram->observe(t % 2 == 0 ? 0.5 : 2.0);
  });
  const auto snapshot = histogram->snapshot();
  EXPECT_EQ(snapshot.count, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(snapshot.cumulative[0], uint64_t{2} * kPerThread);
  EXPECT_EQ(snapshot.cumulative[1], uint64_t{2} * kPerThread);
  EXPECT_EQ(snapshot.sum, 2.0 * kPerThread * (0.5 + 2.0));  // exact: small multiples of 1/2
}

TEST(Concurrency, ThreadsBeyondTheShardCountShareAShardAndStillSumExactly) {
  Registry registry;
  auto* counter = registry.addCounter("c_total", "h").with({});
  auto* histogram = registry.addHistogram("h_seconds", "h", {}, std::array{1.0}).with({});
  const int threads = static_cast<int>(detail::shardCount()) + 4;
  std::barrier all_counting(threads);
  std::atomic<int> sharing{0};
  onThreads(threads, [&](int) {
    counter->inc();
    all_counting.arrive_and_wait();  // every thread holds its shard from here on
    if (!detail::thisThreadShard().exclusive) ++sharing;
    for (int i = 1; i < 100'000; ++i) {
      counter->inc();
      histogram->observe(0.5);
    }
  });
  EXPECT_GE(sharing.load(), 5);  // at least 4 over the count, and the shared shard's own
  EXPECT_EQ(counter->value(), uint64_t{100'000} * threads);
  EXPECT_EQ(histogram->snapshot().count, uint64_t{99'999} * threads);
  EXPECT_EQ(histogram->snapshot().sum, 0.5 * 99'999 * threads);
}

TEST(Concurrency, ThreadsGiveTheirShardBackWhenTheyExit) {
  // Far more threads than shards over time, never many at once: each gets a shard of its own.
  for (uint32_t i = 0; i < 3 * detail::shardCount(); ++i) {
    bool exclusive = false;
    std::thread([&] { exclusive = detail::thisThreadShard().exclusive; }).join();
    ASSERT_TRUE(exclusive) << i;
  }
}

TEST(Concurrency, ThreadsCreatingTheSameLabelSetsGetOneSeriesEach) {
  Registry registry;
  auto& family = registry.addCounter("c_total", "h", {"model", "key"});
  constexpr int kSets = 3000;
  std::vector<std::vector<Counter*>> seen(kThreads, std::vector<Counter*>(kSets));
  onThreads(kThreads, [&](int t) {
    // Each thread walks the label sets from another starting point.
    for (int n = 0; n < kSets; ++n) {
      const int i = (n + t * kSets / kThreads) % kSets;
      auto* counter = family.with({"m" + std::to_string(i % 7), "k" + std::to_string(i)});
      counter->inc();
      seen[t][i] = counter;
    }
  });
  EXPECT_EQ(family.size(), size_t{kSets});
  for (int i = 0; i < kSets; ++i) {
    for (int t = 1; t < kThreads; ++t) ASSERT_EQ(seen[t][i], seen[0][i]) << i;
    ASSERT_EQ(seen[0][i]->value(), uint64_t{kThreads}) << i;
  }
}

TEST(Concurrency, ScrapesWhileThreadsCountSeeValuesOnlyGrow) {
  Registry registry;
  auto* counter = registry.addCounter("c_total", "h").with({});
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const std::string text = registry.render();
      const uint64_t value = std::stoull(text.substr(text.rfind(' ') + 1));
      EXPECT_GE(value, last);
      last = value;
    }
  });
  onThreads(3, [&](int) {
    for (int i = 0; i < kPerThread; ++i) counter->inc();
  });
  done = true;
  scraper.join();
  EXPECT_EQ(counter->value(), uint64_t{3} * kPerThread);
}

}  // namespace
}  // namespace sluice::metrics
