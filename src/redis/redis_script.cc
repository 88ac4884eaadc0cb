#include "redis/redis_script.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace sluice::redis {
namespace {

std::string sha1Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL cannot compute SHA1");
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

}  // namespace

RedisScript::RedisScript(std::string source) {
  auto sha1 = sha1Hex(source);
  data_ = std::make_shared<const Data>(Data{std::move(source), std::move(sha1)});
}

}  // namespace sluice::redis
