#include "http/sse_decoder.h"

namespace sluice::http {

bool SseDecoder::feed(std::string_view bytes, const Callback& on_event) {
  if (failed_) return false;
  size_t pos = 0;
  if (last_was_cr_ && !bytes.empty() && bytes.front() == '\n') pos = 1;
  last_was_cr_ = false;
  while (pos < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      break;
    }
    std::string_view line = bytes.substr(pos, end - pos);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    if (bytes[end] == '\r') {
      if (end + 1 < bytes.size()) {
        pos = end + (bytes[end + 1] == '\n' ? 2 : 1);
      } else {
        pos = end + 1;
        last_was_cr_ = true;
      }
    } else {
      pos = end + 1;
    }
    processLine(line, on_event);
    line_.clear();
    if (failed_) return false;
  }
  if (line_.size() + data_.size() > max_event_bytes_) failed_ = true;
  return !failed_;
}

void SseDecoder::finish(const Callback& on_event) {
  if (failed_) return;
  if (!line_.empty()) {
    const std::string line = std::move(line_);
    line_.clear();
    processLine(line, on_event);
  }
  dispatch(on_event);
}

void SseDecoder::processLine(std::string_view line, const Callback& on_event) {
  if (line.empty()) {
    dispatch(on_event);
    return;
  }
  if (line.front() == ':') return;  // comment / keep-alive
  std::string_view field = line;
  std::string_view value;
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
    if (data_.size() > max_event_bytes_) failed_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_.assign(value);
  }
}

void SseDecoder::dispatch(const Callback& on_event) {
  if (has_data_) on_event(SseEvent{event_, data_, id_});
  event_.clear();
  data_.clear();
  has_data_ = false;
}

void appendSseEvent(std::string& out, const SseEvent& event) {
  if (!event.event.empty()) {
    out += "event: ";
    out += event.event;
    out += '\n';
  }
  if (!event.id.empty()) {
    out += "id: ";
    out += event.id;
    out += '\n';
  }
  // A data payload with newlines becomes several data lines.
  size_t start = 0;
  while (true) {
    const auto end = event.data.find('\n', start);
    out += "data: ";
    out += event.data.substr(start,
                             end == std::string_view::npos ? std::string_view::npos : end - start);
    out += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  out += '\n';
}

}  // namespace sluice::http
