#include <gtest/gtest.h>

#include "json_matchers.h"
#include "translate/translate.h"

namespace sluice::translate {
namespace {

using testing::failsWith;
using testing::jsonEquals;

// ---------------------------------------------------------------- Anthropic → OpenAI requests

TEST(AnthropicToOpenAiRequest, SystemStringSamplingFieldsAndUpstreamModel) {
  auto out = anthropicToOpenAiRequest(R"json({
    "model": "claude-sonnet-4", "max_tokens": 512, "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                 {"role": "user", "content": "Weather?"}],
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END", "STOP"],
    "metadata": {"user_id": "user-7"}, "stream": false})json",
                                      "gpt-4o");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "gpt-4o",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Hello"},
                 {"role": "user", "content": "Weather?"}],
    "max_tokens": 512, "temperature": 0.5, "top_p": 0.9, "stop": ["END", "STOP"],
    "stream": false, "user": "user-7"})json"));
}

TEST(AnthropicToOpenAiRequest, KeepsTheModelWhenNoUpstreamModelIsGiven) {
  auto out = anthropicToOpenAiRequest(
      R"json({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]})json", "");
  EXPECT_TRUE(jsonEquals(
      out, R"json({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1})json"));
}

TEST(AnthropicToOpenAiRequest, SystemBlocksAreJoinedAndCacheControlDropped) {
  auto out = anthropicToOpenAiRequest(R"json({
    "model": "c", "max_tokens": 10,
    "system": [{"type": "text", "text": "You are Claude Code."},
               {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [
      {"type": "text", "text": "only text", "cache_control": {"type": "ephemeral"}}]}]})json",
                                      "");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "c", "max_tokens": 10,
    "messages": [{"role": "system", "content": "You are Claude Code.\n\nBe careful."},
                 {"role": "user", "content": "only text"}]})json"));
}

TEST(AnthropicToOpenAiRequest, StreamingAsksForUsage) {
  auto out = anthropicToOpenAiRequest(
      R"json({"model":"c","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]})json",
      "");
  EXPECT_TRUE(jsonEquals(out, R"json({"model":"c","max_tokens":5,"stream":true,
    "stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]})json"));
}

TEST(AnthropicToOpenAiRequest, MultiPartContentWithImagesAndDocuments) {
  auto out = anthropicToOpenAiRequest(R"json({
    "model": "c", "max_tokens": 10,
    "messages": [{"role": "user", "content": [
      {"type": "text", "text": "What is in these?"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
      {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
      {"type": "document", "title": "spec.pdf",
       "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
      {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}
    ]}]})json",
                                      "");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "c", "max_tokens": 10,
    "messages": [{"role": "user", "content": [
      {"type": "text", "text": "What is in these?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
      {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
      {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
      {"type": "text", "text": "plain doc"}]}]})json"));
}

TEST(AnthropicToOpenAiRequest, ToolsAndToolChoiceVariants) {
  const std::string tools = R"json("tools": [
      {"name": "get_weather", "description": "Weather by city",
       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"]}, "cache_control": {"type": "ephemeral"}},
      {"name": "now", "input_schema": {"type": "object"}}])json";
  const std::string openai_tools = R"json("tools": [
      {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
       "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                      "required": ["city"]}}},
      {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}])json";
  const struct {
    const char* anthropic;
    const char* openai;
  } cases[] = {
      {"", ""},
      {R"json(,"tool_choice":{"type":"auto"})json", R"json(,"tool_choice":"auto")json"},
      {R"json(,"tool_choice":{"type":"any"})json", R"json(,"tool_choice":"required")json"},
      {R"json(,"tool_choice":{"type":"none"})json", R"json(,"tool_choice":"none")json"},
      {R"json(,"tool_choice":{"type":"tool","name":"now"})json",
       R"json(,"tool_choice":{"type":"function","function":{"name":"now"}})json"},
      {R"json(,"tool_choice":{"type":"auto","disable_parallel_tool_use":true})json",
       R"json(,"tool_choice":"auto","parallel_tool_calls":false)json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.anthropic);
    auto out = anthropicToOpenAiRequest(
        R"json({"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],)json" +
            tools + c.anthropic + "}",
        "");
    EXPECT_TRUE(jsonEquals(
        out, R"json({"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],)json" +
                 openai_tools + c.openai + "}"));
  }
}

TEST(AnthropicToOpenAiRequest, ToolChoiceWithoutToolsIsDropped) {
  auto out = anthropicToOpenAiRequest(
      R"json({"model":"c","max_tokens":9,"tools":[],"tool_choice":{"type":"any"},
              "messages":[{"role":"user","content":"x"}]})json",
      "");
  EXPECT_TRUE(jsonEquals(
      out, R"json({"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]})json"));
}

TEST(AnthropicToOpenAiRequest, ToolUseAndToolResultsBecomeToolCallsAndToolMessages) {
  auto out = anthropicToOpenAiRequest(R"json({
    "model": "c", "max_tokens": 100,
    "messages": [
      {"role": "user", "content": "Weather in Paris and the time?"},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "two tools", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2.5]}},
        {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}]},
      {"role": "user", "content": [
        {"type": "text", "text": "Here you go."},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": false, "content": [
          {"type": "text", "text": "12:00"}, {"type": "text", "text": "CET"},
          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "now"}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]}
    ]})json",
                                      "");
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "c", "max_tokens": 100,
    "messages": [
      {"role": "user", "content": "Weather in Paris and the time?"},
      {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":[1,2.5]}"}},
        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C, sunny"},
      {"role": "tool", "tool_call_id": "toolu_2", "content": "12:00\nCET"},
      {"role": "user", "content": [
        {"type": "text", "text": "Here you go."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "toolu_3", "content": ""}
    ]})json"));
}

TEST(AnthropicToOpenAiRequest, BadInputNamesTheField) {
  EXPECT_TRUE(failsWith(anthropicToOpenAiRequest("{\"model\":", ""), 400,
                        "invalid JSON body: The JSON document has an improper structure: missing "
                        "or superfluous commas, braces, missing keys, etc."));
  EXPECT_TRUE(failsWith(anthropicToOpenAiRequest("[1]", ""), 400,
                        "the request body must be a JSON object"));
  EXPECT_TRUE(failsWith(anthropicToOpenAiRequest(R"json({"messages":[]})json", ""), 400,
                        "\"model\" is required"));
  EXPECT_TRUE(failsWith(anthropicToOpenAiRequest(R"json({"model":"c"})json", ""), 400,
                        "\"messages\" is required"));
  EXPECT_TRUE(failsWith(anthropicToOpenAiRequest(R"json({"model":"c","messages":{}})json", ""), 400,
                        "messages must be an array"));
  EXPECT_TRUE(
      failsWith(anthropicToOpenAiRequest(
                    R"json({"model":"c","messages":[{"role":"system","content":"x"}]})json", ""),
                400, "messages[0].role must be \"user\" or \"assistant\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"user","content":"a"},{"role":"user","content":7}]})json",
          ""),
      400, "messages[1].content must be a string or an array of content blocks"));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t"}]}]})json",
          ""),
      400, "messages[0].content[0] needs a \"name\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"assistant","content":[{"type":"tool_use","name":"n"}]}]})json",
          ""),
      400, "messages[0].content[0] needs an \"id\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url"}}]}]})json",
          ""),
      400, "messages[0].content[0].source needs a \"url\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]})json",
          ""),
      400, "messages[0].content[0].source.type must be \"base64\" or \"url\""));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[{"role":"user","content":[{"type":"audio"}]}]})json", ""),
      400,
      "messages[0].content[0].type \"audio\" is not supported by OpenAI-compatible upstreams"));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(
          R"json({"model":"c","messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]})json",
          ""),
      400,
      "tools[0].type \"web_search_20250305\" is not supported by OpenAI-compatible upstreams"));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(R"json({"model":"c","messages":[],"max_tokens":-1})json", ""), 400,
      "max_tokens must be a non-negative integer"));
  EXPECT_TRUE(failsWith(
      anthropicToOpenAiRequest(R"json({"model":"c","messages":[],"temperature":"hot"})json", ""),
      400, "temperature must be a number"));
  EXPECT_TRUE(
      failsWith(anthropicToOpenAiRequest(R"json({"model":"c","messages":[],"system":5})json", ""),
                400, "system must be a string or an array of text blocks"));
  EXPECT_TRUE(
      failsWith(anthropicToOpenAiRequest(R"json({"model":"c","messages":[],"tools":[{"name":"x"}],
                                       "tool_choice":{"type":"maybe"}})json",
                                         ""),
                400, "tool_choice.type must be \"auto\", \"any\", \"tool\" or \"none\""));
}

TEST(AnthropicToOpenAiRequest, InvalidUtf8IsRejected) {
  EXPECT_FALSE(anthropicToOpenAiRequest(
      "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", ""));
}

// ---------------------------------------------------------------- OpenAI → Anthropic requests

TEST(OpenAiToAnthropicRequest, SystemAndDeveloperMessagesJoinTheSystemPrompt) {
  auto out = openAiToAnthropicRequest(R"json({
    "model": "gpt-4o", "max_tokens": 256,
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                 {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Bonjour"},
                 {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
    "temperature": 0.2, "top_p": 1, "stop": "END", "user": "user-7", "stream": true,
    "stream_options": {"include_usage": true}, "presence_penalty": 0.5})json",
                                      "claude-sonnet-4", 4096);
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "claude-sonnet-4", "max_tokens": 256,
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}],
    "messages": [{"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": [{"type": "text", "text": "Bonjour"}]},
                 {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
    "stop_sequences": ["END"], "temperature": 0.2, "top_p": 1, "stream": true,
    "metadata": {"user_id": "user-7"}})json"));
}

TEST(OpenAiToAnthropicRequest, OneSystemMessageIsAStringAndMaxTokensDefaults) {
  auto out = openAiToAnthropicRequest(R"json({
    "model": "gpt-4o", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
    "stop": ["a", "b"], "temperature": 1.7})json",
                                      "", 4096);
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "gpt-4o", "max_tokens": 4096, "system": "S",
    "messages": [{"role": "user", "content": "U"}], "stop_sequences": ["a", "b"],
    "temperature": 1})json"));
}

TEST(OpenAiToAnthropicRequest, MaxCompletionTokensWinsOverMaxTokens) {
  auto out = openAiToAnthropicRequest(
      R"json({"model":"g","max_tokens":10,"max_completion_tokens":20,"messages":[{"role":"user","content":"U"}]})json",
      "", 4096);
  EXPECT_TRUE(jsonEquals(
      out, R"json({"model":"g","max_tokens":20,"messages":[{"role":"user","content":"U"}]})json"));
}

TEST(OpenAiToAnthropicRequest, ImagesAndFiles) {
  auto out = openAiToAnthropicRequest(R"json({
    "model": "g", "messages": [{"role": "user", "content": [
      {"type": "text", "text": "Compare"},
      {"type": "text", "text": ""},
      {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}},
      {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
      {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}]}]})json",
                                      "", 100);
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "g", "max_tokens": 100, "messages": [{"role": "user", "content": [
      {"type": "text", "text": "Compare"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
      {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
      {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
       "title": "spec.pdf"}]}]})json"));
}

TEST(OpenAiToAnthropicRequest, ToolCallsAndMergedToolResults) {
  auto out = openAiToAnthropicRequest(R"json({
    "model": "g", "max_tokens": 100,
    "messages": [
      {"role": "user", "content": "Weather in Paris and the time?"},
      {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": [1, 2.5]}"}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
      {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
      {"role": "user", "content": "Thanks, and tomorrow?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "call_3", "content": "13:00"}
    ]})json",
                                      "", 4096);
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "g", "max_tokens": 100,
    "messages": [
      {"role": "user", "content": "Weather in Paris and the time?"},
      {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2.5]}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
        {"type": "text", "text": "Thanks, and tomorrow?"}]},
      {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_3", "name": "now", "input": {}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_3", "content": "13:00"}]}
    ]})json"));
}

TEST(OpenAiToAnthropicRequest, ToolResultsGoBeforeTextInAMergedTurn) {
  auto out = openAiToAnthropicRequest(R"json({
    "model": "g", "max_tokens": 5, "messages": [
      {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "user", "content": "note first"},
      {"role": "tool", "tool_call_id": "c1", "content": "result"}]})json",
                                      "", 4096);
  EXPECT_TRUE(jsonEquals(out, R"json({
    "model": "g", "max_tokens": 5, "messages": [
      {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "result"},
                                   {"type": "text", "text": "note first"}]}]})json"));
}

TEST(OpenAiToAnthropicRequest, ToolsAndToolChoiceVariants) {
  const std::string tools = R"json("tools": [
      {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
      {"type": "function", "function": {"name": "now"}}])json";
  const std::string anthropic_tools = R"json("tools": [
      {"name": "get_weather", "description": "Weather by city",
       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
      {"name": "now", "input_schema": {"type": "object", "properties": {}}}])json";
  const struct {
    const char* openai;
    const char* anthropic;
  } cases[] = {
      {"", ""},
      {R"json(,"tool_choice":"auto")json", R"json(,"tool_choice":{"type":"auto"})json"},
      {R"json(,"tool_choice":"required")json", R"json(,"tool_choice":{"type":"any"})json"},
      {R"json(,"tool_choice":"none")json", R"json(,"tool_choice":{"type":"none"})json"},
      {R"json(,"tool_choice":{"type":"function","function":{"name":"now"}})json",
       R"json(,"tool_choice":{"type":"tool","name":"now"})json"},
      {R"json(,"parallel_tool_calls":false)json",
       R"json(,"tool_choice":{"type":"auto","disable_parallel_tool_use":true})json"},
      {R"json(,"tool_choice":"required","parallel_tool_calls":false)json",
       R"json(,"tool_choice":{"type":"any","disable_parallel_tool_use":true})json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.openai);
    auto out = openAiToAnthropicRequest(
        R"json({"model":"g","messages":[{"role":"user","content":"x"}],)json" + tools + c.openai +
            "}",
        "", 50);
    EXPECT_TRUE(jsonEquals(
        out, R"json({"model":"g","max_tokens":50,"messages":[{"role":"user","content":"x"}],)json" +
                 anthropic_tools + c.anthropic + "}"));
  }
}

TEST(OpenAiToAnthropicRequest, BadInputNamesTheField) {
  EXPECT_TRUE(
      failsWith(openAiToAnthropicRequest("nope", "", 10), 400,
                "invalid JSON body: Problem while parsing an atom starting with the letter 'n'"));
  EXPECT_TRUE(failsWith(openAiToAnthropicRequest(R"json({"model":"g"})json", "", 10), 400,
                        "\"messages\" is required"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(R"json({"model":"g","messages":[{"content":"x"}]})json", "", 10),
      400, "messages[0] needs a \"role\""));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function",
              "function":{"name":"f","arguments":"{\"city\": \"Par"}}]}]})json",
          "", 10),
      400,
      "messages[0].tool_calls[0].function.arguments must be a JSON object encoded as a string "
      "(A string is opened, but never closed.)"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function",
              "function":{"name":"f","arguments":"[1]"}}]}]})json",
          "", 10),
      400,
      "messages[0].tool_calls[0].function.arguments must be a JSON object encoded as a string"));
  EXPECT_TRUE(
      failsWith(openAiToAnthropicRequest(R"json({"model":"g","n":2,"messages":[]})json", "", 10),
                400, "n must be 1: Anthropic returns one choice"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[{"role":"function","name":"f","content":"x"}]})json", "",
          10),
      400, "messages[0].role \"function\" is not supported: use \"tool\""));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]})json",
          "", 10),
      400, "messages[0].content[0].image_url.url must be an http(s) URL or a base64 data: URL"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})json",
          "", 10),
      400, "messages[0].content[0].type \"input_audio\" is not supported by Anthropic upstreams"));
  EXPECT_TRUE(
      failsWith(openAiToAnthropicRequest(R"json({"model":"g","messages":[],"stop":7})json", "", 10),
                400, "stop must be a string or an array of strings"));
  EXPECT_TRUE(
      failsWith(openAiToAnthropicRequest(
                    R"json({"model":"g","messages":[],"tool_choice":"sometimes"})json", "", 10),
                400, "tool_choice must be \"auto\", \"required\", \"none\" or a function choice"));
  EXPECT_TRUE(failsWith(
      openAiToAnthropicRequest(
          R"json({"model":"g","messages":[],"response_format":{"type":"json_schema"}})json", "",
          10),
      400, "response_format type \"json_schema\" is not supported by Anthropic upstreams"));
}

// A conversation survives OpenAI → Anthropic → OpenAI with its meaning intact.
TEST(RequestRoundTrip, OpenAiThroughAnthropicKeepsTheConversation) {
  const std::string original = R"json({
    "model": "g", "max_tokens": 100, "stream": false,
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "tool_choice": "required"})json";
  auto anthropic = openAiToAnthropicRequest(original, "", 4096);
  ASSERT_TRUE(anthropic) << anthropic.error().message;
  auto back = anthropicToOpenAiRequest(*anthropic, "");
  EXPECT_TRUE(jsonEquals(back, R"json({
    "model": "g", "max_tokens": 100, "stream": false,
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "tool_choice": "required"})json"));
}

}  // namespace
}  // namespace sluice::translate
