// Untrusted input on both sides: whatever arrives, the translators return an error or valid
// output, never crash (run under ASan/UBSan too).

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "http/sse_decoder.h"
#include "translate/translate.h"

namespace sluice::translate {
namespace {

using nlohmann::json;

using BodyTranslation = std::function<tl::expected<std::string, TranslateError>(std::string_view)>;

struct Sample {
  const char* name;
  BodyTranslation translate;
  int error_status;
  std::string body;
};

std::vector<Sample> samples() {
  return {
      {"anthropic request", [](std::string_view b) { return anthropicToOpenAiRequest(b, ""); }, 400,
       R"json({"model":"c","max_tokens":10,"system":[{"type":"text","text":"S"}],"stream":true,
         "stop_sequences":["x"],"temperature":0.1,"metadata":{"user_id":"u"},
         "tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],
         "tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},
         "messages":[{"role":"user","content":[{"type":"text","text":"hi"},
           {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}},
           {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"AA"}}]},
           {"role":"assistant","content":[{"type":"text","text":"t"},{"type":"tool_use","id":"i","name":"f","input":{"a":1}}]},
           {"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":[{"type":"text","text":"r"},
             {"type":"image","source":{"type":"url","url":"https://x"}}]}]}]})json"},
      {"openai request", [](std::string_view b) { return openAiToAnthropicRequest(b, "", 100); },
       400,
       R"json({"model":"g","max_tokens":10,"stop":["x"],"temperature":1.5,"top_p":0.5,"user":"u",
         "stream":true,"n":1,"parallel_tool_calls":false,"tool_choice":{"type":"function","function":{"name":"f"}},
         "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],
         "messages":[{"role":"system","content":[{"type":"text","text":"S"}]},
           {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}},
             {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,AA"}}]},
           {"role":"assistant","content":"t","tool_calls":[{"id":"i","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
           {"role":"tool","tool_call_id":"i","content":[{"type":"text","text":"r"}]}]})json"},
      {"openai response", [](std::string_view b) { return openAiToAnthropicResponse(b, "m"); }, 502,
       R"json({"id":"chatcmpl-1","model":"g","choices":[{"index":0,"finish_reason":"tool_calls","stop_reason":"x",
         "message":{"role":"assistant","content":"t","reasoning_content":"r","refusal":null,
           "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1,{}]}"}}]}}],
         "usage":{"prompt_tokens":5,"completion_tokens":6,"prompt_tokens_details":{"cached_tokens":2}}})json"},
      {"anthropic response", [](std::string_view b) { return anthropicToOpenAiResponse(b, "m"); },
       502,
       R"json({"id":"msg_1","type":"message","model":"c","stop_reason":"tool_use",
         "content":[{"type":"thinking","thinking":"r"},{"type":"text","text":"t"},
           {"type":"tool_use","id":"i","name":"f","input":{"a":[1,{}]}}],
         "usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3,"cache_creation_input_tokens":4}})json"},
  };
}

void expectWellFormed(const Sample& sample, const std::string& input) {
  auto out = sample.translate(input);
  if (out) {
    EXPECT_TRUE(json::accept(*out))
        << sample.name << " produced invalid JSON for " << input << ": " << *out;
  } else {
    EXPECT_EQ(out.error().status, sample.error_status) << sample.name;
    EXPECT_FALSE(out.error().message.empty());
  }
}

// Every node of the sample, replaced in turn by a value of every other type.
template <typename Visit>
void forEachTypeConfusion(const json& document, Visit visit) {
  const json replacements[] = {nullptr,
                               0,
                               -1,
                               1.5,
                               "s",
                               json::array(),
                               json::object(),
                               true,
                               json::array({1, "x"}),
                               json{{"type", "text"}}};
  std::vector<json::json_pointer> pointers;
  const json flat = document.flatten();
  for (const auto& [path, value] : flat.items()) {
    json::json_pointer pointer(path);
    while (!pointer.empty()) {
      pointers.push_back(pointer);
      pointer = pointer.parent_pointer();
    }
  }
  for (const auto& pointer : pointers) {
    for (const json& replacement : replacements) {
      json mutated = document;
      mutated[pointer] = replacement;
      visit(mutated.dump());
    }
    json removed = document;
    json& parent = removed[pointer.parent_pointer()];
    if (parent.is_array()) {
      parent.erase(std::stoul(pointer.back()));
    } else {
      parent.erase(pointer.back());
    }
    visit(removed.dump());
  }
}

TEST(TranslationRobustness, WrongTypesAnywhereGiveAnErrorOrValidOutput) {
  for (const Sample& sample : samples()) {
    SCOPED_TRACE(sample.name);
    ASSERT_TRUE(sample.translate(sample.body)) << "the sample itself translates";
    forEachTypeConfusion(json::parse(sample.body),
                         [&](const std::string& input) { expectWellFormed(sample, input); });
  }
}

std::string mutateBytes(std::string text, std::mt19937& random) {
  static constexpr char kBytes[] = "{}[]\":,\\0a-e.\n\xff\xc3";
  const int edits = 1 + random() % 4;
  for (int i = 0; i < edits && !text.empty(); ++i) {
    const size_t at = random() % text.size();
    switch (random() % 4) {
      case 0:
        text[at] = kBytes[random() % (sizeof(kBytes) - 1)];
        break;
      case 1:
        text.erase(at, 1 + random() % 8);
        break;
      case 2:
        text.insert(at, 1, kBytes[random() % (sizeof(kBytes) - 1)]);
        break;
      default:
        text.resize(at);
        break;
    }
  }
  return text;
}

TEST(TranslationRobustness, MangledBytesGiveAnErrorOrValidOutput) {
  std::mt19937 random(99);
  for (const Sample& sample : samples()) {
    SCOPED_TRACE(sample.name);
    for (int round = 0; round < 2000; ++round)
      expectWellFormed(sample, mutateBytes(sample.body, random));
  }
  for (int round = 0; round < 500; ++round) {
    const std::string body = mutateBytes(R"json({"error":{"message":"m","type":"t"}})json", random);
    EXPECT_TRUE(json::accept(openAiErrorToAnthropic(body, 400 + round % 200)));
    EXPECT_TRUE(json::accept(anthropicErrorToOpenAi(body, 400 + round % 200)));
  }
}

// Every emitted SSE event has JSON data (or [DONE]); nothing after the stream's end.
void expectWellFormedSse(const std::string& sse, bool openai) {
  http::SseDecoder decoder;
  bool ended = false;
  auto check = [&](const http::SseEvent& event) {
    EXPECT_FALSE(ended) << "output after the end: " << sse;
    if (openai && event.data == "[DONE]") {
      ended = true;
      return;
    }
    EXPECT_TRUE(json::accept(event.data)) << event.data;
    if (!openai && (event.event == "message_stop" || event.event == "error")) ended = true;
  };
  EXPECT_TRUE(decoder.feed(sse, check));
  decoder.finish(check);
}

const std::vector<std::string> kOpenAiEvents = {
    R"json({"id":"c","model":"g","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":"r"},"finish_reason":null}]})json",
    R"json({"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]})json",
    R"json({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a"}}]},"finish_reason":null}]})json",
    R"json({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\":1}"}}]},"finish_reason":"tool_calls"}]})json",
    R"json({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}})json",
};

const std::vector<std::pair<std::string, std::string>> kAnthropicEvents = {
    {"message_start",
     R"json({"type":"message_start","message":{"id":"msg_1","model":"c","content":[],"usage":{"input_tokens":3,"output_tokens":1}}})json"},
    {"content_block_start",
     R"json({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})json"},
    {"content_block_delta",
     R"json({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}})json"},
    {"content_block_stop", R"json({"type":"content_block_stop","index":0})json"},
    {"content_block_start",
     R"json({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}})json"},
    {"content_block_delta",
     R"json({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}})json"},
    {"message_delta",
     R"json({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":4}})json"},
    {"message_stop", R"json({"type":"message_stop"})json"},
};

TEST(TranslationRobustness, StreamsSurviveAnyMangledEvent) {
  std::mt19937 random(5);
  for (size_t target = 0; target < kOpenAiEvents.size(); ++target) {
    auto run = [&](const std::string& mangled) {
      OpenAiToAnthropicStream stream("c");
      std::string out;
      for (size_t i = 0; i < kOpenAiEvents.size(); ++i) {
        stream.onEvent("", i == target ? mangled : kOpenAiEvents[i], out);
      }
      stream.onEvent("", "[DONE]", out);
      stream.finish(out);
      expectWellFormedSse(out, false);
    };
    forEachTypeConfusion(json::parse(kOpenAiEvents[target]), run);
    for (int round = 0; round < 300; ++round) run(mutateBytes(kOpenAiEvents[target], random));
  }
  for (size_t target = 0; target < kAnthropicEvents.size(); ++target) {
    auto run = [&](const std::string& mangled) {
      AnthropicToOpenAiStream stream("g", true);
      std::string out;
      for (size_t i = 0; i < kAnthropicEvents.size(); ++i) {
        stream.onEvent(kAnthropicEvents[i].first,
                       i == target ? mangled : kAnthropicEvents[i].second, out);
      }
      stream.finish(out);
      expectWellFormedSse(out, true);
      EXPECT_NE(out.find("data: [DONE]\n\n"), std::string::npos);
    };
    forEachTypeConfusion(json::parse(kAnthropicEvents[target].second), run);
    for (int round = 0; round < 300; ++round)
      run(mutateBytes(kAnthropicEvents[target].second, random));
  }
}

// A stream keeps small state: thousands of tool calls do not grow it past its bound, and the
// output stays well-formed.
TEST(TranslationRobustness, ManyToolCallsStayBounded) {
  OpenAiToAnthropicStream stream("c");
  std::string out;
  for (int i = 0; i < 3000; ++i) {
    stream.onEvent(
        "",
        R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":)" + std::to_string(i) +
            R"(,"id":"t","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]})",
        out);
  }
  stream.onEvent(
      "", R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", out);
  stream.finish(out);
  expectWellFormedSse(out, false);
  size_t starts = 0;
  for (size_t at = 0; (at = out.find("event: content_block_start", at)) != std::string::npos;
       ++at) {
    ++starts;
  }
  EXPECT_EQ(starts, 1024u);
}

}  // namespace
}  // namespace sluice::translate
