#pragma once

#include <cstdint>
#include <string>
#include <tl/expected.hpp>
#include <variant>
#include <vector>

namespace sluice::redis {

// One RESP2 reply as Redis sent it. Error replies (`-ERR ...`, `-NOSCRIPT ...`) are replies
// like any other: the command reached Redis and Redis answered. Failures to get an answer at
// all are RedisError (below).
class RedisReply {
 public:
  struct Nil {
    bool operator==(const Nil&) const = default;
  };
  struct SimpleString {
    std::string value;
    bool operator==(const SimpleString&) const = default;
  };
  struct BulkString {
    std::string value;
    bool operator==(const BulkString&) const = default;
  };
  struct Error {
    std::string message;  // without the leading '-', e.g. "NOSCRIPT No matching script."
    bool operator==(const Error&) const = default;
  };
  using Array = std::vector<RedisReply>;
  using Value = std::variant<Nil, int64_t, SimpleString, BulkString, Error, Array>;

  // Implicit from each kind of value, so that a reply reads like its value:
  // RedisReply(RedisReply::Array{RedisReply(1), RedisReply::BulkString{"a"}}).
  RedisReply() = default;                                       // nil
  RedisReply(Nil) {}                                            // NOLINT
  RedisReply(int64_t value) : value_(value) {}                  // NOLINT
  RedisReply(SimpleString value) : value_(std::move(value)) {}  // NOLINT
  RedisReply(BulkString value) : value_(std::move(value)) {}    // NOLINT
  RedisReply(Error value) : value_(std::move(value)) {}         // NOLINT
  RedisReply(Array value) : value_(std::move(value)) {}         // NOLINT

  bool isNil() const { return std::holds_alternative<Nil>(value_); }
  bool isInteger() const { return std::holds_alternative<int64_t>(value_); }
  // A simple or a bulk string.
  bool isString() const {
    return std::holds_alternative<SimpleString>(value_) ||
           std::holds_alternative<BulkString>(value_);
  }
  bool isError() const { return std::holds_alternative<Error>(value_); }
  bool isArray() const { return std::holds_alternative<Array>(value_); }

  // The accessors below require the matching is*() (std::bad_variant_access otherwise).
  int64_t integer() const { return std::get<int64_t>(value_); }
  const std::string& string() const;
  const std::string& errorMessage() const { return std::get<Error>(value_).message; }
  const Array& array() const { return std::get<Array>(value_); }

  const Value& value() const { return value_; }
  bool operator==(const RedisReply& other) const;

  // For logs and test failures: `"OK"`, `42`, `nil`, `(error) ERR ...`, `[1, "a", nil]`.
  std::string describe() const;

  // Appends the reply in RESP2, as Redis would have sent it (a nil as the nil bulk string);
  // for callers that hand Redis's answer on as bytes (plugins' proxy_redis_call).
  void appendResp(std::string& out) const;

 private:
  Value value_;
};

// Why a call got no reply. Every kind means "Redis did not answer this call"; callers that
// only need a yes/no (the rate limiter falling back to local limits) can ignore the kind.
enum class RedisErrorKind {
  kConnection,  // cannot connect, connection lost, in back-off after a failed attempt, closed
  kTimeout,     // no reply within the call's timeout
  kProtocol,    // a malformed or oversized reply (the connection was closed)
};

struct RedisError {
  RedisErrorKind kind = RedisErrorKind::kConnection;
  std::string message;  // names the address and the cause; never contains the password
};

using RedisResult = tl::expected<RedisReply, RedisError>;

}  // namespace sluice::redis
