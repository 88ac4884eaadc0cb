#pragma once

#include <memory>
#include <string>

namespace sluice::redis {

// A Lua script for RedisClient::evalsha: its text and its SHA1, computed once. Keep one per
// script for the life of the program; copies are cheap and share the text.
class RedisScript {
 public:
  explicit RedisScript(std::string source);

  const std::string& source() const { return data_->source; }
  // 40 lowercase hex digits, as SCRIPT LOAD answers.
  const std::string& sha1() const { return data_->sha1; }

 private:
  struct Data {
    std::string source;
    std::string sha1;
  };
  std::shared_ptr<const Data> data_;
};

}  // namespace sluice::redis
