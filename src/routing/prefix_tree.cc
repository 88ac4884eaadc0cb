#include "routing/prefix_tree.h"

#include "routing/stable_hash.h"

namespace sluice::routing {

void PromptChunks::assign(std::string_view prompt, uint32_t chunk_chars) {
  chunk_chars_ = chunk_chars == 0 ? 1 : chunk_chars;
  length_ = prompt.size();
  keys_.clear();
  keys_.reserve(prompt.size() / chunk_chars_ + 1);
  // Chunks hash independently (the CPU overlaps them); one multiply per chunk chains them.
  uint64_t chain = 0x2d358dccaa6c78a5ULL;
  for (size_t at = 0; at < prompt.size(); at += chunk_chars_) {
    chain = mix64(chain ^ 0x8ebc6af09c88c6e3ULL, stableHash(prompt.substr(at, chunk_chars_)));
    keys_.push_back(chain);
  }
}

bool PrefixTree::isFresh(uint64_t key, int64_t fresh_since_ms) const {
  const auto it = nodes_.find(key);
  return it != nodes_.end() && it->second.used_ms >= fresh_since_ms;
}

size_t PrefixTree::match(const PromptChunks& prompt, int64_t fresh_since_ms) const {
  if (prompt.count() == 0 || !isFresh(prompt.key(0), fresh_since_ms)) return 0;
  // Known chunks form a prefix of the prompt's chunks: find where it ends.
  size_t known = 0, unknown = prompt.count();
  while (unknown - known > 1) {
    const size_t middle = known + (unknown - known) / 2;
    if (isFresh(prompt.key(middle), fresh_since_ms)) {
      known = middle;
    } else {
      unknown = middle;
    }
  }
  return prompt.end(known);
}

void PrefixTree::insert(const PromptChunks& prompt, int64_t now_ms, int64_t fresh_since_ms) {
  for (size_t k = prompt.count(); k-- > 0;) {
    auto [it, inserted] = nodes_.try_emplace(prompt.key(k));
    Node& node = it->second;
    if (inserted) {
      node.key = prompt.key(k);
      node.chars = static_cast<uint32_t>(prompt.end(k) - (k == 0 ? 0 : prompt.end(k - 1)));
      node.first = k == 0;
      chars_ += node.chars;
      if (node.first) countFirstChunk(node.key, +1);
    } else {
      unlink(&node);
    }
    node.used_ms = now_ms;
    pushNewest(&node);
  }
  evictOlderThan(fresh_since_ms);
  while (chars_ > max_chars_ && oldest_) evictOldest();
}

void PrefixTree::evictOlderThan(int64_t fresh_since_ms) {
  while (oldest_ && oldest_->used_ms < fresh_since_ms) evictOldest();
}

void PrefixTree::unlink(Node* node) {
  (node->newer ? node->newer->older : newest_) = node->older;
  (node->older ? node->older->newer : oldest_) = node->newer;
  node->newer = node->older = nullptr;
}

void PrefixTree::pushNewest(Node* node) {
  node->older = newest_;
  node->newer = nullptr;
  (newest_ ? newest_->newer : oldest_) = node;
  newest_ = node;
}

void PrefixTree::evictOldest() {
  Node* node = oldest_;
  unlink(node);
  chars_ -= node->chars;
  if (node->first) countFirstChunk(node->key, -1);
  nodes_.erase(node->key);
}

void PrefixTree::countFirstChunk(uint64_t key, int delta) {
  const size_t bit = firstChunkBit(key);
  uint32_t& count = first_chunk_counts_[bit];
  const bool was_set = count != 0;
  count = static_cast<uint32_t>(static_cast<int64_t>(count) + delta);
  if (was_set == (count != 0)) return;
  auto& word = first_chunk_bits_[bit / 64];
  const uint64_t mask = uint64_t{1} << (bit % 64);
  if (count != 0) {
    word.fetch_or(mask, std::memory_order_relaxed);
  } else {
    word.fetch_and(~mask, std::memory_order_relaxed);
  }
}

}  // namespace sluice::routing
