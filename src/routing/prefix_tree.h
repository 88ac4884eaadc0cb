#pragma once

// The approximate radix tree cache_aware keeps per worker: which prompt prefixes were routed
// to the worker lately, so that requests sharing a prefix can follow it to the worker whose
// KV cache likely holds it. A trie over fixed-size chunks of text in which a node is named by
// the hash of the whole prefix it ends: lookups are hash probes, no text is stored, and a
// match is exact up to hash collisions and to whole chunks.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::routing {

// A prompt cut into chunks of `chunk_chars` characters, the last one possibly shorter. Cut
// once per pick, then matched against every worker's tree.
class PromptChunks {
 public:
  void assign(std::string_view prompt, uint32_t chunk_chars);

  size_t count() const { return keys_.size(); }
  size_t length() const { return length_; }
  // Names the prefix that ends with chunk `k`: a hash chained over chunks 0..k.
  uint64_t key(size_t k) const { return keys_[k]; }
  // Characters in chunks 0..k.
  size_t end(size_t k) const { return std::min<size_t>((k + 1) * chunk_chars_, length_); }

 private:
  std::vector<uint64_t> keys_;
  size_t length_ = 0;
  uint32_t chunk_chars_ = 1;
};

// Not thread-safe, except `mayMatch`: cache_aware guards each worker's tree with its own mutex.
class PrefixTree {
 public:
  explicit PrefixTree(size_t max_chars) : max_chars_(max_chars) {}
  PrefixTree(const PrefixTree&) = delete;
  PrefixTree& operator=(const PrefixTree&) = delete;

  // False when `match` would surely give 0: no prompt in the tree starts with the same first
  // chunk. Safe to call without the lock (it reads a bitmap of first chunks published with
  // atomics), so that a pick locks only the trees that may hold the prompt. May say true
  // wrongly (a bit shared by two first chunks), never false wrongly.
  bool mayMatch(const PromptChunks& prompt) const {
    if (prompt.count() == 0) return false;
    const size_t bit = firstChunkBit(prompt.key(0));
    return (first_chunk_bits_[bit / 64].load(std::memory_order_relaxed) >> (bit % 64)) & 1;
  }

  // Characters of the longest prefix of `prompt` in the tree (whole chunks, or the whole
  // prompt), counting only entries used at or after `fresh_since_ms`.
  size_t match(const PromptChunks& prompt, int64_t fresh_since_ms) const;

  // Records `prompt` as used at `now_ms`; then forgets entries last used before
  // `fresh_since_ms`, and the least recently used ones while the tree holds more than its
  // maximum of characters.
  void insert(const PromptChunks& prompt, int64_t now_ms, int64_t fresh_since_ms);

  // Forgets entries last used before `fresh_since_ms`.
  void evictOlderThan(int64_t fresh_since_ms);

  size_t chars() const { return chars_; }
  size_t nodes() const { return nodes_.size(); }

 private:
  // The nodes form a list from most to least recently used. An insert touches a prompt's
  // chunks deepest first, so a prefix is always more recent than its extensions: evicting
  // from the old end never leaves a node without its parent, which lets `match` binary-search.
  struct Node {
    uint64_t key = 0;
    int64_t used_ms = 0;
    uint32_t chars = 0;
    bool first = false;  // the prompt's first chunk: counted in the first-chunk bitmap
    Node* newer = nullptr;
    Node* older = nullptr;
  };

  static constexpr size_t kFirstChunkBits = 1024;
  static size_t firstChunkBit(uint64_t key) { return (key >> 32) % kFirstChunkBits; }
  void countFirstChunk(uint64_t key, int delta);

  bool isFresh(uint64_t key, int64_t fresh_since_ms) const;
  void unlink(Node* node);
  void pushNewest(Node* node);
  void evictOldest();

  std::unordered_map<uint64_t, Node> nodes_;  // node addresses stay put on rehash
  Node* newest_ = nullptr;
  Node* oldest_ = nullptr;
  size_t chars_ = 0;
  size_t max_chars_;
  // How many first chunks the tree holds per bit, and the bits that are not zero.
  std::array<uint32_t, kFirstChunkBits> first_chunk_counts_{};
  std::array<std::atomic<uint64_t>, kFirstChunkBits / 64> first_chunk_bits_{};
};

}  // namespace sluice::routing
