#include "translate/openai_to_anthropic_stream.h"

#include <algorithm>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/vocabulary.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;
using detail::lookup;

// Tool calls per answer that get a block; later ones are dropped (bounded state).
constexpr size_t kMaxToolCalls = 1024;
// A matched stop string longer than this is not kept (vLLM reports client-given stop strings).
constexpr size_t kMaxStopSequenceBytes = 1024;

uint64_t countOrZero(dom::object object, std::string_view key) {
  uint64_t count = 0;
  if (object[key].get_uint64().get(count) != simdjson::SUCCESS) return 0;
  return count;
}

}  // namespace

OpenAiToAnthropicStream::OpenAiToAnthropicStream(std::string client_model)
    : model_(std::move(client_model)) {}

void OpenAiToAnthropicStream::onEvent(std::string_view event_name, std::string_view data,
                                      std::string& out) {
  if (done_) return;
  if (data == "[DONE]") {
    if (!started_) start({}, {}, out);
    complete(out);
    return;
  }
  dom::element document;
  dom::object chunk;
  if (detail::parseJson(data, document) != simdjson::SUCCESS ||
      document.get_object().get(chunk) != simdjson::SUCCESS) {
    fail("api_error", "the upstream sent a stream event that is not a JSON object", out);
    return;
  }
  dom::element value;
  const bool has_error = lookup(chunk, "error", value);
  if (has_error || event_name == "error") {
    std::string_view message;
    if (has_error) {
      message = detail::stringField(value, "message");
      if (message.empty() && value.get_string().get(message) != simdjson::SUCCESS) message = {};
    }
    if (message.empty()) message = detail::stringField(document, "message");
    fail("api_error", message.empty() ? "the upstream stream failed" : message, out);
    return;
  }

  // Usage first: vLLM can report it on every chunk, and message_start wants input_tokens.
  dom::object usage;
  if (chunk["usage"].get_object().get(usage) == simdjson::SUCCESS) {
    usage_seen_ = true;
    prompt_tokens_ = countOrZero(usage, "prompt_tokens");
    completion_tokens_ = countOrZero(usage, "completion_tokens");
    dom::object details;
    if (usage["prompt_tokens_details"].get_object().get(details) == simdjson::SUCCESS) {
      cached_tokens_ = countOrZero(details, "cached_tokens");
    }
  }
  if (!started_) {
    start(detail::stringField(document, "id"), detail::stringField(document, "model"), out);
  }

  dom::array choices;
  if (chunk["choices"].get_array().get(choices) != simdjson::SUCCESS) return;
  for (dom::element choice_value : choices) {
    dom::object choice;
    int64_t choice_index = 0;
    if (choice_value.get_object().get(choice) != simdjson::SUCCESS) continue;
    if (lookup(choice, "index", value) &&
        (value.get_int64().get(choice_index) != simdjson::SUCCESS || choice_index != 0)) {
      continue;  // one Anthropic message: choice 0 only
    }
    dom::object delta;
    if (choice["delta"].get_object().get(delta) == simdjson::SUCCESS) {
      std::string_view text = detail::stringField(delta, "reasoning_content");
      if (text.empty()) text = detail::stringField(delta, "reasoning");
      if (!text.empty()) appendTextDelta(Block::kThinking, text, out);
      text = detail::stringField(delta, "content");
      if (!text.empty()) appendTextDelta(Block::kText, text, out);
      text = detail::stringField(delta, "refusal");
      if (!text.empty()) {
        refusal_ = true;
        appendTextDelta(Block::kText, text, out);
      }
      dom::array calls;
      if (delta["tool_calls"].get_array().get(calls) == simdjson::SUCCESS) {
        for (dom::element call_value : calls) {
          dom::object call, function;
          if (call_value.get_object().get(call) != simdjson::SUCCESS) continue;
          int64_t index = -1;
          if (call["index"].get_int64().get(index) != simdjson::SUCCESS || index < 0) index = -1;
          std::string_view name, arguments;
          if (call["function"].get_object().get(function) == simdjson::SUCCESS) {
            name = detail::stringField(function, "name");
            arguments = detail::stringField(function, "arguments");
          }
          onToolCallDelta(index, detail::stringField(call, "id"), name, arguments, out);
        }
      }
    }
    std::string_view finish_reason;
    if (choice["finish_reason"].get_string().get(finish_reason) == simdjson::SUCCESS) {
      finish_seen_ = true;
      stop_reason_ = detail::anthropicStopReason(finish_reason);
      std::string_view matched;
      for (std::string_view key : {"stop_reason", "matched_stop"}) {
        if (matched.empty()) matched = detail::stringField(choice, key);
      }
      if (finish_reason == "stop" && !matched.empty() && matched.size() <= kMaxStopSequenceBytes) {
        stop_reason_ = "stop_sequence";
        stop_sequence_.assign(matched);
      }
      closeBlock(out);
    }
  }
}

void OpenAiToAnthropicStream::onToolCallDelta(int64_t index, std::string_view id,
                                              std::string_view name, std::string_view arguments,
                                              std::string& out) {
  if (index < 0) {
    // Servers that omit the index send one call at a time: a new id means the next call.
    const int64_t highest =
        seen_tools_.empty() ? -1 : *std::max_element(seen_tools_.begin(), seen_tools_.end());
    index = !id.empty() || open_tool_ < 0 ? highest + 1 : open_tool_;
  }
  if (std::find(seen_tools_.begin(), seen_tools_.end(), index) == seen_tools_.end()) {
    if (seen_tools_.size() >= kMaxToolCalls) return;
    seen_tools_.push_back(index);
    closeBlock(out);
    const uint32_t block_index = next_block_index_++;
    detail::beginAnthropicSse(out, "content_block_start");
    JsonWriter json(out);
    json.beginObject()
        .key("type")
        .value("content_block_start")
        .key("index")
        .value(uint64_t{block_index});
    json.key("content_block").beginObject().key("type").value("tool_use");
    json.key("id").value(id.empty() ? detail::newToolUseId() : std::string(id));
    json.key("name").value(name);
    json.key("input").beginObject().endObject().endObject().endObject();
    detail::endSse(out);
    open_ = Block::kToolUse;
    open_tool_ = index;
  } else if (open_ != Block::kToolUse || open_tool_ != index) {
    return;  // a call whose block is already closed: Anthropic blocks cannot be reopened
  }
  if (arguments.empty()) return;
  detail::beginAnthropicSse(out, "content_block_delta");
  JsonWriter json(out);
  json.beginObject().key("type").value("content_block_delta");
  json.key("index").value(uint64_t{next_block_index_ - 1});
  json.key("delta").beginObject().key("type").value("input_json_delta");
  json.key("partial_json").value(arguments).endObject().endObject();
  detail::endSse(out);
}

void OpenAiToAnthropicStream::start(std::string_view chunk_id, std::string_view chunk_model,
                                    std::string& out) {
  started_ = true;
  message_id_ = detail::anthropicMessageId(chunk_id);
  if (model_.empty()) model_.assign(chunk_model);
  detail::beginAnthropicSse(out, "message_start");
  JsonWriter json(out);
  json.beginObject().key("type").value("message_start").key("message").beginObject();
  json.key("id").value(message_id_).key("type").value("message").key("role").value("assistant");
  json.key("model").value(model_).key("content").beginArray().endArray();
  json.key("stop_reason").null().key("stop_sequence").null();
  json.key("usage").beginObject();
  json.key("input_tokens").value(prompt_tokens_ - std::min(cached_tokens_, prompt_tokens_));
  json.key("cache_creation_input_tokens").value(uint64_t{0});
  json.key("cache_read_input_tokens").value(cached_tokens_);
  json.key("output_tokens").value(uint64_t{0});
  json.endObject().endObject().endObject();
  detail::endSse(out);
  // Anthropic sends a ping right after message_start; some clients count on the rhythm.
  detail::beginAnthropicSse(out, "ping");
  out += R"({"type":"ping"})";
  detail::endSse(out);
}

void OpenAiToAnthropicStream::openBlock(Block kind, std::string& out) {
  closeBlock(out);
  const uint32_t index = next_block_index_++;
  detail::beginAnthropicSse(out, "content_block_start");
  JsonWriter json(out);
  json.beginObject().key("type").value("content_block_start").key("index").value(uint64_t{index});
  json.key("content_block").beginObject();
  if (kind == Block::kThinking) {
    json.key("type").value("thinking").key("thinking").value("").key("signature").value("");
  } else {
    json.key("type").value("text").key("text").value("");
  }
  json.endObject().endObject();
  detail::endSse(out);
  open_ = kind;
}

void OpenAiToAnthropicStream::closeBlock(std::string& out) {
  if (open_ == Block::kNone) return;
  detail::beginAnthropicSse(out, "content_block_stop");
  JsonWriter(out)
      .beginObject()
      .key("type")
      .value("content_block_stop")
      .key("index")
      .value(uint64_t{next_block_index_ - 1})
      .endObject();
  detail::endSse(out);
  open_ = Block::kNone;
  open_tool_ = -1;
}

void OpenAiToAnthropicStream::appendTextDelta(Block kind, std::string_view text, std::string& out) {
  if (open_ != kind) openBlock(kind, out);
  detail::beginAnthropicSse(out, "content_block_delta");
  JsonWriter json(out);
  json.beginObject().key("type").value("content_block_delta");
  json.key("index").value(uint64_t{next_block_index_ - 1}).key("delta").beginObject();
  if (kind == Block::kThinking) {
    json.key("type").value("thinking_delta").key("thinking").value(text);
  } else {
    json.key("type").value("text_delta").key("text").value(text);
  }
  json.endObject().endObject();
  detail::endSse(out);
}

void OpenAiToAnthropicStream::complete(std::string& out) {
  closeBlock(out);
  std::string_view stop_reason = stop_reason_;
  if (stop_reason.empty()) stop_reason = "end_turn";
  if (refusal_ && stop_reason == "end_turn") stop_reason = "refusal";
  detail::beginAnthropicSse(out, "message_delta");
  JsonWriter json(out);
  json.beginObject().key("type").value("message_delta").key("delta").beginObject();
  json.key("stop_reason").value(stop_reason).key("stop_sequence");
  if (stop_sequence_.empty()) {
    json.null();
  } else {
    json.value(stop_sequence_);
  }
  json.endObject().key("usage").beginObject();
  if (usage_seen_) {
    json.key("input_tokens").value(prompt_tokens_ - std::min(cached_tokens_, prompt_tokens_));
    json.key("cache_read_input_tokens").value(cached_tokens_);
  }
  json.key("output_tokens").value(completion_tokens_).endObject().endObject();
  detail::endSse(out);
  detail::beginAnthropicSse(out, "message_stop");
  out += R"({"type":"message_stop"})";
  detail::endSse(out);
  done_ = true;
}

void OpenAiToAnthropicStream::finish(std::string& out) {
  if (done_) return;
  if (!finish_seen_) {
    fail("api_error", "the upstream stream ended before the answer was complete", out);
    return;
  }
  complete(out);
}

void OpenAiToAnthropicStream::fail(std::string_view type, std::string_view message,
                                   std::string& out) {
  detail::beginAnthropicSse(out, "error");
  JsonWriter json(out);
  json.beginObject().key("type").value("error").key("error").beginObject();
  json.key("type").value(type).key("message").value(message).endObject().endObject();
  detail::endSse(out);
  done_ = true;
}

}  // namespace sluice::translate
