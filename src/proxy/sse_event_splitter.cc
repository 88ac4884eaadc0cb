#include "proxy/sse_event_splitter.h"

#include <utility>

namespace sluice::proxy {

bool SseEventSplitter::feed(std::string_view bytes, std::vector<std::string>& events) {
  if (failed_) {
    pending_.append(bytes);
    return false;
  }
  bool dispatched = false;
  const auto on_event = [&](const http::SseEvent& event) {
    std::string text;
    http::appendSseEvent(text, event);
    events.push_back(std::move(text));
    dispatched = true;
  };
  // A line at a time, so that the raw bytes of the unfinished event are known.
  size_t pos = 0;
  while (pos < bytes.size()) {
    const auto newline = bytes.find('\n', pos);
    const size_t end = newline == std::string_view::npos ? bytes.size() : newline + 1;
    const auto line = bytes.substr(pos, end - pos);
    dispatched = false;
    if (!decoder_.feed(line, on_event)) {
      failed_ = true;
      pending_.append(bytes.substr(pos));
      return false;
    }
    // A blank line ends an event even when it dispatched nothing (a comment, a keep-alive);
    // the '\n' of a CRLF that a read split is not one.
    std::string_view text = line;
    const bool completes_cr = after_cr_ && text == "\n";
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    after_cr_ = line.back() == '\r';
    if (dispatched || (text.empty() && !completes_cr)) {
      pending_.clear();
    } else {
      pending_.append(line);
      if (pending_.size() > max_event_bytes_) {
        failed_ = true;
        pending_.append(bytes.substr(end));
        return false;
      }
    }
    pos = end;
  }
  return true;
}

void SseEventSplitter::finish(std::vector<std::string>& events) {
  if (failed_) return;
  decoder_.finish([&](const http::SseEvent& event) {
    std::string text;
    http::appendSseEvent(text, event);
    events.push_back(std::move(text));
  });
  pending_.clear();
}

std::string SseEventSplitter::takePending() { return std::exchange(pending_, std::string()); }

}  // namespace sluice::proxy
