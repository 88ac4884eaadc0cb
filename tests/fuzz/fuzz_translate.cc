// OpenAI ⇄ Anthropic translation of request, response and error bodies: any input gives either
// valid JSON or an error with a 4xx/5xx status, never a crash.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "translate/translate.h"

namespace {

void mustBeJson(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text).get(root)) __builtin_trap();
}

template <typename Result>
void check(const Result& result) {
  if (result) {
    mustBeJson(*result);
  } else if (result.error().status < 400 || result.error().status > 599 ||
             result.error().message.empty()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace t = sluice::translate;
  switch (data[0] % 6) {
    case 0:
      check(t::anthropicToOpenAiRequest(body, data[0] & 8 ? "upstream-model" : ""));
      break;
    case 1:
      check(t::openAiToAnthropicRequest(body, data[0] & 8 ? "upstream-model" : "", 1024));
      break;
    case 2:
      check(t::openAiToAnthropicResponse(body, data[0] & 8 ? "client-model" : ""));
      break;
    case 3:
      check(t::anthropicToOpenAiResponse(body, data[0] & 8 ? "client-model" : ""));
      break;
    case 4:
      mustBeJson(t::openAiErrorToAnthropic(body, 400 + data[0] % 200));
      break;
    default:
      mustBeJson(t::anthropicErrorToOpenAi(body, 400 + data[0] % 200));
      break;
  }
  return 0;
}
