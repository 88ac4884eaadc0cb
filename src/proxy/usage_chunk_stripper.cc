#include "proxy/usage_chunk_stripper.h"

#include "proxy/json_scan.h"

namespace sluice::proxy {

bool UsageChunkStripper::feed(std::string_view bytes, std::string& out) {
  if (bytes.empty()) return true;
  size_t pos = 0;
  size_t event_start = 0;  // where the current event begins in `bytes`
  size_t flush_from = 0;   // [flush_from, event_start) holds complete events to pass on
  if (after_cr_) {
    after_cr_ = false;
    if (bytes.front() == '\n') {  // the rest of a "\r\n" split by the reads
      pos = 1;
      if (cr_ended_event_) {
        event_start = 1;
        if (last_removed_) flush_from = 1;
      }
    }
  }
  while (pos < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_bytes_ += bytes.size() - pos;
      break;
    }
    const bool blank = line_bytes_ == 0 && end == pos;
    line_bytes_ = 0;
    size_t next = end + 1;
    if (bytes[end] == '\r') {
      if (next == bytes.size()) {
        after_cr_ = true;
        cr_ended_event_ = blank;
      } else if (bytes[next] == '\n') {
        ++next;
      }
    }
    pos = next;
    if (!blank) continue;
    // A blank line: the event [event_start, next) is complete.
    const std::string_view tail = bytes.substr(event_start, next - event_start);
    if (passing_) {  // its first bytes are out already; the rest is in the flush range
      passing_ = false;
      last_removed_ = false;
    } else if (!held_.empty()) {  // it began in an earlier read (so event_start == 0)
      last_removed_ = closeEvent(tail, out);
      flush_from = next;
    } else if (isUsageOnly(tail)) {
      out.append(bytes.substr(flush_from, event_start - flush_from));
      flush_from = next;
      ++stripped_;
      last_removed_ = true;
    } else {
      last_removed_ = false;
    }
    event_start = next;
  }
  if (passing_) {
    out.append(bytes.substr(flush_from));
    return true;
  }
  out.append(bytes.substr(flush_from, event_start - flush_from));
  const std::string_view rest = bytes.substr(event_start);
  if (held_.size() + rest.size() > max_event_bytes_) {
    out += held_;
    out.append(rest);
    held_ = std::string();
    passing_ = true;
  } else {
    held_.append(rest);
  }
  return true;
}

void UsageChunkStripper::finish(std::string& out) {
  if (!passing_ && !held_.empty()) closeEvent({}, out);
  held_ = std::string();
  passing_ = false;
}

bool UsageChunkStripper::closeEvent(std::string_view tail, std::string& out) {
  held_.append(tail);
  const bool remove = isUsageOnly(held_);
  if (remove) {
    ++stripped_;
  } else {
    out += held_;
  }
  held_.clear();
  return remove;
}

bool UsageChunkStripper::isUsageOnly(std::string_view event) {
  // Most events carry no usage object (or "usage":null): no parse.
  if (detail::objectMember(event, "usage").empty()) return false;
  std::string_view data;
  size_t data_lines = 0;
  size_t pos = 0;
  while (pos < event.size()) {
    size_t end = event.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = event.size();
    std::string_view line = event.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with("data:")) continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (data_lines++ == 0) {
      data = line;
      continue;
    }
    if (data_lines == 2) data_.assign(data);
    data_ += '\n';
    data_.append(line);
    data = data_;
  }
  // The DOM parser validates every value (on-demand would skip the ones not read); it runs on
  // the rare event that carries a usage object.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object chunk;
  if (data_lines == 0 || parser.parse(data.data(), data.size(), true).get(chunk)) return false;
  simdjson::dom::element usage, choices, error;
  if (chunk["error"].get(error) == simdjson::SUCCESS && !error.is_null()) return false;
  if (chunk["usage"].get(usage) || !usage.is_object()) return false;
  if (chunk["choices"].get(choices) == simdjson::SUCCESS) {
    simdjson::dom::array list;
    if (choices.get_array().get(list) || list.size() != 0) return false;
  }
  return true;
}

}  // namespace sluice::proxy
