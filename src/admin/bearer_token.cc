#include "admin/bearer_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace sluice::admin {
namespace {

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view text) {
  Digest digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("SHA-256 is not available from OpenSSL");
  }
  return digest;
}

bool isBlank(char ch) { return ch == ' ' || ch == '\t'; }

}  // namespace

BearerToken::BearerToken(std::string_view token) : digest_(sha256(token)), empty_(token.empty()) {}

bool BearerToken::matches(std::string_view presented) const {
  const Digest digest = sha256(presented);
  const bool equal = CRYPTO_memcmp(digest.data(), digest_.data(), digest.size()) == 0;
  return equal && !empty_ && !presented.empty();
}

std::string_view bearerCredentials(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || !isBlank(authorization[kScheme.size()])) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char ch = authorization[i];
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (ch != kScheme[i]) return {};
  }
  authorization.remove_prefix(kScheme.size());
  while (!authorization.empty() && isBlank(authorization.front())) authorization.remove_prefix(1);
  while (!authorization.empty() && isBlank(authorization.back())) authorization.remove_suffix(1);
  return authorization;
}

}  // namespace sluice::admin
