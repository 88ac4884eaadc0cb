#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "metrics/registry.h"

namespace sluice::metrics {
namespace {

Histogram* makeHistogram(Registry& registry, std::vector<double> bounds) {
  return registry.addHistogram("h_seconds", "h", {}, bounds).with({});
}

TEST(Histogram, ValueEqualToABoundFallsInThatBoundsBucket) {
  Registry registry;
  auto* histogram = makeHistogram(registry, {0.1, 0.5, 1});
  histogram->observe(0.1);
  histogram->observe(0.5);
  histogram->observe(1);
  EXPECT_EQ(histogram->snapshot().cumulative, (std::vector<uint64_t>{1, 2, 3, 3}));
}

TEST(Histogram, ValuesJustAboveABoundFallInTheNextBucket) {
  Registry registry;
  auto* histogram = makeHistogram(registry, {0.1, 0.5, 1});
  histogram->observe(std::nextafter(0.1, 1.0));
  histogram->observe(std::nextafter(1.0, 2.0));
  EXPECT_EQ(histogram->snapshot().cumulative, (std::vector<uint64_t>{0, 1, 1, 2}));
}

TEST(Histogram, BelowTheFirstBoundAboveTheLastAndNaN) {
  Registry registry;
  auto* histogram = makeHistogram(registry, {1, 2});
  histogram->observe(-3);
  histogram->observe(0);
  histogram->observe(1e9);
  histogram->observe(std::numeric_limits<double>::infinity());
  histogram->observe(std::numeric_limits<double>::quiet_NaN());
  const auto snapshot = histogram->snapshot();
  EXPECT_EQ(snapshot.cumulative, (std::vector<uint64_t>{2, 2, 5}));
  EXPECT_EQ(snapshot.count, 5u);
  EXPECT_TRUE(std::isnan(snapshot.sum));
}

TEST(Histogram, CountAndSumOverAllBuckets) {
  Registry registry;
  auto* histogram = makeHistogram(registry, {0.25, 0.5, 1, 2, 4, 8, 16, 32, 64});
  for (int i = 0; i < 100; ++i) histogram->observe(i * 0.5);
  const auto snapshot = histogram->snapshot();
  EXPECT_EQ(snapshot.count, 100u);
  EXPECT_EQ(snapshot.sum, 2475.0);
  EXPECT_EQ(snapshot.cumulative, (std::vector<uint64_t>{1, 2, 3, 5, 9, 17, 33, 65, 100, 100}));
}

TEST(Histogram, ManyBoundsSpanSeveralCacheLinesPerShard) {
  Registry registry;
  const auto bounds = exponentialBuckets(0.001, 2, 30);
  auto* histogram = makeHistogram(registry, bounds);
  for (double bound : bounds) histogram->observe(bound);
  histogram->observe(1e12);
  const auto snapshot = histogram->snapshot();
  ASSERT_EQ(snapshot.cumulative.size(), 31u);
  for (size_t i = 0; i < 30; ++i) EXPECT_EQ(snapshot.cumulative[i], i + 1) << i;
  EXPECT_EQ(snapshot.cumulative[30], 31u);
}

TEST(Histogram, BoundsMustBeStrictlyIncreasingAndFinite) {
  Registry registry;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& bounds : std::vector<std::vector<double>>{
           {1, 0.5}, {1, 1}, {nan}, {0.1, nan, 1}, {-inf, 1}, {1, inf, 2}}) {
    EXPECT_THROW(registry.addHistogram("h_seconds", "h", {}, bounds), std::invalid_argument);
  }
  // A last +Inf is implied anyway: the same family as without it.
  auto& with_inf = registry.addHistogram("h_seconds", "h", {}, std::array{1.0, inf});
  auto& without = registry.addHistogram("h_seconds", "h", {}, std::array{1.0});
  EXPECT_EQ(&with_inf, &without);
  EXPECT_EQ(with_inf.with({})->bounds().size(), 1u);
  // No bounds at all: only +Inf.
  registry.addHistogram("only_inf_seconds", "h", {}, std::vector<double>{}).with({})->observe(3);
  EXPECT_NE(registry.render().find("only_inf_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
}

TEST(Histogram, ExponentialBuckets) {
  EXPECT_EQ(exponentialBuckets(0.001, 2, 4), (std::vector<double>{0.001, 0.002, 0.004, 0.008}));
  EXPECT_EQ(exponentialBuckets(1e-6, 10, 3), (std::vector<double>{1e-6, 1e-5, 1e-4}));
  EXPECT_TRUE(exponentialBuckets(1, 2, 0).empty());
}

}  // namespace
}  // namespace sluice::metrics
