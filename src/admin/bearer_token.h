#pragma once

#include <array>
#include <string_view>

namespace sluice::admin {

// The admin token, kept only as its SHA-256 digest. A presented token is hashed and the two
// digests are compared with CRYPTO_memcmp, so the time taken depends neither on how many leading
// bytes match nor on the secret's length.
class BearerToken {
 public:
  explicit BearerToken(std::string_view token);

  // False for an empty `presented` and for every token when the configured one is empty.
  bool matches(std::string_view presented) const;
  bool empty() const { return empty_; }

 private:
  std::array<unsigned char, 32> digest_{};
  bool empty_ = true;
};

// The credentials of an `Authorization: Bearer <token>` value (scheme in any letter case,
// surrounding blanks removed); empty when the value is missing or uses another scheme.
std::string_view bearerCredentials(std::string_view authorization);

}  // namespace sluice::admin
