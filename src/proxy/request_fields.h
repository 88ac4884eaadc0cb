#pragma once

#include <string>
#include <tl/expected.hpp>

#include "proxy/api_error.h"

namespace sluice::proxy {

// The few fields of an OpenAI-style request body that the gateway needs to route it.
struct RequestFields {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  uint64_t max_tokens = 0;     // max_tokens or max_completion_tokens; 0: not given
};

// Parses `body` once with simdjson on-demand. May grow the string's capacity by
// SIMDJSON_PADDING (the reader reserves it up front, so usually nothing is copied); the bytes
// are never changed. Invalid JSON, a missing or non-string model give a 400 ApiError.
tl::expected<RequestFields, ApiError> parseRequestFields(std::string& body);

// The prompt text of a request, for cache-aware routing: system prompt and message contents
// (text parts only) of chat and Anthropic messages requests, or `prompt` / `input`, joined by
// newlines and cut at `limit` bytes. Empty when the body has none (or is not valid JSON).
std::string promptText(std::string& body, size_t limit);

}  // namespace sluice::proxy
