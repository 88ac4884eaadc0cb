#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::wasm {

// An upstream answer split into whole events for the plugins that asked for them
// (sluice.sse_events); the proxy supplies one for text/event-stream answers, the plugin host
// knows no SSE.
class EventSplitter {
 public:
  virtual ~EventSplitter() = default;
  // Appends the events `bytes` completes to `events`; false when an event outgrew the bound.
  virtual bool feed(std::string_view bytes, std::vector<std::string>& events) = 0;
  // The answer ended: an unterminated last event.
  virtual void finish(std::vector<std::string>& events) = 0;
  // The bytes received but not returned as events (after a failure: all the rest), and forgets
  // them: what passes on unchanged when the plugin is taken out.
  virtual std::string takePending() = 0;
};

using EventSplitterFactory = std::function<std::unique_ptr<EventSplitter>(size_t max_event_bytes)>;

}  // namespace sluice::wasm
