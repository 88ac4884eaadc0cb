#include "translate/anthropic_to_openai_stream.h"

#include <ctime>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/vocabulary.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;

// Copies the usage fields present in an Anthropic usage object.
void readUsage(dom::object usage, uint64_t& input, uint64_t& cache_read, uint64_t& cache_write,
               uint64_t& output) {
  uint64_t count = 0;
  if (usage["input_tokens"].get_uint64().get(count) == simdjson::SUCCESS) input = count;
  if (usage["cache_read_input_tokens"].get_uint64().get(count) == simdjson::SUCCESS) {
    cache_read = count;
  }
  if (usage["cache_creation_input_tokens"].get_uint64().get(count) == simdjson::SUCCESS) {
    cache_write = count;
  }
  if (usage["output_tokens"].get_uint64().get(count) == simdjson::SUCCESS) output = count;
}

}  // namespace

AnthropicToOpenAiStream::AnthropicToOpenAiStream(std::string client_model, bool include_usage)
    : model_(std::move(client_model)),
      created_(static_cast<int64_t>(std::time(nullptr))),
      include_usage_(include_usage) {}

void AnthropicToOpenAiStream::onEvent(std::string_view event_name, std::string_view data,
                                      std::string& out) {
  if (done_ || event_name == "ping") return;
  dom::element document;
  dom::object event;
  if (detail::parseJson(data, document) != simdjson::SUCCESS ||
      document.get_object().get(event) != simdjson::SUCCESS) {
    fail("upstream_error", "the upstream sent a stream event that is not a JSON object", out);
    return;
  }
  std::string_view type = detail::stringField(event, "type");
  if (type.empty()) type = event_name;

  if (type == "message_start") {
    dom::object message, usage;
    if (event["message"].get_object().get(message) == simdjson::SUCCESS) {
      if (id_.empty()) id_ = detail::openAiCompletionId(detail::stringField(message, "id"));
      if (model_.empty()) model_.assign(detail::stringField(message, "model"));
      if (message["usage"].get_object().get(usage) == simdjson::SUCCESS) {
        readUsage(usage, input_tokens_, cache_read_tokens_, cache_write_tokens_, output_tokens_);
      }
    }
    sendRole(out);
  } else if (type == "content_block_start") {
    sendRole(out);
    dom::object block;
    if (event["content_block"].get_object().get(block) != simdjson::SUCCESS) {
      block_ = Block::kOther;
      return;
    }
    const std::string_view block_type = detail::stringField(block, "type");
    if (block_type == "text") {
      block_ = Block::kText;
      const std::string_view text = detail::stringField(block, "text");
      if (!text.empty()) {
        JsonWriter json = beginChunk(out);
        json.key("content").value(text);
        endChunk(json, {}, out);
      }
    } else if (block_type == "thinking") {
      block_ = Block::kThinking;
      const std::string_view text = detail::stringField(block, "thinking");
      if (!text.empty()) {
        JsonWriter json = beginChunk(out);
        json.key("reasoning_content").value(text);
        endChunk(json, {}, out);
      }
    } else if (block_type == "tool_use") {
      block_ = Block::kToolUse;
      tool_index_ = tool_count_++;
      const std::string_view id = detail::stringField(block, "id");
      // Streams start tool_use with an empty input and send it as input_json_delta; a non-empty
      // input here (some proxies) is the whole input.
      std::string arguments;
      dom::object input;
      if (block["input"].get_object().get(input) == simdjson::SUCCESS && input.size() > 0) {
        arguments = detail::serialize(block["input"].value_unsafe());
      }
      JsonWriter json = beginChunk(out);
      json.key("tool_calls").beginArray().beginObject().key("index").value(tool_index_);
      json.key("id").value(id.empty() ? detail::newToolCallId() : std::string(id));
      json.key("type").value("function").key("function").beginObject();
      json.key("name").value(detail::stringField(block, "name")).key("arguments").value(arguments);
      json.endObject().endObject().endArray();
      endChunk(json, {}, out);
    } else {
      block_ = Block::kOther;  // redacted_thinking, server tools: nothing an OpenAI client reads
    }
  } else if (type == "content_block_delta") {
    dom::object delta;
    if (event["delta"].get_object().get(delta) != simdjson::SUCCESS) return;
    const std::string_view delta_type = detail::stringField(delta, "type");
    std::string_view text;
    std::string_view field;
    if (delta_type == "text_delta") {
      text = detail::stringField(delta, "text");
      field = "content";
    } else if (delta_type == "thinking_delta") {
      text = detail::stringField(delta, "thinking");
      field = "reasoning_content";
    } else if (delta_type == "input_json_delta" && block_ == Block::kToolUse) {
      text = detail::stringField(delta, "partial_json");
      if (text.empty()) return;
      JsonWriter json = beginChunk(out);
      json.key("tool_calls").beginArray().beginObject().key("index").value(tool_index_);
      json.key("function").beginObject().key("arguments").value(text).endObject();
      json.endObject().endArray();
      endChunk(json, {}, out);
      return;
    }
    if (text.empty()) return;  // signature and citation deltas have no OpenAI counterpart
    sendRole(out);
    JsonWriter json = beginChunk(out);
    json.key(field).value(text);
    endChunk(json, {}, out);
  } else if (type == "content_block_stop") {
    block_ = Block::kNone;
  } else if (type == "message_delta") {
    dom::object usage;
    if (event["usage"].get_object().get(usage) == simdjson::SUCCESS) {
      readUsage(usage, input_tokens_, cache_read_tokens_, cache_write_tokens_, output_tokens_);
    }
    dom::element delta;
    std::string_view stop_reason;
    if (event["delta"].get(delta) == simdjson::SUCCESS)
      stop_reason = detail::stringField(delta, "stop_reason");
    sendFinish(detail::openAiFinishReason(stop_reason), out);
  } else if (type == "message_stop") {
    complete(out);
  } else if (type == "error") {
    dom::object error;
    std::string_view error_type, message;
    if (event["error"].get_object().get(error) == simdjson::SUCCESS) {
      error_type = detail::stringField(error, "type");
      message = detail::stringField(error, "message");
    }
    fail(detail::openAiErrorKind(error_type, 500).type,
         message.empty() ? "the upstream stream failed" : message, out);
  }
  // ping and event types added later carry nothing an OpenAI client reads.
}

void AnthropicToOpenAiStream::finish(std::string& out) {
  if (done_) return;
  if (!finish_sent_) {
    fail("upstream_error", "the upstream stream ended before the answer was complete", out);
    return;
  }
  complete(out);
}

JsonWriter AnthropicToOpenAiStream::beginChunk(std::string& out) {
  if (id_.empty()) id_ = detail::openAiCompletionId({});
  detail::beginOpenAiSse(out);
  JsonWriter json(out);
  json.beginObject().key("id").value(id_).key("object").value("chat.completion.chunk");
  json.key("created").value(created_).key("model").value(model_);
  json.key("choices").beginArray().beginObject().key("index").value(0);
  json.key("delta").beginObject();
  return json;
}

void AnthropicToOpenAiStream::endChunk(JsonWriter& json, std::string_view finish_reason,
                                       std::string& out) {
  json.endObject().key("finish_reason");
  if (finish_reason.empty()) {
    json.null();
  } else {
    json.value(finish_reason);
  }
  json.endObject().endArray().endObject();
  detail::endSse(out);
}

void AnthropicToOpenAiStream::sendRole(std::string& out) {
  if (role_sent_) return;
  role_sent_ = true;
  JsonWriter json = beginChunk(out);
  json.key("role").value("assistant").key("content").value("");
  endChunk(json, {}, out);
}

void AnthropicToOpenAiStream::sendFinish(std::string_view finish_reason, std::string& out) {
  if (finish_sent_) return;
  sendRole(out);
  finish_sent_ = true;
  JsonWriter json = beginChunk(out);
  endChunk(json, finish_reason, out);
}

void AnthropicToOpenAiStream::complete(std::string& out) {
  sendFinish("stop", out);
  if (include_usage_) {
    detail::beginOpenAiSse(out);
    JsonWriter json(out);
    json.beginObject().key("id").value(id_).key("object").value("chat.completion.chunk");
    json.key("created").value(created_).key("model").value(model_);
    json.key("choices").beginArray().endArray().key("usage").beginObject();
    json.key("prompt_tokens").value(inputTokens());
    json.key("completion_tokens").value(output_tokens_);
    json.key("total_tokens").value(inputTokens() + output_tokens_);
    json.key("prompt_tokens_details").beginObject().key("cached_tokens").value(cache_read_tokens_);
    json.endObject().endObject().endObject();
    detail::endSse(out);
  }
  out += "data: [DONE]\n\n";
  done_ = true;
}

void AnthropicToOpenAiStream::fail(std::string_view type, std::string_view message,
                                   std::string& out) {
  detail::beginOpenAiSse(out);
  JsonWriter json(out);
  json.beginObject().key("error").beginObject().key("message").value(message);
  json.key("type").value(type).key("param").null().key("code").null().endObject().endObject();
  detail::endSse(out);
  out += "data: [DONE]\n\n";
  done_ = true;
}

}  // namespace sluice::translate
