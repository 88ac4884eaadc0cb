#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/body_transform.h"

namespace sluice::proxy {

// Removes from an OpenAI event stream the usage-only chunk that the gateway asked for on the
// client's behalf (addIncludeUsage): each event whose data is a JSON object with `usage` an
// object and `choices` empty or absent (and no `error`) goes, with its blank line; every other
// byte passes unchanged, whatever the splits. Meter the upstream bytes before this filter.
//
// An event is held until its blank line (clients act on nothing earlier); the bytes of an event
// that outgrows `max_event_bytes` are passed on as they come (it is not the usage chunk), so
// memory stays bounded. Data lines of one event are joined with '\n', as SSE readers do.
class UsageChunkStripper final : public BodyTransform {
 public:
  static constexpr size_t kMaxEventBytes = size_t{1} << 20;

  explicit UsageChunkStripper(size_t max_event_bytes = kMaxEventBytes)
      : max_event_bytes_(max_event_bytes) {}

  // Never fails (returns true).
  bool feed(std::string_view bytes, std::string& out) override;
  // Passes on an unfinished last event, unless it is a complete usage-only chunk.
  void finish(std::string& out) override;

  // Events removed so far.
  uint64_t stripped() const { return stripped_; }

 private:
  // The event [held_ + `tail`] ended: appends it to `out` unless it is the usage chunk.
  // Returns whether it was removed.
  bool closeEvent(std::string_view tail, std::string& out);
  bool isUsageOnly(std::string_view event);

  size_t max_event_bytes_;
  std::string held_;       // the current event's bytes from earlier feeds
  std::string data_;       // joined data lines of an event that has several
  size_t line_bytes_ = 0;  // bytes in the current line so far (0: at a line start)
  bool after_cr_ = false;  // the last byte was a '\r' ending a line: a '\n' next belongs to it
  bool cr_ended_event_ = false;  // ... and that line was the blank line ending an event
  bool last_removed_ = false;    // the last completed event was removed
  bool passing_ = false;         // the current event outgrew the bound: its bytes pass as they come
  uint64_t stripped_ = 0;
};

}  // namespace sluice::proxy
