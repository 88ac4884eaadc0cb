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

// promptText: what cache_aware routing matches prefixes on.

std::string prompt(std::string body, size_t limit = 1 << 20) { return promptText(body, limit); }

TEST(PromptText, ChatMessagesWithStringContent) {
  EXPECT_EQ(prompt(R"({"model":"m","messages":[{"role":"system","content":"be brief"},)"
                   R"({"role":"user","content":"hi"}]})"),
            "be brief\nhi\n");
}

TEST(PromptText, ChatMessagesWithArraysOfPartsKeepTextPartsOnly) {
  EXPECT_EQ(prompt(R"({"messages":[{"role":"user","content":[{"type":"text","text":"look"},)"
                   R"({"type":"image_url","image_url":{"url":"data:x"}},)"
                   R"({"type":"text","text":"at this"}]},{"role":"assistant","content":"ok"}]})"),
            "look\nat this\nok\n");
}

TEST(PromptText, MessagesWithoutTextContributeNothing) {
  EXPECT_EQ(prompt(R"({"messages":[{"role":"assistant","content":null,"tool_calls":[]},)"
                   R"({"role":"user"},"stray",{"role":"user","content":"x"}]})"),
            "x\n");
  EXPECT_EQ(prompt(R"({"messages":"not a list","prompt":"p"})"), "p\n");
}

TEST(PromptText, AnthropicSystemStringThenMessages) {
  EXPECT_EQ(prompt(R"({"model":"claude","max_tokens":10,"system":"you are terse",)"
                   R"("messages":[{"role":"user","content":[{"type":"text","text":"q"}]}]})"),
            "you are terse\nq\n");
}

TEST(PromptText, AnthropicSystemAsArrayOfBlocks) {
  EXPECT_EQ(prompt(R"({"system":[{"type":"text","text":"s1"},)"
                   R"({"type":"text","text":"s2","cache_control":{"type":"ephemeral"}}],)"
                   R"("messages":[{"role":"user","content":"u"}]})"),
            "s1\ns2\nu\n");
}

TEST(PromptText, CompletionPromptAsStringOrArray) {
  EXPECT_EQ(prompt(R"({"model":"m","prompt":"once upon a time"})"), "once upon a time\n");
  EXPECT_EQ(prompt(R"({"model":"m","prompt":["first","second"]})"), "first\nsecond\n");
}

TEST(PromptText, EmbeddingInputAsStringOrArray) {
  EXPECT_EQ(prompt(R"({"model":"m","input":"embed me"})"), "embed me\n");
  EXPECT_EQ(prompt(R"({"model":"m","input":["a","b"]})"), "a\nb\n");
  EXPECT_EQ(prompt(R"({"model":"m","input":[1,2,3]})"), "");  // token ids are not text
}

TEST(PromptText, PiecesFollowTheBodyAndOtherFieldsAreSkipped) {
  EXPECT_EQ(prompt(R"({"tools":[{"type":"function","function":{"description":"nope",)"
                   R"("parameters":{"prompt":"nested"}}}],"messages":[{"role":"user","content":)"
                   R"("m"}],"metadata":{"input":"nested"},"system":"s"})"),
            "m\ns\n");
}

TEST(PromptText, EscapesAreDecoded) {
  EXPECT_EQ(prompt(R"({"prompt":"line\none \"quoted\" caf\u00e9"})"),
            "line\none \"quoted\" caf\xc3\xa9\n");
}

TEST(PromptText, CutAtTheLimit) {
  const std::string long_text(1000, 'x');
  EXPECT_EQ(prompt(R"({"prompt":")" + long_text + R"("})", 10), std::string(10, 'x'));
  EXPECT_EQ(
      prompt(R"({"messages":[{"content":"abcdef"},{"content":"ghijkl"},{"content":"z"}]})", 9),
      "abcdef\ngh");
  EXPECT_EQ(prompt(R"({"messages":[{"content":[{"text":"abcdef"},{"text":"ghijkl"}]}]})", 7),
            "abcdef\n");
  EXPECT_EQ(prompt(R"({"prompt":["abc","def","ghi"]})", 5), "abc\nd");
  EXPECT_EQ(prompt(R"({"system":"abc","prompt":"def"})", 3), "abc");
  EXPECT_EQ(prompt(R"({"prompt":"abc"})", 0), "");
}

TEST(PromptText, NoPromptFieldsIsEmpty) {
  EXPECT_EQ(prompt(R"({"model":"m"})"), "");
  EXPECT_EQ(prompt(R"({})"), "");
  EXPECT_EQ(prompt(R"({"messages":[]})"), "");
}

TEST(PromptText, InvalidJsonIsEmpty) {
  for (std::string body : {"{bad json", "", "nul", "[1,2]", R"("prompt")", R"({"prompt":)",
                           R"({"prompt":"abc)", R"({"prompt":"abc",)", R"({"prompt":"abc"} x)"}) {
    EXPECT_EQ(prompt(body), "") << body;
  }
}

// Bodies whose first fields are well formed and whose error comes later: the on-demand parser
// has already handed out the prompt when it meets the error. (Harmless on the request path today:
// parseRequestFields answers 400 before promptText runs.)
TEST(PromptText, InvalidJsonAfterThePromptIsEmpty) {
  for (std::string body :
       {R"({"prompt":"abc",})", R"({"prompt":"abc" "x":1})", R"({"prompt":"abc"]})",
        R"({"prompt":"abc"}})", R"({"prompt":"abc"} {"prompt":"def"})",
        R"({"messages":[{"content":"hi"},]})", R"({"messages":[{"content":"hi"}],"model":})"}) {
    EXPECT_EQ(prompt(body), "") << body;
  }
}

TEST(PromptText, LeavesTheBodyUnchanged) {
  std::string body = R"({"messages":[{"role":"user","content":"hi \u00e9"}],"model":"m"})";
  const std::string original = body;
  EXPECT_EQ(promptText(body, 100), "hi \xc3\xa9\n");
  EXPECT_EQ(body, original);
  auto fields = parseRequestFields(body);  // the same body can still be parsed for routing
  ASSERT_TRUE(fields);
  EXPECT_EQ(fields->model, "m");
}

}  // namespace
}  // namespace sluice::proxy
