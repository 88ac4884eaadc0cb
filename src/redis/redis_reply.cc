#include "redis/redis_reply.h"

#include <fmt/format.h>

namespace sluice::redis {
namespace {

void describeInto(const RedisReply& reply, std::string& out) {
  std::visit(
      [&out](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, RedisReply::Nil>) {
          out += "nil";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          out += std::to_string(value);
        } else if constexpr (std::is_same_v<T, RedisReply::SimpleString> ||
                             std::is_same_v<T, RedisReply::BulkString>) {
          fmt::format_to(std::back_inserter(out), "{:?}", value.value);
        } else if constexpr (std::is_same_v<T, RedisReply::Error>) {
          out += "(error) ";
          out += value.message;
        } else {
          out += '[';
          for (size_t i = 0; i < value.size(); ++i) {
            if (i > 0) out += ", ";
            describeInto(value[i], out);
          }
          out += ']';
        }
      },
      reply.value());
}

}  // namespace

void RedisReply::appendResp(std::string& out) const {
  std::visit(
      [&out](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, RedisReply::Nil>) {
          out += "$-1\r\n";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          fmt::format_to(std::back_inserter(out), ":{}\r\n", value);
        } else if constexpr (std::is_same_v<T, RedisReply::SimpleString>) {
          fmt::format_to(std::back_inserter(out), "+{}\r\n", value.value);
        } else if constexpr (std::is_same_v<T, RedisReply::BulkString>) {
          fmt::format_to(std::back_inserter(out), "${}\r\n", value.value.size());
          out += value.value;
          out += "\r\n";
        } else if constexpr (std::is_same_v<T, RedisReply::Error>) {
          fmt::format_to(std::back_inserter(out), "-{}\r\n", value.message);
        } else {
          fmt::format_to(std::back_inserter(out), "*{}\r\n", value.size());
          for (const auto& element : value) element.appendResp(out);
        }
      },
      value_);
}

const std::string& RedisReply::string() const {
  if (const auto* simple = std::get_if<SimpleString>(&value_)) return simple->value;
  return std::get<BulkString>(value_).value;
}

bool RedisReply::operator==(const RedisReply& other) const { return value_ == other.value_; }

std::string RedisReply::describe() const {
  std::string out;
  describeInto(*this, out);
  return out;
}

}  // namespace sluice::redis
