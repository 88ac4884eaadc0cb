#pragma once

// Translation between the OpenAI Chat Completions API and the Anthropic Messages API: request
// and response bodies, error bodies and SSE streams, both directions. Pure functions over bytes
// (no I/O): the request pipeline calls them around the upstream exchange.
//
// Input is untrusted on both sides. Client bodies that cannot be translated give a 400
// TranslateError naming the field; upstream bodies that cannot be read give a 502 with type
// "upstream_error". Nothing throws.

#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "translate/anthropic_to_openai_stream.h"
#include "translate/openai_to_anthropic_stream.h"

namespace sluice::translate {

struct TranslateError {
  int status = 400;
  std::string type;  // "invalid_request_error" (client input) or "upstream_error"
  std::string message;
};

// ---- Requests (client dialect → upstream dialect) ----

// An Anthropic /v1/messages body → an OpenAI /v1/chat/completions body. `upstream_model`
// replaces `model` when non-empty. A streaming request asks for stream_options.include_usage.
tl::expected<std::string, TranslateError> anthropicToOpenAiRequest(std::string_view anthropic_body,
                                                                   std::string_view upstream_model);

// An OpenAI chat completions body → an Anthropic messages body. `default_max_tokens` is used when
// the client gave neither max_tokens nor max_completion_tokens (Anthropic requires one).
tl::expected<std::string, TranslateError> openAiToAnthropicRequest(std::string_view openai_body,
                                                                   std::string_view upstream_model,
                                                                   uint32_t default_max_tokens);

// ---- Responses (upstream dialect → client dialect), non-streaming ----
// `client_model` is the model name the client asked for; empty keeps the upstream's.

tl::expected<std::string, TranslateError> openAiToAnthropicResponse(std::string_view openai_body,
                                                                    std::string_view client_model);

tl::expected<std::string, TranslateError> anthropicToOpenAiResponse(std::string_view anthropic_body,
                                                                    std::string_view client_model);

// ---- Error bodies (any upstream error status) → the client's dialect ----
// Never fail: a body that is not the expected shape becomes a message built from the status
// (and the body text when it is short, readable text).

// → {"type":"error","error":{"type":...,"message":...}}
std::string openAiErrorToAnthropic(std::string_view openai_error_body, int status);
// → {"error":{"message":...,"type":...,"param":null,"code":...}}
std::string anthropicErrorToOpenAi(std::string_view anthropic_error_body, int status);

}  // namespace sluice::translate
