#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "wasm/event_splitter.h"
#include "wasm/plugin.h"

namespace sluice::wasm {

enum class ChainStatus {
  kContinue,       // go on with the request
  kPause,          // perform stream.http_calls and redis_calls, deliver the answers, resume()
  kLocalResponse,  // answer with stream.local_response
  kFailed,         // a fail-closed plugin failed: answer 503 (failure() says why)
};

// The plugins of one request, run in order on its StreamData. A change made by one plugin
// is what the next one sees. Owned by the request; lives on its worker thread.
class PluginChain {
 public:
  PluginChain(std::span<PluginInstance* const> plugins, StreamData& stream);
  ~PluginChain();
  PluginChain(const PluginChain&) = delete;
  PluginChain& operator=(const PluginChain&) = delete;

  bool empty() const { return entries_.empty(); }
  bool wantsRequestBody() const;
  bool wantsResponseBody() const;
  bool wantsUpstreamFilter() const;
  // Whether a plugin speaks Higress's ABI (0.2.100): the gateway then lists the route's
  // endpoints for proxy_get_upstream_hosts.
  bool usesHigressAbi() const;

  ChainStatus onRequestHeaders(bool end_of_stream);
  ChainStatus onRequestBody();  // the whole body, in stream.request_body
  // sluice_on_upstream_filter over stream.candidates: each plugin in order sees those still
  // kept (ai.candidates) and rejects some with sluice_reject_candidate. A plugin that fails
  // with fail_open has its verdicts of that call undone.
  ChainStatus onUpstreamFilter();
  // The answer is an event stream: plugins that set sluice.sse_events to "true" get it one
  // whole event per proxy_on_response_body, split by splitters this factory makes.
  void setEventSplitter(EventSplitterFactory factory) { splitter_factory_ = std::move(factory); }
  ChainStatus onResponseHeaders(bool end_of_stream);
  // stream.response_body holds the next chunk; on kContinue it holds what to send (maybe
  // more than one chunk, when a plugin had paused to buffer). kPause: hold it back.
  ChainStatus onResponseBody(bool end_of_stream);
  // After a kPause with http calls: every answer delivered with deliver().
  void deliver(const HttpCallRequest& call, const HttpCallResponse& response);
  void deliver(const RedisCallRequest& call, const RedisCallResponse& response);
  ChainStatus resume();
  // proxy_on_log on every context (the request is finished).
  void onLog();
  // proxy_on_done + proxy_on_delete on every context now rather than at destruction, so that
  // what they do (Higress plugins charge Redis in OnHttpStreamDone) lands in the stream.
  void finish();

  const std::string& failure() const { return failure_; }
  // What the plugins did, for the access log: "local_response", "request_body", "response_body",
  // "upstream_filter" (candidates rejected), "failed", and "fail_open:<plugin>" for each plugin
  // a failure took out of the chain; comma-separated, empty when they only looked.
  std::string actions() const;

 private:
  enum class Phase {
    kRequestHeaders,
    kRequestBody,
    kResponseHeaders,
    kResponseBody,
    kUpstreamFilter
  };
  struct Entry {
    PluginInstance* instance;
    uint32_t context = 0;
    uint64_t generation = 0;
    bool skipped = false;     // failed with fail_open
    bool sse_events = false;  // asked for whole SSE events
    std::unique_ptr<EventSplitter> splitter{};
  };

  ChainStatus run(Phase phase, size_t from, size_t to);
  ChainStatus resumeRun();
  // proxy_on_response_body once per whole event of stream.response_body, for an entry that
  // asked for events; the body becomes what the plugin made of them.
  ChainStatus runEvents(Entry& entry);
  // Takes note of what the last callback of `entry` asked for through properties.
  void noteRequests(Entry& entry);
  // The candidates `entry` sees: those still kept. False when none is left.
  bool showCandidates();
  void undoVerdicts();
  ChainStatus fail(Entry& entry, const std::string& why);
  // The entry whose context made a call-out of `instance`; null when it is gone.
  Entry* caller(const PluginInstance* instance, uint32_t context);
  // After a delivery that failed: the plugin's failure policy decides.
  void deliveryFailed(Entry& entry, const std::string& why);
  // Creates the context on first use; false when the instance is down.
  bool ready(Entry& entry);

  std::vector<Entry> entries_;
  StreamData& stream_;
  Phase phase_ = Phase::kRequestHeaders;
  bool end_of_stream_ = false;
  size_t paused_at_ = 0;
  size_t body_paused_at_ = SIZE_MAX;  // response body held back by this plugin
  std::string held_body_;
  std::string failure_;
  bool logged_ = false;
  EventSplitterFactory splitter_factory_;
  std::vector<std::string> events_;  // reused by runEvents
};

}  // namespace sluice::wasm
