#include "proxy/usage_meter.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "proxy/body_transform.h"
#include "proxy/request_fields.h"
#include "proxy/usage_chunk_stripper.h"

namespace sluice::proxy {

// Readable failures: EXPECT_EQ(usage, (Usage{...})).
bool operator==(const Usage& a, const Usage& b) {
  return a.input == b.input && a.output == b.output && a.cached == b.cached &&
         a.reported == b.reported;
}
void PrintTo(const Usage& u, std::ostream* os) {
  *os << "{input " << u.input << ", output " << u.output << ", cached " << u.cached
      << (u.reported ? ", reported}" : ", estimated}");
}

namespace {

using providers::Dialect;

// ------------------------------------------------------------------ streams
// Shaped as `sluice mock` (and api.openai.com / api.anthropic.com) write them.

std::string chatChunk(std::string_view choices, std::string_view usage = "null") {
  return std::string(R"(data: {"id":"chatcmpl-mock-1","object":"chat.completion.chunk",)"
                     R"("created":1795582101,"model":"gpt-4o","choices":)") +
         std::string(choices) + R"(,"usage":)" + std::string(usage) + "}\n\n";
}

std::string contentChoice(std::string_view content) {
  return R"([{"index":0,"delta":{"content":")" + std::string(content) +
         R"("},"logprobs":null,"finish_reason":null}])";
}

const std::string kChatUsageChunk = chatChunk(
    "[]",
    R"({"prompt_tokens":31,"completion_tokens":4,"total_tokens":35,"prompt_tokens_details":{"cached_tokens":3}})");

// stream: true, stream_options.include_usage: true; x-mock-cached-tokens: 3.
const std::string kChatStream =
    chatChunk(
        R"([{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}])") +
    chatChunk(contentChoice("tok0 ")) + chatChunk(contentChoice("tok1 ")) +
    chatChunk(contentChoice("tok2 ")) + chatChunk(contentChoice("tok3 ")) +
    chatChunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}])") +
    kChatUsageChunk + "data: [DONE]\n\n";

std::string toolChoice(std::string_view fragment) {
  return R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":")" +
         std::string(fragment) + R"("}}]},"logprobs":null,"finish_reason":null}])";
}

const std::string kToolStream =
    chatChunk(
        R"([{"index":0,"delta":{"role":"assistant","content":null},"logprobs":null,"finish_reason":null}])") +
    chatChunk(
        R"([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_mock_1","type":"function",)"
        R"("function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}])") +
    chatChunk(toolChoice(R"({\"city\")")) + chatChunk(toolChoice(R"(:\"Par)")) +
    chatChunk(toolChoice(R"(is\"})")) +
    chatChunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}])") +
    chatChunk(
        "[]",
        R"({"prompt_tokens":50,"completion_tokens":3,"total_tokens":53,"prompt_tokens_details":{"cached_tokens":0}})") +
    "data: [DONE]\n\n";

std::string completionChunk(std::string_view text, std::string_view finish) {
  return R"(data: {"id":"cmpl-mock-3","object":"text_completion","created":1795582101,)"
         R"("model":"gpt-3.5-turbo-instruct","choices":[{"text":")" +
         std::string(text) + R"(","index":0,"logprobs":null,"finish_reason":)" +
         std::string(finish) + "}],\"usage\":null}\n\n";
}

const std::string kCompletionUsageChunk =
    R"(data: {"id":"cmpl-mock-3","object":"text_completion","created":1795582101,)"
    R"("model":"gpt-3.5-turbo-instruct","choices":[],"usage":{"prompt_tokens":25,)"
    R"("completion_tokens":4,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}})"
    "\n\n";

const std::string kCompletionStream =
    completionChunk("tok0 ", "null") + completionChunk("tok1 ", "null") +
    completionChunk("tok2 ", "null") + completionChunk("tok3 ", "null") +
    completionChunk("", "\"stop\"") + kCompletionUsageChunk + "data: [DONE]\n\n";

std::string anthropicEvent(std::string_view name, std::string_view data) {
  return "event: " + std::string(name) + "\ndata: " + std::string(data) + "\n\n";
}

std::string textDelta(int index, std::string_view text) {
  return anthropicEvent("content_block_delta", R"({"type":"content_block_delta","index":)" +
                                                   std::to_string(index) +
                                                   R"(,"delta":{"type":"text_delta","text":")" +
                                                   std::string(text) + "\"}}");
}

const std::string kAnthropicStart = anthropicEvent(
    "message_start",
    R"({"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message",)"
    R"("role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,)"
    R"("stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":1200,)"
    R"("cache_read_input_tokens":3000,"output_tokens":1,"service_tier":"standard"}}})");

// Extended thinking, then text; message_delta repeats the input counts (as the API now does).
const std::string kAnthropicStream =
    kAnthropicStart +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})") +
    anthropicEvent("ping", R"({"type": "ping"})") + textDelta(1, "Hello") +
    textDelta(1, R"(! \"usage\":{\"output_tokens\":999})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":1})") +
    anthropicEvent(
        "message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},)"
        R"("usage":{"input_tokens":25,"cache_creation_input_tokens":1200,)"
        R"("cache_read_input_tokens":3000,"output_tokens":42}})") +
    anthropicEvent("message_stop", R"({"type":"message_stop"})");

// Tool use as the mock sends it (x-mock-cached-tokens: 5 on message_start).
const std::string kAnthropicToolStream =
    anthropicEvent(
        "message_start",
        R"({"type":"message_start","message":{"id":"msg_mock_6","type":"message","role":"assistant",)"
        R"("model":"claude-3-5-sonnet","content":[],"stop_reason":null,"stop_sequence":null,)"
        R"("usage":{"input_tokens":44,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,)"
        R"("output_tokens":0}}})") +
    anthropicEvent(
        "content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_mock_1","name":"get_weather","input":{}}})") +
    anthropicEvent("ping", R"({"type":"ping"})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\""}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":":\"Par"}})") +
    anthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"is\"}"}})") +
    anthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    anthropicEvent(
        "message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":3}})") +
    anthropicEvent("message_stop", R"({"type":"message_stop"})");

// SGLang /generate with stream: true: the text so far and meta_info with the counts so far.
std::string generateChunk(std::string_view text, int completion, std::string_view finish) {
  return R"(data: {"text":")" + std::string(text) +
         R"(","meta_info":{"id":"gen-mock-11","finish_reason":)" + std::string(finish) +
         R"(,"prompt_tokens":17,"completion_tokens":)" + std::to_string(completion) +
         R"(,"cached_tokens":2}})" + "\n\n";
}

const std::string kGenerateStream =
    generateChunk("tok0 ", 1, "null") + generateChunk("tok0 tok1 ", 2, "null") +
    generateChunk("tok0 tok1 tok2 ", 3, "null") +
    generateChunk("tok0 tok1 tok2 ", 3, R"({"type":"length","length":3})") + "data: [DONE]\n\n";

std::string replaceAll(std::string text, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

std::string without(std::string text, std::string_view part) {
  const size_t pos = text.find(part);
  EXPECT_NE(pos, std::string::npos);
  if (pos != std::string::npos) text.erase(pos, part.size());
  return text;
}

// ------------------------------------------------------------------ feeding helpers

// The ways a stream is cut into reads: in two at every byte, one byte at a time, and random
// three-to-twenty-piece cuts.
std::vector<std::vector<std::string_view>> splits(std::string_view stream) {
  std::vector<std::vector<std::string_view>> all;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    all.push_back({stream.substr(0, cut), stream.substr(cut)});
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  all.push_back(bytes);
  std::mt19937 random(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<size_t> cuts;
    const int count = 2 + static_cast<int>(random() % 19);
    for (int i = 0; i < count; ++i) cuts.push_back(random() % (stream.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    std::vector<std::string_view> pieces;
    size_t pos = 0;
    for (size_t cut : cuts) {
      pieces.push_back(stream.substr(pos, cut - pos));
      pos = cut;
    }
    pieces.push_back(stream.substr(pos));
    all.push_back(pieces);
  }
  return all;
}

Usage meter(Dialect dialect, const std::vector<std::string_view>& pieces,
            uint64_t* deltas = nullptr) {
  UsageMeter meter(dialect);
  for (std::string_view piece : pieces) meter.feed(piece);
  meter.finish();
  if (deltas != nullptr) *deltas = meter.contentDeltas();
  return meter.usage();
}

// Every split of `stream` meters to `expected` with `deltas` content deltas.
void expectMetered(Dialect dialect, std::string_view stream, const Usage& expected,
                   uint64_t deltas) {
  for (const auto& pieces : splits(stream)) {
    uint64_t counted = 0;
    ASSERT_EQ(meter(dialect, pieces, &counted), expected) << pieces.size() << " pieces";
    ASSERT_EQ(counted, deltas) << pieces.size() << " pieces";
  }
}

std::string strip(const std::vector<std::string_view>& pieces, UsageChunkStripper& stripper) {
  std::string out;
  for (std::string_view piece : pieces) EXPECT_TRUE(stripper.feed(piece, out));
  stripper.finish(out);
  return out;
}

// Every split of `stream` comes out as `expected`, with `removed` events stripped.
void expectStripped(std::string_view stream, std::string_view expected, uint64_t removed,
                    size_t max_event_bytes = UsageChunkStripper::kMaxEventBytes) {
  for (const auto& pieces : splits(stream)) {
    UsageChunkStripper stripper(max_event_bytes);
    ASSERT_EQ(strip(pieces, stripper), expected) << pieces.size() << " pieces";
    ASSERT_EQ(stripper.stripped(), removed) << pieces.size() << " pieces";
  }
}

// ================================================================== usageFromBody

TEST(UsageFromBody, OpenAiChatWithCachedTokens) {
  const std::string body =
      R"({"id":"chatcmpl-mock-7","object":"chat.completion","created":1795582101,"model":"gpt-4o",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"tok0 tok1 tok2 tok3 "},)"
      R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":17,)"
      R"("completion_tokens":4,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":3}}})";
  EXPECT_EQ(usageFromBody(body, Dialect::kOpenAi), (Usage{17, 4, 3, true}));
}

TEST(UsageFromBody, OpenAiCompletionsEmbeddingsAndRerank) {
  EXPECT_EQ(
      usageFromBody(
          R"({"id":"cmpl-mock-8","object":"text_completion","created":1795582101,"model":"m",)"
          R"("choices":[{"index":0,"text":"tok0 ","logprobs":null,"finish_reason":"stop"}],)"
          R"("usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}})",
          Dialect::kOpenAi),
      (Usage{6, 4, 0, true}));
  EXPECT_EQ(usageFromBody(
                R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.18,)"
                R"(0.31]}],"model":"e","usage":{"prompt_tokens":3,"total_tokens":3}})",
                Dialect::kOpenAi),
            (Usage{3, 0, 0, true}));
  EXPECT_EQ(usageFromBody(R"({"id":"rerank-mock-12","model":"r","results":[{"index":0,)"
                          R"("relevance_score":0.99}],"usage":{"total_tokens":9}})",
                          Dialect::kOpenAi),
            (Usage{9, 0, 0, true}));
}

TEST(UsageFromBody, SglangGenerateMetaInfo) {
  EXPECT_EQ(usageFromBody(R"({"text":"tok0 tok1 tok2 ","meta_info":{"id":"gen-mock-10",)"
                          R"("finish_reason":{"type":"length","length":3},"prompt_tokens":13,)"
                          R"("completion_tokens":3,"cached_tokens":4}})",
                          Dialect::kOpenAi),
            (Usage{13, 3, 4, true}));
}

TEST(UsageFromBody, AnthropicInputIncludesCacheReadsAndWrites) {
  const std::string body =
      R"({"id":"msg_mock_9","type":"message","role":"assistant","model":"claude","content":)"
      R"([{"type":"text","text":"tok0 tok1 tok2 tok3 "}],"stop_reason":"end_turn",)"
      R"("stop_sequence":null,"usage":{"input_tokens":23,"cache_creation_input_tokens":7,)"
      R"("cache_read_input_tokens":5,"output_tokens":4}})";
  EXPECT_EQ(usageFromBody(body, Dialect::kAnthropic), (Usage{23 + 7 + 5, 4, 5, true}));
}

TEST(UsageFromBody, UsageMayComeFirstAndBePrettyPrinted) {
  EXPECT_EQ(usageFromBody("{\n  \"usage\" : {\n    \"prompt_tokens\" : 10,\n"
                          "    \"completion_tokens\" : 2\n  },\n  \"choices\" : [ ]\n}\n",
                          Dialect::kOpenAi),
            (Usage{10, 2, 0, true}));
}

TEST(UsageFromBody, NullDetailsAndIntegralDoublesAreRead) {
  // vLLM writes "prompt_tokens_details": null; some servers write counts as doubles.
  EXPECT_EQ(usageFromBody(R"({"usage":{"prompt_tokens":12.0,"completion_tokens":3,)"
                          R"("prompt_tokens_details":null}})",
                          Dialect::kOpenAi),
            (Usage{12, 3, 0, true}));
  EXPECT_EQ(
      usageFromBody(R"({"usage":{"prompt_tokens":-4,"completion_tokens":2.5}})", Dialect::kOpenAi),
      (Usage{}));
}

TEST(UsageFromBody, CachedNeverExceedsInput) {
  EXPECT_EQ(usageFromBody(R"({"usage":{"prompt_tokens":4,"completion_tokens":1,)"
                          R"("prompt_tokens_details":{"cached_tokens":9}}})",
                          Dialect::kOpenAi),
            (Usage{4, 1, 4, true}));
}

TEST(UsageFromBody, DeepSeekCacheHitTokensWhenNoCachedTokens) {
  EXPECT_EQ(usageFromBody(R"({"usage":{"prompt_tokens":100,"completion_tokens":5,)"
                          R"("prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}})",
                          Dialect::kOpenAi),
            (Usage{100, 5, 64, true}));
}

TEST(UsageFromBody, ErrorBodiesAndNullUsageReportNothing) {
  EXPECT_EQ(usageFromBody(R"({"error":{"message":"bad","type":"invalid_request_error"}})",
                          Dialect::kOpenAi),
            (Usage{}));
  EXPECT_EQ(usageFromBody(R"({"type":"error","error":{"type":"overloaded_error",)"
                          R"("message":"Overloaded"}})",
                          Dialect::kAnthropic),
            (Usage{}));
  EXPECT_EQ(usageFromBody(R"({"choices":[],"usage":null})", Dialect::kOpenAi), (Usage{}));
  EXPECT_EQ(usageFromBody(R"({"usage":{}})", Dialect::kOpenAi), (Usage{}));
}

TEST(UsageFromBody, OtherDialectsNamesAreNotRead) {
  EXPECT_EQ(usageFromBody(R"({"usage":{"input_tokens":5,"output_tokens":2}})", Dialect::kOpenAi),
            (Usage{}));
  EXPECT_EQ(
      usageFromBody(R"({"usage":{"prompt_tokens":5,"completion_tokens":2}})", Dialect::kAnthropic),
      (Usage{}));
}

TEST(UsageFromBody, MalformedJsonReportsNothing) {
  for (std::string_view body :
       {R"({"usage":{"prompt_tokens":5,"completion_tokens":2})",            // cut short
        R"({"usage":{"prompt_tokens":5,"completion_tokens":2}} trailing)",  // trailing bytes
        R"({"usage":{"prompt_tokens":5,"completion_tokens":2},})",          // stray comma
        R"([{"usage":{"prompt_tokens":5}}])", "", "null", "{", "\xff\xfe"}) {
    EXPECT_EQ(usageFromBody(body, Dialect::kOpenAi), (Usage{})) << body;
  }
}

// ================================================================== UsageMeter

TEST(UsageMeter, OpenAiChatUsageChunkAtEverySplit) {
  expectMetered(Dialect::kOpenAi, kChatStream, Usage{31, 4, 3, true}, 4);
}

TEST(UsageMeter, OpenAiToolCallArgumentsCountAsDeltas) {
  expectMetered(Dialect::kOpenAi, kToolStream, Usage{50, 3, 0, true}, 3);
}

TEST(UsageMeter, OpenAiCompletionsTextCountsAsDeltas) {
  expectMetered(Dialect::kOpenAi, kCompletionStream, Usage{25, 4, 0, true}, 4);
}

TEST(UsageMeter, OpenAiWithoutUsageChunkIsEstimated) {
  const std::string stream = without(kChatStream, kChatUsageChunk);
  expectMetered(Dialect::kOpenAi, stream, Usage{0, 4, 0, false}, 4);
}

TEST(UsageMeter, OpenAiReasoningAndRefusalDeltasCount) {
  const std::string stream =
      chatChunk(R"([{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}])") +
      chatChunk(R"([{"index":0,"delta":{"reasoning":"so"},"finish_reason":null}])") +
      chatChunk(R"([{"index":0,"delta":{"refusal":"no"},"finish_reason":null}])") +
      chatChunk(R"([{"index":0,"delta":{"content":""},"finish_reason":null}])") +
      chatChunk(R"([{"index":0,"delta":{"content":null},"finish_reason":null}])");
  expectMetered(Dialect::kOpenAi, stream, Usage{0, 3, 0, false}, 3);
}

TEST(UsageMeter, OpenAiAbortedStreamEstimateGrowsUntilTheUsageChunk) {
  const size_t usage_start = kChatStream.find(kChatUsageChunk);
  const size_t usage_line_end = usage_start + kChatUsageChunk.size() - 2;  // its '\n'
  uint64_t last = 0;
  for (size_t length = 0; length <= kChatStream.size(); ++length) {
    UsageMeter meter(Dialect::kOpenAi);
    meter.feed(std::string_view(kChatStream).substr(0, length));
    const Usage before_finish = meter.usage();
    meter.finish();
    const Usage usage = meter.usage();
    if (length >= usage_line_end) {
      ASSERT_EQ(usage, (Usage{31, 4, 3, true})) << length;
    } else {
      ASSERT_FALSE(before_finish.reported) << length;
      ASSERT_FALSE(usage.reported) << length;
      ASSERT_EQ(usage.input, 0u);
      ASSERT_GE(usage.output, last) << length;
      ASSERT_LE(usage.output, 4u) << length;
      last = usage.output;
    }
  }
  // Cut after two content chunks: two deltas.
  const size_t cut = kChatStream.find(chatChunk(contentChoice("tok2 ")));
  EXPECT_EQ(meter(Dialect::kOpenAi, {std::string_view(kChatStream).substr(0, cut)}),
            (Usage{0, 2, 0, false}));
}

TEST(UsageMeter, OpenAiLastUsageOfContinuousUsageStatsCounts) {
  // vLLM with continuous_usage_stats: every chunk carries the totals so far.
  const std::string stream =
      chatChunk(contentChoice("a"),
                R"({"prompt_tokens":9,"completion_tokens":1,"total_tokens":10})") +
      chatChunk(contentChoice("b"),
                R"({"prompt_tokens":9,"completion_tokens":2,"total_tokens":11})");
  expectMetered(Dialect::kOpenAi, stream, Usage{9, 2, 0, true}, 2);
}

TEST(UsageMeter, SglangGenerateMetaInfo) {
  expectMetered(Dialect::kOpenAi, kGenerateStream, Usage{17, 3, 2, true}, 4);
}

TEST(UsageMeter, AnthropicStartAndDeltaAtEverySplit) {
  // Escaped text that looks like usage is neither parsed nor counted twice.
  expectMetered(Dialect::kAnthropic, kAnthropicStream, Usage{25 + 1200 + 3000, 42, 3000, true}, 4);
}

TEST(UsageMeter, AnthropicToolUseWithOutputOnlyInMessageDelta) {
  expectMetered(Dialect::kAnthropic, kAnthropicToolStream, Usage{44 + 5, 3, 5, true}, 3);
}

TEST(UsageMeter, AnthropicAbortedStreamKeepsReportedInputAndEstimatesOutput) {
  const size_t cut = kAnthropicStream.find(
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_EQ(meter(Dialect::kAnthropic, {std::string_view(kAnthropicStream).substr(0, cut)}),
            (Usage{4225, 4, 3000, false}));
  // Before any delta: message_start's output_tokens (1).
  EXPECT_EQ(meter(Dialect::kAnthropic, {kAnthropicStart}), (Usage{4225, 1, 3000, false}));
  EXPECT_EQ(meter(Dialect::kAnthropic, {std::string_view(kAnthropicStart).substr(0, 40)}),
            (Usage{}));
}

TEST(UsageMeter, CrLfAndCrLineEndingsAtEverySplit) {
  expectMetered(Dialect::kOpenAi, replaceAll(kChatStream, "\n", "\r\n"), Usage{31, 4, 3, true}, 4);
  expectMetered(Dialect::kOpenAi, replaceAll(kChatStream, "\n", "\r"), Usage{31, 4, 3, true}, 4);
  expectMetered(Dialect::kAnthropic, replaceAll(kAnthropicToolStream, "\n", "\r\n"),
                Usage{49, 3, 5, true}, 3);
}

TEST(UsageMeter, CommentsIdsAndDataWithoutSpaceAreHandled) {
  const std::string stream = ": keep-alive\n\nid: 1\nretry: 100\n" +
                             replaceAll(kChatUsageChunk, "data: ", "data:") + "data: [DONE]\n\n";
  expectMetered(Dialect::kOpenAi, stream, Usage{31, 4, 3, true}, 0);
}

TEST(UsageMeter, LastLineWithoutNewlineIsReadAtFinish) {
  const std::string stream = kChatUsageChunk.substr(0, kChatUsageChunk.size() - 2);
  UsageMeter meter(Dialect::kOpenAi);
  meter.feed(stream);
  EXPECT_FALSE(meter.usage().reported);
  meter.finish();
  EXPECT_EQ(meter.usage(), (Usage{31, 4, 3, true}));
}

TEST(UsageMeter, MalformedUsageChunkLeavesTheEstimate) {
  for (std::string_view usage :
       {R"({"prompt_tokens":31,"completion_tokens":})",
        R"({"prompt_tokens":31,"completion_tokens":4)", R"({"prompt_tokens":"31"})", R"({})"}) {
    const std::string stream = chatChunk(contentChoice("a")) + chatChunk("[]", usage);
    EXPECT_EQ(meter(Dialect::kOpenAi, {stream}), (Usage{0, 1, 0, false})) << usage;
  }
  // Events that are not JSON at all.
  EXPECT_EQ(meter(Dialect::kOpenAi, {"data: {{{\n\ndata: \"usage\":{\n\ndata: [DONE]\n\n"}),
            (Usage{}));
  EXPECT_EQ(meter(Dialect::kAnthropic, {"event: message_delta\ndata: {\"usage\":{\n\n"}),
            (Usage{}));
}

TEST(UsageMeter, EscapedUsageInsideContentIsNotRead) {
  const std::string stream =
      chatChunk(contentChoice(R"(\"usage\":{\"prompt_tokens\":99,\"completion_tokens\":99})"));
  expectMetered(Dialect::kOpenAi, stream, Usage{0, 1, 0, false}, 1);
}

TEST(UsageMeter, LineLongerThanTheBoundIsSkippedAndSaidSo) {
  const std::string big(200, 'x');
  const std::string stream = chatChunk(contentChoice("a")) + chatChunk(contentChoice(big)) +
                             chatChunk(contentChoice("b")) + kChatUsageChunk;
  for (const auto& pieces : splits(stream)) {
    UsageMeter meter(Dialect::kOpenAi, 240);  // the usage line (~230 bytes) fits
    for (std::string_view piece : pieces) meter.feed(piece);
    meter.finish();
    ASSERT_TRUE(meter.overflowed());
    ASSERT_EQ(meter.contentDeltas(), 3u);  // the long line's start still shows a delta
    ASSERT_EQ(meter.usage(), (Usage{31, 4, 3, true}));
  }
  UsageMeter fits(Dialect::kOpenAi, 1000);
  fits.feed(stream);
  EXPECT_FALSE(fits.overflowed());
}

TEST(UsageMeter, HugeLineInManyReadsIsBounded) {
  // 3 MiB of content on one line, arriving in 16 KiB reads, then the usage chunk.
  const std::string big(3 << 20, 'y');
  const std::string stream = chatChunk(contentChoice(big)) + kChatUsageChunk;
  UsageMeter meter(Dialect::kOpenAi);
  for (size_t pos = 0; pos < stream.size(); pos += 16384) {
    meter.feed(std::string_view(stream).substr(pos, 16384));
  }
  meter.finish();
  EXPECT_TRUE(meter.overflowed());
  EXPECT_EQ(meter.contentDeltas(), 1u);
  EXPECT_EQ(meter.usage(), (Usage{31, 4, 3, true}));
  // Cut inside the huge line: nothing buffered past the bound, the estimate stands.
  UsageMeter cut(Dialect::kOpenAi);
  cut.feed(std::string_view(stream).substr(0, 2 << 20));
  cut.finish();
  EXPECT_EQ(cut.usage(), (Usage{0, 1, 0, false}));
}

// ================================================================== addIncludeUsage

TEST(AddIncludeUsage, AddsStreamOptionsAfterTheLastMember) {
  std::string body =
      R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body, R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,)"
                  R"("stream_options":{"include_usage":true}})");
  auto fields = parseRequestFields(body);
  ASSERT_TRUE(fields);
  EXPECT_TRUE(fields->include_usage);
}

TEST(AddIncludeUsage, KeepsFormattingAndUnicode) {
  std::string body =
      "{\n  \"model\": \"m\",\n  \"prompt\": \"caf\xc3\xa9 \\u00e9 \\\"}\",\n"
      "  \"stream\": true\n}\n";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body,
            "{\n  \"model\": \"m\",\n  \"prompt\": \"caf\xc3\xa9 \\u00e9 \\\"}\",\n"
            "  \"stream\": true,\"stream_options\":{\"include_usage\":true}\n}\n");
}

TEST(AddIncludeUsage, MergesIntoAnExistingObject) {
  std::string body = R"({"stream":true,"stream_options":{},"model":"m"})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body, R"({"stream":true,"stream_options":{"include_usage":true},"model":"m"})");

  body = R"({"stream":true,"stream_options": { "continuous_usage_stats" : true } ,"model":"m"})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body,
            R"({"stream":true,"stream_options": {"include_usage":true, "continuous_usage_stats" : )"
            R"(true } ,"model":"m"})");
}

TEST(AddIncludeUsage, OtherValuesOfIncludeUsageBecomeTrue) {
  for (std::string_view value : {"false", "null", "0", "\"yes\"", "{\"a\":[1]}", "[1, 2]"}) {
    std::string body = R"({"stream":true,"stream_options":{"include_usage" : )" +
                       std::string(value) + R"( ,"x":1},"model":"m"})";
    ASSERT_TRUE(addIncludeUsage(body)) << value;
    EXPECT_EQ(body,
              R"({"stream":true,"stream_options":{"include_usage" : true ,"x":1},"model":"m"})")
        << value;
  }
}

TEST(AddIncludeUsage, NullStreamOptionsBecomesTheObject) {
  std::string body = R"({"model":"m","stream_options":null ,"stream":true})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body, R"({"model":"m","stream_options":{"include_usage":true} ,"stream":true})");
}

TEST(AddIncludeUsage, AlreadyAskingIsLeftAlone) {
  std::string body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})";
  const std::string original = body;
  EXPECT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body, original);
}

TEST(AddIncludeUsage, EscapedKeysAreRecognised) {
  std::string body = R"({"model":"m","str\u0065am":true,"stream\u005foptions":{"x":1}})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(
      body,
      R"({"model":"m","str\u0065am":true,"stream\u005foptions":{"include_usage":true,"x":1}})");
}

TEST(AddIncludeUsage, RepeatedStreamOptionsEditsTheLast) {
  std::string body = R"({"stream":true,"stream_options":{},"stream_options":{}})";
  ASSERT_TRUE(addIncludeUsage(body));
  EXPECT_EQ(body, R"({"stream":true,"stream_options":{},"stream_options":{"include_usage":true}})");
}

TEST(AddIncludeUsage, NotStreamingIsLeftAlone) {
  for (std::string body :
       {R"({"model":"m"})", R"({"model":"m","stream":false})", R"({"model":"m","stream":null})",
        R"({"model":"m","stream":"true"})", R"({"stream":true,"model":"m","stream":false})"}) {
    const std::string original = body;
    EXPECT_FALSE(addIncludeUsage(body)) << original;
    EXPECT_EQ(body, original);
  }
}

TEST(AddIncludeUsage, InvalidJsonOrStreamOptionsIsLeftAlone) {
  for (std::string body :
       {std::string(R"({"model":"m","stream":true)"), std::string(R"({"stream":true} x)"),
        std::string(R"([{"stream":true}])"), std::string(""), std::string("nul"),
        std::string(R"({"stream":true,"stream_options":"yes"})"),
        std::string(R"({"stream":true,"stream_options":[]})"),
        std::string(R"({"stream":true,"stream_options":{"include_usage":}})")}) {
    const std::string original = body;
    EXPECT_FALSE(addIncludeUsage(body)) << original;
    EXPECT_EQ(body, original);
  }
}

// ================================================================== UsageChunkStripper

TEST(UsageChunkStripper, IsABodyTransform) {
  std::unique_ptr<BodyTransform> transform = std::make_unique<UsageChunkStripper>();
  std::string out;
  EXPECT_TRUE(transform->feed(kChatStream, out));
  transform->finish(out);
  EXPECT_EQ(out, without(kChatStream, kChatUsageChunk));
}

TEST(UsageChunkStripper, RemovesExactlyTheUsageChunkAtEverySplit) {
  expectStripped(kChatStream, without(kChatStream, kChatUsageChunk), 1);
  expectStripped(kCompletionStream, without(kCompletionStream, kCompletionUsageChunk), 1);
}

TEST(UsageChunkStripper, CrLfAndCrStreamsAtEverySplit) {
  for (std::string_view newline : {"\r\n", "\r"}) {
    expectStripped(replaceAll(kChatStream, "\n", newline),
                   replaceAll(without(kChatStream, kChatUsageChunk), "\n", newline), 1);
  }
}

TEST(UsageChunkStripper, LeavesStreamsWithoutAUsageOnlyChunkUnchanged) {
  expectStripped(without(kChatStream, kChatUsageChunk), without(kChatStream, kChatUsageChunk), 0);
  // Usage beside a choice (llama.cpp, vLLM continuous usage) is the client's to see.
  const std::string beside =
      chatChunk(contentChoice("a"), R"({"prompt_tokens":9,"completion_tokens":1})");
  expectStripped(beside, beside, 0);
  // An error event that carries usage, and usage that is not an object.
  const std::string error =
      R"(data: {"error":{"message":"overloaded"},"choices":[],"usage":{"prompt_tokens":1}})"
      "\n\n" +
      chatChunk("[]", "null") + chatChunk("[]", "7");
  expectStripped(error, error, 0);
}

TEST(UsageChunkStripper, MalformedUsageChunkPassesUnchanged) {
  const std::string stream = chatChunk(contentChoice("a")) +
                             "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}} trailing\n\n" +
                             "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":}}\n\n" +
                             "data: {\"choices\":[,],\"usage\":{\"prompt_tokens\":1}}\n\n" +
                             "data: [DONE]\n\n";
  expectStripped(stream, stream, 0);
}

TEST(UsageChunkStripper, UsageChunkInSeveralDataLinesOrWithFieldsIsRemoved) {
  const std::string chunk =
      ": keep-alive\nid: 7\ndata: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":1}}\n\n";
  const std::string stream = chatChunk(contentChoice("a")) + chunk + "data: [DONE]\n\n";
  expectStripped(stream, without(stream, chunk), 1);
}

TEST(UsageChunkStripper, AbortedStreamAtEveryLength) {
  const std::string stream = kChatStream;
  const size_t start = stream.find(kChatUsageChunk);
  const size_t json_end = start + kChatUsageChunk.size() - 2;  // after its closing brace
  const size_t end = start + kChatUsageChunk.size();
  for (size_t length = 0; length <= stream.size(); ++length) {
    const std::string_view prefix = std::string_view(stream).substr(0, length);
    std::string expected(prefix);
    if (length >= json_end) expected.erase(start, std::min(length, end) - start);
    UsageChunkStripper stripper;
    std::string out;
    stripper.feed(prefix, out);
    stripper.finish(out);
    ASSERT_EQ(out, expected) << length;
  }
}

TEST(UsageChunkStripper, EventsLargerThanTheBoundPassAsTheyCome) {
  const std::string big = chatChunk(contentChoice(std::string(300, 'z')));
  const std::string usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
  const std::string stream = big + usage + big + "data: [DONE]\n\n";
  expectStripped(stream, big + big + "data: [DONE]\n\n", 1, 64);

  // Bytes of an outgrown event go out before the event ends.
  UsageChunkStripper stripper(64);
  std::string out;
  stripper.feed(std::string_view(big).substr(0, 200), out);
  EXPECT_EQ(out, big.substr(0, 200));
}

TEST(UsageChunkStripper, MeterBeforeStripperSeesTheUsageTheClientDoesNot) {
  for (const auto& pieces : splits(kChatStream)) {
    UsageMeter upstream(Dialect::kOpenAi);
    UsageChunkStripper stripper;
    UsageMeter client(Dialect::kOpenAi);
    std::string out;
    for (std::string_view piece : pieces) {
      upstream.feed(piece);
      out.clear();
      stripper.feed(piece, out);
      client.feed(out);
    }
    out.clear();
    upstream.finish();
    stripper.finish(out);
    client.feed(out);
    client.finish();
    ASSERT_EQ(upstream.usage(), (Usage{31, 4, 3, true}));
    ASSERT_EQ(client.usage(), (Usage{0, 4, 0, false}));
  }
}

}  // namespace
}  // namespace sluice::proxy
