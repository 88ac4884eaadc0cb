#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace sluice::http {

// One Server-Sent Event; views are valid only during the callback.
struct SseEvent {
  std::string_view event;  // empty when the stream did not name it ("message")
  std::string_view data;   // data lines joined by '\n'
  std::string_view id;
};

// Incremental SSE parser (WHATWG event-stream rules): bytes may arrive split anywhere, even
// inside a CRLF; a blank line dispatches the event. Memory is bounded by `max_event_bytes`.
class SseDecoder {
 public:
  using Callback = std::function<void(const SseEvent&)>;

  explicit SseDecoder(size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}

  // Feeds the next bytes; calls `on_event` for every completed event. Returns false once an
  // event or line exceeded the bound (the decoder then ignores further input).
  bool feed(std::string_view bytes, const Callback& on_event);

  // Dispatches a final event that was not followed by a blank line (stream ended).
  void finish(const Callback& on_event);

  bool failed() const { return failed_; }

 private:
  void processLine(std::string_view line, const Callback& on_event);
  void dispatch(const Callback& on_event);

  size_t max_event_bytes_;
  std::string line_;  // partial line carried between feeds
  std::string event_;
  std::string data_;
  std::string id_;
  bool has_data_ = false;
  bool last_was_cr_ = false;  // a '\r' ended the previous feed: a following '\n' is its pair
  bool failed_ = false;
};

// Appends `event` in the wire format: "event:" (when named), "id:" (when set), one "data:"
// line per line of data, and the blank line that ends it.
void appendSseEvent(std::string& out, const SseEvent& event);

}  // namespace sluice::http
