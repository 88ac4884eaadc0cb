#include "admin/bearer_token.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::admin {
namespace {

TEST(BearerToken, MatchesOnlyTheExactToken) {
  const BearerToken token("abc123");
  EXPECT_TRUE(token.matches("abc123"));
  EXPECT_FALSE(token.matches("abc12"));
  EXPECT_FALSE(token.matches("abc1234"));
  EXPECT_FALSE(token.matches("ABC123"));
  EXPECT_FALSE(token.matches(""));
  EXPECT_FALSE(token.matches(std::string("abc123\0", 7)));
}

TEST(BearerToken, EmptyTokenMatchesNothing) {
  const BearerToken token("");
  EXPECT_TRUE(token.empty());
  EXPECT_FALSE(token.matches(""));
  EXPECT_FALSE(token.matches("x"));
}

TEST(BearerCredentials, TakesTheTokenOfTheBearerScheme) {
  EXPECT_EQ(bearerCredentials("Bearer abc"), "abc");
  EXPECT_EQ(bearerCredentials("bEaReR \t abc  "), "abc");
  EXPECT_EQ(bearerCredentials("Bearer"), "");
  EXPECT_EQ(bearerCredentials("Bearer "), "");
  EXPECT_EQ(bearerCredentials("Bearerabc"), "");
  EXPECT_EQ(bearerCredentials("Basic abc"), "");
  EXPECT_EQ(bearerCredentials(""), "");
}

}  // namespace
}  // namespace sluice::admin
