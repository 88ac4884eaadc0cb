#include "routing/prefix_tree.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::routing {
namespace {

PromptChunks chunks(std::string_view text, uint32_t chunk_chars = 4) {
  PromptChunks out;
  out.assign(text, chunk_chars);
  return out;
}

constexpr int64_t kLongAgo = 0;

TEST(PromptChunks, CutsWholeChunksAndAShorterLastOne) {
  const auto prompt = chunks("abcdefghij");
  ASSERT_EQ(prompt.count(), 3u);
  EXPECT_EQ(prompt.end(0), 4u);
  EXPECT_EQ(prompt.end(1), 8u);
  EXPECT_EQ(prompt.end(2), 10u);
  EXPECT_EQ(prompt.length(), 10u);
}

TEST(PromptChunks, KeyNamesTheWholePrefixNotJustTheChunk) {
  const auto a = chunks("aaaaXXXX");
  const auto b = chunks("bbbbXXXX");
  EXPECT_NE(a.key(1), b.key(1));
  EXPECT_EQ(a.key(1), chunks("aaaaXXXXyyyy").key(1));
}

TEST(PrefixTree, MatchesTheKnownPrefixInWholeChunks) {
  PrefixTree tree(1000);
  tree.insert(chunks("abcdefghijkl"), 1, kLongAgo);
  EXPECT_EQ(tree.match(chunks("abcdefghijkl"), kLongAgo), 12u);
  EXPECT_EQ(tree.match(chunks("abcdefgh----"), kLongAgo), 8u);
  EXPECT_EQ(tree.match(chunks("abcdefg-----"), kLongAgo), 4u);  // chunk 2 differs
  EXPECT_EQ(tree.match(chunks("abcdefghijklmnop"), kLongAgo), 12u);
  EXPECT_EQ(tree.match(chunks("-bcdefghijkl"), kLongAgo), 0u);
  EXPECT_EQ(tree.match(chunks(""), kLongAgo), 0u);
}

TEST(PrefixTree, ShortLastChunkMatchesOnlyTheSamePrompt) {
  PrefixTree tree(1000);
  tree.insert(chunks("abcdefghij"), 1, kLongAgo);
  EXPECT_EQ(tree.match(chunks("abcdefghij"), kLongAgo), 10u);
  EXPECT_EQ(tree.match(chunks("abcdefghijkl"), kLongAgo), 8u);
}

TEST(PrefixTree, SharedPrefixIsStoredOnce) {
  PrefixTree tree(1000);
  tree.insert(chunks("abcdefgh1111"), 1, kLongAgo);
  tree.insert(chunks("abcdefgh2222"), 2, kLongAgo);
  EXPECT_EQ(tree.nodes(), 4u);
  EXPECT_EQ(tree.chars(), 16u);
}

TEST(PrefixTree, NeverHoldsMoreThanItsMaximum) {
  PrefixTree tree(64);
  for (int i = 0; i < 1000; ++i) {
    tree.insert(chunks("prompt number " + std::to_string(i) + " with some text"), i, kLongAgo);
    ASSERT_LE(tree.chars(), 64u);
  }
}

TEST(PrefixTree, EvictsTheLeastRecentlyUsedFirst) {
  PrefixTree tree(24);  // three prompts of 8 characters
  tree.insert(chunks("AAAAaaaa"), 1, kLongAgo);
  tree.insert(chunks("BBBBbbbb"), 2, kLongAgo);
  tree.insert(chunks("CCCCcccc"), 3, kLongAgo);
  tree.insert(chunks("AAAAaaaa"), 4, kLongAgo);  // A used again: B is now the oldest
  tree.insert(chunks("DDDDdddd"), 5, kLongAgo);
  EXPECT_EQ(tree.match(chunks("AAAAaaaa"), kLongAgo), 8u);
  EXPECT_EQ(tree.match(chunks("BBBBbbbb"), kLongAgo), 0u);
  EXPECT_EQ(tree.match(chunks("CCCCcccc"), kLongAgo), 8u);
  EXPECT_EQ(tree.match(chunks("DDDDdddd"), kLongAgo), 8u);
}

TEST(PrefixTree, EvictionTakesExtensionsBeforeTheirPrefix) {
  PrefixTree tree(10);  // a 16-character prompt does not fit: its start stays
  tree.insert(chunks("abcdefghijklmnop"), 1, kLongAgo);
  EXPECT_EQ(tree.chars(), 8u);
  EXPECT_EQ(tree.match(chunks("abcdefghijklmnop"), kLongAgo), 8u);
}

TEST(PrefixTree, IgnoresAndForgetsEntriesOlderThanTheInterval) {
  PrefixTree tree(1000);
  tree.insert(chunks("old-old-old-"), 100, kLongAgo);
  tree.insert(chunks("new-new-"), 200, kLongAgo);
  EXPECT_EQ(tree.match(chunks("old-old-old-"), 100), 12u);
  EXPECT_EQ(tree.match(chunks("old-old-old-"), 101), 0u);  // stale: not a match any more
  EXPECT_EQ(tree.nodes(), 5u);
  tree.insert(chunks("new-new-"), 300, /*fresh_since_ms=*/150);  // and gone on the next insert
  EXPECT_EQ(tree.nodes(), 2u);
  EXPECT_EQ(tree.match(chunks("new-new-"), 150), 8u);
}

TEST(PrefixTree, ReusingAPrefixRefreshesIt) {
  PrefixTree tree(1000);
  tree.insert(chunks("sharedXXaaaa"), 100, kLongAgo);
  tree.insert(chunks("sharedXXbbbb"), 200, kLongAgo);
  tree.evictOlderThan(150);
  EXPECT_EQ(tree.match(chunks("sharedXXaaaa"), 150), 8u);  // the prefix lives on through b
  EXPECT_EQ(tree.match(chunks("sharedXXbbbb"), 150), 12u);
}

TEST(PrefixTree, MayMatchOnlyWhenTheFirstChunkIsKnown) {
  PrefixTree tree(8);
  EXPECT_FALSE(tree.mayMatch(chunks("abcdefgh")));
  tree.insert(chunks("abcdefgh"), 1, kLongAgo);
  EXPECT_TRUE(tree.mayMatch(chunks("abcdefgh")));
  EXPECT_TRUE(tree.mayMatch(chunks("abcd----")));  // same first chunk
  EXPECT_FALSE(tree.mayMatch(chunks("-bcdefgh")));
  EXPECT_FALSE(tree.mayMatch(chunks("")));
  tree.insert(chunks("ijklmnop"), 2, kLongAgo);  // evicts abcdefgh, first chunk included
  EXPECT_FALSE(tree.mayMatch(chunks("abcdefgh")));
  EXPECT_TRUE(tree.mayMatch(chunks("ijklmnop")));
}

}  // namespace
}  // namespace sluice::routing
