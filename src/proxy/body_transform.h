#pragma once

// What the gateway does to an upstream answer before the client sees it, when it is not
// relayed byte for byte: the model name mapped back to the one the client asked for, or a
// translation between the OpenAI and Anthropic dialects. Streams are transformed event by
// event as they arrive; JSON bodies are transformed whole (bounded).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::proxy {

class BodyTransform {
 public:
  virtual ~BodyTransform() = default;
  // Consumes upstream bytes, appends what the client gets to `out`. False: the answer cannot
  // be transformed (e.g. larger than the bound); the gateway ends the response.
  virtual bool feed(std::string_view bytes, std::string& out) = 0;
  // The upstream answer ended.
  virtual void finish(std::string& out) = 0;
};

enum class Translation { kNone, kOpenAiToAnthropic, kAnthropicToOpenAi };

struct TransformSpec {
  Translation translation = Translation::kNone;
  bool event_stream = false;   // the upstream answers text/event-stream
  int status = 200;            // upstream status: error bodies are translated as errors
  std::string client_model;    // the name the client asked for
  std::string upstream_model;  // the name the upstream was given
  bool include_usage = false;  // the client asked stream_options.include_usage
  bool strip_usage_chunk = false;  // the gateway asked for it instead: the client must not see it
  uint64_t max_body_bytes = 64 * 1024 * 1024;
};

// Null when the answer can be relayed unchanged.
std::unique_ptr<BodyTransform> makeBodyTransform(const TransformSpec& spec);

// Replaces the value of the first "model" member when it equals `from` (JSON text, either
// spacing). Returns whether it changed anything.
bool renameModel(std::string& json, std::string_view from, std::string_view to);

}  // namespace sluice::proxy
