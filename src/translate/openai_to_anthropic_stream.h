#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::translate {

// Turns an upstream OpenAI chat.completion.chunk stream into the Anthropic Messages event stream
// (message_start, ping, content_block_start/delta/stop, message_delta, message_stop), the
// sequence the Anthropic SDKs and Claude Code assemble. Fed one decoded SSE event at a time;
// appends complete SSE events ("event: ...\ndata: ...\n\n") to `out`.
//
// State is small and bounded: ids, the open block, which tool-call indexes were seen, usage.
// Only choice 0 is translated. message_delta and message_stop wait for the end of the stream
// ([DONE] or finish()) so that a trailing usage chunk is counted.
class OpenAiToAnthropicStream {
 public:
  explicit OpenAiToAnthropicStream(std::string client_model);

  void onEvent(std::string_view event_name, std::string_view data, std::string& out);
  // The upstream ended. After a finish_reason (or [DONE]) the message is closed normally; a
  // stream cut before either gets an `error` event (the answer is incomplete).
  void finish(std::string& out);

  // Usage reported so far, in OpenAI terms: input includes cached prompt tokens.
  uint64_t inputTokens() const { return prompt_tokens_; }
  uint64_t outputTokens() const { return completion_tokens_; }
  uint64_t cacheReadTokens() const { return cached_tokens_; }
  // message_stop or an error event was sent; later input is ignored.
  bool done() const { return done_; }

 private:
  enum class Block { kNone, kText, kThinking, kToolUse };

  void start(std::string_view chunk_id, std::string_view chunk_model, std::string& out);
  void openBlock(Block kind, std::string& out);
  void closeBlock(std::string& out);
  void appendTextDelta(Block kind, std::string_view text, std::string& out);
  // `index` < 0: the upstream gave none.
  void onToolCallDelta(int64_t index, std::string_view id, std::string_view name,
                       std::string_view arguments, std::string& out);
  void complete(std::string& out);
  void fail(std::string_view type, std::string_view message, std::string& out);

  std::string model_;
  std::string message_id_;
  Block open_ = Block::kNone;
  uint32_t next_block_index_ = 0;
  int64_t open_tool_ = -1;           // OpenAI tool-call index of the open tool_use block
  std::vector<int64_t> seen_tools_;  // OpenAI tool-call indexes already given a block
  std::string stop_reason_;          // Anthropic stop_reason, once finish_reason arrived
  std::string stop_sequence_;        // the matched stop string, when the upstream says it
  bool refusal_ = false;
  bool started_ = false;
  bool finish_seen_ = false;
  bool done_ = false;
  bool usage_seen_ = false;
  uint64_t prompt_tokens_ = 0;
  uint64_t completion_tokens_ = 0;
  uint64_t cached_tokens_ = 0;
};

}  // namespace sluice::translate
