#include "redis/redis_script.h"

#include "common/digest.h"

namespace sluice::redis {

RedisScript::RedisScript(std::string source) {
  auto sha1 = sha1Hex(source);
  data_ = std::make_shared<const Data>(Data{std::move(source), std::move(sha1)});
}

}  // namespace sluice::redis
