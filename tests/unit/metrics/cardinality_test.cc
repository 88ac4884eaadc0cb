#include <gtest/gtest.h>

#include <string>

#include "metrics/registry.h"

namespace sluice::metrics {
namespace {

TEST(Cardinality, LabelSetsPastTheCapShareOneOtherSeries) {
  Registry registry;
  auto& tokens = registry.addCounter("sluice_tokens_total", "Tokens.", {"model", "key"}, 2);
  auto* a = tokens.with({"gpt-4o", "k1"});
  auto* b = tokens.with({"gpt-4o", "k2"});
  auto* c = tokens.with({"gpt-4o", "k3"});
  auto* d = tokens.with({"claude", "k4"});
  EXPECT_NE(a, b);
  EXPECT_EQ(c, d);
  a->inc();
  b->inc(2);
  c->inc(3);
  d->inc(4);
  // Sets already there keep their own series.
  EXPECT_EQ(tokens.with({"gpt-4o", "k1"}), a);
  EXPECT_EQ(tokens.size(), 3u);
  EXPECT_EQ(registry.render(),
            "# HELP sluice_tokens_total Tokens.\n"
            "# TYPE sluice_tokens_total counter\n"
            "sluice_tokens_total{model=\"gpt-4o\",key=\"k1\"} 1\n"
            "sluice_tokens_total{model=\"gpt-4o\",key=\"k2\"} 2\n"
            "sluice_tokens_total{model=\"other\",key=\"other\"} 7\n");
}

TEST(Cardinality, AnExplicitOtherSetIsTheOverflowSeries) {
  Registry registry;
  auto& family = registry.addCounter("c_total", "h", {"model"}, 2);
  auto* other = family.with({"other"});
  family.with({"a"});
  EXPECT_EQ(family.with({"b"}), other);
  EXPECT_EQ(family.size(), 2u);
}

TEST(Cardinality, DefaultCapIsTenThousandLabelSets) {
  Registry registry;
  auto& family = registry.addHistogram("h_seconds", "h", {"key"}, kLatencyBuckets);
  for (size_t i = 0; i < kDefaultMaxSeries; ++i) family.with({"k" + std::to_string(i)});
  EXPECT_EQ(family.size(), kDefaultMaxSeries);
  auto* overflow = family.with({"one more"});
  EXPECT_EQ(family.with({"and another"}), overflow);
  EXPECT_EQ(family.size(), kDefaultMaxSeries + 1);
  EXPECT_NE(registry.render().find("h_seconds_count{key=\"other\"} 0\n"), std::string::npos);
}

}  // namespace
}  // namespace sluice::metrics
