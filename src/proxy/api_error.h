#pragma once

#include <string>
#include <string_view>

namespace sluice::proxy {

// What went wrong, independent of how it is written to the client.
struct ApiError {
  int status = 500;
  std::string_view type;  // OpenAI error type, e.g. "invalid_request_error"
  std::string_view code;  // machine-readable code, e.g. "model_not_found"
  std::string message;
};

// `{"error":{"message":...,"type":...,"code":...}}`, the shape OpenAI clients parse.
std::string openAiErrorBody(const ApiError& error);

// `{"type":"error","error":{"type":...,"message":...}}`, the shape Anthropic clients parse;
// the type follows the status as Anthropic's API names it.
std::string anthropicErrorBody(const ApiError& error);

}  // namespace sluice::proxy
