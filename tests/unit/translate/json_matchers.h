#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "translate/translate.h"

namespace sluice::translate::testing {

using nlohmann::json;

// Golden comparison of a translated body: equal as JSON values (key order and spacing aside).
inline ::testing::AssertionResult jsonEquals(
    const tl::expected<std::string, TranslateError>& actual, std::string_view expected) {
  if (!actual) {
    return ::testing::AssertionFailure() << "translation failed: " << actual.error().status << " "
                                         << actual.error().type << ": " << actual.error().message;
  }
  json got, want;
  try {
    got = json::parse(*actual);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "output is not JSON (" << e.what() << "): " << *actual;
  }
  want = json::parse(expected);
  if (got == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\n  actual: " << got.dump() << "\nexpected: " << want.dump()
         << "\n    diff: " << json::diff(got, want).dump();
}

inline ::testing::AssertionResult failsWith(const tl::expected<std::string, TranslateError>& actual,
                                            int status, std::string_view message) {
  if (actual) return ::testing::AssertionFailure() << "translation succeeded: " << *actual;
  if (actual.error().status == status && actual.error().message == message) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "got " << actual.error().status << " \"" << actual.error().message << "\", expected "
         << status << " \"" << message << "\"";
}

}  // namespace sluice::translate::testing
