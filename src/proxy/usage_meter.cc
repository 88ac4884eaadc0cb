#include "proxy/usage_meter.h"

#include <algorithm>
#include <vector>

#include "proxy/json_scan.h"

namespace sluice::proxy {
namespace {

namespace ondemand = simdjson::ondemand;
using detail::readCount;
using detail::UpstreamCounts;
using providers::Dialect;

// OpenAI usage (chat, completions, embeddings, rerank) or SGLang meta_info: counts replace.
bool readOpenAiUsage(ondemand::object usage, UpstreamCounts& counts) {
  uint64_t cache_hit = 0;  // DeepSeek's prompt_cache_hit_tokens, when no cached_tokens
  bool has_cached = false, has_cache_hit = false;
  for (auto field : usage) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    ondemand::value value;
    if (field.value().get(value) != simdjson::SUCCESS) return false;
    if (key == "prompt_tokens") {
      if (readCount(value, counts.input)) counts.has_input = counts.any = true;
    } else if (key == "completion_tokens") {
      if (readCount(value, counts.output)) counts.any = true;
    } else if (key == "total_tokens") {
      if (readCount(value, counts.total)) counts.has_total = counts.any = true;
    } else if (key == "cached_tokens") {  // SGLang meta_info
      if (readCount(value, counts.cache_read)) has_cached = true;
    } else if (key == "prompt_cache_hit_tokens") {
      if (readCount(value, cache_hit)) has_cache_hit = true;
    } else if (key == "prompt_tokens_details") {
      ondemand::object details;
      if (value.get_object().get(details) != simdjson::SUCCESS) continue;  // null
      for (auto detail : details) {
        std::string_view name;
        if (detail.unescaped_key().get(name) != simdjson::SUCCESS) return false;
        if (name != "cached_tokens") continue;
        ondemand::value cached;
        if (detail.value().get(cached) != simdjson::SUCCESS) return false;
        if (readCount(cached, counts.cache_read)) has_cached = true;
      }
    }
  }
  if (!has_cached && has_cache_hit) counts.cache_read = cache_hit;
  return true;
}

// Anthropic usage: the counts present replace earlier ones (message_delta after message_start).
bool readAnthropicUsage(ondemand::object usage, UpstreamCounts& counts) {
  for (auto field : usage) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    ondemand::value value;
    if (field.value().get(value) != simdjson::SUCCESS) return false;
    bool read = false;
    if (key == "input_tokens") {
      read = readCount(value, counts.input);
      counts.has_input = counts.has_input || read;
    } else if (key == "output_tokens") {
      read = readCount(value, counts.output);
    } else if (key == "cache_read_input_tokens") {
      read = readCount(value, counts.cache_read);
    } else if (key == "cache_creation_input_tokens") {
      read = readCount(value, counts.cache_write);
    }
    counts.any = counts.any || read;
  }
  return true;
}

bool readUsage(ondemand::object usage, Dialect dialect, UpstreamCounts& counts) {
  return dialect == Dialect::kAnthropic ? readAnthropicUsage(usage, counts)
                                        : readOpenAiUsage(usage, counts);
}

Usage toUsage(const UpstreamCounts& counts, Dialect dialect, bool reported) {
  Usage usage;
  usage.output = counts.output;
  if (dialect == Dialect::kAnthropic) {
    usage.input = counts.input + counts.cache_read + counts.cache_write;
  } else if (counts.has_input) {
    usage.input = counts.input;
  } else if (counts.has_total) {  // rerank: every token is input
    usage.input = counts.total - std::min(counts.total, counts.output);
  }
  usage.cached = std::min(counts.cache_read, usage.input);
  usage.reported = reported;
  return usage;
}

// Reads the usage object in `text` ("{...}" cut out of a stream event) into `counts`.
bool parseUsageObject(std::string_view text, Dialect dialect, UpstreamCounts& counts) {
  ondemand::document document;
  ondemand::object usage;
  if (detail::parseCopy(text, document) != simdjson::SUCCESS ||
      document.get_object().get(usage) != simdjson::SUCCESS) {
    return false;
  }
  UpstreamCounts read = counts;
  if (!readUsage(usage, dialect, read)) return false;
  counts = read;
  return true;
}

std::string_view dataOfLine(std::string_view line) {
  if (!line.starts_with("data:")) return {};
  line.remove_prefix(5);
  if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  return line;
}

}  // namespace

Usage usageFromBody(std::string_view body, Dialect dialect) {
  ondemand::document document;
  ondemand::object root;
  if (detail::parseCopy(body, document) != simdjson::SUCCESS ||
      document.get_object().get(root) != simdjson::SUCCESS) {
    return {};
  }
  UpstreamCounts usage, meta_info;
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return {};
    const bool is_usage = key == "usage";
    if (!is_usage && !(key == "meta_info" && dialect == Dialect::kOpenAi)) continue;
    ondemand::object object;
    if (field.value().get_object().get(object) != simdjson::SUCCESS) continue;  // null
    if (!readUsage(object, dialect, is_usage ? usage : meta_info)) return {};
  }
  const char* rest = nullptr;
  if (document.current_location().get(rest) == simdjson::SUCCESS) return {};  // trailing bytes
  if (usage.any) return toUsage(usage, dialect, true);
  if (meta_info.any) return toUsage(meta_info, dialect, true);
  return {};
}

UsageMeter::UsageMeter(Dialect dialect, size_t max_line_bytes)
    : dialect_(dialect), max_line_bytes_(max_line_bytes) {}

void UsageMeter::feed(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    // '\r', '\n' and "\r\n" all end a line; the empty line between '\r' and '\n' is ignored.
    const size_t end = bytes.find_first_of("\r\n", pos);
    const std::string_view piece =
        bytes.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    const size_t room = max_line_bytes_ - line_.size();
    if (skipping_) {
      skipping_ = end == std::string_view::npos;
    } else if (piece.size() > room) {
      // Longer than the bound however it was split: its first max_line_bytes_ are read (for a
      // delta), the rest is dropped up to the end of the line.
      if (line_.empty()) {
        onLine(piece.substr(0, max_line_bytes_));
      } else {
        line_.append(piece.substr(0, room));
        onLine(line_);
      }
      line_ = std::string();
      overflowed_ = true;
      skipping_ = end == std::string_view::npos;
    } else if (end == std::string_view::npos) {
      line_.append(piece);
    } else if (line_.empty()) {
      onLine(piece);
    } else {
      line_.append(piece);
      onLine(line_);
      line_.clear();
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
}

void UsageMeter::finish() {
  if (!skipping_ && !line_.empty()) onLine(line_);
  line_.clear();
  skipping_ = false;
}

void UsageMeter::onLine(std::string_view line) {
  const std::string_view data = dataOfLine(line);
  if (data.empty()) return;  // blank line, event:, id:, comment, or an empty data line
  if (dialect_ == Dialect::kAnthropic) {
    onAnthropicData(data);
  } else {
    onOpenAiData(data);
  }
}

void UsageMeter::onOpenAiData(std::string_view data) {
  for (std::string_view key :
       {"content", "arguments", "reasoning_content", "reasoning", "refusal", "text"}) {
    if (detail::hasNonEmptyStringMember(data, key)) {
      ++deltas_;
      break;
    }
  }
  std::string_view usage = detail::objectMember(data, "usage");
  if (usage.empty()) usage = detail::objectMember(data, "meta_info");  // SGLang /generate
  if (usage.empty() || !detail::isClosedObject(data)) return;
  UpstreamCounts counts;  // each usage chunk holds the totals so far: replace, not merge
  if (parseUsageObject(usage, dialect_, counts) && counts.any) {
    counts_ = counts;
    reported_ = true;
  }
}

void UsageMeter::onAnthropicData(std::string_view data) {
  if (data.find("\"content_block_delta\"") != std::string_view::npos) {
    ++deltas_;
    return;
  }
  const std::string_view usage = detail::objectMember(data, "usage");
  // content_block_start/stop, ping, message_stop, error; or a truncated event.
  if (usage.empty() || !detail::isClosedObject(data)) return;
  if (parseUsageObject(usage, dialect_, counts_) &&
      data.find("\"message_delta\"") != std::string_view::npos) {
    reported_ = true;
  }
}

Usage UsageMeter::usage() const {
  if (reported_) return toUsage(counts_, dialect_, true);
  Usage estimate;
  if (dialect_ == Dialect::kAnthropic) estimate = toUsage(counts_, dialect_, false);
  estimate.output = std::max(estimate.output, deltas_);
  return estimate;
}

bool addIncludeUsage(std::string& body) {
  using namespace simdjson;
  if (body.capacity() - body.size() < SIMDJSON_PADDING) {
    body.reserve(body.size() + SIMDJSON_PADDING);
  }
  thread_local ondemand::parser parser;
  ondemand::document document;
  ondemand::object root;
  if (parser.iterate(padded_string_view(body.data(), body.size(), body.capacity())).get(document) ||
      document.get_object().get(root)) {
    return false;
  }
  // Byte edits of `body`, applied once the walk is over (from the last, so offsets hold).
  struct Edit {
    size_t at, length;
    std::string_view text;
  };
  std::vector<Edit> edits;
  auto offset = [&](std::string_view token) { return size_t(token.data() - body.data()); };
  auto trimmed = [](std::string_view token) {
    while (!token.empty() && detail::isJsonSpace(token.back())) token.remove_suffix(1);
    return token;
  };
  bool stream = false, has_options = false;
  size_t members = 0;
  for (auto field : root) {
    ++members;
    std::string_view key;
    ondemand::value value;
    if (field.unescaped_key().get(key) || field.value().get(value)) return false;
    if (key == "stream") {
      bool flag = false;
      stream = value.get_bool().get(flag) == SUCCESS && flag;
    } else if (key == "stream_options") {
      has_options = true;
      edits.clear();  // a repeated member: the last one counts, as in most JSON readers
      const std::string_view token = value.raw_json_token();
      ondemand::json_type type;
      if (value.type().get(type)) return false;
      if (type == ondemand::json_type::null) {
        edits.push_back({offset(token), trimmed(token).size(), R"({"include_usage":true})"});
        continue;
      }
      ondemand::object options;
      if (type != ondemand::json_type::object || value.get_object().get(options)) return false;
      size_t option_count = 0;
      bool has_include = false;
      for (auto option : options) {
        ++option_count;
        std::string_view name;
        ondemand::value setting;
        if (option.unescaped_key().get(name) || option.value().get(setting)) return false;
        if (name != "include_usage") continue;
        has_include = true;
        bool flag = false;
        const std::string_view setting_token = setting.raw_json_token();
        if (setting.type().get(type)) return false;
        std::string_view text = trimmed(setting_token);
        if (type == ondemand::json_type::object || type == ondemand::json_type::array) {
          // Replaced whole: the raw text of the container, read to its end.
          ondemand::object inner_object;
          ondemand::array inner_array;
          if (type == ondemand::json_type::object
                  ? setting.get_object().get(inner_object) || inner_object.raw_json().get(text)
                  : setting.get_array().get(inner_array) || inner_array.raw_json().get(text)) {
            return false;
          }
          text = trimmed(text);
        } else if (setting.get_bool().get(flag) == SUCCESS && flag) {
          continue;
        }
        edits.push_back({offset(setting_token), text.size(), "true"});
      }
      if (!has_include) {
        edits.push_back(
            {offset(token) + 1, 0,
             option_count == 0 ? R"("include_usage":true)" : R"("include_usage":true,)"});
      }
    }
  }
  const char* rest = nullptr;
  if (document.current_location().get(rest) == SUCCESS) return false;  // trailing bytes
  if (!stream) return false;
  if (!has_options) {
    // After the last member's value: before the closing brace and the space in front of it.
    size_t close = body.size();
    while (close > 0 && body[close - 1] != '}') --close;
    size_t at = close - 1;
    while (at > 0 && detail::isJsonSpace(body[at - 1])) --at;
    body.insert(at, members == 0 ? R"("stream_options":{"include_usage":true})"
                                 : R"(,"stream_options":{"include_usage":true})");
    return true;
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.at > b.at; });
  for (const Edit& edit : edits) body.replace(edit.at, edit.length, edit.text);
  return true;
}

}  // namespace sluice::proxy
