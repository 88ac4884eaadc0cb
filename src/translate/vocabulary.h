#pragma once

// The words the two APIs use for the same things (stop reasons, error types, id prefixes) and
// the SSE framing each expects. Private to src/translate.

#include <string>
#include <string_view>

namespace sluice::translate::detail {

// OpenAI finish_reason → Anthropic stop_reason (unknown values → "end_turn").
std::string_view anthropicStopReason(std::string_view finish_reason);
// Anthropic stop_reason → OpenAI finish_reason (unknown values → "stop").
std::string_view openAiFinishReason(std::string_view stop_reason);

// Anthropic error type for an HTTP status ("rate_limit_error" for 429, …).
std::string_view anthropicErrorType(int status);

// OpenAI error type and code for an Anthropic error type (code may be empty: null).
struct OpenAiErrorKind {
  std::string_view type;
  std::string_view code;
};
OpenAiErrorKind openAiErrorKind(std::string_view anthropic_type, int status);

// Ids keep the upstream's id visible: "chatcmpl-X" ⇄ "msg_X". An empty upstream id gets a
// random one.
std::string anthropicMessageId(std::string_view openai_id);
std::string openAiCompletionId(std::string_view anthropic_id);
std::string newToolUseId();   // "toolu_<random>"
std::string newToolCallId();  // "call_<random>"

// Appends "event: <name>\ndata: " / "data: "; the caller writes the JSON and then endSse().
void beginAnthropicSse(std::string& out, std::string_view event_name);
void beginOpenAiSse(std::string& out);
void endSse(std::string& out);

// `text` if it is valid UTF-8 without NUL, cut to at most `max_bytes` on a character boundary;
// empty otherwise. Used to quote upstream bodies in error messages.
std::string_view printablePrefix(std::string_view text, size_t max_bytes);

}  // namespace sluice::translate::detail
