#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// The mock's API surface without the network: reads request bodies and writes answer bodies and
// SSE events, so the HTTP layer only moves bytes and tests can check documents directly.
namespace sluice::mock {

// The wire format an answer is written in.
enum class Dialect { kOpenAiChat, kOpenAiCompletion, kAnthropicMessages, kSglangGenerate };

// A tool-use answer calls the tool with these arguments, streamed in kToolArgumentFragments
// pieces (partial_json / function.arguments deltas) that concatenate to kToolArguments.
inline constexpr std::string_view kToolArguments = R"({"city":"Paris"})";
inline constexpr std::string_view kToolArgumentFragments[] = {R"({"city")", R"(:"Par)", R"(is"})"};
inline constexpr std::string_view kAnthropicToolUseId = "toolu_mock_1";
inline constexpr std::string_view kOpenAiToolCallId = "call_mock_1";

// True when `text` contains "weather" in any letter case.
bool mentionsWeather(std::string_view text);

// Token `index` of every generated answer is "tok{index} ": an answer of n tokens is the
// concatenation "tok0 tok1 ... tok{n-1} " (note the trailing space).
void appendTokenText(std::string& out, int index);

// The fields of a chat, completion or messages request that shape the answer.
struct GenerationRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  int64_t max_tokens = -1;      // max_tokens, max_completion_tokens or
                                // sampling_params.max_new_tokens; -1 when absent
  bool has_tools = false;       // a non-empty `tools` array
  std::string first_tool_name;  // tools[0].name (Anthropic) or tools[0].function.name (OpenAI)
  // The last entry of `messages` has role "user" and a text (string content or a part's
  // "text") that mentions "weather"; a trailing tool result or assistant turn does not.
  bool last_user_mentions_weather = false;
};

// Spare bytes the JSON parser may read past the end of a body (SIMDJSON_PADDING).
inline constexpr size_t kParsePadding = 64;

// Grows `body`'s capacity to size + kParsePadding so that the parsers below read it in place.
void reserveParsePadding(std::string& body);

// Parses a JSON body into `out`; returns an empty string on success, else the message of the 400
// answer. Every value is validated, not only the fields that are read. `body` is read in place
// when its capacity leaves SIMDJSON_PADDING spare bytes, copied otherwise.
std::string parseGenerationRequest(const std::string& body, GenerationRequest& out);

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> inputs;  // token-id inputs are kept as their JSON text
  bool base64 = false;              // encoding_format == "base64"
  int64_t prompt_tokens = 0;
};

std::string parseEmbeddingRequest(const std::string& body, EmbeddingRequest& out);

struct RerankRequest {
  std::string model;
  std::string query;
  std::vector<std::string> documents;  // plain strings or the `text` of {text} objects
  int64_t top_n = -1;                  // -1: all documents
  bool return_documents = true;
};

std::string parseRerankRequest(const std::string& body, RerankRequest& out);

// One generated answer, fixed before the first byte is written.
struct Completion {
  Dialect dialect = Dialect::kOpenAiChat;
  std::string id;
  std::string model;
  int64_t created = 0;     // unix seconds
  int tokens = 0;          // tokens produced
  bool truncated = false;  // stopped by max_tokens: finish_reason "length" / "max_tokens"
  int64_t prompt_tokens = 1;
  int64_t cached_tokens = 0;  // prompt_tokens_details.cached_tokens / cache_read_input_tokens
  bool include_usage = false;
  // Non-empty: the answer calls this tool (kToolArguments) instead of writing text; `tokens` is
  // then the number of argument fragments.
  std::string tool_name;
};

// Derives the answer from a request: `tokens` is the configured length, capped by max_tokens.
// A non-empty `tool_name` makes it a tool call (chat and messages dialects only).
Completion planCompletion(Dialect dialect, const GenerationRequest& request, int tokens,
                          uint64_t sequence, int64_t prompt_tokens, int64_t now,
                          std::string_view tool_name = {}, int64_t cached_tokens = 0);

// Non-streaming answer body (chat.completion, text_completion, Anthropic message or SGLang
// /generate {"text","meta_info"}).
void writeCompletionBody(const Completion& completion, std::string& out);

// Emits the SSE events of a streamed answer one at a time, each a complete event
// ("data: ...\n\n" or "event: ...\ndata: ...\n\n") so the server can flush events one by one.
class StreamEvents {
 public:
  explicit StreamEvents(const Completion& completion) : completion_(completion) {}

  // Replaces `out` with the next event; returns false when the stream is over. `is_token` tells
  // whether the event carries a token (the server waits the token delay before those).
  bool next(std::string& out, bool& is_token);

 private:
  enum class Phase { kPrelude, kTokens, kEpilogue, kDone };

  void writePrelude(int step, std::string& out) const;
  void writeToken(int index, std::string& out) const;
  void writeEpilogue(int step, std::string& out) const;
  int preludeSteps() const;
  int epilogueSteps() const;
  void writeToolPrelude(int step, std::string& out) const;
  void writeToolFragment(int index, std::string& out) const;

  const Completion& completion_;
  Phase phase_ = Phase::kPrelude;
  int step_ = 0;
};

// Error body: OpenAI shape {"error":{"message","type","code":null}}; for kAnthropicMessages the
// Anthropic shape {"type":"error","error":{"type","message"}}.
void writeErrorBody(Dialect dialect, int status, std::string_view message, std::string& out);

// Deterministic vectors of kEmbeddingDimensions floats derived from a hash of each input.
inline constexpr int kEmbeddingDimensions = 8;
void writeEmbeddingBody(const EmbeddingRequest& request, std::string& out);

// Scores mix query-term overlap and a hash of (query, document); results sorted descending.
void writeRerankBody(const RerankRequest& request, uint64_t sequence, std::string& out);

void writeModelsBody(std::string& out);

// The status GET /health answers can be set to: 1xx is not a final answer, so 200-599.
inline constexpr int kMinHealthStatus = 200;
inline constexpr int kMaxHealthStatus = 599;

// Body of POST /mock/health, {"status": N} with N in [kMinHealthStatus, kMaxHealthStatus];
// returns an empty string on success, else the message of the 400 answer.
std::string parseHealthStatus(const std::string& body, int& status);

// Body of GET /health: {"status":"ok"} for a 2xx status, {"status":"unhealthy"} otherwise.
void writeHealthBody(int status, std::string& out);

}  // namespace sluice::mock
