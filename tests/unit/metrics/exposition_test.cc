#include "metrics/exposition.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <stdexcept>
#include <string>

#include "metrics/registry.h"

namespace sluice::metrics {
namespace {

TEST(Exposition, CounterFamilyShowsHelpTypeAndSeriesInCreationOrder) {
  Registry registry;
  auto& requests = registry.addCounter("sluice_requests_total", "Requests answered.",
                                       {"route", "model", "provider", "status"});
  requests.with({"chat", "gpt-4o", "openai", "200"})->inc(3);
  requests.with({"chat", "claude", "anthropic", "429"})->inc();
  requests.with({"chat", "gpt-4o", "openai", "200"})->inc();
  EXPECT_EQ(registry.render(),
            "# HELP sluice_requests_total Requests answered.\n"
            "# TYPE sluice_requests_total counter\n"
            "sluice_requests_total{route=\"chat\",model=\"gpt-4o\",provider=\"openai\","
            "status=\"200\"} 4\n"
            "sluice_requests_total{route=\"chat\",model=\"claude\",provider=\"anthropic\","
            "status=\"429\"} 1\n");
}

TEST(Exposition, HistogramShowsCumulativeBucketsInfSumAndCount) {
  Registry registry;
  auto& ttft = registry.addHistogram("sluice_time_to_first_token_seconds", "Time to first token.",
                                     {"route"}, std::array{0.125, 0.5, 2.5});
  auto* chat = ttft.with({"chat"});
  for (double seconds : {0.0625, 0.125, 0.25, 1.0, 7.0}) chat->observe(seconds);
  EXPECT_EQ(registry.render(),
            "# HELP sluice_time_to_first_token_seconds Time to first token.\n"
            "# TYPE sluice_time_to_first_token_seconds histogram\n"
            "sluice_time_to_first_token_seconds_bucket{route=\"chat\",le=\"0.125\"} 2\n"
            "sluice_time_to_first_token_seconds_bucket{route=\"chat\",le=\"0.5\"} 3\n"
            "sluice_time_to_first_token_seconds_bucket{route=\"chat\",le=\"2.5\"} 4\n"
            "sluice_time_to_first_token_seconds_bucket{route=\"chat\",le=\"+Inf\"} 5\n"
            "sluice_time_to_first_token_seconds_sum{route=\"chat\"} 8.4375\n"
            "sluice_time_to_first_token_seconds_count{route=\"chat\"} 5\n");
}

TEST(Exposition, HistogramWithoutLabelsHasOnlyLeOnBuckets) {
  Registry registry;
  registry.addHistogram("sluice_gap_seconds", "", {}, std::array{1.0}).with({})->observe(0.25);
  EXPECT_EQ(registry.render(),
            "# TYPE sluice_gap_seconds histogram\n"
            "sluice_gap_seconds_bucket{le=\"1\"} 1\n"
            "sluice_gap_seconds_bucket{le=\"+Inf\"} 1\n"
            "sluice_gap_seconds_sum 0.25\n"
            "sluice_gap_seconds_count 1\n");
}

TEST(Exposition, FamiliesInRegistrationOrderWithCollectorTextWhereItWasAdded) {
  Registry registry;
  registry.addGauge("sluice_in_flight_requests", "Requests in flight.").with({})->add(2);
  const auto id = registry.addCollector([](std::string& out) {
    out += "# TYPE sluice_upstream_state gauge\nsluice_upstream_state{state=\"healthy\"} 1\n";
  });
  registry.addCounter("sluice_redis_errors_total", "Redis commands that failed.");
  const std::string gauge =
      "# HELP sluice_in_flight_requests Requests in flight.\n"
      "# TYPE sluice_in_flight_requests gauge\n"
      "sluice_in_flight_requests 2\n";
  const std::string counter =
      "# HELP sluice_redis_errors_total Redis commands that failed.\n"
      "# TYPE sluice_redis_errors_total counter\n"
      "sluice_redis_errors_total 0\n";
  EXPECT_EQ(registry.render(),
            gauge +
                "# TYPE sluice_upstream_state gauge\nsluice_upstream_state{state=\"healthy\"} 1\n" +
                counter);
  registry.removeCollector(id);
  EXPECT_EQ(registry.render(), gauge + counter);
}

TEST(Exposition, LabeledFamilyWithoutSeriesShowsNothing) {
  Registry registry;
  registry.addCounter("sluice_rate_limited_total", "Rate-limit decisions.", {"decision"});
  EXPECT_EQ(registry.render(), "");
}

TEST(Exposition, LabelValuesEscapeBackslashQuoteAndNewline) {
  Registry registry;
  registry.addCounter("c", "h", {"v"}).with({"a\\b\"c\nd"})->inc();
  EXPECT_EQ(registry.render(), "# HELP c h\n# TYPE c counter\nc{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Exposition, HelpEscapesBackslashAndNewlineButNotQuotes) {
  Registry registry;
  registry.addGauge("g", "one \"two\"\nthree \\ four");
  EXPECT_EQ(registry.render(), "# HELP g one \"two\"\\nthree \\\\ four\n# TYPE g gauge\ng 0\n");
}

TEST(Exposition, InvalidUtf8LabelValuesAreRepairedAndShareOneSeries) {
  Registry registry;
  auto& family = registry.addCounter("c", "h", {"model"});
  auto* first = family.with({"gpt\xff"});
  auto* second = family.with({"gpt\xfe"});  // repairs to the same text
  auto* repaired = family.with({"gpt\xEF\xBF\xBD"});
  EXPECT_EQ(first, second);
  EXPECT_EQ(first, repaired);
  first->inc();
  second->inc();
  EXPECT_EQ(registry.render(), "# HELP c h\n# TYPE c counter\nc{model=\"gpt\xEF\xBF\xBD\"} 2\n");
  EXPECT_EQ(toValidUtf8("\xC3\xA9t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");                // "été" stays
  EXPECT_EQ(toValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  EXPECT_EQ(toValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(toValidUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");                  // emoji stays
  EXPECT_EQ(toValidUtf8("\xF0\x9F\x98"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated
}

TEST(Exposition, NumbersInShortestRoundTripFormAsPrometheusReadsThem) {
  const auto text = [](auto value) {
    std::string out;
    appendNumber(out, value);
    return out;
  };
  EXPECT_EQ(text(0.1), "0.1");
  EXPECT_EQ(text(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(text(2.0), "2");
  EXPECT_EQ(text(1e21), "1e+21");
  EXPECT_EQ(text(1.5e-7), "1.5e-07");
  EXPECT_EQ(text(-3.25), "-3.25");
  EXPECT_EQ(text(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(text(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(text(uint64_t{18446744073709551615ULL}), "18446744073709551615");
  EXPECT_EQ(text(int64_t{-42}), "-42");
}

TEST(Exposition, GaugeMovesBothWaysAndSetReplacesTheValue) {
  Registry registry;
  auto* in_flight = registry.addGauge("g", "h").with({});
  in_flight->inc();
  in_flight->inc();
  in_flight->dec();
  in_flight->add(-5);
  EXPECT_EQ(in_flight->value(), -4);
  in_flight->set(10);
  in_flight->inc();
  EXPECT_EQ(in_flight->value(), 11);
  EXPECT_EQ(registry.render(), "# HELP g h\n# TYPE g gauge\ng 11\n");
}

TEST(Registry, RejectsInvalidNamesAtRegistration) {
  Registry registry;
  for (const char* name : {"", "1abc", "a-b", "a b", "é"}) {
    EXPECT_THROW(registry.addCounter(name, "h"), std::invalid_argument) << name;
  }
  EXPECT_NO_THROW(registry.addGauge("sluice:ratio_1", "h"));
  EXPECT_NO_THROW(registry.addGauge("_x", "h"));
  for (const char* label : {"", "1a", "a:b", "__reserved", "a-b"}) {
    EXPECT_THROW(registry.addCounter("c", "h", {label}), std::invalid_argument) << label;
  }
  EXPECT_THROW(registry.addCounter("c", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(registry.addHistogram("h", "h", {"le"}, std::array{1.0}), std::invalid_argument);
  EXPECT_THROW(registry.addCounter("c", "h", {}, 0), std::invalid_argument);
  EXPECT_EQ(registry.render(),
            "# HELP sluice:ratio_1 h\n# TYPE sluice:ratio_1 gauge\n"
            "sluice:ratio_1 0\n# HELP _x h\n# TYPE _x gauge\n_x 0\n");
}

TEST(Registry, SameDefinitionGivesTheSameFamilyAndAConflictThrows) {
  Registry registry;
  auto& first = registry.addCounter("sluice_tokens_total", "Tokens.", {"model", "direction"});
  auto& again = registry.addCounter("sluice_tokens_total", "Tokens.", {"model", "direction"});
  EXPECT_EQ(&first, &again);
  EXPECT_THROW(registry.addCounter("sluice_tokens_total", "Tokens.", {"model"}),
               std::invalid_argument);
  EXPECT_THROW(registry.addGauge("sluice_tokens_total", "Tokens.", {"model", "direction"}),
               std::invalid_argument);
  EXPECT_THROW(registry.addCounter("sluice_tokens_total", "Other help.", {"model", "direction"}),
               std::invalid_argument);
  // A histogram's series names are taken too.
  registry.addHistogram("sluice_duration_seconds", "h", {}, kLatencyBuckets);
  EXPECT_THROW(registry.addCounter("sluice_duration_seconds_count", "h"), std::invalid_argument);
  EXPECT_NO_THROW(registry.addHistogram("sluice_tokens", "h", {}, std::array{1.0}));
}

TEST(Registry, WrongNumberOfLabelValuesThrows) {
  Registry registry;
  auto& family = registry.addCounter("c", "h", {"route", "status"});
  EXPECT_THROW(family.with({"chat"}), std::invalid_argument);
  EXPECT_THROW(family.with({"chat", "200", "x"}), std::invalid_argument);
  EXPECT_NE(family.with({"chat", "200"}), nullptr);
}

TEST(Registry, SeriesPointersStayValidWhileTheFamilyGrows) {
  Registry registry;
  auto& family = registry.addCounter("c", "h", {"key"});
  auto* first = family.with({"key-0"});
  for (int i = 1; i < 5000; ++i) family.with({"key-" + std::to_string(i)})->inc();
  first->inc();
  EXPECT_EQ(family.with({"key-0"}), first);
  EXPECT_EQ(first->value(), 1u);
  EXPECT_EQ(family.size(), 5000u);
}

TEST(Registry, DefaultRegistryIsOneProcessWideObject) {
  EXPECT_EQ(&defaultRegistry(), &defaultRegistry());
}

}  // namespace
}  // namespace sluice::metrics
