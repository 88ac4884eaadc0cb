#include "routing/route_table.h"

#include <gtest/gtest.h>

namespace sluice::routing {
namespace {

config::Route route(std::vector<std::string> models) {
  config::Route r;
  r.models = std::move(models);
  return r;
}

TEST(RouteTable, ExactBeatsPrefixBeatsFallback) {
  RouteTable table({route({"*"}), route({"gpt-4*"}), route({"gpt-4o"})});
  EXPECT_EQ(table.find("gpt-4o"), 2);
  EXPECT_EQ(table.find("gpt-4-turbo"), 1);
  EXPECT_EQ(table.find("llama"), 0);
}

TEST(RouteTable, LongestPrefixWins) {
  RouteTable table({route({"gpt*"}), route({"gpt-4o*"}), route({"gpt-4*"})});
  EXPECT_EQ(table.find("gpt-4o-mini"), 1);
  EXPECT_EQ(table.find("gpt-4.1"), 2);
  EXPECT_EQ(table.find("gpt-3.5"), 0);
}

TEST(RouteTable, UnknownModelWithoutFallbackIsNotFound) {
  RouteTable table({route({"a", "b*"})});
  EXPECT_EQ(table.find("c"), -1);
  EXPECT_EQ(table.find(""), -1);
  EXPECT_EQ(table.find("b"), 0);  // "b*" also matches the bare prefix
}

TEST(RouteTable, FirstListedRouteWinsTies) {
  RouteTable table({route({"m"}), route({"m", "n"})});
  EXPECT_EQ(table.find("m"), 0);
  EXPECT_EQ(table.find("n"), 1);
  EXPECT_EQ(table.exactModels(), (std::vector<std::string>{"m", "n"}));
}

}  // namespace
}  // namespace sluice::routing
