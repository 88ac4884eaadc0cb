#include "proxy/request_fields.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>

namespace sluice::proxy {
namespace {

ApiError invalid(std::string message) {
  return ApiError{400, "invalid_request_error", "invalid_json", std::move(message)};
}

}  // namespace

tl::expected<RequestFields, ApiError> parseRequestFields(std::string& body) {
  using namespace simdjson;
  if (body.capacity() - body.size() < SIMDJSON_PADDING)
    body.reserve(body.size() + SIMDJSON_PADDING);
  thread_local ondemand::parser parser;
  ondemand::document doc;
  if (auto error =
          parser.iterate(padded_string_view(body.data(), body.size(), body.capacity())).get(doc)) {
    return tl::make_unexpected(invalid(fmt::format("invalid JSON body: {}", error_message(error))));
  }
  ondemand::object object;
  if (doc.get_object().get(object)) {
    return tl::make_unexpected(invalid("the request body must be a JSON object"));
  }
  RequestFields fields;
  bool has_model = false;
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) {
      return tl::make_unexpected(
          invalid(fmt::format("invalid JSON body: {}", error_message(error))));
    }
    if (key == "model") {
      std::string_view model;
      if (field.value().get_string().get(model)) {
        return tl::make_unexpected(
            ApiError{400, "invalid_request_error", "invalid_model", "\"model\" must be a string"});
      }
      fields.model.assign(model);
      has_model = true;
    } else if (key == "stream_options") {
      ondemand::object options;
      if (field.value().get_object().get(options) == SUCCESS) {
        bool include = false;
        if (options["include_usage"].get_bool().get(include) == SUCCESS) {
          fields.include_usage = include;
        }
      }
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      uint64_t value = 0;
      if (field.value().get_uint64().get(value) == SUCCESS) {
        fields.max_tokens = std::max(fields.max_tokens, value);
      }
    } else if (key == "stream") {
      auto value = field.value();
      bool is_null = false;
      if (value.is_null().get(is_null) == SUCCESS && is_null) continue;
      if (value.get_bool().get(fields.stream)) {
        return tl::make_unexpected(ApiError{400, "invalid_request_error", "invalid_stream",
                                            "\"stream\" must be a boolean"});
      }
    }
  }
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == simdjson::SUCCESS) {
    return tl::make_unexpected(invalid("invalid JSON body: trailing content after the object"));
  }
  if (!has_model || fields.model.empty()) {
    return tl::make_unexpected(ApiError{400, "invalid_request_error", "missing_model",
                                        "the request body must name a \"model\""});
  }
  return fields;
}

namespace {

// Appends a string, or the "text" of each part of an array of content parts; false on
// malformed JSON.
bool appendText(simdjson::ondemand::value value, std::string& out, size_t limit) {
  using namespace simdjson;
  auto append = [&](std::string_view text) {
    out.append(text.substr(0, limit - std::min(limit, out.size())));
    out += '\n';
  };
  ondemand::json_type type;
  if (value.type().get(type)) return false;
  if (type == ondemand::json_type::string) {
    std::string_view text;
    if (value.get_string().get(text)) return false;
    append(text);
    return true;
  }
  if (type != ondemand::json_type::array) return true;  // other shapes carry no prompt text
  ondemand::array parts;
  if (value.get_array().get(parts)) return false;
  for (auto part : parts) {
    ondemand::value item;
    if (part.get(item) || item.type().get(type)) return false;
    std::string_view piece;
    if (type == ondemand::json_type::string) {  // "prompt": ["a", "b"]
      if (item.get_string().get(piece)) return false;
      append(piece);
    } else if (type == ondemand::json_type::object) {
      ondemand::object object;
      if (item.get_object().get(object)) return false;
      auto text = object.find_field_unordered("text");
      if (text.error() == SUCCESS && text.get_string().get(piece) == SUCCESS) append(piece);
    }
  }
  return true;
}

}  // namespace

std::string promptText(std::string& body, size_t limit) {
  using namespace simdjson;
  if (body.capacity() - body.size() < SIMDJSON_PADDING)
    body.reserve(body.size() + SIMDJSON_PADDING);
  thread_local ondemand::parser parser;
  ondemand::document doc;
  ondemand::object object;
  if (parser.iterate(padded_string_view(body.data(), body.size(), body.capacity())).get(doc) ||
      doc.get_object().get(object)) {
    return {};
  }
  std::string out;
  for (auto field : object) {
    std::string_view key;
    ondemand::value value;
    if (field.unescaped_key().get(key) || field.value().get(value)) return {};
    if (key == "system" || key == "prompt" || key == "input") {
      if (!appendText(value, out, limit)) return {};
    } else if (key == "messages") {
      ondemand::array messages;
      if (value.get_array().get(messages)) continue;
      for (auto message : messages) {
        ondemand::json_type type;
        ondemand::object item;
        if (message.type().get(type)) return {};
        if (type != ondemand::json_type::object) continue;  // not a message: no prompt text
        if (message.get_object().get(item)) return {};
        auto content = item.find_field_unordered("content");
        ondemand::value text;
        if (content.get(text) == SUCCESS && !appendText(text, out, limit)) return {};
      }
    }
  }
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == SUCCESS) return {};  // trailing content
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace sluice::proxy
