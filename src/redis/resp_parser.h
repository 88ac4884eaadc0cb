#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "redis/redis_reply.h"

namespace sluice::redis {

// Appends `args` as one RESP command (an array of bulk strings) to `out`.
void appendCommand(std::string& out, std::span<const std::string_view> args);
// Appends one bulk string, for commands assembled piece by piece (after a "*<count>\r\n").
void appendBulk(std::string& out, std::string_view arg);

// Incremental RESP2 reply parser for one connection: bytes go in as they arrive, in pieces of
// any size, and whole replies come out in order. Parsing resumes where the last piece ended, so
// a reply arriving in many reads is scanned once. Bounded: a reply may take at most
// `max_reply_bytes` on the wire (a bulk or array header announcing more is refused before its
// bytes arrive), and arrays nest at most `max_depth` levels. A malformed or oversized reply is
// an error from which the stream cannot recover: the connection has to be closed.
class RespParser {
 public:
  struct Limits {
    size_t max_reply_bytes = 16u << 20;
    size_t max_depth = 16;
  };

  RespParser() = default;
  explicit RespParser(Limits limits) : limits_(limits) {}

  void feed(std::string_view bytes);

  // The next complete reply, nullopt until enough bytes have been fed, or why the stream is
  // unusable (the same message on every later call).
  tl::expected<std::optional<RedisReply>, std::string> next();

  // Bytes fed but not yet returned as part of a reply.
  size_t buffered() const { return buffer_.size() - pos_; }

 private:
  struct Frame {
    RedisReply::Array items;
    int64_t remaining;
  };

  tl::expected<std::optional<RedisReply>, std::string> fail(std::string message);

  Limits limits_;
  std::string buffer_;
  size_t pos_ = 0;            // start of the unparsed bytes in buffer_
  size_t scanned_ = 0;        // bytes after pos_ already searched for the end of a line
  int64_t bulk_length_ = -1;  // >= 0: waiting for this many payload bytes (+ CRLF)
  size_t reply_bytes_ = 0;    // wire bytes of the current top-level reply consumed so far
  std::vector<Frame> stack_;  // arrays being filled, innermost last
  std::optional<std::string> error_;
};

}  // namespace sluice::redis
