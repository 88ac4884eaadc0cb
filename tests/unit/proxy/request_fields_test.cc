#include "proxy/request_fields.h"

#include <gtest/gtest.h>

namespace sluice::proxy {
namespace {

TEST(RequestFields, ReadsModelAndStream) {
  std::string body =
      R"({"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true})";
  const std::string original = body;
  auto fields = parseRequestFields(body);
  ASSERT_TRUE(fields);
  EXPECT_EQ(fields->model, "gpt-4o");
  EXPECT_TRUE(fields->stream);
  EXPECT_EQ(body, original);  // forwarded byte for byte
}

TEST(RequestFields, StreamDefaultsToFalseAndAcceptsNull) {
  std::string body = R"({"model":"m","stream":null})";
  auto fields = parseRequestFields(body);
  ASSERT_TRUE(fields);
  EXPECT_FALSE(fields->stream);
}

TEST(RequestFields, EscapedModelNameIsUnescaped) {
  std::string body = R"({"model":"a\/b"})";
  auto fields = parseRequestFields(body);
  ASSERT_TRUE(fields);
  EXPECT_EQ(fields->model, "a/b");
}

TEST(RequestFields, MalformedJsonIs400) {
  for (std::string body : {"{bad json", "", "[1,2]", "{\"model\":\"m\"} trailing", "nul"}) {
    auto fields = parseRequestFields(body);
    ASSERT_FALSE(fields) << body;
    EXPECT_EQ(fields.error().status, 400) << body;
  }
}

TEST(RequestFields, MissingOrWrongTypedModelIs400) {
  std::string missing = R"({"messages":[]})";
  auto fields = parseRequestFields(missing);
  ASSERT_FALSE(fields);
  EXPECT_EQ(fields.error().code, "missing_model");

  std::string number = R"({"model":42})";
  fields = parseRequestFields(number);
  ASSERT_FALSE(fields);
  EXPECT_EQ(fields.error().code, "invalid_model");

  std::string stream = R"({"model":"m","stream":"yes"})";
  fields = parseRequestFields(stream);
  ASSERT_FALSE(fields);
  EXPECT_EQ(fields.error().code, "invalid_stream");
}

TEST(ApiError, OpenAiShape) {
  EXPECT_EQ(
      openAiErrorBody({404, "invalid_request_error", "model_not_found", "no \"x\""}),
      R"({"error":{"message":"no \"x\"","type":"invalid_request_error","code":"model_not_found"}})");
  EXPECT_EQ(openAiErrorBody({500, "server_error", "", "m"}),
            R"({"error":{"message":"m","type":"server_error","code":null}})");
}

}  // namespace
}  // namespace sluice::proxy
