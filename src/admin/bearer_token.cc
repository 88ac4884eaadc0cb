#include "admin/bearer_token.h"

#include <openssl/crypto.h>

#include "common/digest.h"

namespace sluice::admin {
namespace {

bool isBlank(char ch) { return ch == ' ' || ch == '\t'; }

}  // namespace

BearerToken::BearerToken(std::string_view token) : digest_(sha256(token)), empty_(token.empty()) {}

bool BearerToken::matches(std::string_view presented) const {
  const auto digest = sha256(presented);
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
