#include "translate/vocabulary.h"

#include <simdjson.h>

#include "common/request_id.h"

namespace sluice::translate::detail {

std::string_view anthropicStopReason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

std::string_view openAiFinishReason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

std::string_view anthropicErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

OpenAiErrorKind openAiErrorKind(std::string_view anthropic_type, int status) {
  if (anthropic_type == "invalid_request_error") return {"invalid_request_error", ""};
  if (anthropic_type == "authentication_error") return {"authentication_error", "invalid_api_key"};
  if (anthropic_type == "permission_error") return {"permission_error", ""};
  if (anthropic_type == "not_found_error") return {"invalid_request_error", "not_found"};
  if (anthropic_type == "request_too_large") {
    return {"invalid_request_error", "request_too_large"};
  }
  if (anthropic_type == "rate_limit_error") return {"rate_limit_error", "rate_limit_exceeded"};
  if (anthropic_type == "billing_error") return {"insufficient_quota", "insufficient_quota"};
  if (anthropic_type == "overloaded_error") return {"server_error", "overloaded"};
  if (anthropic_type == "timeout_error") return {"server_error", "timeout"};
  if (anthropic_type == "api_error") return {"server_error", ""};
  if (status >= 400 && status < 500) return {"invalid_request_error", ""};
  return {"server_error", ""};
}

namespace {

std::string withoutPrefix(std::string_view id, std::string_view prefix) {
  if (id.size() > prefix.size() && id.substr(0, prefix.size()) == prefix) {
    id.remove_prefix(prefix.size());
  }
  return std::string(id);
}

}  // namespace

std::string anthropicMessageId(std::string_view openai_id) {
  if (openai_id.empty()) return "msg_" + newRequestId();
  return "msg_" + withoutPrefix(openai_id, "chatcmpl-");
}

std::string openAiCompletionId(std::string_view anthropic_id) {
  if (anthropic_id.empty()) return "chatcmpl-" + newRequestId();
  return "chatcmpl-" + withoutPrefix(anthropic_id, "msg_");
}

std::string newToolUseId() { return "toolu_" + newRequestId(); }
std::string newToolCallId() { return "call_" + newRequestId(); }

void beginAnthropicSse(std::string& out, std::string_view event_name) {
  out += "event: ";
  out += event_name;
  out += "\ndata: ";
}

void beginOpenAiSse(std::string& out) { out += "data: "; }

void endSse(std::string& out) { out += "\n\n"; }

std::string_view printablePrefix(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    size_t cut = max_bytes;
    // Step back over continuation bytes (10xxxxxx) to the start of a character.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut);
  }
  if (text.find('\0') != std::string_view::npos) return {};
  if (!simdjson::validate_utf8(text.data(), text.size())) return {};
  return text;
}

}  // namespace sluice::translate::detail
