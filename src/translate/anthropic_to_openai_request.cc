// Anthropic /v1/messages request → OpenAI /v1/chat/completions request.

#include <fmt/format.h>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/translate.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;
using detail::lookup;
using detail::Path;

class AnthropicRequestConverter {
 public:
  explicit AnthropicRequestConverter(std::string& out) : json_(out) {}

  bool convert(dom::element document, std::string_view upstream_model);
  TranslateError takeError() { return reader_.takeError(); }

 private:
  bool convertSystem(dom::element system, const Path& at);
  bool convertMessage(dom::element message, const Path& at);
  bool convertUserBlocks(dom::array blocks, const Path& at);
  bool convertToolResult(dom::object block, const Path& at);
  bool convertAssistantBlocks(dom::array blocks, const Path& at);
  bool writeImagePart(dom::object block, const Path& at);
  bool writeDocumentPart(dom::object block, const Path& at);
  bool blockType(dom::element block, const Path& at, dom::object& object, std::string_view& type);
  bool convertTools(dom::element tools, const Path& at, bool& any);
  bool convertToolChoice(dom::element choice, const Path& at);
  bool convertSamplingFields(dom::object request);

  JsonWriter json_;
  detail::Reader reader_ = detail::clientReader();
};

bool AnthropicRequestConverter::blockType(dom::element block, const Path& at, dom::object& object,
                                          std::string_view& type) {
  if (!reader_.object(block, at, object)) return false;
  dom::element type_value;
  if (!lookup(object, "type", type_value)) return reader_.fail(at, "needs a \"type\"");
  return reader_.string(type_value, Path(at, "type"), type);
}

bool AnthropicRequestConverter::convert(dom::element document, std::string_view upstream_model) {
  const Path root;
  dom::object request;
  if (document.get_object().get(request) != simdjson::SUCCESS) {
    return reader_.failMessage("the request body must be a JSON object");
  }
  json_.beginObject();

  std::optional<std::string_view> model;
  if (!reader_.optionalString(request, "model", root, model)) return false;
  if (!upstream_model.empty()) model = upstream_model;
  if (!model || model->empty()) return reader_.failMessage("\"model\" is required");
  json_.key("model").value(*model);

  const Path messages_path(root, "messages");
  dom::element messages_value;
  if (!lookup(request, "messages", messages_value)) {
    return reader_.failMessage("\"messages\" is required");
  }
  dom::array messages;
  if (!reader_.array(messages_value, messages_path, messages)) return false;

  json_.key("messages").beginArray();
  dom::element system;
  if (lookup(request, "system", system) && !convertSystem(system, Path(root, "system"))) {
    return false;
  }
  size_t index = 0;
  for (dom::element message : messages) {
    if (!convertMessage(message, Path(messages_path, index++))) return false;
  }
  json_.endArray();

  if (!convertSamplingFields(request)) return false;

  dom::element tools;
  bool any_tools = false;
  if (lookup(request, "tools", tools) && !convertTools(tools, Path(root, "tools"), any_tools)) {
    return false;
  }
  dom::element choice;
  if (lookup(request, "tool_choice", choice)) {
    // OpenAI rejects tool_choice without tools; Anthropic accepts it, so drop it then.
    if (any_tools && !convertToolChoice(choice, Path(root, "tool_choice"))) return false;
  }
  json_.endObject();
  return true;
}

bool AnthropicRequestConverter::convertSamplingFields(dom::object request) {
  const Path root;
  dom::element value;
  if (lookup(request, "max_tokens", value)) {
    uint64_t max_tokens = 0;
    if (!reader_.count(value, Path(root, "max_tokens"), max_tokens)) return false;
    json_.key("max_tokens").value(max_tokens);
  }
  for (std::string_view name : {"temperature", "top_p"}) {
    if (!lookup(request, name, value)) continue;
    if (!reader_.number(value, Path(root, name))) return false;
    json_.key(name).raw(detail::serialize(value));
  }
  if (lookup(request, "stop_sequences", value)) {
    const Path at(root, "stop_sequences");
    dom::array stops;
    if (!reader_.array(value, at, stops)) return false;
    if (stops.size() > 0) {
      json_.key("stop").beginArray();
      size_t index = 0;
      for (dom::element stop : stops) {
        std::string_view text;
        if (!reader_.string(stop, Path(at, index++), text)) return false;
        json_.value(text);
      }
      json_.endArray();
    }
  }
  if (lookup(request, "stream", value)) {
    bool stream = false;
    if (!reader_.boolean(value, Path(root, "stream"), stream)) return false;
    json_.key("stream").value(stream);
    // Usage arrives only when asked for; the gateway needs it for accounting and message_delta.
    if (stream)
      json_.key("stream_options").beginObject().key("include_usage").value(true).endObject();
  }
  if (lookup(request, "metadata", value)) {
    const Path at(root, "metadata");
    dom::object metadata;
    if (!reader_.object(value, at, metadata)) return false;
    std::optional<std::string_view> user;
    if (!reader_.optionalString(metadata, "user_id", at, user)) return false;
    if (user) json_.key("user").value(*user);
  }
  return true;
}

bool AnthropicRequestConverter::convertSystem(dom::element system, const Path& at) {
  std::string_view text;
  if (system.get_string().get(text) == simdjson::SUCCESS) {
    if (!text.empty()) {
      json_.beginObject().key("role").value("system").key("content").value(text).endObject();
    }
    return true;
  }
  dom::array blocks;
  if (system.get_array().get(blocks) != simdjson::SUCCESS) {
    return reader_.fail(at, "must be a string or an array of text blocks");
  }
  // Joined into one string: OpenAI-compatible servers' chat templates expect one system text.
  std::string joined;
  size_t index = 0;
  for (dom::element block : blocks) {
    const Path block_path(at, index++);
    dom::object object;
    std::string_view type;
    if (!blockType(block, block_path, object, type)) return false;
    if (type != "text") return reader_.fail(Path(block_path, "type"), "must be \"text\"");
    dom::element text_value;
    if (!reader_.requiredString(object, "text", block_path, text)) return false;
    if (text.empty()) continue;
    if (!joined.empty()) joined += "\n\n";
    joined += text;
  }
  if (!joined.empty()) {
    json_.beginObject().key("role").value("system").key("content").value(joined).endObject();
  }
  return true;
}

bool AnthropicRequestConverter::convertMessage(dom::element message_value, const Path& at) {
  dom::object message;
  if (!reader_.object(message_value, at, message)) return false;
  dom::element value;
  std::string_view role;
  if (!reader_.requiredString(message, "role", at, role)) return false;
  if (role != "user" && role != "assistant") {
    return reader_.fail(Path(at, "role"), "must be \"user\" or \"assistant\"");
  }
  const Path content_path(at, "content");
  if (!lookup(message, "content", value)) return reader_.fail(at, "needs a \"content\"");
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) {
    json_.beginObject().key("role").value(role).key("content").value(text).endObject();
    return true;
  }
  dom::array blocks;
  if (value.get_array().get(blocks) != simdjson::SUCCESS) {
    return reader_.fail(content_path, "must be a string or an array of content blocks");
  }
  return role == "user" ? convertUserBlocks(blocks, content_path)
                        : convertAssistantBlocks(blocks, content_path);
}

// A user turn: tool_result blocks become "tool" messages, which OpenAI wants right after the
// assistant's tool_calls; the other blocks (and images inside tool results, which a tool message
// cannot carry) follow as one user message.
bool AnthropicRequestConverter::convertUserBlocks(dom::array blocks, const Path& at) {
  size_t parts = 0;
  std::string_view single_text;
  bool single_is_text = false;
  size_t index = 0;
  for (dom::element block : blocks) {
    const Path block_path(at, index++);
    dom::object object;
    std::string_view type;
    if (!blockType(block, block_path, object, type)) return false;
    if (type == "tool_result") {
      if (!convertToolResult(object, block_path)) return false;
      dom::element content;
      dom::array inner;
      if (lookup(object, "content", content) &&
          content.get_array().get(inner) == simdjson::SUCCESS) {
        for (dom::element item : inner) {
          dom::object item_object;
          std::string_view item_type;
          if (item.get_object().get(item_object) == simdjson::SUCCESS &&
              item_object["type"].get_string().get(item_type) == simdjson::SUCCESS &&
              item_type == "image") {
            ++parts;
          }
        }
      }
    } else if (type == "thinking" || type == "redacted_thinking") {
      continue;
    } else {
      ++parts;
      single_is_text = parts == 1 && type == "text";
      if (single_is_text && object["text"].get_string().get(single_text) != simdjson::SUCCESS) {
        return reader_.fail(Path(block_path, "text"), "must be a string");
      }
    }
  }
  if (parts == 0) return true;
  json_.beginObject().key("role").value("user").key("content");
  if (parts == 1 && single_is_text) {
    json_.value(single_text).endObject();
    return true;
  }
  json_.beginArray();
  index = 0;
  for (dom::element block : blocks) {
    const Path block_path(at, index++);
    dom::object object = block.get_object().value_unsafe();
    std::string_view type = object["type"].get_string().value_unsafe();
    if (type == "text") {
      dom::element text_value;
      std::string_view text;
      if (!reader_.requiredString(object, "text", block_path, text)) return false;
      json_.beginObject().key("type").value("text").key("text").value(text).endObject();
    } else if (type == "image") {
      if (!writeImagePart(object, block_path)) return false;
    } else if (type == "document") {
      if (!writeDocumentPart(object, block_path)) return false;
    } else if (type == "tool_result") {
      dom::element content;
      dom::array inner;
      if (!lookup(object, "content", content) ||
          content.get_array().get(inner) != simdjson::SUCCESS) {
        continue;
      }
      const Path content_path(block_path, "content");
      size_t inner_index = 0;
      for (dom::element item : inner) {
        const Path item_path(content_path, inner_index++);
        dom::object item_object = item.get_object().value_unsafe();
        std::string_view item_type;
        if (item_object["type"].get_string().get(item_type) == simdjson::SUCCESS &&
            item_type == "image" && !writeImagePart(item_object, item_path)) {
          return false;
        }
      }
    } else if (type != "thinking" && type != "redacted_thinking") {
      return reader_.fail(
          Path(block_path, "type"),
          fmt::format("\"{}\" is not supported by OpenAI-compatible upstreams", type));
    }
  }
  json_.endArray().endObject();
  return true;
}

bool AnthropicRequestConverter::convertToolResult(dom::object block, const Path& at) {
  dom::element value;
  std::string_view tool_use_id;
  if (!reader_.requiredString(block, "tool_use_id", at, tool_use_id)) return false;

  // A tool message carries text only: text blocks are joined; images move to the user message.
  std::string text;
  const Path content_path(at, "content");
  if (lookup(block, "content", value)) {
    std::string_view plain;
    dom::array items;
    if (value.get_string().get(plain) == simdjson::SUCCESS) {
      text.assign(plain);
    } else if (value.get_array().get(items) == simdjson::SUCCESS) {
      size_t index = 0;
      for (dom::element item : items) {
        const Path item_path(content_path, index++);
        dom::object object;
        std::string_view type;
        if (!blockType(item, item_path, object, type)) return false;
        if (type == "image") continue;
        if (type != "text") {
          return reader_.fail(Path(item_path, "type"), "must be \"text\" or \"image\"");
        }
        dom::element text_value;
        std::string_view item_text;
        if (!reader_.requiredString(object, "text", item_path, item_text)) return false;
        if (!text.empty()) text += '\n';
        text += item_text;
      }
    } else {
      return reader_.fail(content_path, "must be a string or an array of content blocks");
    }
  }
  json_.beginObject().key("role").value("tool").key("tool_call_id").value(tool_use_id);
  json_.key("content").value(text).endObject();
  return true;
}

bool AnthropicRequestConverter::convertAssistantBlocks(dom::array blocks, const Path& at) {
  // OpenAI's assistant message has one text and a list of tool calls.
  std::string text;
  size_t tool_calls = 0;
  size_t index = 0;
  for (dom::element block : blocks) {
    const Path block_path(at, index++);
    dom::object object;
    std::string_view type;
    if (!blockType(block, block_path, object, type)) return false;
    dom::element value;
    if (type == "text") {
      std::string_view part;
      if (!reader_.requiredString(object, "text", block_path, part)) return false;
      text += part;
    } else if (type == "tool_use") {
      std::string_view id, name;
      if (!reader_.requiredString(object, "id", block_path, id)) return false;
      if (!reader_.requiredString(object, "name", block_path, name)) return false;
      if (lookup(object, "input", value)) {
        dom::object input;
        if (!reader_.object(value, Path(block_path, "input"), input)) return false;
      }
      ++tool_calls;
    } else if (type != "thinking" && type != "redacted_thinking") {
      return reader_.fail(
          Path(block_path, "type"),
          fmt::format("\"{}\" is not supported by OpenAI-compatible upstreams", type));
    }
  }
  json_.beginObject().key("role").value("assistant").key("content");
  if (text.empty() && tool_calls > 0) {
    json_.null();
  } else {
    json_.value(text);
  }
  if (tool_calls > 0) {
    json_.key("tool_calls").beginArray();
    for (dom::element block : blocks) {
      dom::object object = block.get_object().value_unsafe();
      if (object["type"].get_string().value_unsafe() != "tool_use") continue;
      dom::element input;
      json_.beginObject()
          .key("id")
          .value(object["id"].get_string().value_unsafe())
          .key("type")
          .value("function")
          .key("function")
          .beginObject()
          .key("name")
          .value(object["name"].get_string().value_unsafe())
          .key("arguments")
          .value(lookup(object, "input", input) ? detail::serialize(input) : std::string("{}"))
          .endObject()
          .endObject();
    }
    json_.endArray();
  }
  json_.endObject();
  return true;
}

bool AnthropicRequestConverter::writeImagePart(dom::object block, const Path& at) {
  const Path source_path(at, "source");
  dom::element value;
  dom::object source;
  if (!lookup(block, "source", value)) return reader_.fail(at, "needs a \"source\"");
  if (!reader_.object(value, source_path, source)) return false;
  std::string_view source_type;
  if (!reader_.requiredString(source, "type", source_path, source_type)) return false;
  std::string url;
  if (source_type == "base64") {
    std::string_view media_type, data;
    if (!lookup(source, "media_type", value)) {
      return reader_.fail(source_path, "needs a \"media_type\"");
    }
    if (!reader_.string(value, Path(source_path, "media_type"), media_type)) return false;
    if (!reader_.requiredString(source, "data", source_path, data)) return false;
    url.reserve(media_type.size() + data.size() + 13);
    url.append("data:").append(media_type).append(";base64,").append(data);
  } else if (source_type == "url") {
    std::string_view link;
    if (!reader_.requiredString(source, "url", source_path, link)) return false;
    url.assign(link);
  } else {
    return reader_.fail(Path(source_path, "type"), "must be \"base64\" or \"url\"");
  }
  json_.beginObject().key("type").value("image_url");
  json_.key("image_url").beginObject().key("url").value(url).endObject().endObject();
  return true;
}

// PDFs become OpenAI "file" parts; plain-text documents become text.
bool AnthropicRequestConverter::writeDocumentPart(dom::object block, const Path& at) {
  const Path source_path(at, "source");
  dom::element value;
  dom::object source;
  if (!lookup(block, "source", value)) return reader_.fail(at, "needs a \"source\"");
  if (!reader_.object(value, source_path, source)) return false;
  std::string_view source_type, data;
  if (!reader_.requiredString(source, "type", source_path, source_type)) return false;
  if (source_type != "base64" && source_type != "text") {
    return reader_.fail(Path(source_path, "type"),
                        "must be \"base64\" or \"text\" for OpenAI-compatible upstreams");
  }
  if (!reader_.requiredString(source, "data", source_path, data)) return false;
  if (source_type == "text") {
    json_.beginObject().key("type").value("text").key("text").value(data).endObject();
    return true;
  }
  std::optional<std::string_view> media_type, title;
  if (!reader_.optionalString(source, "media_type", source_path, media_type)) return false;
  if (!reader_.optionalString(block, "title", at, title)) return false;
  const std::string_view type = media_type.value_or("application/pdf");
  std::string file_data;
  file_data.reserve(type.size() + data.size() + 13);
  file_data.append("data:").append(type).append(";base64,").append(data);
  json_.beginObject().key("type").value("file").key("file").beginObject();
  json_.key("filename").value(title.value_or("document.pdf"));
  json_.key("file_data").value(file_data).endObject().endObject();
  return true;
}

bool AnthropicRequestConverter::convertTools(dom::element tools_value, const Path& at, bool& any) {
  dom::array tools;
  if (!reader_.array(tools_value, at, tools)) return false;
  if (tools.size() == 0) return true;
  any = true;
  json_.key("tools").beginArray();
  size_t index = 0;
  for (dom::element tool_value : tools) {
    const Path tool_path(at, index++);
    dom::object tool;
    if (!reader_.object(tool_value, tool_path, tool)) return false;
    std::optional<std::string_view> type, name, description;
    if (!reader_.optionalString(tool, "type", tool_path, type)) return false;
    if (!reader_.optionalString(tool, "name", tool_path, name)) return false;
    if (!reader_.optionalString(tool, "description", tool_path, description)) return false;
    dom::element schema;
    const bool has_schema = lookup(tool, "input_schema", schema);
    if (type && *type != "custom" && !has_schema) {
      // Anthropic's server tools (web_search_…, bash_…) have no OpenAI equivalent.
      return reader_.fail(
          Path(tool_path, "type"),
          fmt::format("\"{}\" is not supported by OpenAI-compatible upstreams", *type));
    }
    if (!name || name->empty()) return reader_.fail(tool_path, "needs a \"name\"");
    json_.beginObject().key("type").value("function").key("function").beginObject();
    json_.key("name").value(*name);
    if (description) json_.key("description").value(*description);
    if (has_schema) {
      dom::object schema_object;
      if (!reader_.object(schema, Path(tool_path, "input_schema"), schema_object)) return false;
      json_.key("parameters").raw(detail::serialize(schema));
    } else {
      json_.key("parameters").raw(R"({"type":"object","properties":{}})");
    }
    json_.endObject().endObject();
  }
  json_.endArray();
  return true;
}

bool AnthropicRequestConverter::convertToolChoice(dom::element choice_value, const Path& at) {
  dom::object choice;
  if (!reader_.object(choice_value, at, choice)) return false;
  dom::element value;
  std::string_view type;
  if (!reader_.requiredString(choice, "type", at, type)) return false;
  if (type == "auto") {
    json_.key("tool_choice").value("auto");
  } else if (type == "any") {
    json_.key("tool_choice").value("required");
  } else if (type == "none") {
    json_.key("tool_choice").value("none");
  } else if (type == "tool") {
    std::string_view name;
    if (!reader_.requiredString(choice, "name", at, name)) return false;
    json_.key("tool_choice").beginObject().key("type").value("function");
    json_.key("function").beginObject().key("name").value(name).endObject().endObject();
  } else {
    return reader_.fail(Path(at, "type"), "must be \"auto\", \"any\", \"tool\" or \"none\"");
  }
  if (lookup(choice, "disable_parallel_tool_use", value)) {
    bool disable = false;
    if (!reader_.boolean(value, Path(at, "disable_parallel_tool_use"), disable)) return false;
    if (disable && type != "none") json_.key("parallel_tool_calls").value(false);
  }
  return true;
}

}  // namespace

tl::expected<std::string, TranslateError> anthropicToOpenAiRequest(
    std::string_view anthropic_body, std::string_view upstream_model) {
  dom::element document;
  if (auto error = detail::parseJson(anthropic_body, document)) {
    return tl::make_unexpected(
        TranslateError{400, "invalid_request_error",
                       fmt::format("invalid JSON body: {}", simdjson::error_message(error))});
  }
  std::string out;
  out.reserve(anthropic_body.size() + 256);
  AnthropicRequestConverter converter(out);
  const bool ok = converter.convert(document, upstream_model);
  detail::trimParsers();
  if (!ok) return tl::make_unexpected(converter.takeError());
  return out;
}

}  // namespace sluice::translate
