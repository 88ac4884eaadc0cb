#include "admin/admin_router.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace sluice::admin {
namespace {

AdminHandler answering(int status) {
  return [status](const AdminRequest&) {
    AdminResponse response;
    response.status = status;
    return response;
  };
}

int statusOf(const AdminRouter::Match& match) {
  return match.handler ? (*match.handler)(AdminRequest{}).status : 0;
}

TEST(AdminRouter, LongestMatchingPrefixWins) {
  AdminRouter router;
  router.add("GET", "/", answering(1));
  router.add("GET", "/wasm", answering(2));
  router.add("GET", "/wasm/", answering(3));
  EXPECT_EQ(statusOf(router.find("GET", "/")), 1);
  EXPECT_EQ(statusOf(router.find("GET", "/other")), 1);
  EXPECT_EQ(statusOf(router.find("GET", "/wasm")), 2);
  EXPECT_EQ(statusOf(router.find("GET", "/wasm/abc")), 3);
}

TEST(AdminRouter, PrefixMatchesWholeSegments) {
  AdminRouter router;
  router.add("GET", "/wasm", answering(1));
  EXPECT_EQ(statusOf(router.find("GET", "/wasm/abc/def")), 1);
  EXPECT_EQ(router.find("GET", "/wasmer").handler, nullptr);
  EXPECT_EQ(router.find("GET", "/was").handler, nullptr);
  EXPECT_TRUE(router.find("GET", "/wasmer").allow.empty());
}

TEST(AdminRouter, MethodMismatchListsTheMethodsOfTheLongestPrefix) {
  AdminRouter router;
  router.add("GET", "/", answering(1));
  router.add("POST", "/wasm", answering(2));
  router.add("DELETE", "/wasm", answering(3));
  const auto match = router.find("GET", "/wasm/x");
  EXPECT_EQ(match.handler, nullptr);
  EXPECT_EQ(match.allow, "POST, DELETE");
  EXPECT_EQ(statusOf(router.find("DELETE", "/wasm/x")), 3);
}

TEST(AdminRouter, MethodsAreCaseSensitive) {
  AdminRouter router;
  router.add("GET", "/x", answering(1));
  EXPECT_EQ(router.find("get", "/x").handler, nullptr);
  EXPECT_EQ(router.find("get", "/x").allow, "GET");
}

TEST(AdminRouter, SecondRegistrationReplacesTheFirst) {
  AdminRouter router;
  router.add("GET", "/x", answering(1));
  router.add("GET", "/x", answering(2));
  EXPECT_EQ(statusOf(router.find("GET", "/x")), 2);
  EXPECT_EQ(router.find("POST", "/x").allow, "GET");
}

TEST(AdminRouter, RejectsPrefixWithoutSlashEmptyMethodAndEmptyHandler) {
  AdminRouter router;
  EXPECT_THROW(router.add("GET", "wasm", answering(1)), std::invalid_argument);
  EXPECT_THROW(router.add("GET", "", answering(1)), std::invalid_argument);
  EXPECT_THROW(router.add("", "/x", answering(1)), std::invalid_argument);
  EXPECT_THROW(router.add("GET", "/x", AdminHandler()), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::admin
