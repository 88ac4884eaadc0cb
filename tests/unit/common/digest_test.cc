#include "common/digest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace sluice {
namespace {

// Test vectors of FIPS 180-4 (the empty message, "abc", and the two-block 448-bit message).
TEST(Digest, Sha256MatchesTheStandardsVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1'000'000, 'a');
  EXPECT_EQ(sha256Hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Digest, Sha1MatchesTheStandardsVector) {
  EXPECT_EQ(sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(Digest, RandomBytesFillTheWholeSpanAndDiffer) {
  std::array<unsigned char, 64> first{}, second{};
  randomBytes(first);
  randomBytes(second);
  EXPECT_NE(first, second);
  // 64 zero bytes from a working source: probability 2^-512.
  EXPECT_TRUE(std::any_of(first.begin(), first.end(), [](unsigned char b) { return b != 0; }));
}

}  // namespace
}  // namespace sluice
