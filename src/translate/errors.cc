// Upstream error bodies, rewritten in the client's dialect. These never fail: whatever the
// upstream sent, the client gets a well-formed error it can show.

#include <fmt/format.h>

#include "common/json_writer.h"
#include "translate/json_input.h"
#include "translate/translate.h"
#include "translate/vocabulary.h"

namespace sluice::translate {
namespace {

namespace dom = simdjson::dom;

constexpr size_t kQuotedBodyBytes = 512;

// The message of an OpenAI-style error body: {"error":{"message"}}, {"error":"text"}, vLLM's
// {"object":"error","message"} or FastAPI's {"detail":"text"}.
// The Anthropic type is chosen from the status: OpenAI-compatible servers agree on statuses
// far more than on error types.
std::string_view openAiErrorMessage(dom::element document) {
  std::string_view message;
  dom::element error;
  if (document["error"].get(error) == simdjson::SUCCESS) {
    if (error.get_string().get(message) == simdjson::SUCCESS) return message;
    if (error["message"].get_string().get(message) == simdjson::SUCCESS) return message;
  }
  if (document["message"].get_string().get(message) == simdjson::SUCCESS) return message;
  if (document["detail"].get_string().get(message) == simdjson::SUCCESS) return message;
  return {};
}

std::string fallbackMessage(std::string_view body, int status) {
  const std::string_view quoted = detail::printablePrefix(body, kQuotedBodyBytes);
  if (quoted.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return fmt::format("the upstream answered HTTP {}", status);
  }
  return fmt::format("the upstream answered HTTP {}: {}", status, quoted);
}

}  // namespace

std::string openAiErrorToAnthropic(std::string_view openai_error_body, int status) {
  std::string_view message;
  std::string owned;
  dom::element document;
  if (detail::parseJson(openai_error_body, document) == simdjson::SUCCESS) {
    message = openAiErrorMessage(document);
  }
  if (message.empty()) {
    owned = fallbackMessage(openai_error_body, status);
    message = owned;
  }
  std::string out;
  JsonWriter json(out);
  json.beginObject().key("type").value("error").key("error").beginObject();
  json.key("type").value(detail::anthropicErrorType(status)).key("message").value(message);
  json.endObject().endObject();
  detail::trimParsers();
  return out;
}

std::string anthropicErrorToOpenAi(std::string_view anthropic_error_body, int status) {
  std::string_view message, type;
  std::string owned;
  dom::element document;
  if (detail::parseJson(anthropic_error_body, document) == simdjson::SUCCESS) {
    dom::element error;
    if (document["error"].get(error) == simdjson::SUCCESS) {
      type = detail::stringField(error, "type");
      message = detail::stringField(error, "message");
    }
  }
  if (message.empty()) {
    owned = fallbackMessage(anthropic_error_body, status);
    message = owned;
  }
  const detail::OpenAiErrorKind kind = detail::openAiErrorKind(type, status);
  std::string out;
  JsonWriter json(out);
  json.beginObject().key("error").beginObject().key("message").value(message);
  json.key("type").value(kind.type).key("param").null().key("code");
  if (kind.code.empty()) {
    json.null();
  } else {
    json.value(kind.code);
  }
  json.endObject().endObject();
  detail::trimParsers();
  return out;
}

}  // namespace sluice::translate
