#include "mock/mock_api.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common/json_writer.h"

namespace sluice::mock {
namespace {

namespace od = simdjson::ondemand;

// A view of the body with SIMDJSON_PADDING readable bytes after it, copying only when the
// caller did not reserve them.
class PaddedBody {
 public:
  explicit PaddedBody(const std::string& body) {
    if (body.capacity() >= body.size() + simdjson::SIMDJSON_PADDING) {
      view_ = simdjson::padded_string_view(body.data(), body.size(), body.capacity());
    } else {
      copy_ = simdjson::padded_string(std::string_view(body));
      view_ = copy_;
    }
  }
  simdjson::padded_string_view view() const { return view_; }

 private:
  simdjson::padded_string copy_;
  simdjson::padded_string_view view_;
};

od::parser& threadParser() {
  thread_local od::parser parser;
  return parser;
}

std::string jsonError(simdjson::error_code error) {
  return std::string("invalid JSON body: ") + simdjson::error_message(error);
}

// Reads a value to its end so that malformed JSON anywhere in the body is reported.
simdjson::error_code validateValue(od::value value) {
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  switch (type) {
    case od::json_type::array: {
      od::array array;
      if (auto error = value.get_array().get(array)) return error;
      for (auto element : array) {
        od::value item;
        if (auto error = element.get(item)) return error;
        if (auto error = validateValue(item)) return error;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::object: {
      od::object object;
      if (auto error = value.get_object().get(object)) return error;
      for (auto field_result : object) {
        od::field field;
        if (auto error = std::move(field_result).get(field)) return error;
        std::string_view key;
        if (auto error = field.unescaped_key().get(key)) return error;
        if (auto error = validateValue(field.value())) return error;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::number:
      return value.get_number().error();
    case od::json_type::string:
      return value.get_string().error();
    case od::json_type::boolean:
      return value.get_bool().error();
    case od::json_type::null: {
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return error;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

// Walks the top-level object of `body`, handing each field to `on_field(key, value)`, which
// returns an error message or an empty string; fields it does not consume are validated.
template <typename OnField>
std::string parseObject(const std::string& body, OnField&& on_field) {
  PaddedBody padded(body);
  od::document doc;
  if (auto error = threadParser().iterate(padded.view()).get(doc)) return jsonError(error);
  od::object object;
  if (auto error = doc.get_object().get(object)) {
    return error == simdjson::INCORRECT_TYPE ? "request body must be a JSON object"
                                             : jsonError(error);
  }
  for (auto field_result : object) {
    od::field field;
    if (auto error = std::move(field_result).get(field)) return jsonError(error);
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return jsonError(error);
    auto message = on_field(key, field.value());
    if (!message.empty()) return message;
  }
  return {};
}

bool isNull(od::value& value) {
  od::json_type type;
  return !value.type().get(type) && type == od::json_type::null && !value.is_null().error();
}

std::string readString(od::value& value, std::string_view name, std::string& out) {
  std::string_view text;
  if (value.get_string().get(text)) return std::string(name) + " must be a string";
  out.assign(text);
  return {};
}

std::string readBool(od::value& value, std::string_view name, bool& out) {
  if (isNull(value)) return {};
  if (value.get_bool().get(out)) return std::string(name) + " must be a boolean";
  return {};
}

std::string readCount(od::value& value, std::string_view name, int64_t& out) {
  if (isNull(value)) return {};
  if (value.get_int64().get(out)) return std::string(name) + " must be an integer";
  if (out < 0) return std::string(name) + " must not be negative";
  return {};
}

std::string validateOrReport(od::value& value) {
  if (auto error = validateValue(value)) return jsonError(error);
  return {};
}

int64_t estimateTokens(size_t bytes) {
  return std::max<int64_t>(1, static_cast<int64_t>(bytes / 4));
}

uint64_t fnv1a(std::string_view text, uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, 10000): hashes become 4-decimal numbers so the JSON stays short and stable.
int64_t tenThousandths(uint64_t hash) { return static_cast<int64_t>(hash % 10000); }

void appendSigned(std::string& out, int64_t number) {
  char digits[24];
  auto result = std::to_chars(digits, digits + sizeof(digits), number);
  out.append(digits, result.ptr);
}

void appendBase64(std::string& out, const unsigned char* data, size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < size) {
    uint32_t n = data[i] << 16;
    if (i + 1 < size) n |= data[i + 1] << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
}

std::string_view finishReason(const Completion& c) {
  if (c.dialect == Dialect::kAnthropicMessages) {
    if (!c.tool_name.empty()) return "tool_use";
    return c.truncated ? "max_tokens" : "end_turn";
  }
  if (!c.tool_name.empty()) return "tool_calls";
  return c.truncated ? "length" : "stop";
}

void writeOpenAiUsage(JsonWriter& w, const Completion& c) {
  w.key("usage").beginObject();
  w.key("prompt_tokens").value(c.prompt_tokens);
  w.key("completion_tokens").value(c.tokens);
  w.key("total_tokens").value(c.prompt_tokens + c.tokens);
  w.key("prompt_tokens_details").beginObject().key("cached_tokens").value(c.cached_tokens);
  w.endObject();
  w.endObject();
}

// Anthropic usage as message_start and a whole message carry it.
void writeAnthropicUsage(JsonWriter& w, const Completion& c, int64_t output_tokens) {
  w.key("usage").beginObject();
  w.key("input_tokens").value(c.prompt_tokens);
  w.key("cache_creation_input_tokens").value(int64_t{0});
  w.key("cache_read_input_tokens").value(c.cached_tokens);
  w.key("output_tokens").value(output_tokens);
  w.endObject();
}

// The message_start event that opens every Anthropic stream (text or tool use).
void writeAnthropicMessageStart(JsonWriter& w, const Completion& c, std::string& out) {
  out += "event: message_start\ndata: ";
  w.beginObject().key("type").value("message_start");
  w.key("message").beginObject();
  w.key("id").value(c.id);
  w.key("type").value("message");
  w.key("role").value("assistant");
  w.key("model").value(c.model);
  w.key("content").beginArray().endArray();
  w.key("stop_reason").null();
  w.key("stop_sequence").null();
  writeAnthropicUsage(w, c, 0);
  w.endObject().endObject();
}

// SGLang's meta_info: finish_reason is null while streaming, then {"type":"stop"|"length"}.
void writeSglangMetaInfo(JsonWriter& w, const Completion& c, int64_t completion_tokens,
                         bool finished) {
  w.key("meta_info").beginObject();
  w.key("id").value(c.id);
  w.key("finish_reason");
  if (!finished) {
    w.null();
  } else if (c.truncated) {
    w.beginObject().key("type").value("length").key("length").value(completion_tokens);
    w.endObject();
  } else {
    w.beginObject().key("type").value("stop").key("matched").null().endObject();
  }
  w.key("prompt_tokens").value(c.prompt_tokens);
  w.key("completion_tokens").value(completion_tokens);
  w.key("cached_tokens").value(c.cached_tokens);
  w.endObject();
}

// Opens a streamed OpenAI chunk up to (not including) its "choices" member.
void beginOpenAiChunk(JsonWriter& w, const Completion& c) {
  w.beginObject();
  w.key("id").value(c.id);
  w.key("object").value(c.dialect == Dialect::kOpenAiChat ? "chat.completion.chunk"
                                                          : "text_completion");
  w.key("created").value(c.created);
  w.key("model").value(c.model);
}

std::string tokensText(int count) {
  std::string text;
  text.reserve(static_cast<size_t>(count) * 8);
  for (int i = 0; i < count; ++i) appendTokenText(text, i);
  return text;
}

std::string_view openAiErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string_view anthropicErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// Reads a message's content (a string, or an array of parts whose "text" strings are read) and
// tells whether it mentions "weather"; everything else in it is validated.
std::string readContentMentions(od::value& value, bool& mentions) {
  od::json_type type;
  if (auto error = value.type().get(type)) return jsonError(error);
  if (type == od::json_type::string) {
    std::string_view text;
    if (auto error = value.get_string().get(text)) return jsonError(error);
    mentions = mentions || mentionsWeather(text);
    return {};
  }
  if (type != od::json_type::array) return validateOrReport(value);
  od::array parts;
  if (auto error = value.get_array().get(parts)) return jsonError(error);
  for (auto element : parts) {
    od::value part;
    if (auto error = element.get(part)) return jsonError(error);
    od::json_type part_type;
    if (auto error = part.type().get(part_type)) return jsonError(error);
    if (part_type != od::json_type::object) {
      if (auto message = validateOrReport(part); !message.empty()) return message;
      continue;
    }
    od::object object;
    if (auto error = part.get_object().get(object)) return jsonError(error);
    for (auto field_result : object) {
      od::field field;
      std::string_view name;
      if (auto error = std::move(field_result).get(field)) return jsonError(error);
      if (auto error = field.unescaped_key().get(name)) return jsonError(error);
      od::json_type field_type;
      if (auto error = field.value().type().get(field_type)) return jsonError(error);
      if (name == "text" && field_type == od::json_type::string) {
        std::string_view text;
        if (auto error = field.value().get_string().get(text)) return jsonError(error);
        mentions = mentions || mentionsWeather(text);
      } else if (auto message = validateOrReport(field.value()); !message.empty()) {
        return message;
      }
    }
  }
  return {};
}

std::string readMessages(od::value& value, GenerationRequest& out) {
  od::array array;
  if (value.get_array().get(array)) return "messages must be an array";
  for (auto element : array) {
    od::value item;
    if (auto error = element.get(item)) return jsonError(error);
    od::object object;
    if (item.get_object().get(object)) return "messages items must be objects";
    bool from_user = false;
    bool mentions = false;
    for (auto field_result : object) {
      od::field field;
      std::string_view name;
      if (auto error = std::move(field_result).get(field)) return jsonError(error);
      if (auto error = field.unescaped_key().get(name)) return jsonError(error);
      std::string message;
      if (name == "role") {
        std::string_view role;
        if (field.value().get_string().get(role)) return "messages[].role must be a string";
        from_user = role == "user";
      } else if (name == "content") {
        message = readContentMentions(field.value(), mentions);
      } else {
        message = validateOrReport(field.value());
      }
      if (!message.empty()) return message;
    }
    out.last_user_mentions_weather = from_user && mentions;
  }
  return {};
}

// Reads the name of a tool: {"name"} (Anthropic) or {"function":{"name"}} (OpenAI).
std::string readToolName(od::value& value, std::string& name_out) {
  od::object object;
  if (value.get_object().get(object)) return "tools items must be objects";
  for (auto field_result : object) {
    od::field field;
    std::string_view name;
    if (auto error = std::move(field_result).get(field)) return jsonError(error);
    if (auto error = field.unescaped_key().get(name)) return jsonError(error);
    std::string message;
    if (name == "name") {
      message = readString(field.value(), "tools[].name", name_out);
    } else if (name == "function") {
      od::object function;
      if (field.value().get_object().get(function)) return "tools[].function must be an object";
      for (auto inner_result : function) {
        od::field inner;
        std::string_view inner_name;
        if (auto error = std::move(inner_result).get(inner)) return jsonError(error);
        if (auto error = inner.unescaped_key().get(inner_name)) return jsonError(error);
        message = inner_name == "name"
                      ? readString(inner.value(), "tools[].function.name", name_out)
                      : validateOrReport(inner.value());
        if (!message.empty()) return message;
      }
    } else {
      message = validateOrReport(field.value());
    }
    if (!message.empty()) return message;
  }
  return {};
}

std::string readTools(od::value& value, GenerationRequest& out) {
  if (isNull(value)) return {};
  od::array array;
  if (value.get_array().get(array)) return "tools must be an array";
  for (auto element : array) {
    od::value item;
    if (auto error = element.get(item)) return jsonError(error);
    std::string message;
    if (!out.has_tools) {
      out.has_tools = true;
      message = readToolName(item, out.first_tool_name);
    } else {
      message = validateOrReport(item);
    }
    if (!message.empty()) return message;
  }
  return {};
}

}  // namespace

bool mentionsWeather(std::string_view text) {
  static constexpr std::string_view kWord = "weather";
  if (text.size() < kWord.size()) return false;
  for (size_t i = 0; i + kWord.size() <= text.size(); ++i) {
    size_t k = 0;
    while (k < kWord.size()) {
      char ch = text[i + k];
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      if (ch != kWord[k]) break;
      ++k;
    }
    if (k == kWord.size()) return true;
  }
  return false;
}

static_assert(kParsePadding >= simdjson::SIMDJSON_PADDING);

void reserveParsePadding(std::string& body) {
  if (body.capacity() < body.size() + kParsePadding) body.reserve(body.size() + kParsePadding);
}

void appendTokenText(std::string& out, int index) {
  out += "tok";
  appendSigned(out, index);
  out += ' ';
}

std::string parseGenerationRequest(const std::string& body, GenerationRequest& out) {
  return parseObject(body, [&](std::string_view key, od::value value) -> std::string {
    if (key == "model") return readString(value, "model", out.model);
    if (key == "stream") return readBool(value, "stream", out.stream);
    if (key == "max_tokens" || key == "max_completion_tokens") {
      return readCount(value, key, out.max_tokens);
    }
    if (key == "messages") return readMessages(value, out);
    if (key == "tools") return readTools(value, out);
    if (key == "sampling_params" && !isNull(value)) {  // SGLang /generate
      od::object params;
      if (value.get_object().get(params)) return "sampling_params must be an object";
      for (auto field_result : params) {
        od::field field;
        std::string_view name;
        if (auto error = std::move(field_result).get(field)) return jsonError(error);
        if (auto error = field.unescaped_key().get(name)) return jsonError(error);
        auto message =
            name == "max_new_tokens"
                ? readCount(field.value(), "sampling_params.max_new_tokens", out.max_tokens)
                : validateOrReport(field.value());
        if (!message.empty()) return message;
      }
      return {};
    }
    if (key == "stream_options" && !isNull(value)) {
      od::object options;
      if (value.get_object().get(options)) return "stream_options must be an object";
      for (auto field_result : options) {
        od::field field;
        std::string_view name;
        if (auto error = std::move(field_result).get(field)) return jsonError(error);
        if (auto error = field.unescaped_key().get(name)) return jsonError(error);
        auto message =
            name == "include_usage"
                ? readBool(field.value(), "stream_options.include_usage", out.include_usage)
                : validateOrReport(field.value());
        if (!message.empty()) return message;
      }
      return {};
    }
    return validateOrReport(value);
  });
}

std::string parseEmbeddingRequest(const std::string& body, EmbeddingRequest& out) {
  bool has_input = false;
  auto message = parseObject(body, [&](std::string_view key, od::value value) -> std::string {
    if (key == "model") return readString(value, "model", out.model);
    if (key == "encoding_format") {
      std::string format;
      if (isNull(value)) return {};
      if (auto m = readString(value, "encoding_format", format); !m.empty()) return m;
      if (format != "float" && format != "base64") {
        return "encoding_format must be \"float\" or \"base64\"";
      }
      out.base64 = format == "base64";
      return {};
    }
    if (key != "input") return validateOrReport(value);
    has_input = true;
    od::json_type type;
    if (auto error = value.type().get(type)) return jsonError(error);
    if (type == od::json_type::string) {
      std::string text;
      if (auto m = readString(value, "input", text); !m.empty()) return m;
      out.prompt_tokens += estimateTokens(text.size());
      out.inputs.push_back(std::move(text));
      return {};
    }
    if (type != od::json_type::array) return "input must be a string or an array";
    od::array array;
    if (auto error = value.get_array().get(array)) return jsonError(error);
    // A flat array of integers is one pre-tokenised input; an array of arrays is a batch of them.
    std::string token_ids;
    bool has_text = false;
    for (auto element : array) {
      od::value item;
      if (auto error = element.get(item)) return jsonError(error);
      if (auto error = item.type().get(type)) return jsonError(error);
      if (type == od::json_type::string) {
        std::string text;
        if (auto m = readString(item, "input[]", text); !m.empty()) return m;
        out.prompt_tokens += estimateTokens(text.size());
        out.inputs.push_back(std::move(text));
        has_text = true;
      } else if (type == od::json_type::number) {
        int64_t id;
        if (item.get_int64().get(id)) return "token ids in input must be integers";
        if (!token_ids.empty()) token_ids += ',';
        appendSigned(token_ids, id);
        out.prompt_tokens += 1;
      } else if (type == od::json_type::array) {
        od::array ids;
        if (auto error = item.get_array().get(ids)) return jsonError(error);
        std::string text;
        for (auto id_result : ids) {
          int64_t id;
          if (id_result.get_int64().get(id)) return "token ids in input must be integers";
          if (!text.empty()) text += ',';
          appendSigned(text, id);
          out.prompt_tokens += 1;
        }
        out.inputs.push_back(std::move(text));
        has_text = true;
      } else {
        return "input items must be strings or token arrays";
      }
    }
    if (!token_ids.empty()) {
      if (has_text) return "input mixes token ids with other items";
      out.inputs.push_back(std::move(token_ids));
    }
    return {};
  });
  if (!message.empty()) return message;
  if (!has_input) return "input is required";
  if (out.inputs.empty()) return "input must not be empty";
  return {};
}

std::string parseRerankRequest(const std::string& body, RerankRequest& out) {
  bool has_query = false;
  bool has_documents = false;
  auto message = parseObject(body, [&](std::string_view key, od::value value) -> std::string {
    if (key == "model") return readString(value, "model", out.model);
    if (key == "query") {
      has_query = true;
      return readString(value, "query", out.query);
    }
    if (key == "top_n") return readCount(value, "top_n", out.top_n);
    if (key == "return_documents") return readBool(value, "return_documents", out.return_documents);
    if (key != "documents") return validateOrReport(value);
    has_documents = true;
    od::array array;
    if (value.get_array().get(array)) return "documents must be an array";
    for (auto element : array) {
      od::value item;
      if (auto error = element.get(item)) return jsonError(error);
      od::json_type type;
      if (auto error = item.type().get(type)) return jsonError(error);
      if (type == od::json_type::string) {
        std::string text;
        if (auto m = readString(item, "documents[]", text); !m.empty()) return m;
        out.documents.push_back(std::move(text));
        continue;
      }
      od::object object;
      if (type != od::json_type::object || item.get_object().get(object)) {
        return "documents items must be strings or {\"text\": ...} objects";
      }
      std::string text;
      bool has_text = false;
      for (auto field_result : object) {
        od::field field;
        std::string_view name;
        if (auto error = std::move(field_result).get(field)) return jsonError(error);
        if (auto error = field.unescaped_key().get(name)) return jsonError(error);
        std::string m;
        if (name == "text") {
          has_text = true;
          m = readString(field.value(), "documents[].text", text);
        } else {
          m = validateOrReport(field.value());
        }
        if (!m.empty()) return m;
      }
      if (!has_text) return "documents objects need a \"text\" string";
      out.documents.push_back(std::move(text));
    }
    return {};
  });
  if (!message.empty()) return message;
  if (!has_query) return "query is required";
  if (!has_documents) return "documents is required";
  return {};
}

Completion planCompletion(Dialect dialect, const GenerationRequest& request, int tokens,
                          uint64_t sequence, int64_t prompt_tokens, int64_t now,
                          std::string_view tool_name, int64_t cached_tokens) {
  Completion c;
  c.dialect = dialect;
  switch (dialect) {
    case Dialect::kOpenAiChat:
      c.id = "chatcmpl-mock-";
      break;
    case Dialect::kOpenAiCompletion:
      c.id = "cmpl-mock-";
      break;
    case Dialect::kAnthropicMessages:
      c.id = "msg_mock_";
      break;
    case Dialect::kSglangGenerate:
      c.id = "gen-mock-";
      break;
  }
  appendSigned(c.id, static_cast<int64_t>(sequence));
  c.model = request.model.empty() ? "mock-model" : request.model;
  c.created = now;
  c.tokens = std::max(tokens, 0);
  if (request.max_tokens >= 0 && request.max_tokens < c.tokens) {
    c.tokens = static_cast<int>(request.max_tokens);
    c.truncated = true;
  }
  c.prompt_tokens = prompt_tokens;
  c.cached_tokens = cached_tokens;
  c.include_usage = request.include_usage;
  if (!tool_name.empty() &&
      (dialect == Dialect::kOpenAiChat || dialect == Dialect::kAnthropicMessages)) {
    c.tool_name.assign(tool_name);
    c.tokens = static_cast<int>(std::size(kToolArgumentFragments));
    c.truncated = false;
  }
  // OpenAI counts cached tokens inside prompt_tokens.
  if (dialect != Dialect::kAnthropicMessages)
    c.prompt_tokens = std::max(c.prompt_tokens, cached_tokens);
  return c;
}

void writeCompletionBody(const Completion& c, std::string& out) {
  JsonWriter w(out);
  const bool tool = !c.tool_name.empty();
  const std::string text = tool ? std::string() : tokensText(c.tokens);
  if (c.dialect == Dialect::kSglangGenerate) {
    w.beginObject();
    w.key("text").value(text);
    writeSglangMetaInfo(w, c, c.tokens, true);
    w.endObject();
    return;
  }
  w.beginObject();
  w.key("id").value(c.id);
  if (c.dialect == Dialect::kAnthropicMessages) {
    w.key("type").value("message");
    w.key("role").value("assistant");
    w.key("model").value(c.model);
    w.key("content").beginArray().beginObject();
    if (tool) {
      w.key("type").value("tool_use");
      w.key("id").value(kAnthropicToolUseId);
      w.key("name").value(c.tool_name);
      w.key("input").raw(kToolArguments);
    } else {
      w.key("type").value("text");
      w.key("text").value(text);
    }
    w.endObject().endArray();
    w.key("stop_reason").value(finishReason(c));
    w.key("stop_sequence").null();
    writeAnthropicUsage(w, c, c.tokens);
    w.endObject();
    return;
  }
  const bool chat = c.dialect == Dialect::kOpenAiChat;
  w.key("object").value(chat ? "chat.completion" : "text_completion");
  w.key("created").value(c.created);
  w.key("model").value(c.model);
  w.key("choices").beginArray().beginObject();
  w.key("index").value(0);
  if (chat) {
    w.key("message").beginObject();
    w.key("role").value("assistant");
    if (tool) {
      w.key("content").null();
      w.key("tool_calls").beginArray().beginObject();
      w.key("id").value(kOpenAiToolCallId);
      w.key("type").value("function");
      w.key("function").beginObject();
      w.key("name").value(c.tool_name);
      w.key("arguments").value(kToolArguments);
      w.endObject().endObject().endArray();
    } else {
      w.key("content").value(text);
    }
    w.endObject();
  } else {
    w.key("text").value(text);
  }
  w.key("logprobs").null();
  w.key("finish_reason").value(finishReason(c));
  w.endObject().endArray();
  writeOpenAiUsage(w, c);
  w.endObject();
}

int StreamEvents::preludeSteps() const {
  switch (completion_.dialect) {
    case Dialect::kOpenAiChat:
      // role chunk (+ the tool call's id and name)
      return completion_.tool_name.empty() ? 1 : 2;
    case Dialect::kOpenAiCompletion:
    case Dialect::kSglangGenerate:
      return 0;
    case Dialect::kAnthropicMessages:
      return 3;  // message_start, content_block_start, ping
  }
  return 0;
}

int StreamEvents::epilogueSteps() const {
  // OpenAI: finish chunk, optional usage chunk, [DONE]. Anthropic: content_block_stop,
  // message_delta, message_stop. SGLang: the final state with finish_reason, [DONE].
  if (completion_.dialect == Dialect::kAnthropicMessages) return 3;
  if (completion_.dialect == Dialect::kSglangGenerate) return 2;
  return completion_.include_usage ? 3 : 2;
}

bool StreamEvents::next(std::string& out, bool& is_token) {
  out.clear();
  is_token = false;
  while (true) {
    switch (phase_) {
      case Phase::kPrelude:
        if (step_ < preludeSteps()) {
          writePrelude(step_++, out);
          return true;
        }
        phase_ = Phase::kTokens;
        step_ = 0;
        break;
      case Phase::kTokens:
        if (step_ < completion_.tokens) {
          writeToken(step_++, out);
          is_token = true;
          return true;
        }
        phase_ = Phase::kEpilogue;
        step_ = 0;
        break;
      case Phase::kEpilogue:
        if (step_ < epilogueSteps()) {
          writeEpilogue(step_++, out);
          return true;
        }
        phase_ = Phase::kDone;
        break;
      case Phase::kDone:
        return false;
    }
  }
}

void StreamEvents::writePrelude(int step, std::string& out) const {
  const Completion& c = completion_;
  if (!c.tool_name.empty()) return writeToolPrelude(step, out);
  JsonWriter w(out);
  if (c.dialect == Dialect::kOpenAiChat) {
    out += "data: ";
    beginOpenAiChunk(w, c);
    w.key("choices").beginArray().beginObject();
    w.key("index").value(0);
    w.key("delta").beginObject().key("role").value("assistant").key("content").value("");
    w.endObject();
    w.key("logprobs").null();
    w.key("finish_reason").null();
    w.endObject().endArray();
    if (c.include_usage) w.key("usage").null();
    w.endObject();
    out += "\n\n";
    return;
  }
  switch (step) {
    case 0:
      writeAnthropicMessageStart(w, c, out);
      break;
    case 1:
      out += "event: content_block_start\ndata: ";
      w.beginObject().key("type").value("content_block_start").key("index").value(0);
      w.key("content_block").beginObject().key("type").value("text").key("text").value("");
      w.endObject().endObject();
      break;
    default:
      out += "event: ping\ndata: {\"type\":\"ping\"}";
      break;
  }
  out += "\n\n";
}

void StreamEvents::writeToolPrelude(int step, std::string& out) const {
  const Completion& c = completion_;
  JsonWriter w(out);
  if (c.dialect == Dialect::kOpenAiChat) {
    out += "data: ";
    beginOpenAiChunk(w, c);
    w.key("choices").beginArray().beginObject();
    w.key("index").value(0);
    w.key("delta").beginObject();
    if (step == 0) {
      w.key("role").value("assistant").key("content").null();
    } else {
      w.key("tool_calls").beginArray().beginObject();
      w.key("index").value(0);
      w.key("id").value(kOpenAiToolCallId);
      w.key("type").value("function");
      w.key("function").beginObject().key("name").value(c.tool_name);
      w.key("arguments").value("").endObject();
      w.endObject().endArray();
    }
    w.endObject();
    w.key("logprobs").null();
    w.key("finish_reason").null();
    w.endObject().endArray();
    if (c.include_usage) w.key("usage").null();
    w.endObject();
    out += "\n\n";
    return;
  }
  switch (step) {
    case 0:
      writeAnthropicMessageStart(w, c, out);
      break;
    case 1:
      out += "event: content_block_start\ndata: ";
      w.beginObject().key("type").value("content_block_start").key("index").value(0);
      w.key("content_block").beginObject();
      w.key("type").value("tool_use");
      w.key("id").value(kAnthropicToolUseId);
      w.key("name").value(c.tool_name);
      w.key("input").beginObject().endObject();
      w.endObject().endObject();
      break;
    default:
      out += "event: ping\ndata: {\"type\":\"ping\"}";
      break;
  }
  out += "\n\n";
}

void StreamEvents::writeToolFragment(int index, std::string& out) const {
  const Completion& c = completion_;
  JsonWriter w(out);
  const std::string_view fragment = kToolArgumentFragments[index];
  if (c.dialect == Dialect::kAnthropicMessages) {
    out += "event: content_block_delta\ndata: ";
    w.beginObject().key("type").value("content_block_delta").key("index").value(0);
    w.key("delta").beginObject().key("type").value("input_json_delta");
    w.key("partial_json").value(fragment).endObject();
    w.endObject();
    out += "\n\n";
    return;
  }
  out += "data: ";
  beginOpenAiChunk(w, c);
  w.key("choices").beginArray().beginObject();
  w.key("index").value(0);
  w.key("delta").beginObject().key("tool_calls").beginArray().beginObject();
  w.key("index").value(0);
  w.key("function").beginObject().key("arguments").value(fragment).endObject();
  w.endObject().endArray().endObject();
  w.key("logprobs").null();
  w.key("finish_reason").null();
  w.endObject().endArray();
  if (c.include_usage) w.key("usage").null();
  w.endObject();
  out += "\n\n";
}

void StreamEvents::writeToken(int index, std::string& out) const {
  const Completion& c = completion_;
  if (!c.tool_name.empty() && index < static_cast<int>(std::size(kToolArgumentFragments))) {
    return writeToolFragment(index, out);
  }
  JsonWriter w(out);
  // Token text never needs escaping, so it is appended in place rather than through a buffer.
  switch (c.dialect) {
    case Dialect::kOpenAiChat:
      out += "data: ";
      beginOpenAiChunk(w, c);
      out += ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
      appendTokenText(out, index);
      out += "\"},\"logprobs\":null,\"finish_reason\":null}]";
      break;
    case Dialect::kOpenAiCompletion:
      out += "data: ";
      beginOpenAiChunk(w, c);
      out += ",\"choices\":[{\"text\":\"";
      appendTokenText(out, index);
      out += "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]";
      break;
    case Dialect::kAnthropicMessages:
      out +=
          "event: content_block_delta\ndata: "
          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
          "\"text\":\"";
      appendTokenText(out, index);
      out += "\"}}\n\n";
      return;
    case Dialect::kSglangGenerate:
      // Each event carries the whole text so far, as SGLang streams it.
      out += "data: ";
      w.beginObject();
      w.key("text").value(tokensText(index + 1));
      writeSglangMetaInfo(w, c, index + 1, false);
      w.endObject();
      out += "\n\n";
      return;
  }
  if (c.include_usage) out += ",\"usage\":null";
  out += "}\n\n";
}

void StreamEvents::writeEpilogue(int step, std::string& out) const {
  const Completion& c = completion_;
  JsonWriter w(out);
  if (c.dialect == Dialect::kAnthropicMessages) {
    switch (step) {
      case 0:
        out += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}";
        break;
      case 1:
        out += "event: message_delta\ndata: ";
        w.beginObject().key("type").value("message_delta");
        w.key("delta").beginObject();
        w.key("stop_reason").value(finishReason(c));
        w.key("stop_sequence").null();
        w.endObject();
        w.key("usage").beginObject().key("output_tokens").value(c.tokens).endObject();
        w.endObject();
        break;
      default:
        out += "event: message_stop\ndata: {\"type\":\"message_stop\"}";
        break;
    }
    out += "\n\n";
    return;
  }
  const bool last = step == epilogueSteps() - 1;
  if (last) {
    out += "data: [DONE]\n\n";
    return;
  }
  if (c.dialect == Dialect::kSglangGenerate) {
    out += "data: ";
    w.beginObject();
    w.key("text").value(tokensText(c.tokens));
    writeSglangMetaInfo(w, c, c.tokens, true);
    w.endObject();
    out += "\n\n";
    return;
  }
  out += "data: ";
  beginOpenAiChunk(w, c);
  w.key("choices").beginArray();
  if (step == 0) {
    w.beginObject();
    if (c.dialect == Dialect::kOpenAiChat) {
      w.key("index").value(0);
      w.key("delta").beginObject().endObject();
    } else {
      w.key("text").value("");
      w.key("index").value(0);
    }
    w.key("logprobs").null();
    w.key("finish_reason").value(finishReason(c));
    w.endObject();
    w.endArray();
    if (c.include_usage) w.key("usage").null();
  } else {
    w.endArray();
    writeOpenAiUsage(w, c);
  }
  w.endObject();
  out += "\n\n";
}

void writeErrorBody(Dialect dialect, int status, std::string_view message, std::string& out) {
  JsonWriter w(out);
  w.beginObject();
  if (dialect == Dialect::kAnthropicMessages) {
    w.key("type").value("error");
    w.key("error").beginObject();
    w.key("type").value(anthropicErrorType(status));
    w.key("message").value(message);
    w.endObject();
  } else {
    w.key("error").beginObject();
    w.key("message").value(message);
    w.key("type").value(openAiErrorType(status));
    w.key("code").null();
    w.endObject();
  }
  w.endObject();
}

void writeEmbeddingBody(const EmbeddingRequest& request, std::string& out) {
  JsonWriter w(out);
  w.beginObject();
  w.key("object").value("list");
  w.key("data").beginArray();
  std::string encoded;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const uint64_t hash = fnv1a(request.inputs[i]);
    std::array<double, kEmbeddingDimensions> vector{};
    for (int k = 0; k < kEmbeddingDimensions; ++k) {
      vector[k] = static_cast<double>(2 * tenThousandths(splitmix64(hash + k)) - 10000) / 10000.0;
    }
    w.beginObject();
    w.key("object").value("embedding");
    w.key("index").value(static_cast<int64_t>(i));
    if (request.base64) {
      // Little-endian float32, as OpenAI encodes it (x86 and ARM Linux are little-endian).
      unsigned char bytes[kEmbeddingDimensions * sizeof(float)];
      for (int k = 0; k < kEmbeddingDimensions; ++k) {
        const auto component = static_cast<float>(vector[k]);
        std::memcpy(bytes + k * sizeof(float), &component, sizeof(float));
      }
      encoded.clear();
      appendBase64(encoded, bytes, sizeof(bytes));
      w.key("embedding").value(encoded);
    } else {
      w.key("embedding").beginArray();
      for (double component : vector) w.value(component);
      w.endArray();
    }
    w.endObject();
  }
  w.endArray();
  w.key("model").value(request.model.empty() ? std::string_view("mock-model") : request.model);
  w.key("usage").beginObject();
  w.key("prompt_tokens").value(request.prompt_tokens);
  w.key("total_tokens").value(request.prompt_tokens);
  w.endObject();
  w.endObject();
}

void writeRerankBody(const RerankRequest& request, uint64_t sequence, std::string& out) {
  auto lower = [](std::string_view text) {
    std::string result(text);
    for (char& ch : result) {
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    return result;
  };
  auto is_word = [](char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch & 0x80);
  };
  const std::string query = lower(request.query);
  std::vector<std::string_view> terms;
  for (size_t i = 0; i < query.size();) {
    while (i < query.size() && !is_word(query[i])) ++i;
    size_t start = i;
    while (i < query.size() && is_word(query[i])) ++i;
    if (i > start) terms.emplace_back(query.data() + start, i - start);
  }

  const uint64_t query_hash = fnv1a(request.query);
  std::vector<double> scores(request.documents.size());
  size_t total_bytes = request.query.size();
  for (size_t i = 0; i < request.documents.size(); ++i) {
    const std::string document = lower(request.documents[i]);
    total_bytes += document.size();
    size_t matched = 0;
    for (auto term : terms) matched += document.find(term) != std::string::npos;
    const double overlap =
        terms.empty() ? 0.0 : static_cast<double>(matched) / static_cast<double>(terms.size());
    const int64_t jitter = tenThousandths(splitmix64(fnv1a(request.documents[i], query_hash)));
    scores[i] = std::round(8000.0 * overlap + 0.2 * static_cast<double>(jitter)) / 10000.0;
  }
  std::vector<size_t> order(request.documents.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  size_t count = order.size();
  if (request.top_n > 0) count = std::min(count, static_cast<size_t>(request.top_n));

  JsonWriter w(out);
  w.beginObject();
  std::string id = "rerank-mock-";
  appendSigned(id, static_cast<int64_t>(sequence));
  w.key("id").value(id);
  w.key("model").value(request.model.empty() ? std::string_view("mock-model") : request.model);
  w.key("results").beginArray();
  for (size_t rank = 0; rank < count; ++rank) {
    const size_t index = order[rank];
    w.beginObject();
    w.key("index").value(static_cast<int64_t>(index));
    w.key("relevance_score").value(scores[index]);
    if (request.return_documents) {
      w.key("document").beginObject().key("text").value(request.documents[index]).endObject();
    }
    w.endObject();
  }
  w.endArray();
  w.key("usage").beginObject().key("total_tokens").value(estimateTokens(total_bytes)).endObject();
  w.endObject();
}

std::string parseHealthStatus(const std::string& body, int& status) {
  int64_t value = -1;
  bool has_status = false;
  auto message = parseObject(body, [&](std::string_view key, od::value field) -> std::string {
    if (key != "status") return validateOrReport(field);
    has_status = true;
    if (field.get_int64().get(value)) return "status must be an integer";
    return {};
  });
  if (!message.empty()) return message;
  if (!has_status) return "status is required";
  if (value < kMinHealthStatus || value > kMaxHealthStatus) {
    return "status must be in [" + std::to_string(kMinHealthStatus) + ", " +
           std::to_string(kMaxHealthStatus) + "]";
  }
  status = static_cast<int>(value);
  return {};
}

void writeHealthBody(int status, std::string& out) {
  JsonWriter w(out);
  w.beginObject();
  w.key("status").value(status >= 200 && status < 300 ? "ok" : "unhealthy");
  w.endObject();
}

void writeModelsBody(std::string& out) {
  static constexpr std::string_view kModels[] = {"mock-model", "mock-large", "mock-embedding",
                                                 "mock-rerank"};
  JsonWriter w(out);
  w.beginObject();
  w.key("object").value("list");
  w.key("data").beginArray();
  for (auto id : kModels) {
    w.beginObject();
    w.key("id").value(id);
    w.key("object").value("model");
    w.key("created").value(int64_t{1700000000});
    w.key("owned_by").value("mock");
    w.endObject();
  }
  w.endArray();
  w.endObject();
}

}  // namespace sluice::mock
