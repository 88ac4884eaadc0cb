#include "redis/resp_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>

namespace sluice::redis {
namespace {

// After a large reply the buffer gives its memory back rather than keeping it per connection.
constexpr size_t kKeptCapacity = 64u << 10;
// An array header may announce many elements; room is reserved for at most this many up front.
constexpr int64_t kMaxReserve = 1024;
// The smallest element on the wire ("+\r\n"), to refuse arrays that cannot fit the limit.
constexpr size_t kMinElementBytes = 3;

std::optional<int64_t> parseInteger(std::string_view text) {
  int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

}  // namespace

void appendBulk(std::string& out, std::string_view arg) {
  fmt::format_to(std::back_inserter(out), "${}\r\n", arg.size());
  out.append(arg);
  out += "\r\n";
}

void appendCommand(std::string& out, std::span<const std::string_view> args) {
  fmt::format_to(std::back_inserter(out), "*{}\r\n", args.size());
  for (const auto arg : args) appendBulk(out, arg);
}

void RespParser::feed(std::string_view bytes) {
  if (error_) return;
  if (pos_ == buffer_.size()) {
    if (buffer_.capacity() > kKeptCapacity) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    pos_ = 0;
  } else if (pos_ > 0 && pos_ >= buffer_.size() / 2) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  buffer_.append(bytes);
}

tl::expected<std::optional<RedisReply>, std::string> RespParser::fail(std::string message) {
  error_ = std::move(message);
  stack_.clear();
  return tl::unexpected(*error_);
}

tl::expected<std::optional<RedisReply>, std::string> RespParser::next() {
  if (error_) return tl::unexpected(*error_);
  const size_t max_bytes = limits_.max_reply_bytes;
  const auto too_large = [&] {
    return fail(fmt::format("reply exceeds the limit of {} bytes", max_bytes));
  };
  while (true) {
    std::optional<RedisReply> value;
    const size_t available = buffer_.size() - pos_;
    if (bulk_length_ >= 0) {
      const size_t length = static_cast<size_t>(bulk_length_);
      if (available < length + 2) return std::nullopt;
      const char* data = buffer_.data() + pos_;
      if (data[length] != '\r' || data[length + 1] != '\n') {
        return fail("bulk string not followed by CRLF");
      }
      value = RedisReply::BulkString{std::string(data, length)};
      pos_ += length + 2;
      reply_bytes_ += length + 2;
      bulk_length_ = -1;
    } else {
      const std::string_view rest(buffer_.data() + pos_, available);
      const size_t newline = rest.find('\n', scanned_);
      if (newline == std::string_view::npos) {
        scanned_ = available;
        if (reply_bytes_ + available > max_bytes) return too_large();
        return std::nullopt;
      }
      scanned_ = 0;
      if (newline < 2 || rest[newline - 1] != '\r') return fail("line not terminated by CRLF");
      const char type = rest[0];
      const std::string_view body = rest.substr(1, newline - 2);
      pos_ += newline + 1;
      reply_bytes_ += newline + 1;
      if (reply_bytes_ > max_bytes) return too_large();
      switch (type) {
        case '+':
          value = RedisReply::SimpleString{std::string(body)};
          break;
        case '-':
          value = RedisReply::Error{std::string(body)};
          break;
        case ':': {
          const auto number = parseInteger(body);
          if (!number) return fail(fmt::format("invalid integer reply {:?}", body));
          value = RedisReply(*number);
          break;
        }
        case '$': {
          const auto length = parseInteger(body);
          if (!length || *length < -1) {
            return fail(fmt::format("invalid bulk string length {:?}", body));
          }
          if (*length == -1) {
            value = RedisReply();
            break;
          }
          if (static_cast<uint64_t>(*length) + 2 > max_bytes - reply_bytes_) return too_large();
          bulk_length_ = *length;
          continue;
        }
        case '*': {
          const auto count = parseInteger(body);
          if (!count || *count < -1) return fail(fmt::format("invalid array length {:?}", body));
          if (*count == -1) {
            value = RedisReply();
            break;
          }
          if (stack_.size() >= limits_.max_depth) {
            return fail(fmt::format("arrays nested deeper than {} levels", limits_.max_depth));
          }
          if (*count == 0) {
            value = RedisReply(RedisReply::Array{});
            break;
          }
          if (static_cast<uint64_t>(*count) > (max_bytes - reply_bytes_) / kMinElementBytes) {
            return too_large();
          }
          Frame frame{{}, *count};
          frame.items.reserve(static_cast<size_t>(std::min(*count, kMaxReserve)));
          stack_.push_back(std::move(frame));
          continue;
        }
        default:
          return fail(
              fmt::format("unexpected reply type byte {:#04x}", static_cast<unsigned char>(type)));
      }
    }
    // A whole value: it completes the reply, or fills the innermost open array (which may
    // complete it and, in turn, its parents).
    bool complete = true;
    while (!stack_.empty()) {
      Frame& frame = stack_.back();
      frame.items.push_back(std::move(*value));
      if (--frame.remaining > 0) {
        complete = false;
        break;
      }
      RedisReply array(std::move(frame.items));
      stack_.pop_back();
      value = std::move(array);
    }
    if (complete) {
      reply_bytes_ = 0;
      return value;
    }
  }
}

}  // namespace sluice::redis
