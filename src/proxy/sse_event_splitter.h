#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "http/sse_decoder.h"
#include "wasm/event_splitter.h"

namespace sluice::proxy {

// Whole SSE events for plugins that asked for them (sluice.sse_events), however the upstream's
// reads cut them: events as SseDecoder reads them, each written again in the wire format
// (comments and events without data are dropped). An event, or a run of lines without a blank
// line, longer than `max_event_bytes` fails the splitter; the raw bytes of the unfinished event
// stay available (takePending) so that they can pass on unchanged.
class SseEventSplitter final : public wasm::EventSplitter {
 public:
  explicit SseEventSplitter(size_t max_event_bytes)
      : decoder_(max_event_bytes), max_event_bytes_(max_event_bytes) {}

  bool feed(std::string_view bytes, std::vector<std::string>& events) override;
  void finish(std::vector<std::string>& events) override;
  std::string takePending() override;

 private:
  http::SseDecoder decoder_;
  size_t max_event_bytes_;
  std::string pending_;    // raw bytes since the last event boundary
  bool after_cr_ = false;  // the last byte fed was a '\r' (a '\n' next completes it)
  bool failed_ = false;
};

}  // namespace sluice::proxy
