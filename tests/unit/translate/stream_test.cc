#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "http/sse_decoder.h"
#include "translate/translate.h"

namespace sluice::translate {
namespace {

using nlohmann::json;

struct Event {
  std::string name, data;
};

// Splits SSE bytes into events with our own decoder (as the gateway will).
std::vector<Event> decodeSse(std::string_view bytes) {
  http::SseDecoder decoder;
  std::vector<Event> events;
  auto collect = [&](const http::SseEvent& e) {
    events.push_back({std::string(e.event), std::string(e.data)});
  };
  EXPECT_TRUE(decoder.feed(bytes, collect));
  decoder.finish(collect);
  return events;
}

// Runs upstream bytes, cut into reads at `cuts`, through an SseDecoder and `translator`, as the
// gateway does for a streamed response; returns everything sent to the client.
template <typename Translator>
std::string relay(Translator& translator, std::string_view upstream,
                  const std::vector<size_t>& cuts = {}) {
  http::SseDecoder decoder;
  std::string out;
  auto on_event = [&](const http::SseEvent& e) { translator.onEvent(e.event, e.data, out); };
  size_t pos = 0;
  for (size_t cut : cuts) {
    EXPECT_TRUE(decoder.feed(upstream.substr(pos, cut - pos), on_event));
    pos = cut;
  }
  EXPECT_TRUE(decoder.feed(upstream.substr(pos), on_event));
  decoder.finish(on_event);
  translator.finish(out);
  return out;
}

// ------------------------------------------------------------------ SDK-style assemblers

// Builds the final message the way the Anthropic SDKs' MessageStream does (content[index],
// text appended, partial_json buffered and parsed at the end), checking the event grammar.
struct AnthropicAssembly {
  json message;
  std::string error_type;
  bool stopped = false;
};

AnthropicAssembly assembleAnthropic(std::string_view sse) {
  AnthropicAssembly result;
  std::vector<std::string> json_buffers;
  std::vector<bool> open;
  bool started = false;
  for (const Event& event : decodeSse(sse)) {
    EXPECT_FALSE(result.stopped) << "event after message_stop: " << event.name;
    EXPECT_TRUE(result.error_type.empty()) << "event after error: " << event.name;
    const json data = json::parse(event.data);
    EXPECT_EQ(data.value("type", ""), event.name) << "SDKs dispatch on the SSE event name";
    if (event.name == "message_start") {
      EXPECT_FALSE(started);
      started = true;
      result.message = data["message"];
      EXPECT_EQ(result.message["content"], json::array());
      EXPECT_TRUE(result.message["stop_reason"].is_null());
    } else if (event.name == "content_block_start") {
      EXPECT_TRUE(started);
      EXPECT_EQ(data["index"], result.message["content"].size()) << "indexes must be consecutive";
      result.message["content"].push_back(data["content_block"]);
      json_buffers.emplace_back();
      open.push_back(true);
    } else if (event.name == "content_block_delta") {
      const size_t index = data["index"];
      EXPECT_LT(index, open.size());
      if (index >= open.size()) continue;
      EXPECT_TRUE(open[index]) << "delta for a closed block";
      json& block = result.message["content"][index];
      const json& delta = data["delta"];
      if (delta["type"] == "text_delta") {
        EXPECT_EQ(block["type"], "text");
        block["text"] = block["text"].get<std::string>() + delta["text"].get<std::string>();
      } else if (delta["type"] == "thinking_delta") {
        EXPECT_EQ(block["type"], "thinking");
        block["thinking"] =
            block["thinking"].get<std::string>() + delta["thinking"].get<std::string>();
      } else if (delta["type"] == "input_json_delta") {
        EXPECT_EQ(block["type"], "tool_use");
        json_buffers[index] += delta["partial_json"].get<std::string>();
      } else {
        ADD_FAILURE() << "unexpected delta " << delta.dump();
      }
    } else if (event.name == "content_block_stop") {
      const size_t index = data["index"];
      EXPECT_LT(index, open.size());
      if (index >= open.size()) continue;
      EXPECT_TRUE(open[index]);
      open[index] = false;
      json& block = result.message["content"][index];
      if (block["type"] == "tool_use" && !json_buffers[index].empty()) {
        block["input"] = json::parse(json_buffers[index]);
      }
    } else if (event.name == "message_delta") {
      result.message["stop_reason"] = data["delta"]["stop_reason"];
      result.message["stop_sequence"] = data["delta"]["stop_sequence"];
      for (const auto& [key, value] : data["usage"].items()) result.message["usage"][key] = value;
    } else if (event.name == "message_stop") {
      for (bool still_open : open) EXPECT_FALSE(still_open) << "block left open";
      result.stopped = true;
    } else if (event.name == "error") {
      result.error_type = data["error"]["type"];
    } else if (event.name != "ping") {
      ADD_FAILURE() << "unexpected event " << event.name;
    }
  }
  return result;
}

// Builds the final completion the way the OpenAI SDKs' ChatCompletionStream does (deltas merged
// per choice, tool calls by index, usage from the chunk that has it).
struct OpenAiAssembly {
  json message = json::object();
  json finish_reason;
  json usage;
  json error;
  bool done = false;
};

OpenAiAssembly assembleOpenAi(std::string_view sse) {
  OpenAiAssembly result;
  std::string id;
  bool finished = false;
  for (const Event& event : decodeSse(sse)) {
    EXPECT_FALSE(result.done) << "data after [DONE]";
    EXPECT_EQ(event.name, "");
    if (event.data == "[DONE]") {
      result.done = true;
      continue;
    }
    const json chunk = json::parse(event.data);
    if (chunk.contains("error")) {
      result.error = chunk["error"];
      continue;
    }
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (id.empty()) id = chunk["id"];
    EXPECT_EQ(chunk["id"], id);
    EXPECT_TRUE(chunk["created"].is_number_integer());
    if (chunk.contains("usage") && !chunk["usage"].is_null()) result.usage = chunk["usage"];
    if (chunk["choices"].empty()) {
      EXPECT_TRUE(finished) << "the usage chunk comes last";
      continue;
    }
    EXPECT_EQ(chunk["choices"].size(), 1u);
    const json& choice = chunk["choices"][0];
    EXPECT_EQ(choice["index"], 0);
    EXPECT_FALSE(finished) << "chunk after finish_reason";
    const json& delta = choice["delta"];
    for (const char* key : {"content", "reasoning_content"}) {
      if (delta.contains(key) && !delta[key].is_null()) {
        result.message[key] = result.message.value(key, "") + delta[key].get<std::string>();
      }
    }
    if (delta.contains("role")) result.message["role"] = delta["role"];
    if (delta.contains("tool_calls")) {
      for (const json& call : delta["tool_calls"]) {
        EXPECT_TRUE(call.contains("function")) << "openai-python asserts delta.function";
        json& calls = result.message["tool_calls"];
        const size_t index = call["index"];
        if (index == calls.size()) {
          EXPECT_TRUE(call.contains("id"));
          EXPECT_EQ(call["type"], "function");
          calls.push_back({{"id", call["id"]},
                           {"type", "function"},
                           {"function", {{"name", call["function"]["name"]}, {"arguments", ""}}}});
        } else {
          EXPECT_LT(index, calls.size());
          EXPECT_FALSE(call.contains("id"));
        }
        json& function = calls[index]["function"];
        function["arguments"] =
            function["arguments"].get<std::string>() + call["function"].value("arguments", "");
      }
    }
    if (!choice["finish_reason"].is_null()) {
      result.finish_reason = choice["finish_reason"];
      finished = true;
    }
  }
  return result;
}

// ------------------------------------------------------------------ OpenAI upstream fixtures

std::string openAiChunk(std::string_view delta, std::string_view finish_reason = "null",
                        std::string_view eol = "\n") {
  std::string chunk =
      R"(data: {"id":"chatcmpl-7Qy","object":"chat.completion.chunk","created":1718000000,)"
      R"("model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":)";
  chunk.append(delta).append(R"(,"logprobs":null,"finish_reason":)").append(finish_reason);
  chunk.append(R"(}],"usage":null})").append(eol).append(eol);
  return chunk;
}

// Text, two tool calls, a finish_reason chunk, then the usage chunk and [DONE], as OpenAI sends
// them with stream_options.include_usage; some events with CRLF line ends and a comment.
const std::string kOpenAiUpstream =
    openAiChunk(R"({"role":"assistant","content":"","refusal":null})") +
    openAiChunk(R"({"content":"Let me check "})", "null", "\r\n") + ": keep-alive\n\n" +
    openAiChunk(R"({"content":"the weather — «Paris».\n"})") +
    openAiChunk(
        R"({"tool_calls":[{"index":0,"id":"call_A1","type":"function","function":{"name":"get_weather","arguments":""}}]})") +
    openAiChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]})", "null",
                "\r\n") +
    openAiChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Paris\"}"}}]})") +
    openAiChunk(
        R"({"tool_calls":[{"index":1,"id":"call_B2","type":"function","function":{"name":"get_time","arguments":""}}]})") +
    openAiChunk(
        R"({"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\": \"Europe/Paris\"}"}}]})") +
    openAiChunk("{}", R"("tool_calls")") +
    "data: "
    R"({"id":"chatcmpl-7Qy","object":"chat.completion.chunk","created":1718000000,)"
    R"("model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[],"usage":)"
    R"({"prompt_tokens":120,"completion_tokens":45,"total_tokens":165,)"
    R"("prompt_tokens_details":{"cached_tokens":100,"audio_tokens":0},)"
    R"("completion_tokens_details":{"reasoning_tokens":0}}})"
    "\r\n\r\n"
    "data: [DONE]\n\n";

const std::string kAnthropicExpected =
    "event: message_start\n"
    R"(data: {"type":"message_start","message":{"id":"msg_7Qy","type":"message","role":"assistant",)"
    R"("model":"claude-via-gpt","content":[],"stop_reason":null,"stop_sequence":null,"usage":)"
    R"({"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}})"
    "\n\n"
    "event: ping\n"
    R"(data: {"type":"ping"})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check "}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the weather — «Paris».\n"}})"
    "\n\n"
    "event: content_block_stop\n"
    R"(data: {"type":"content_block_stop","index":0})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_A1","name":"get_weather","input":{}}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\": \"Paris\"}"}})"
    "\n\n"
    "event: content_block_stop\n"
    R"(data: {"type":"content_block_stop","index":1})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_B2","name":"get_time","input":{}}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"tz\": \"Europe/Paris\"}"}})"
    "\n\n"
    "event: content_block_stop\n"
    R"(data: {"type":"content_block_stop","index":2})"
    "\n\n"
    "event: message_delta\n"
    R"(data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},)"
    R"("usage":{"input_tokens":20,"cache_read_input_tokens":100,"output_tokens":45}})"
    "\n\n"
    "event: message_stop\n"
    R"(data: {"type":"message_stop"})"
    "\n\n";

TEST(OpenAiToAnthropicStream, GoldenSequence) {
  OpenAiToAnthropicStream stream("claude-via-gpt");
  EXPECT_EQ(relay(stream, kOpenAiUpstream), kAnthropicExpected);
  EXPECT_EQ(stream.inputTokens(), 120u);
  EXPECT_EQ(stream.outputTokens(), 45u);
  EXPECT_EQ(stream.cacheReadTokens(), 100u);
  EXPECT_TRUE(stream.done());
}

TEST(OpenAiToAnthropicStream, SameOutputWhateverTheReadBoundaries) {
  for (size_t cut = 0; cut <= kOpenAiUpstream.size(); ++cut) {
    OpenAiToAnthropicStream stream("claude-via-gpt");
    ASSERT_EQ(relay(stream, kOpenAiUpstream, {cut}), kAnthropicExpected) << "cut at " << cut;
  }
  std::vector<size_t> every_byte(kOpenAiUpstream.size());
  for (size_t i = 0; i < every_byte.size(); ++i) every_byte[i] = i;
  OpenAiToAnthropicStream byte_by_byte("claude-via-gpt");
  EXPECT_EQ(relay(byte_by_byte, kOpenAiUpstream, every_byte), kAnthropicExpected);

  std::mt19937 random(20240611);
  for (int round = 0; round < 300; ++round) {
    std::vector<size_t> cuts(1 + random() % 12);
    for (size_t& cut : cuts) cut = random() % (kOpenAiUpstream.size() + 1);
    std::sort(cuts.begin(), cuts.end());
    OpenAiToAnthropicStream stream("claude-via-gpt");
    ASSERT_EQ(relay(stream, kOpenAiUpstream, cuts), kAnthropicExpected) << "round " << round;
  }
}

TEST(OpenAiToAnthropicStream, AssemblesLikeTheAnthropicSdk) {
  OpenAiToAnthropicStream stream("claude-via-gpt");
  const AnthropicAssembly result = assembleAnthropic(relay(stream, kOpenAiUpstream));
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.message, json::parse(R"json({
    "id": "msg_7Qy", "type": "message", "role": "assistant", "model": "claude-via-gpt",
    "content": [{"type": "text", "text": "Let me check the weather — «Paris».\n"},
                {"type": "tool_use", "id": "call_A1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_B2", "name": "get_time", "input": {"tz": "Europe/Paris"}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
              "output_tokens": 45}})json"));
}

TEST(OpenAiToAnthropicStream, WithoutDoneTheEndOfTheUpstreamClosesTheMessage) {
  const std::string upstream =
      openAiChunk(R"({"role":"assistant","content":"Hi"})") + openAiChunk("{}", R"("length")");
  OpenAiToAnthropicStream stream("c");
  const AnthropicAssembly result = assembleAnthropic(relay(stream, upstream));
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.message["content"], json::parse(R"([{"type":"text","text":"Hi"}])"));
  EXPECT_EQ(result.message["stop_reason"], "max_tokens");
  // No usage was reported: output_tokens 0 and message_start's input_tokens stand.
  EXPECT_EQ(result.message["usage"]["output_tokens"], 0);
  EXPECT_EQ(result.message["usage"]["input_tokens"], 0);
}

TEST(OpenAiToAnthropicStream, AStreamCutBeforeTheFinishReasonEndsWithAnError) {
  const std::string upstream = openAiChunk(R"({"role":"assistant","content":"Hel"})");
  OpenAiToAnthropicStream stream("c");
  const std::string out = relay(stream, upstream);
  const AnthropicAssembly result = assembleAnthropic(out);
  EXPECT_FALSE(result.stopped);
  EXPECT_EQ(result.error_type, "api_error");
  EXPECT_NE(out.find("the upstream stream ended before the answer was complete"),
            std::string::npos);
  std::string more;
  stream.finish(more);
  stream.onEvent("", "[DONE]", more);
  EXPECT_EQ(more, "") << "nothing after the end";
}

TEST(OpenAiToAnthropicStream, UpstreamErrorsBecomeAnErrorEvent) {
  OpenAiToAnthropicStream stream("c");
  std::string out;
  stream.onEvent("", openAiChunk(R"({"content":"partial"})").substr(6), out);
  out.clear();
  stream.onEvent("", R"({"error":{"message":"The server had an error","type":"server_error"}})",
                 out);
  EXPECT_EQ(
      out,
      "event: error\n"
      R"(data: {"type":"error","error":{"type":"api_error","message":"The server had an error"}})"
      "\n\n");
  out.clear();
  stream.onEvent("", openAiChunk(R"({"content":"more"})").substr(6), out);
  stream.finish(out);
  EXPECT_EQ(out, "");

  OpenAiToAnthropicStream garbage("c");
  out.clear();
  garbage.onEvent("", "{not json", out);
  EXPECT_EQ(
      out,
      "event: error\n"
      R"(data: {"type":"error","error":{"type":"api_error","message":"the upstream sent a stream event that is not a JSON object"}})"
      "\n\n");
}

TEST(OpenAiToAnthropicStream, ReasoningTextAfterToolsAndPerChunkUsage) {
  // vLLM: reasoning_content deltas, usage on every chunk (continuous_usage_stats), text after a
  // tool call, a tool call whose arguments come whole in its first chunk.
  auto chunk = [](std::string_view delta, std::string_view finish, int completion) {
    return std::string(
               R"(data: {"id":"cmpl-9","object":"chat.completion.chunk","model":"qwen","choices":[{"index":0,"delta":)") +
           std::string(delta) + R"(,"finish_reason":)" + std::string(finish) +
           R"(}],"usage":{"prompt_tokens":7,"completion_tokens":)" + std::to_string(completion) +
           "}}\n\n";
  };
  const std::string upstream =
      chunk(R"({"role":"assistant","reasoning_content":"Hmm."})", "null", 1) +
      chunk(R"({"reasoning_content":" Tools."})", "null", 2) +
      chunk(
          R"({"tool_calls":[{"index":0,"id":"chatcmpl-tool-1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]})",
          "null", 3) +
      chunk(R"({"content":"Done"})", "null", 4) +
      chunk(R"({"content":"","refusal":null})", R"("stop")", 5) + "data: [DONE]\n\n";
  OpenAiToAnthropicStream stream("");
  const std::string out = relay(stream, upstream);
  const AnthropicAssembly result = assembleAnthropic(out);
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.message, json::parse(R"json({
    "id": "msg_cmpl-9", "type": "message", "role": "assistant", "model": "qwen",
    "content": [{"type": "thinking", "thinking": "Hmm. Tools.", "signature": ""},
                {"type": "tool_use", "id": "chatcmpl-tool-1", "name": "f", "input": {"a": 1}},
                {"type": "text", "text": "Done"}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 5}})json"));
  EXPECT_NE(out.find(R"("usage":{"input_tokens":7,)"), std::string::npos)
      << "message_start carries the input tokens known at the first chunk";
}

TEST(OpenAiToAnthropicStream, StopSequenceFromVllmAndChoicesOtherThanZeroIgnored) {
  const std::string upstream =
      R"(data: {"id":"x","choices":[{"index":1,"delta":{"content":"other"},"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"x","choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"###"}]})"
      "\n\n";
  OpenAiToAnthropicStream stream("c");
  const AnthropicAssembly result = assembleAnthropic(relay(stream, upstream));
  EXPECT_EQ(result.message["content"], json::parse(R"([{"type":"text","text":"A"}])"));
  EXPECT_EQ(result.message["stop_reason"], "stop_sequence");
  EXPECT_EQ(result.message["stop_sequence"], "###");
}

TEST(OpenAiToAnthropicStream, EmptyUpstreamWithDoneGivesAnEmptyMessage) {
  OpenAiToAnthropicStream stream("c");
  const AnthropicAssembly result = assembleAnthropic(relay(stream, "data: [DONE]\n\n"));
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.message["content"], json::array());
  EXPECT_EQ(result.message["stop_reason"], "end_turn");
}

// ------------------------------------------------------------------ Anthropic upstream fixtures

std::string anthropicEvent(std::string_view name, std::string_view data) {
  return "event: " + std::string(name) + "\ndata: " + std::string(data) + "\n\n";
}

const std::string kAnthropicUpstream =
    anthropicEvent(
        "message_start",
        R"({"type":"message_start","message":{"id":"msg_01Abc","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})") +
    anthropicEvent("ping", R"({"type": "ping"})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants weather."}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})") +
    "event: content_block_delta\r\ndata: "
    R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}})"
    "\r\n\r\n" +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" «now».\n"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":1})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":2})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_02B","name":"get_time","input":{}}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"tz\":\"CET\"}"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":3})") +
    anthropicEvent(
        "message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})") +
    anthropicEvent("message_stop", R"({"type":"message_stop"})");

std::string openAiExpectedChunk(std::string_view delta, std::string_view finish = "null") {
  return R"(data: {"id":"chatcmpl-01Abc","object":"chat.completion.chunk","created":0,)"
         R"("model":"gpt-via-claude","choices":[{"index":0,"delta":)" +
         std::string(delta) + R"(,"finish_reason":)" + std::string(finish) + "}]}\n\n";
}

const std::string kOpenAiExpected =
    openAiExpectedChunk(R"({"role":"assistant","content":""})") +
    openAiExpectedChunk(R"({"reasoning_content":"The user wants weather."})") +
    openAiExpectedChunk(R"({"content":"Checking"})") +
    openAiExpectedChunk(R"({"content":" «now».\n"})") +
    openAiExpectedChunk(
        R"({"tool_calls":[{"index":0,"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":""}}]})") +
    openAiExpectedChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]})") +
    openAiExpectedChunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})") +
    openAiExpectedChunk(
        R"({"tool_calls":[{"index":1,"id":"toolu_02B","type":"function","function":{"name":"get_time","arguments":""}}]})") +
    openAiExpectedChunk(
        R"({"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"CET\"}"}}]})") +
    openAiExpectedChunk("{}", R"("tool_calls")") +
    R"(data: {"id":"chatcmpl-01Abc","object":"chat.completion.chunk","created":0,)"
    R"("model":"gpt-via-claude","choices":[],"usage":{"prompt_tokens":130,"completion_tokens":42,)"
    R"("total_tokens":172,"prompt_tokens_details":{"cached_tokens":100}}})"
    "\n\n"
    "data: [DONE]\n\n";

// The chunk timestamp is the translation time; golden output uses 0.
std::string withoutClock(const std::string& sse) {
  static const std::regex created(R"("created":\d+,)");
  return std::regex_replace(sse, created, R"("created":0,)");
}

TEST(AnthropicToOpenAiStream, GoldenSequence) {
  AnthropicToOpenAiStream stream("gpt-via-claude", true);
  EXPECT_EQ(withoutClock(relay(stream, kAnthropicUpstream)), kOpenAiExpected);
  EXPECT_EQ(stream.inputTokens(), 130u);
  EXPECT_EQ(stream.outputTokens(), 42u);
  EXPECT_EQ(stream.cacheReadTokens(), 100u);
  EXPECT_TRUE(stream.done());
}

TEST(AnthropicToOpenAiStream, SameOutputWhateverTheReadBoundaries) {
  for (size_t cut = 0; cut <= kAnthropicUpstream.size(); ++cut) {
    AnthropicToOpenAiStream stream("gpt-via-claude", true);
    ASSERT_EQ(withoutClock(relay(stream, kAnthropicUpstream, {cut})), kOpenAiExpected)
        << "cut at " << cut;
  }
  std::mt19937 random(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<size_t> cuts(1 + random() % 12);
    for (size_t& cut : cuts) cut = random() % (kAnthropicUpstream.size() + 1);
    std::sort(cuts.begin(), cuts.end());
    AnthropicToOpenAiStream stream("gpt-via-claude", true);
    ASSERT_EQ(withoutClock(relay(stream, kAnthropicUpstream, cuts)), kOpenAiExpected)
        << "round " << round;
  }
}

TEST(AnthropicToOpenAiStream, AssemblesLikeTheOpenAiSdk) {
  AnthropicToOpenAiStream stream("gpt-via-claude", true);
  const OpenAiAssembly result = assembleOpenAi(relay(stream, kAnthropicUpstream));
  EXPECT_TRUE(result.done);
  EXPECT_EQ(result.message, json::parse(R"json({
    "role": "assistant", "content": "Checking «now».\n", "reasoning_content": "The user wants weather.",
    "tool_calls": [
      {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"id": "toolu_02B", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}]})json"));
  EXPECT_EQ(result.finish_reason, "tool_calls");
  EXPECT_EQ(result.usage, json::parse(R"({"prompt_tokens":130,"completion_tokens":42,
    "total_tokens":172,"prompt_tokens_details":{"cached_tokens":100}})"));
}

TEST(AnthropicToOpenAiStream, NoUsageChunkUnlessAskedFor) {
  AnthropicToOpenAiStream stream("gpt-via-claude", false);
  const std::string out = withoutClock(relay(stream, kAnthropicUpstream));
  const std::string usage_chunk_start =
      R"(data: {"id":"chatcmpl-01Abc","object":"chat.completion.chunk","created":0,"model":"gpt-via-claude","choices":[],)";
  const size_t usage_at = kOpenAiExpected.find(usage_chunk_start);
  ASSERT_NE(usage_at, std::string::npos);
  EXPECT_EQ(out, kOpenAiExpected.substr(0, usage_at) + "data: [DONE]\n\n");
  EXPECT_EQ(stream.inputTokens(), 130u) << "usage is still counted for accounting";
}

TEST(AnthropicToOpenAiStream, ErrorEventBecomesAnErrorChunkThenDone) {
  const std::string upstream =
      anthropicEvent(
          "message_start",
          R"({"type":"message_start","message":{"id":"msg_1","model":"c","content":[],"usage":{"input_tokens":3,"output_tokens":1}}})") +
      anthropicEvent(
          "error",
          R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})") +
      anthropicEvent("message_stop", R"({"type":"message_stop"})");
  AnthropicToOpenAiStream stream("g", true);
  const OpenAiAssembly result = assembleOpenAi(relay(stream, upstream));
  EXPECT_TRUE(result.done);
  EXPECT_EQ(
      result.error,
      json::parse(R"({"message":"Overloaded","type":"server_error","param":null,"code":null})"));
  EXPECT_TRUE(result.finish_reason.is_null());
}

TEST(AnthropicToOpenAiStream, AStreamCutBeforeMessageDeltaEndsWithAnError) {
  const std::string upstream =
      anthropicEvent(
          "message_start",
          R"({"type":"message_start","message":{"id":"msg_1","model":"c","content":[],"usage":{"input_tokens":3,"output_tokens":1}}})") +
      anthropicEvent(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})") +
      anthropicEvent(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})");
  AnthropicToOpenAiStream stream("g", true);
  const std::string out = relay(stream, upstream);
  const OpenAiAssembly result = assembleOpenAi(out);
  EXPECT_TRUE(result.done);
  EXPECT_EQ(result.message["content"], "Hel");
  EXPECT_EQ(result.error["message"], "the upstream stream ended before the answer was complete");
  std::string more;
  stream.finish(more);
  EXPECT_EQ(more, "");
}

TEST(AnthropicToOpenAiStream, MessageDeltaWithoutMessageStopStillCompletes) {
  const std::string upstream =
      anthropicEvent(
          "message_start",
          R"({"type":"message_start","message":{"id":"msg_1","model":"c","content":[],"usage":{"input_tokens":3,"output_tokens":1}}})") +
      anthropicEvent(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}})") +
      anthropicEvent(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":9}})");
  AnthropicToOpenAiStream stream("", true);
  const OpenAiAssembly result = assembleOpenAi(relay(stream, upstream));
  EXPECT_TRUE(result.done);
  EXPECT_TRUE(result.error.is_null());
  EXPECT_EQ(result.message["content"], "Hi");
  EXPECT_EQ(result.finish_reason, "length");
  EXPECT_EQ(result.usage["completion_tokens"], 9);
  EXPECT_EQ(result.usage["prompt_tokens"], 3);
}

TEST(AnthropicToOpenAiStream, InvalidEventIsAnError) {
  AnthropicToOpenAiStream stream("g", false);
  std::string out;
  stream.onEvent("message_start", "{truncated", out);
  EXPECT_EQ(
      out,
      R"(data: {"error":{"message":"the upstream sent a stream event that is not a JSON object","type":"upstream_error","param":null,"code":null}})"
      "\n\ndata: [DONE]\n\n");
}

// ------------------------------------------------------------------ both directions chained

// OpenAI upstream → Anthropic client dialect → back to OpenAI: the assembled completion is the
// one the original stream assembles to.
TEST(StreamRoundTrip, OpenAiThroughAnthropicAssemblesToTheSameCompletion) {
  OpenAiToAnthropicStream to_anthropic("claude-via-gpt");
  const std::string anthropic = relay(to_anthropic, kOpenAiUpstream);
  AnthropicToOpenAiStream to_openai("gpt-4o-2024-08-06", true);
  const OpenAiAssembly round_trip = assembleOpenAi(relay(to_openai, anthropic));
  const OpenAiAssembly direct = assembleOpenAi(kOpenAiUpstream);
  EXPECT_EQ(round_trip.message, direct.message);
  EXPECT_EQ(round_trip.finish_reason, direct.finish_reason);
  EXPECT_EQ(round_trip.usage["prompt_tokens"], direct.usage["prompt_tokens"]);
  EXPECT_EQ(round_trip.usage["completion_tokens"], direct.usage["completion_tokens"]);
  EXPECT_EQ(round_trip.usage["prompt_tokens_details"]["cached_tokens"],
            direct.usage["prompt_tokens_details"]["cached_tokens"]);
}

}  // namespace
}  // namespace sluice::translate
