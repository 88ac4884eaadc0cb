#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {
class JsonWriter;
}

namespace sluice::translate {

// Turns an upstream Anthropic Messages event stream into OpenAI chat.completion.chunk events
// ("data: {...}\n\n", ending with "data: [DONE]\n\n"), the sequence the OpenAI SDKs assemble.
// Text becomes delta.content, thinking becomes delta.reasoning_content, tool_use blocks become
// delta.tool_calls (numbered 0, 1, … among tool calls only). State is small and bounded.
class AnthropicToOpenAiStream {
 public:
  // `include_usage`: the client asked for stream_options.include_usage, so a final chunk with
  // "choices":[] and usage precedes [DONE].
  AnthropicToOpenAiStream(std::string client_model, bool include_usage);

  void onEvent(std::string_view event_name, std::string_view data, std::string& out);
  // The upstream ended: emits what is still owed and "data: [DONE]" exactly once. A stream cut
  // before message_delta gets an error chunk first (the answer is incomplete).
  void finish(std::string& out);

  // Usage reported so far, in OpenAI terms: input includes cache reads and cache writes.
  uint64_t inputTokens() const { return input_tokens_ + cache_read_tokens_ + cache_write_tokens_; }
  uint64_t outputTokens() const { return output_tokens_; }
  uint64_t cacheReadTokens() const { return cache_read_tokens_; }
  // [DONE] was sent; later input is ignored.
  bool done() const { return done_; }

 private:
  enum class Block { kNone, kText, kThinking, kToolUse, kOther };

  // A chunk is written as beginChunk, the delta's fields, endChunk (null finish_reason if empty).
  JsonWriter beginChunk(std::string& out);
  void endChunk(JsonWriter& json, std::string_view finish_reason, std::string& out);
  void sendRole(std::string& out);
  void sendFinish(std::string_view finish_reason, std::string& out);
  void complete(std::string& out);
  void fail(std::string_view type, std::string_view message, std::string& out);

  std::string model_;
  std::string id_;
  int64_t created_;
  bool include_usage_;
  Block block_ = Block::kNone;
  int64_t tool_index_ = -1;  // OpenAI index of the tool call the current block feeds
  int64_t tool_count_ = 0;
  bool role_sent_ = false;
  bool finish_sent_ = false;
  bool done_ = false;
  uint64_t input_tokens_ = 0;
  uint64_t cache_read_tokens_ = 0;
  uint64_t cache_write_tokens_ = 0;
  uint64_t output_tokens_ = 0;
};

}  // namespace sluice::translate
