// Upstream event streams: SSE decoding with bytes split anywhere, then re-framing into the
// other dialect (OpenAI chunks → Anthropic events, or the reverse). Whatever the upstream sends,
// the client gets whole SSE events, and a translated stream always ends.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/sse_decoder.h"
#include "translate/anthropic_to_openai_stream.h"
#include "translate/openai_to_anthropic_stream.h"

namespace {

// Output must be a sequence of complete events: empty or ending with a blank line.
void checkFraming(const std::string& out) {
  if (!out.empty() && !out.ends_with("\n\n")) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool to_anthropic = data[0] & 1;
  const size_t piece = 1 + data[1] % 64;  // how the bytes are split across reads
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

  sluice::http::SseDecoder decoder(64 * 1024);
  sluice::translate::OpenAiToAnthropicStream openai("client-model");
  sluice::translate::AnthropicToOpenAiStream anthropic("client-model", data[0] & 2);
  std::string out;
  auto onEvent = [&](const sluice::http::SseEvent& event) {
    out.clear();
    if (to_anthropic) {
      openai.onEvent(event.event, event.data, out);
    } else {
      anthropic.onEvent(event.event, event.data, out);
    }
    checkFraming(out);
  };
  for (size_t at = 0; at < input.size(); at += piece) {
    if (!decoder.feed(input.substr(at, piece), onEvent)) break;
  }
  decoder.finish(onEvent);
  out.clear();
  if (to_anthropic) {
    openai.finish(out);
    if (!openai.done()) __builtin_trap();
  } else {
    anthropic.finish(out);
    if (!anthropic.done()) __builtin_trap();
  }
  checkFraming(out);
  return 0;
}
