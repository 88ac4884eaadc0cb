#include "common/digest.h"

// OpenSSL's EVP interface would load openssl.cnf and the default provider on its first use:
// 2 MiB more resident memory for every gateway, TLS or not. The digest functions it
// deprecates compute the same hash without that initialisation.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <stdexcept>

namespace sluice {

Sha256 sha256(std::string_view bytes) {
  Sha256 digest{};
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, bytes.data(), bytes.size());
  SHA256_Final(digest.data(), &context);
  return digest;
}

namespace {

std::string hexOf(std::span<const unsigned char> digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(digest.size() * 2, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    hex[2 * i] = kDigits[digest[i] >> 4];
    hex[2 * i + 1] = kDigits[digest[i] & 0x0f];
  }
  return hex;
}

}  // namespace

std::string sha256Hex(std::string_view bytes) { return hexOf(sha256(bytes)); }

std::string sha1Hex(std::string_view bytes) {
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA_CTX context;
  SHA1_Init(&context);
  SHA1_Update(&context, bytes.data(), bytes.size());
  SHA1_Final(digest.data(), &context);
  return hexOf(digest);
}

void randomBytes(std::span<unsigned char> out) {
  size_t filled = 0;
  while (filled < out.size()) {
    const auto n = ::getrandom(out.data() + filled, out.size() - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("no random bytes from the kernel");
    filled += static_cast<size_t>(n);
  }
}

}  // namespace sluice
