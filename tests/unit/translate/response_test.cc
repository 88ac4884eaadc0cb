#include <gtest/gtest.h>

#include "json_matchers.h"
#include "translate/translate.h"

namespace sluice::translate {
namespace {

using testing::failsWith;
using testing::json;
using testing::jsonEquals;

// `created` is the translation time; golden bodies use 0.
tl::expected<std::string, TranslateError> withoutClock(
    tl::expected<std::string, TranslateError> body) {
  if (!body) return body;
  json parsed = json::parse(*body);
  EXPECT_TRUE(parsed["created"].is_number_integer());
  EXPECT_GT(parsed["created"].get<int64_t>(), 1700000000);
  parsed["created"] = 0;
  return parsed.dump();
}

// ---------------------------------------------------------------- OpenAI → Anthropic responses

TEST(OpenAiToAnthropicResponse, TextAnswerWithCachedUsage) {
  auto out = openAiToAnthropicResponse(R"json({
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1700000001, "model": "gpt-4o-2024",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": null},
                 "logprobs": null, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112,
              "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0}}})json",
                                       "claude-sonnet-4");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "msg_abc123", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
    "content": [{"type": "text", "text": "Hello there"}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 36, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64,
              "output_tokens": 12}})json"));
}

TEST(OpenAiToAnthropicResponse, ToolCallsBecomeToolUseBlocks) {
  auto out = openAiToAnthropicResponse(R"json({
    "id": "chatcmpl-t", "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
      "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 30}})json",
                                       "");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "msg_t", "type": "message", "role": "assistant", "model": "gpt-4o",
    "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 30}})json"));
}

TEST(OpenAiToAnthropicResponse, StopReasons) {
  const struct {
    const char* choice_extra;
    const char* stop_reason;
    const char* stop_sequence;
  } cases[] = {
      {R"json("finish_reason":"stop")json", "\"end_turn\"", "null"},
      {R"json("finish_reason":"length")json", "\"max_tokens\"", "null"},
      {R"json("finish_reason":"tool_calls")json", "\"tool_use\"", "null"},
      {R"json("finish_reason":"content_filter")json", "\"refusal\"", "null"},
      {R"json("finish_reason":null)json", "\"end_turn\"", "null"},
      // vLLM names the stop string that matched; a token id is not a stop sequence.
      {R"json("finish_reason":"stop","stop_reason":"###")json", "\"stop_sequence\"", "\"###\""},
      {R"json("finish_reason":"stop","stop_reason":128009)json", "\"end_turn\"", "null"},
      {R"json("finish_reason":"stop","matched_stop":"END")json", "\"stop_sequence\"", "\"END\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.choice_extra);
    auto out = openAiToAnthropicResponse(
        std::string(
            R"json({"id":"chatcmpl-1","choices":[{"index":0,"message":{"content":"x"},)json") +
            c.choice_extra + "}]}",
        "m");
    EXPECT_TRUE(jsonEquals(
        out, std::string(R"json({"id":"msg_1","type":"message","role":"assistant","model":"m",
          "content":[{"type":"text","text":"x"}],"stop_reason":)json") +
                 c.stop_reason + R"json(,"stop_sequence":)json" + c.stop_sequence +
                 R"json(,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,
                   "cache_read_input_tokens":0,"output_tokens":0}})json"));
  }
}

TEST(OpenAiToAnthropicResponse, ReasoningBecomesAThinkingBlockAndRefusalAText) {
  auto out = openAiToAnthropicResponse(R"json({
    "id": "chatcmpl-r", "choices": [{"index": 0, "finish_reason": "stop",
      "message": {"role": "assistant", "reasoning_content": "Think first.", "content": "Answer."}}]})json",
                                       "m");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "msg_r", "type": "message", "role": "assistant", "model": "m",
    "content": [{"type": "thinking", "thinking": "Think first.", "signature": ""},
                {"type": "text", "text": "Answer."}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 0}})json"));

  out = openAiToAnthropicResponse(R"json({
    "id": "chatcmpl-f", "choices": [{"index": 0, "finish_reason": "stop",
      "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]})json",
                                  "m");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "msg_f", "type": "message", "role": "assistant", "model": "m",
    "content": [{"type": "text", "text": "I can't help with that."}],
    "stop_reason": "refusal", "stop_sequence": null,
    "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 0}})json"));
}

TEST(OpenAiToAnthropicResponse, MissingIdsAreGenerated) {
  auto out = openAiToAnthropicResponse(R"json({"choices": [{"message": {"tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})json",
                                       "m");
  ASSERT_TRUE(out) << out.error().message;
  const json body = json::parse(*out);
  EXPECT_EQ(body["id"].get<std::string>().rfind("msg_", 0), 0u);
  EXPECT_GT(body["id"].get<std::string>().size(), 20u);
  EXPECT_EQ(body["content"][0]["id"].get<std::string>().rfind("toolu_", 0), 0u);
}

TEST(OpenAiToAnthropicResponse, UnreadableUpstreamBodiesAre502) {
  EXPECT_TRUE(failsWith(openAiToAnthropicResponse("<html>", "m"), 502,
                        "the upstream sent invalid JSON: The JSON document has an improper "
                        "structure: missing or superfluous commas, braces, missing keys, etc."));
  EXPECT_TRUE(failsWith(openAiToAnthropicResponse(R"json({"id":"x"})json", "m"), 502,
                        "the upstream response has no \"choices\""));
  EXPECT_TRUE(failsWith(openAiToAnthropicResponse(R"json({"choices":[]})json", "m"), 502,
                        "choices is empty"));
  EXPECT_TRUE(failsWith(openAiToAnthropicResponse(R"json({"choices":[{"message":"hi"}]})json", "m"),
                        502, "choices[0].message must be an object"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicResponse(
          R"json({"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{oops"}}]}}]})json",
          "m"),
      502,
      "choices[0].message.tool_calls[0].function.arguments is not a JSON object (the model wrote "
      "invalid tool arguments: The JSON document has an improper structure: missing or "
      "superfluous commas, braces, missing keys, etc.)"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicResponse(
          R"json({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":"many"}})json",
          "m"),
      502, "usage.prompt_tokens must be a non-negative integer"));
  EXPECT_TRUE(failsWith(openAiToAnthropicResponse(
                            R"json({"error":{"message":"boom","type":"server_error"}})json", "m"),
                        502, "the upstream answered with an error: boom"));
  auto error = openAiToAnthropicResponse("[]", "m");
  ASSERT_FALSE(error);
  EXPECT_EQ(error.error().type, "upstream_error");
}

// ---------------------------------------------------------------- Anthropic → OpenAI responses

TEST(AnthropicToOpenAiResponse, TextToolUseAndCacheUsage) {
  auto out = withoutClock(anthropicToOpenAiResponse(R"json({
    "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
    "content": [
      {"type": "thinking", "thinking": "Need the weather.", "signature": "abc"},
      {"type": "text", "text": "Let me "},
      {"type": "text", "text": "check."},
      {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "units": ["C"]}},
      {"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100,
              "output_tokens": 42}})json",
                                                    "gpt-4o"));
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "chatcmpl-01XYZ", "object": "chat.completion", "created": 0, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me check.",
        "reasoning_content": "Need the weather.",
        "tool_calls": [
          {"id": "toolu_01", "type": "function",
           "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"units\":[\"C\"]}"}},
          {"id": "toolu_02", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
      "logprobs": null, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 115, "completion_tokens": 42, "total_tokens": 157,
              "prompt_tokens_details": {"cached_tokens": 100}}})json"));
}

TEST(AnthropicToOpenAiResponse, OnlyToolUseGivesNullContent) {
  auto out = withoutClock(anthropicToOpenAiResponse(R"json({
    "id": "msg_2", "model": "claude", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
    "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}})json",
                                                    ""));
  EXPECT_TRUE(jsonEquals(out, R"json({
    "id": "chatcmpl-2", "object": "chat.completion", "created": 0, "model": "claude",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
      {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      "logprobs": null, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
              "prompt_tokens_details": {"cached_tokens": 0}}})json"));
}

TEST(AnthropicToOpenAiResponse, StopReasons) {
  const std::pair<const char*, const char*> cases[] = {{"end_turn", "stop"},
                                                       {"stop_sequence", "stop"},
                                                       {"max_tokens", "length"},
                                                       {"tool_use", "tool_calls"},
                                                       {"refusal", "content_filter"},
                                                       {"pause_turn", "stop"},
                                                       {"model_context_window_exceeded", "length"}};
  for (const auto& [anthropic, openai] : cases) {
    auto out = anthropicToOpenAiResponse(
        std::string(
            R"json({"id":"msg_1","content":[{"type":"text","text":"x"}],"stop_reason":")json") +
            anthropic + "\"}",
        "m");
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_EQ(json::parse(*out)["choices"][0]["finish_reason"], openai) << anthropic;
  }
}

TEST(AnthropicToOpenAiResponse, UnreadableUpstreamBodiesAre502) {
  EXPECT_TRUE(failsWith(anthropicToOpenAiResponse(R"json({"id":"msg"})json", "m"), 502,
                        "the upstream response has no \"content\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiResponse(R"json({"content":[{"type":"tool_use","input":[]}]})json", "m"),
      502, "content[0] has no \"name\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiResponse(
          R"json({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})json",
          "m"),
      502, "the upstream answered with an error: Overloaded"));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiResponse(R"json({"content":[],"usage":{"output_tokens":-3}})json", "m"), 502,
      "usage.output_tokens must be a non-negative integer"));
}

// ---------------------------------------------------------------- round trip

TEST(ResponseRoundTrip, OpenAiThroughAnthropicKeepsTextToolArgumentsAndUsage) {
  const std::string original = R"json({
    "id": "chatcmpl-rt", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
      "message": {"role": "assistant", "content": "Sure — checking «Paris».\n",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather",
          "arguments": "{\"city\":\"Paris\",\"nested\":{\"a\":[1,2.5,true,null]},\"text\":\"q\\\"uote\"}"}}]}}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 40}}})json";
  auto anthropic = openAiToAnthropicResponse(original, "claude-x");
  ASSERT_TRUE(anthropic) << anthropic.error().message;
  auto back = anthropicToOpenAiResponse(*anthropic, "gpt-4o");
  ASSERT_TRUE(back) << back.error().message;
  const json a = json::parse(original), b = json::parse(*back);
  EXPECT_EQ(b["id"], a["id"]);
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  EXPECT_EQ(b["choices"][0]["finish_reason"], a["choices"][0]["finish_reason"]);
  const json& tool_a = a["choices"][0]["message"]["tool_calls"][0];
  const json& tool_b = b["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(tool_b["id"], tool_a["id"]);
  EXPECT_EQ(tool_b["function"]["name"], tool_a["function"]["name"]);
  EXPECT_EQ(json::parse(tool_b["function"]["arguments"].get<std::string>()),
            json::parse(tool_a["function"]["arguments"].get<std::string>()));
  EXPECT_EQ(b["usage"], a["usage"]);
}

// ---------------------------------------------------------------- error bodies

TEST(OpenAiErrorToAnthropic, StandardVllmAndUnreadableBodies) {
  EXPECT_TRUE(jsonEquals(
      openAiErrorToAnthropic(
          R"json({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})json",
          429),
      R"json({"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached"}})json"));
  EXPECT_TRUE(jsonEquals(
      openAiErrorToAnthropic(
          R"json({"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400})json",
          400),
      R"json({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens is too large"}})json"));
  EXPECT_TRUE(jsonEquals(
      openAiErrorToAnthropic(R"json({"detail":"Not Found"})json", 404),
      R"json({"type":"error","error":{"type":"not_found_error","message":"Not Found"}})json"));
  EXPECT_TRUE(jsonEquals(openAiErrorToAnthropic("Bad gateway\n", 502),
                         R"json({"type":"error","error":{"type":"api_error",
                           "message":"the upstream answered HTTP 502: Bad gateway\n"}})json"));
  EXPECT_TRUE(jsonEquals(openAiErrorToAnthropic("", 503),
                         R"json({"type":"error","error":{"type":"overloaded_error",
                           "message":"the upstream answered HTTP 503"}})json"));
  EXPECT_TRUE(jsonEquals(openAiErrorToAnthropic(std::string("\xff\xfe\0x", 4), 401),
                         R"json({"type":"error","error":{"type":"authentication_error",
                           "message":"the upstream answered HTTP 401"}})json"));
  // A long body is quoted in part, cut on a character boundary (é straddles byte 512).
  std::string long_body(600, 'a');
  long_body.replace(511, 2, "é");
  const json cut = json::parse(openAiErrorToAnthropic(long_body, 500));
  EXPECT_EQ(cut["error"]["message"], "the upstream answered HTTP 500: " + std::string(511, 'a'));
}

TEST(AnthropicErrorToOpenAi, TypesAndCodes) {
  EXPECT_TRUE(jsonEquals(
      anthropicErrorToOpenAi(
          R"json({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"})json",
          529),
      R"json({"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}})json"));
  EXPECT_TRUE(jsonEquals(
      anthropicErrorToOpenAi(
          R"json({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}})json",
          400),
      R"json({"error":{"message":"max_tokens: Field required","type":"invalid_request_error","param":null,"code":null}})json"));
  EXPECT_TRUE(jsonEquals(
      anthropicErrorToOpenAi(
          R"json({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})json",
          429),
      R"json({"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}})json"));
  EXPECT_TRUE(jsonEquals(
      anthropicErrorToOpenAi("upstream connect error", 503),
      R"json({"error":{"message":"the upstream answered HTTP 503: upstream connect error","type":"server_error","param":null,"code":null}})json"));
  EXPECT_TRUE(jsonEquals(
      anthropicErrorToOpenAi(
          R"json({"error":{"type":"authentication_error","message":"invalid x-api-key"}})json",
          401),
      R"json({"error":{"message":"invalid x-api-key","type":"authentication_error","param":null,"code":"invalid_api_key"}})json"));
}

}  // namespace
}  // namespace sluice::translate
