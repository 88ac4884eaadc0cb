// Non-streaming response bodies, both directions.

#include <fmt/format.h>

#include <ctime>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/translate.h"
#include "translate/vocabulary.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;
using detail::lookup;
using detail::Path;

tl::expected<dom::element, TranslateError> parseUpstream(std::string_view body) {
  dom::element document;
  if (auto error = detail::parseJson(body, document)) {
    return tl::make_unexpected(TranslateError{
        502, "upstream_error",
        fmt::format("the upstream sent invalid JSON: {}", simdjson::error_message(error))});
  }
  return document;
}

// A text-like field that OpenAI-compatible servers send as a string or as an array of text parts.
bool readText(detail::Reader& reader, dom::object parent, std::string_view key,
              const Path& parent_path, std::string& out) {
  dom::element value;
  if (!lookup(parent, key, value)) return true;
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) {
    out.append(text);
    return true;
  }
  const Path at(parent_path, key);
  dom::array parts;
  if (value.get_array().get(parts) != simdjson::SUCCESS) {
    return reader.fail(at, "must be a string or an array of text parts");
  }
  size_t index = 0;
  for (dom::element part_value : parts) {
    const Path part_path(at, index++);
    dom::object part;
    if (!reader.object(part_value, part_path, part)) return false;
    if (part["text"].get_string().get(text) == simdjson::SUCCESS) out.append(text);
  }
  return true;
}

// vLLM reports the stop string that ended the answer in choices[].stop_reason, SGLang in
// choices[].matched_stop; a token id (a number) is not a stop sequence.
std::optional<std::string_view> matchedStopSequence(dom::object choice) {
  std::string_view text;
  for (std::string_view key : {"stop_reason", "matched_stop"}) {
    if (choice[key].get_string().get(text) == simdjson::SUCCESS && !text.empty()) return text;
  }
  return std::nullopt;
}

class OpenAiResponseConverter {
 public:
  bool convert(dom::element document, std::string_view client_model, std::string& out);
  TranslateError takeError() { return reader_.takeError(); }

 private:
  bool writeToolUse(dom::element call, const Path& at, JsonWriter& json);

  detail::Reader reader_ = detail::upstreamReader();
};

bool OpenAiResponseConverter::convert(dom::element document, std::string_view client_model,
                                      std::string& out) {
  const Path root;
  dom::object response;
  if (document.get_object().get(response) != simdjson::SUCCESS) {
    return reader_.failMessage("the upstream response is not a JSON object");
  }
  dom::element value;
  if (lookup(response, "error", value)) {
    std::string_view message = detail::stringField(value, "message");
    if (message.empty() && value.get_string().get(message) != simdjson::SUCCESS) message = {};
    return reader_.failMessage(fmt::format("the upstream answered with an error: {}", message));
  }
  std::optional<std::string_view> id, model;
  if (!reader_.optionalString(response, "id", root, id)) return false;
  if (!reader_.optionalString(response, "model", root, model)) return false;

  const Path choices_path(root, "choices");
  const Path choice_path(choices_path, size_t{0});
  const Path message_path(choice_path, "message");
  dom::array choices;
  dom::object choice, message;
  if (!lookup(response, "choices", value)) {
    return reader_.failMessage("the upstream response has no \"choices\"");
  }
  if (!reader_.array(value, choices_path, choices)) return false;
  if (choices.size() == 0) return reader_.fail(choices_path, "is empty");
  if (!reader_.object(choices.at(0).value_unsafe(), choice_path, choice)) return false;
  if (!lookup(choice, "message", value)) return reader_.fail(choice_path, "has no \"message\"");
  if (!reader_.object(value, message_path, message)) return false;

  std::string text, reasoning, refusal;
  if (!readText(reader_, message, "content", message_path, text)) return false;
  if (!readText(reader_, message, "reasoning_content", message_path, reasoning)) return false;
  if (reasoning.empty() && !readText(reader_, message, "reasoning", message_path, reasoning)) {
    return false;
  }
  if (!readText(reader_, message, "refusal", message_path, refusal)) return false;

  std::optional<std::string_view> finish_reason;
  if (!reader_.optionalString(choice, "finish_reason", choice_path, finish_reason)) return false;
  std::string_view stop_reason = detail::anthropicStopReason(finish_reason.value_or("stop"));
  std::optional<std::string_view> stop_sequence;
  if (!refusal.empty()) {
    stop_reason = "refusal";
  } else if (finish_reason.value_or("stop") == "stop") {
    stop_sequence = matchedStopSequence(choice);
    if (stop_sequence) stop_reason = "stop_sequence";
  }

  uint64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  if (lookup(response, "usage", value)) {
    const Path usage_path(root, "usage");
    dom::object usage, details;
    if (!reader_.object(value, usage_path, usage)) return false;
    if (!reader_.optionalCount(usage, "prompt_tokens", usage_path, prompt_tokens)) return false;
    if (!reader_.optionalCount(usage, "completion_tokens", usage_path, completion_tokens)) {
      return false;
    }
    if (lookup(usage, "prompt_tokens_details", value)) {
      const Path details_path(usage_path, "prompt_tokens_details");
      if (!reader_.object(value, details_path, details)) return false;
      if (!reader_.optionalCount(details, "cached_tokens", details_path, cached_tokens)) {
        return false;
      }
    }
  }

  JsonWriter json(out);
  json.beginObject().key("id").value(detail::anthropicMessageId(id.value_or("")));
  json.key("type").value("message").key("role").value("assistant");
  json.key("model").value(client_model.empty() ? model.value_or("") : client_model);
  json.key("content").beginArray();
  if (!reasoning.empty()) {
    json.beginObject().key("type").value("thinking").key("thinking").value(reasoning);
    json.key("signature").value("").endObject();
  }
  if (!text.empty()) {
    json.beginObject().key("type").value("text").key("text").value(text).endObject();
  }
  if (!refusal.empty()) {
    json.beginObject().key("type").value("text").key("text").value(refusal).endObject();
  }
  if (lookup(message, "tool_calls", value)) {
    const Path calls_path(message_path, "tool_calls");
    dom::array calls;
    if (!reader_.array(value, calls_path, calls)) return false;
    size_t index = 0;
    for (dom::element call : calls) {
      if (!writeToolUse(call, Path(calls_path, index++), json)) return false;
    }
  }
  json.endArray();
  json.key("stop_reason").value(stop_reason).key("stop_sequence");
  if (stop_sequence) {
    json.value(*stop_sequence);
  } else {
    json.null();
  }
  // Anthropic counts cache reads apart from input_tokens; OpenAI's prompt_tokens includes them.
  json.key("usage").beginObject();
  json.key("input_tokens").value(prompt_tokens - std::min(cached_tokens, prompt_tokens));
  json.key("cache_creation_input_tokens").value(uint64_t{0});
  json.key("cache_read_input_tokens").value(cached_tokens);
  json.key("output_tokens").value(completion_tokens);
  json.endObject().endObject();
  return true;
}

bool OpenAiResponseConverter::writeToolUse(dom::element call_value, const Path& at,
                                           JsonWriter& json) {
  dom::object call, function;
  dom::element value;
  if (!reader_.object(call_value, at, call)) return false;
  std::optional<std::string_view> id, name;
  if (!reader_.optionalString(call, "id", at, id)) return false;
  const Path function_path(at, "function");
  if (!lookup(call, "function", value)) return reader_.fail(at, "has no \"function\"");
  if (!reader_.object(value, function_path, function)) return false;
  if (!reader_.optionalString(function, "name", function_path, name)) return false;
  if (!name) return reader_.fail(function_path, "has no \"name\"");

  std::string input = "{}";
  const Path arguments_path(function_path, "arguments");
  std::optional<std::string_view> arguments;
  if (!reader_.optionalString(function, "arguments", function_path, arguments)) return false;
  if (arguments && arguments->find_first_not_of(" \t\r\n") != std::string_view::npos) {
    dom::element parsed;
    const auto error = detail::parseJson(*arguments, parsed, detail::ParserSlot::kNested);
    if (error || !parsed.is_object()) {
      return reader_.fail(arguments_path,
                          fmt::format("is not a JSON object (the model wrote invalid tool "
                                      "arguments: {})",
                                      error ? simdjson::error_message(error) : "not an object"));
    }
    input = detail::serialize(parsed);
  }
  json.beginObject().key("type").value("tool_use");
  json.key("id").value(id && !id->empty() ? std::string(*id) : detail::newToolUseId());
  json.key("name").value(*name).key("input").raw(input).endObject();
  return true;
}

class AnthropicResponseConverter {
 public:
  bool convert(dom::element document, std::string_view client_model, std::string& out);
  TranslateError takeError() { return reader_.takeError(); }

 private:
  detail::Reader reader_ = detail::upstreamReader();
};

bool AnthropicResponseConverter::convert(dom::element document, std::string_view client_model,
                                         std::string& out) {
  const Path root;
  dom::object response;
  if (document.get_object().get(response) != simdjson::SUCCESS) {
    return reader_.failMessage("the upstream response is not a JSON object");
  }
  std::optional<std::string_view> type, id, model, stop_reason;
  if (!reader_.optionalString(response, "type", root, type)) return false;
  dom::element value;
  if (type == "error" || lookup(response, "error", value)) {
    std::string_view message;
    dom::element error;
    if (response["error"].get(error) == simdjson::SUCCESS) {
      message = detail::stringField(error, "message");
    }
    return reader_.failMessage(fmt::format("the upstream answered with an error: {}", message));
  }
  if (!reader_.optionalString(response, "id", root, id)) return false;
  if (!reader_.optionalString(response, "model", root, model)) return false;
  if (!reader_.optionalString(response, "stop_reason", root, stop_reason)) return false;

  const Path content_path(root, "content");
  dom::array content;
  if (!lookup(response, "content", value)) {
    return reader_.failMessage("the upstream response has no \"content\"");
  }
  if (!reader_.array(value, content_path, content)) return false;
  std::string text, reasoning;
  size_t tool_calls = 0, index = 0;
  for (dom::element block_value : content) {
    const Path block_path(content_path, index++);
    dom::object block;
    std::optional<std::string_view> block_type, part;
    if (!reader_.object(block_value, block_path, block)) return false;
    if (!reader_.optionalString(block, "type", block_path, block_type)) return false;
    if (block_type == "text") {
      if (!reader_.optionalString(block, "text", block_path, part)) return false;
      text.append(part.value_or(""));
    } else if (block_type == "thinking") {
      if (!reader_.optionalString(block, "thinking", block_path, part)) return false;
      reasoning.append(part.value_or(""));
    } else if (block_type == "tool_use") {
      std::optional<std::string_view> tool_id, name;
      if (!reader_.optionalString(block, "id", block_path, tool_id)) return false;
      if (!reader_.optionalString(block, "name", block_path, name)) return false;
      if (!name) return reader_.fail(block_path, "has no \"name\"");
      if (lookup(block, "input", value)) {
        dom::object input;
        if (!reader_.object(value, Path(block_path, "input"), input)) return false;
      }
      ++tool_calls;
    }
  }

  uint64_t input_tokens = 0, output_tokens = 0, cache_read = 0, cache_write = 0;
  if (lookup(response, "usage", value)) {
    const Path usage_path(root, "usage");
    dom::object usage;
    if (!reader_.object(value, usage_path, usage)) return false;
    if (!reader_.optionalCount(usage, "input_tokens", usage_path, input_tokens) ||
        !reader_.optionalCount(usage, "output_tokens", usage_path, output_tokens) ||
        !reader_.optionalCount(usage, "cache_read_input_tokens", usage_path, cache_read) ||
        !reader_.optionalCount(usage, "cache_creation_input_tokens", usage_path, cache_write)) {
      return false;
    }
  }

  JsonWriter json(out);
  json.beginObject().key("id").value(detail::openAiCompletionId(id.value_or("")));
  json.key("object").value("chat.completion");
  json.key("created").value(static_cast<int64_t>(std::time(nullptr)));
  json.key("model").value(client_model.empty() ? model.value_or("") : client_model);
  json.key("choices").beginArray().beginObject().key("index").value(0);
  json.key("message").beginObject().key("role").value("assistant").key("content");
  if (text.empty() && tool_calls > 0) {
    json.null();
  } else {
    json.value(text);
  }
  if (!reasoning.empty()) json.key("reasoning_content").value(reasoning);
  if (tool_calls > 0) {
    json.key("tool_calls").beginArray();
    for (dom::element block_value : content) {
      dom::object block = block_value.get_object().value_unsafe();
      if (detail::stringField(block, "type") != "tool_use") continue;
      const std::string_view tool_id = detail::stringField(block, "id");
      dom::element input;
      json.beginObject();
      json.key("id").value(tool_id.empty() ? detail::newToolCallId() : std::string(tool_id));
      json.key("type").value("function").key("function").beginObject();
      json.key("name").value(block["name"].get_string().value_unsafe());
      json.key("arguments")
          .value(lookup(block, "input", input) ? detail::serialize(input) : std::string("{}"));
      json.endObject().endObject();
    }
    json.endArray();
  }
  json.endObject();
  json.key("logprobs").null();
  json.key("finish_reason").value(detail::openAiFinishReason(stop_reason.value_or("end_turn")));
  json.endObject().endArray();
  const uint64_t prompt_tokens = input_tokens + cache_read + cache_write;
  json.key("usage").beginObject();
  json.key("prompt_tokens").value(prompt_tokens);
  json.key("completion_tokens").value(output_tokens);
  json.key("total_tokens").value(prompt_tokens + output_tokens);
  json.key("prompt_tokens_details").beginObject().key("cached_tokens").value(cache_read);
  json.endObject().endObject().endObject();
  return true;
}

}  // namespace

tl::expected<std::string, TranslateError> openAiToAnthropicResponse(std::string_view openai_body,
                                                                    std::string_view client_model) {
  auto document = parseUpstream(openai_body);
  if (!document) return tl::make_unexpected(std::move(document.error()));
  std::string out;
  out.reserve(openai_body.size() + 256);
  OpenAiResponseConverter converter;
  const bool ok = converter.convert(*document, client_model, out);
  detail::trimParsers();
  if (!ok) return tl::make_unexpected(converter.takeError());
  return out;
}

tl::expected<std::string, TranslateError> anthropicToOpenAiResponse(std::string_view anthropic_body,
                                                                    std::string_view client_model) {
  auto document = parseUpstream(anthropic_body);
  if (!document) return tl::make_unexpected(std::move(document.error()));
  std::string out;
  out.reserve(anthropic_body.size() + 256);
  AnthropicResponseConverter converter;
  const bool ok = converter.convert(*document, client_model, out);
  detail::trimParsers();
  if (!ok) return tl::make_unexpected(converter.takeError());
  return out;
}

}  // namespace sluice::translate
