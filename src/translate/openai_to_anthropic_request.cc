// OpenAI /v1/chat/completions request → Anthropic /v1/messages request.

#include <fmt/format.h>

#include <vector>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/translate.h"
#include "translate/vocabulary.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;
using detail::lookup;
using detail::Path;

// One Anthropic turn being assembled. Consecutive OpenAI messages of the same Anthropic role
// (tool results and the user message after them, say) merge into one turn; tool_result blocks
// go first, as Anthropic requires.
struct Turn {
  bool user = true;
  std::string tool_results;  // serialised blocks, comma-separated
  std::string blocks;
  std::optional<std::string_view> plain;  // the string content of a lone message, kept as is
};

// Starts one more block in a comma-separated list.
JsonWriter appendBlock(std::string& list) {
  if (!list.empty()) list += ',';
  return JsonWriter(list);
}

void writeTextBlock(std::string& list, std::string_view text) {
  appendBlock(list).beginObject().key("type").value("text").key("text").value(text).endObject();
}

class OpenAiRequestConverter {
 public:
  bool convert(dom::element document, std::string_view upstream_model, uint32_t default_max_tokens,
               std::string& out);
  TranslateError takeError() { return reader_.takeError(); }

 private:
  bool convertMessage(dom::element message, const Path& at);
  bool collectSystem(dom::element content, const Path& at);
  bool convertUser(dom::element content, const Path& at);
  bool convertAssistant(dom::object message, const Path& at);
  bool convertToolMessage(dom::object message, const Path& at);
  bool writeUserPart(dom::element part, const Path& at, std::string& list);
  bool writeImageBlock(dom::element image_url, const Path& at, std::string& list);
  bool writeFileBlock(dom::element file, const Path& at, std::string& list);
  bool writeToolUse(dom::element call, const Path& at, std::string& list);
  bool writeTools(dom::element tools, const Path& at, JsonWriter& json, bool& any);
  bool writeToolChoice(dom::object request, bool any_tools, JsonWriter& json);
  bool writeSampling(dom::object request, uint32_t default_max_tokens, JsonWriter& json);
  // The turn to add a block to: the last one when it has the same role, else a new one.
  Turn& turnFor(bool user);
  void writeTurns(JsonWriter& json);

  detail::Reader reader_ = detail::clientReader();
  std::vector<std::string_view> system_;
  std::vector<Turn> turns_;
};

Turn& OpenAiRequestConverter::turnFor(bool user) {
  if (turns_.empty() || turns_.back().user != user) {
    turns_.push_back(Turn{user, {}, {}, std::nullopt});
    return turns_.back();
  }
  Turn& turn = turns_.back();
  if (turn.plain) {
    if (!turn.plain->empty()) writeTextBlock(turn.blocks, *turn.plain);
    turn.plain.reset();
  }
  return turn;
}

bool OpenAiRequestConverter::convert(dom::element document, std::string_view upstream_model,
                                     uint32_t default_max_tokens, std::string& out) {
  const Path root;
  dom::object request;
  if (document.get_object().get(request) != simdjson::SUCCESS) {
    return reader_.failMessage("the request body must be a JSON object");
  }
  std::optional<std::string_view> model;
  if (!reader_.optionalString(request, "model", root, model)) return false;
  if (!upstream_model.empty()) model = upstream_model;
  if (!model || model->empty()) return reader_.failMessage("\"model\" is required");

  dom::element value;
  if (lookup(request, "n", value)) {
    uint64_t n = 0;
    if (!reader_.count(value, Path(root, "n"), n)) return false;
    if (n != 1) return reader_.fail(Path(root, "n"), "must be 1: Anthropic returns one choice");
  }
  if (lookup(request, "response_format", value)) {
    dom::object format;
    std::string_view type;
    if (!reader_.object(value, Path(root, "response_format"), format)) return false;
    if (format["type"].get_string().get(type) == simdjson::SUCCESS && type != "text") {
      return reader_.fail(Path(root, "response_format"),
                          fmt::format("type \"{}\" is not supported by Anthropic upstreams", type));
    }
  }
  if (lookup(request, "functions", value)) {
    return reader_.fail(Path(root, "functions"), "is not supported: use \"tools\"");
  }

  const Path messages_path(root, "messages");
  dom::array messages;
  if (!lookup(request, "messages", value)) return reader_.failMessage("\"messages\" is required");
  if (!reader_.array(value, messages_path, messages)) return false;
  size_t index = 0;
  for (dom::element message : messages) {
    if (!convertMessage(message, Path(messages_path, index++))) return false;
  }

  JsonWriter json(out);
  json.beginObject().key("model").value(*model);
  if (!writeSampling(request, default_max_tokens, json)) return false;
  if (system_.size() == 1) {
    json.key("system").value(system_.front());
  } else if (!system_.empty()) {
    json.key("system").beginArray();
    for (std::string_view text : system_) {
      json.beginObject().key("type").value("text").key("text").value(text).endObject();
    }
    json.endArray();
  }
  writeTurns(json);
  bool any_tools = false;
  if (lookup(request, "tools", value) && !writeTools(value, Path(root, "tools"), json, any_tools)) {
    return false;
  }
  if (!writeToolChoice(request, any_tools, json)) return false;
  json.endObject();
  return true;
}

bool OpenAiRequestConverter::writeSampling(dom::object request, uint32_t default_max_tokens,
                                           JsonWriter& json) {
  const Path root;
  dom::element value;
  uint64_t max_tokens = default_max_tokens;
  if (lookup(request, "max_completion_tokens", value)) {
    if (!reader_.count(value, Path(root, "max_completion_tokens"), max_tokens)) return false;
  } else if (lookup(request, "max_tokens", value)) {
    if (!reader_.count(value, Path(root, "max_tokens"), max_tokens)) return false;
  }
  json.key("max_tokens").value(max_tokens);

  if (lookup(request, "stop", value)) {
    const Path at(root, "stop");
    std::string_view one;
    dom::array many;
    if (value.get_string().get(one) == simdjson::SUCCESS) {
      json.key("stop_sequences").beginArray().value(one).endArray();
    } else if (value.get_array().get(many) == simdjson::SUCCESS) {
      if (many.size() > 0) {
        json.key("stop_sequences").beginArray();
        size_t index = 0;
        for (dom::element stop : many) {
          if (!reader_.string(stop, Path(at, index++), one)) return false;
          json.value(one);
        }
        json.endArray();
      }
    } else {
      return reader_.fail(at, "must be a string or an array of strings");
    }
  }
  if (lookup(request, "temperature", value)) {
    if (!reader_.number(value, Path(root, "temperature"))) return false;
    // OpenAI allows 0–2, Anthropic 0–1: clamp rather than have the upstream refuse.
    double temperature = 0;
    if (value.get_double().get(temperature) == simdjson::SUCCESS && temperature > 1) {
      json.key("temperature").value(int64_t{1});
    } else {
      json.key("temperature").raw(detail::serialize(value));
    }
  }
  if (lookup(request, "top_p", value)) {
    if (!reader_.number(value, Path(root, "top_p"))) return false;
    json.key("top_p").raw(detail::serialize(value));
  }
  if (lookup(request, "stream", value)) {
    bool stream = false;
    if (!reader_.boolean(value, Path(root, "stream"), stream)) return false;
    json.key("stream").value(stream);
  }
  std::optional<std::string_view> user;
  if (!reader_.optionalString(request, "user", root, user)) return false;
  if (user) json.key("metadata").beginObject().key("user_id").value(*user).endObject();
  return true;
}

bool OpenAiRequestConverter::convertMessage(dom::element message_value, const Path& at) {
  dom::object message;
  if (!reader_.object(message_value, at, message)) return false;
  dom::element value;
  std::string_view role;
  if (!reader_.requiredString(message, "role", at, role)) return false;
  const Path content_path(at, "content");
  if (role == "system" || role == "developer") {
    if (!lookup(message, "content", value)) return true;
    return collectSystem(value, content_path);
  }
  if (role == "user") {
    if (!lookup(message, "content", value)) return reader_.fail(at, "needs a \"content\"");
    return convertUser(value, content_path);
  }
  if (role == "assistant") return convertAssistant(message, at);
  if (role == "tool") return convertToolMessage(message, at);
  if (role == "function") {
    return reader_.fail(Path(at, "role"), "\"function\" is not supported: use \"tool\"");
  }
  return reader_.fail(Path(at, "role"),
                      "must be \"system\", \"developer\", \"user\", \"assistant\" or \"tool\"");
}

// Anthropic has one system prompt: every system/developer message, wherever it stands, joins it.
bool OpenAiRequestConverter::collectSystem(dom::element content, const Path& at) {
  std::string_view text;
  if (content.get_string().get(text) == simdjson::SUCCESS) {
    if (!text.empty()) system_.push_back(text);
    return true;
  }
  dom::array parts;
  if (content.get_array().get(parts) != simdjson::SUCCESS) {
    return reader_.fail(at, "must be a string or an array of text parts");
  }
  size_t index = 0;
  for (dom::element part_value : parts) {
    const Path part_path(at, index++);
    dom::object part;
    dom::element value;
    std::string_view type;
    if (!reader_.object(part_value, part_path, part)) return false;
    if (!lookup(part, "type", value) || !reader_.string(value, Path(part_path, "type"), type) ||
        type != "text") {
      return reader_.fail(Path(part_path, "type"), "must be \"text\"");
    }
    if (!reader_.requiredString(part, "text", part_path, text)) return false;
    if (!text.empty()) system_.push_back(text);
  }
  return true;
}

bool OpenAiRequestConverter::convertUser(dom::element content, const Path& at) {
  std::string_view text;
  if (content.get_string().get(text) == simdjson::SUCCESS) {
    if (turns_.empty() || !turns_.back().user) {
      turns_.push_back(Turn{true, {}, {}, text});
    } else if (!text.empty()) {
      writeTextBlock(turnFor(true).blocks, text);
    }
    return true;
  }
  dom::array parts;
  if (content.get_array().get(parts) != simdjson::SUCCESS) {
    return reader_.fail(at, "must be a string or an array of content parts");
  }
  size_t index = 0;
  for (dom::element part : parts) {
    if (!writeUserPart(part, Path(at, index++), turnFor(true).blocks)) return false;
  }
  return true;
}

bool OpenAiRequestConverter::writeUserPart(dom::element part_value, const Path& at,
                                           std::string& list) {
  dom::object part;
  dom::element value;
  std::string_view type;
  if (!reader_.object(part_value, at, part)) return false;
  if (!reader_.requiredString(part, "type", at, type)) return false;
  if (type == "text") {
    std::string_view text;
    if (!reader_.requiredString(part, "text", at, text)) return false;
    if (!text.empty()) writeTextBlock(list, text);  // Anthropic rejects empty text blocks
    return true;
  }
  if (type == "image_url") {
    if (!lookup(part, "image_url", value)) return reader_.fail(at, "needs an \"image_url\"");
    return writeImageBlock(value, Path(at, "image_url"), list);
  }
  if (type == "file") {
    if (!lookup(part, "file", value)) return reader_.fail(at, "needs a \"file\"");
    return writeFileBlock(value, Path(at, "file"), list);
  }
  return reader_.fail(Path(at, "type"),
                      fmt::format("\"{}\" is not supported by Anthropic upstreams", type));
}

namespace {

// "data:image/png;base64,AAAA" → {"image/png", "AAAA"}; false for anything else.
bool splitBase64DataUrl(std::string_view url, std::string_view& media_type,
                        std::string_view& data) {
  constexpr std::string_view kScheme = "data:", kMarker = ";base64";
  if (url.substr(0, kScheme.size()) != kScheme) return false;
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) return false;
  std::string_view header = url.substr(kScheme.size(), comma - kScheme.size());
  if (header.size() < kMarker.size() || header.substr(header.size() - kMarker.size()) != kMarker) {
    return false;
  }
  media_type = header.substr(0, header.size() - kMarker.size());
  data = url.substr(comma + 1);
  return !media_type.empty();
}

}  // namespace

bool OpenAiRequestConverter::writeImageBlock(dom::element image_url, const Path& at,
                                             std::string& list) {
  std::string_view url;
  dom::object object;
  if (image_url.get_object().get(object) == simdjson::SUCCESS) {
    dom::element value;
    if (!reader_.requiredString(object, "url", at, url)) return false;
  } else if (!reader_.string(image_url, at, url)) {
    return false;
  }
  JsonWriter json = appendBlock(list);
  json.beginObject().key("type").value("image").key("source").beginObject();
  std::string_view media_type, data;
  if (splitBase64DataUrl(url, media_type, data)) {
    json.key("type").value("base64").key("media_type").value(media_type).key("data").value(data);
  } else if (url.substr(0, 8) == "https://" || url.substr(0, 7) == "http://") {
    json.key("type").value("url").key("url").value(url);
  } else {
    return reader_.fail(Path(at, "url"), "must be an http(s) URL or a base64 data: URL");
  }
  json.endObject().endObject();
  return true;
}

bool OpenAiRequestConverter::writeFileBlock(dom::element file_value, const Path& at,
                                            std::string& list) {
  dom::object file;
  if (!reader_.object(file_value, at, file)) return false;
  std::optional<std::string_view> file_data, filename;
  if (!reader_.optionalString(file, "file_data", at, file_data)) return false;
  if (!reader_.optionalString(file, "filename", at, filename)) return false;
  std::string_view media_type, data;
  if (!file_data || !splitBase64DataUrl(*file_data, media_type, data)) {
    return reader_.fail(at,
                        "needs \"file_data\" as a base64 data: URL (file ids are not "
                        "supported by Anthropic upstreams)");
  }
  JsonWriter json = appendBlock(list);
  json.beginObject().key("type").value("document").key("source").beginObject();
  json.key("type").value("base64").key("media_type").value(media_type).key("data").value(data);
  json.endObject();
  if (filename) json.key("title").value(*filename);
  json.endObject();
  return true;
}

bool OpenAiRequestConverter::convertAssistant(dom::object message, const Path& at) {
  dom::element value;
  const Path content_path(at, "content");
  if (lookup(message, "content", value)) {
    std::string_view text;
    dom::array parts;
    if (value.get_string().get(text) == simdjson::SUCCESS) {
      if (!text.empty()) writeTextBlock(turnFor(false).blocks, text);
    } else if (value.get_array().get(parts) == simdjson::SUCCESS) {
      size_t index = 0;
      for (dom::element part_value : parts) {
        const Path part_path(content_path, index++);
        dom::object part;
        std::string_view type;
        if (!reader_.object(part_value, part_path, part)) return false;
        if (!reader_.requiredString(part, "type", part_path, type)) return false;
        if (type != "text" && type != "refusal") {
          return reader_.fail(Path(part_path, "type"), "must be \"text\" or \"refusal\"");
        }
        if (!lookup(part, type, value)) {
          return reader_.fail(part_path, fmt::format("needs a \"{}\"", type));
        }
        if (!reader_.string(value, Path(part_path, type), text)) return false;
        if (!text.empty()) writeTextBlock(turnFor(false).blocks, text);
      }
    } else {
      return reader_.fail(content_path, "must be a string, an array of text parts or null");
    }
  }
  if (lookup(message, "function_call", value)) {
    return reader_.fail(Path(at, "function_call"), "is not supported: use \"tool_calls\"");
  }
  if (lookup(message, "tool_calls", value)) {
    const Path calls_path(at, "tool_calls");
    dom::array calls;
    if (!reader_.array(value, calls_path, calls)) return false;
    size_t index = 0;
    for (dom::element call : calls) {
      if (!writeToolUse(call, Path(calls_path, index++), turnFor(false).blocks)) return false;
    }
  }
  return true;
}

bool OpenAiRequestConverter::writeToolUse(dom::element call_value, const Path& at,
                                          std::string& list) {
  dom::object call, function;
  dom::element value;
  std::string_view id, name;
  if (!reader_.object(call_value, at, call)) return false;
  if (!reader_.requiredString(call, "id", at, id)) return false;
  const Path function_path(at, "function");
  if (!lookup(call, "function", value)) return reader_.fail(at, "needs a \"function\"");
  if (!reader_.object(value, function_path, function)) return false;
  if (!reader_.requiredString(function, "name", function_path, name)) return false;

  // Anthropic wants the input as an object; OpenAI sends it as JSON text.
  std::string input = "{}";
  const Path arguments_path(function_path, "arguments");
  if (lookup(function, "arguments", value)) {
    std::string_view arguments;
    dom::object object;
    if (value.get_object().get(object) == simdjson::SUCCESS) {
      input = detail::serialize(value);
    } else if (!reader_.string(value, arguments_path, arguments)) {
      return false;
    } else if (arguments.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      dom::element parsed;
      if (auto error = detail::parseJson(arguments, parsed, detail::ParserSlot::kNested)) {
        return reader_.fail(arguments_path,
                            fmt::format("must be a JSON object encoded as a string ({})",
                                        simdjson::error_message(error)));
      }
      if (!parsed.is_object()) {
        return reader_.fail(arguments_path, "must be a JSON object encoded as a string");
      }
      input = detail::serialize(parsed);
    }
  }
  JsonWriter json = appendBlock(list);
  json.beginObject().key("type").value("tool_use").key("id").value(id).key("name").value(name);
  json.key("input").raw(input).endObject();
  return true;
}

bool OpenAiRequestConverter::convertToolMessage(dom::object message, const Path& at) {
  dom::element value;
  std::string_view id;
  if (!reader_.requiredString(message, "tool_call_id", at, id)) return false;

  std::string content;  // a JSON value: a string or an array of blocks
  const Path content_path(at, "content");
  if (!lookup(message, "content", value)) {
    content = "\"\"";
  } else {
    std::string_view text;
    dom::array parts;
    if (value.get_string().get(text) == simdjson::SUCCESS) {
      JsonWriter(content).value(text);
    } else if (value.get_array().get(parts) == simdjson::SUCCESS) {
      std::string blocks;
      size_t index = 0;
      for (dom::element part : parts) {
        if (!writeUserPart(part, Path(content_path, index++), blocks)) return false;
      }
      content = "[" + blocks + "]";
    } else {
      return reader_.fail(content_path, "must be a string or an array of content parts");
    }
  }
  JsonWriter json = appendBlock(turnFor(true).tool_results);
  json.beginObject().key("type").value("tool_result").key("tool_use_id").value(id);
  json.key("content").raw(content).endObject();
  return true;
}

void OpenAiRequestConverter::writeTurns(JsonWriter& json) {
  json.key("messages").beginArray();
  for (const Turn& turn : turns_) {
    json.beginObject().key("role").value(turn.user ? "user" : "assistant").key("content");
    if (turn.plain) {
      json.value(*turn.plain);
    } else {
      std::string blocks = turn.tool_results;
      if (!blocks.empty() && !turn.blocks.empty()) blocks += ',';
      blocks += turn.blocks;
      json.raw("[" + blocks + "]");
    }
    json.endObject();
  }
  json.endArray();
}

bool OpenAiRequestConverter::writeTools(dom::element tools_value, const Path& at, JsonWriter& json,
                                        bool& any) {
  dom::array tools;
  if (!reader_.array(tools_value, at, tools)) return false;
  if (tools.size() == 0) return true;
  any = true;
  json.key("tools").beginArray();
  size_t index = 0;
  for (dom::element tool_value : tools) {
    const Path tool_path(at, index++);
    const Path function_path(tool_path, "function");
    dom::object tool, function;
    dom::element value;
    std::optional<std::string_view> type, name, description;
    if (!reader_.object(tool_value, tool_path, tool)) return false;
    if (!reader_.optionalString(tool, "type", tool_path, type)) return false;
    if (type && *type != "function") {
      return reader_.fail(Path(tool_path, "type"),
                          fmt::format("\"{}\" is not supported by Anthropic upstreams", *type));
    }
    if (!lookup(tool, "function", value)) return reader_.fail(tool_path, "needs a \"function\"");
    if (!reader_.object(value, function_path, function)) return false;
    if (!reader_.optionalString(function, "name", function_path, name)) return false;
    if (!name || name->empty()) return reader_.fail(function_path, "needs a \"name\"");
    if (!reader_.optionalString(function, "description", function_path, description)) {
      return false;
    }
    json.beginObject().key("name").value(*name);
    if (description) json.key("description").value(*description);
    if (lookup(function, "parameters", value)) {
      dom::object schema;
      if (!reader_.object(value, Path(function_path, "parameters"), schema)) return false;
      json.key("input_schema").raw(detail::serialize(value));
    } else {
      json.key("input_schema").raw(R"({"type":"object","properties":{}})");
    }
    json.endObject();
  }
  json.endArray();
  return true;
}

bool OpenAiRequestConverter::writeToolChoice(dom::object request, bool any_tools,
                                             JsonWriter& json) {
  const Path root;
  dom::element value;
  bool parallel = true;
  if (lookup(request, "parallel_tool_calls", value) &&
      !reader_.boolean(value, Path(root, "parallel_tool_calls"), parallel)) {
    return false;
  }
  std::string_view type = "auto", name;
  bool given = false;
  if (lookup(request, "tool_choice", value)) {
    const Path at(root, "tool_choice");
    std::string_view mode;
    dom::object choice;
    if (value.get_string().get(mode) == simdjson::SUCCESS) {
      if (mode == "auto") {
        type = "auto";
      } else if (mode == "required") {
        type = "any";
      } else if (mode == "none") {
        type = "none";
      } else {
        return reader_.fail(at, "must be \"auto\", \"required\", \"none\" or a function choice");
      }
    } else if (value.get_object().get(choice) == simdjson::SUCCESS) {
      const Path function_path(at, "function");
      dom::object function;
      if (!lookup(choice, "function", value)) return reader_.fail(at, "needs a \"function\"");
      if (!reader_.object(value, function_path, function)) return false;
      if (!reader_.requiredString(function, "name", function_path, name)) return false;
      type = "tool";
    } else {
      return reader_.fail(at, "must be a string or an object");
    }
    given = true;
  }
  // Anthropic rejects tool_choice without tools.
  if (!any_tools || (!given && parallel)) return true;
  json.key("tool_choice").beginObject().key("type").value(type);
  if (type == "tool") json.key("name").value(name);
  if (!parallel && type != "none") json.key("disable_parallel_tool_use").value(true);
  json.endObject();
  return true;
}

}  // namespace

tl::expected<std::string, TranslateError> openAiToAnthropicRequest(std::string_view openai_body,
                                                                   std::string_view upstream_model,
                                                                   uint32_t default_max_tokens) {
  dom::element document;
  if (auto error = detail::parseJson(openai_body, document)) {
    return tl::make_unexpected(
        TranslateError{400, "invalid_request_error",
                       fmt::format("invalid JSON body: {}", simdjson::error_message(error))});
  }
  std::string out;
  out.reserve(openai_body.size() + 256);
  OpenAiRequestConverter converter;
  const bool ok = converter.convert(document, upstream_model, default_max_tokens, out);
  detail::trimParsers();
  if (!ok) return tl::make_unexpected(converter.takeError());
  return out;
}

}  // namespace sluice::translate
