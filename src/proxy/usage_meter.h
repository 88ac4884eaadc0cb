#pragma once

// Token usage of each request, read from what the upstream answered: the usage object of a JSON
// body, or the usage events of a stream (with an estimate from the content deltas relayed when a
// stream ends before its usage). Pure byte-in code: the relay feeds it, nothing here does I/O.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "providers/provider_type.h"

namespace sluice::proxy {

// Tokens of one request, in one meaning whatever the upstream's dialect:
//   input  every prompt token, including those read from and written to a prompt cache
//          (OpenAI's prompt_tokens; Anthropic's input_tokens + cache_read_input_tokens +
//          cache_creation_input_tokens, since Anthropic's input_tokens excludes both);
//   output every generated token (completion_tokens / output_tokens, reasoning included);
//   cached the part of `input` read from the cache (prompt_tokens_details.cached_tokens /
//          cache_read_input_tokens), never more than `input`.
// `reported`: the upstream said so. False: no usage was found (all zero), or the counts are the
// meter's estimate for a stream that ended without its usage.
struct Usage {
  uint64_t input = 0, output = 0, cached = 0;
  bool reported = false;
};

// The usage of a whole (non-streamed) answer body in `dialect`, the upstream's: OpenAI chat,
// completions, embeddings (prompt_tokens only) and rerank (total_tokens only, all input), and
// SGLang /generate's meta_info; Anthropic messages. A body that is not a JSON object, or has no
// usage (errors), gives reported = false.
Usage usageFromBody(std::string_view body, providers::Dialect dialect);

namespace detail {
// Token counts as an upstream names them, before they become a Usage.
struct UpstreamCounts {
  uint64_t input = 0;        // OpenAI: prompt_tokens; Anthropic: input_tokens (no cache)
  uint64_t output = 0;       // completion_tokens / output_tokens
  uint64_t total = 0;        // OpenAI total_tokens (embeddings, rerank)
  uint64_t cache_read = 0;   // cached_tokens / cache_read_input_tokens
  uint64_t cache_write = 0;  // Anthropic cache_creation_input_tokens
  bool has_input = false;
  bool has_total = false;
  bool any = false;  // at least one count was read
};
}  // namespace detail

// Meters a streamed answer from the raw bytes the upstream sent (SSE, split anywhere), in the
// upstream's dialect. It reads:
//   OpenAI    the chunk whose `usage` is an object (the include_usage chunk, choices [];
//             vLLM's continuous usage on every chunk: the last one counts) or SGLang's
//             `meta_info`; one estimated output token per chunk with a non-empty content,
//             reasoning, refusal, text or tool-call arguments delta;
//   Anthropic message_start's message.usage and message_delta's usage (fields present override
//             earlier ones; message_delta makes them reported); one estimated output token per
//             content_block_delta.
// Cheap: each `data:` line is looked at with substring checks; only the few that carry usage
// are parsed, and only their usage object. Lines are read one by one (these APIs send each
// event's JSON on one data line); a line longer than `max_line_bytes` is skipped (at most that
// much is buffered) and `overflowed()` says so.
class UsageMeter {
 public:
  static constexpr size_t kMaxLineBytes = size_t{1} << 20;

  explicit UsageMeter(providers::Dialect dialect, size_t max_line_bytes = kMaxLineBytes);

  // The next bytes of the upstream body, as they arrived.
  void feed(std::string_view bytes);
  // The body ended: reads a last line that no newline ended.
  void finish();

  // Reported counts when the usage was seen, else the estimate so far (reported = false):
  // OpenAI {0, deltas, 0}; Anthropic {message_start's input and cache, max(its output, deltas)}.
  Usage usage() const;
  // Content deltas counted so far (the output estimate).
  uint64_t contentDeltas() const { return deltas_; }
  // Some line exceeded the bound and was skipped: the counts may miss what it held.
  bool overflowed() const { return overflowed_; }

 private:
  void onLine(std::string_view line);
  void onOpenAiData(std::string_view data);
  void onAnthropicData(std::string_view data);

  providers::Dialect dialect_;
  size_t max_line_bytes_;
  std::string line_;       // a line split across feeds
  bool skipping_ = false;  // discarding the rest of a line longer than the bound
  bool overflowed_ = false;
  bool reported_ = false;  // OpenAI: a usage object; Anthropic: message_delta's usage
  uint64_t deltas_ = 0;
  detail::UpstreamCounts counts_;
};

// Makes a streaming OpenAI chat or completions request ask for usage in its stream: sets
// "stream_options":{"include_usage":true}, merged into an existing stream_options object (an
// include_usage of another value becomes true; a null stream_options becomes the object).
// Every other byte stays as it was; a new member goes after the last one.
// True: the body now asks for usage (it may already have). False, body unchanged: not a JSON
// object, "stream" is not true (OpenAI rejects stream_options without it), or stream_options
// is neither an object nor null.
// The caller strips the extra chunk (UsageChunkStripper) when the client had not asked.
bool addIncludeUsage(std::string& body);

}  // namespace sluice::proxy
