#include "wasm/plugin_chain.h"

#include <fmt/format.h>

namespace sluice::wasm {
namespace {

const char* callbackOf(int phase) {
  static constexpr const char* kNames[] = {"proxy_on_request_headers", "proxy_on_request_body",
                                           "proxy_on_response_headers", "proxy_on_response_body",
                                           "sluice_on_upstream_filter"};
  return kNames[phase];
}

}  // namespace

PluginChain::PluginChain(std::span<PluginInstance* const> plugins, StreamData& stream)
    : stream_(stream) {
  entries_.reserve(plugins.size());
  for (auto* instance : plugins) entries_.push_back(Entry{instance});
}

PluginChain::~PluginChain() { finish(); }

void PluginChain::finish() {
  for (auto& entry : entries_) {
    if (entry.context != 0 && entry.instance->generation() == entry.generation) {
      entry.instance->destroyContext(entry.context, stream_);
    }
    entry.context = 0;
  }
}

bool PluginChain::wantsRequestBody() const {
  for (const auto& entry : entries_) {
    if (entry.instance->plugin().exports("proxy_on_request_body")) return true;
  }
  return false;
}

bool PluginChain::wantsResponseBody() const {
  for (const auto& entry : entries_) {
    if (entry.instance->plugin().exports("proxy_on_response_body")) return true;
  }
  return false;
}

bool PluginChain::wantsUpstreamFilter() const {
  for (const auto& entry : entries_) {
    if (entry.instance->plugin().exports("sluice_on_upstream_filter")) return true;
  }
  return false;
}

bool PluginChain::usesHigressAbi() const {
  for (const auto& entry : entries_) {
    if (entry.instance->plugin().version() == abi::Version::k0_2_100) return true;
  }
  return false;
}

bool PluginChain::ready(Entry& entry) {
  if (entry.context != 0) {
    return entry.instance->healthy() && entry.instance->generation() == entry.generation;
  }
  entry.context = entry.instance->createContext();
  entry.generation = entry.instance->generation();
  return entry.context != 0;
}

std::string PluginChain::actions() const {
  std::string out;
  auto add = [&out](std::string_view action, std::string_view plugin = {}) {
    if (!out.empty()) out += ',';
    out += action;
    if (!plugin.empty()) {
      out += ':';
      out += plugin;
    }
  };
  if (stream_.local_response) add("local_response");
  if (stream_.request_body_changed) add("request_body");
  if (stream_.response_body_changed) add("response_body");
  if (stream_.candidates_rejected > 0) add("upstream_filter");
  if (!failure_.empty()) add("failed");
  for (const auto& entry : entries_) {
    if (entry.skipped) add("fail_open", entry.instance->name());
  }
  return out;
}

ChainStatus PluginChain::fail(Entry& entry, const std::string& why) {
  if (entry.instance->plugin().settings().failure_policy == config::FailurePolicy::kFailOpen) {
    entry.skipped = true;
    return ChainStatus::kContinue;
  }
  failure_ = fmt::format("plugin {} failed: {}", entry.instance->name(), why);
  return ChainStatus::kFailed;
}

void PluginChain::noteRequests(Entry& entry) {
  if (stream_.sse_events_request) {
    entry.sse_events = *stream_.sse_events_request;
    stream_.sse_events_request.reset();
  }
}

bool PluginChain::showCandidates() {
  stream_.candidate_view.clear();
  for (uint32_t i = 0; i < stream_.candidates.size(); ++i) {
    if (stream_.candidates[i].rejected.empty()) stream_.candidate_view.push_back(i);
  }
  return !stream_.candidate_view.empty();
}

void PluginChain::undoVerdicts() {
  for (const auto index : stream_.candidate_view) {
    stream_.candidates[index].rejected.clear();
    stream_.candidates[index].rejected_by.clear();
  }
}

ChainStatus PluginChain::runEvents(Entry& entry) {
  const auto limit = entry.instance->plugin().settings().limits.max_body_bytes;
  if (!entry.splitter) entry.splitter = splitter_factory_(limit);
  events_.clear();
  const bool split = entry.splitter->feed(stream_.response_body, events_);
  if (split && end_of_stream_) entry.splitter->finish(events_);
  std::string output;
  // Whatever the plugin did not get passes unchanged when a failure takes it out (fail_open).
  auto passRest = [&](size_t from) {
    for (size_t k = from; k < events_.size(); ++k) output += events_[k];
    output += entry.splitter->takePending();
    stream_.response_body = std::move(output);
  };
  if (!split) {
    auto status =
        fail(entry, fmt::format("an SSE event is larger than max_body_bytes ({})", limit));
    if (status == ChainStatus::kContinue) passRest(0);
    return status;
  }
  // The end of the answer is shown even when no event is left for it.
  const size_t calls = events_.empty() && end_of_stream_ ? 1 : events_.size();
  for (size_t k = 0; k < calls; ++k) {
    if (k < events_.size()) {
      stream_.response_body.assign(events_[k]);
    } else {
      stream_.response_body.clear();
    }
    const bool last = end_of_stream_ && k + 1 == calls;
    stream_.continue_requested = false;
    auto outcome = entry.instance->callStream("proxy_on_response_body", entry.context, stream_,
                                              {stream_.response_body.size(), last ? 1u : 0u});
    noteRequests(entry);
    if (!outcome.ok) {
      stream_.http_calls.clear();
      stream_.local_response.reset();
      auto status = fail(entry, outcome.error);
      if (status == ChainStatus::kContinue) passRest(k);
      return status;
    }
    if (stream_.local_response) return ChainStatus::kLocalResponse;
    // A pause cannot hold an event back here: the event goes on as the plugin left it.
    stream_.http_calls.clear();
    output += stream_.response_body;
  }
  stream_.response_body = std::move(output);
  return ChainStatus::kContinue;
}

ChainStatus PluginChain::run(Phase phase, size_t from, size_t to) {
  phase_ = phase;
  const auto callback = callbackOf(static_cast<int>(phase));
  for (size_t i = from; i < to && i < entries_.size(); ++i) {
    auto& entry = entries_[i];
    if (entry.skipped || !entry.instance->plugin().exports(callback)) continue;
    if (!ready(entry)) {
      if (fail(entry, entry.instance->downReason()) == ChainStatus::kFailed) {
        return ChainStatus::kFailed;
      }
      continue;
    }
    if (phase == Phase::kResponseBody && entry.sse_events && splitter_factory_) {
      if (auto status = runEvents(entry); status != ChainStatus::kContinue) return status;
      continue;
    }
    if (phase == Phase::kUpstreamFilter && !showCandidates()) break;  // nothing left to judge
    uint64_t size = 0;
    switch (phase) {
      case Phase::kRequestHeaders:
        size = stream_.request_headers.size();
        break;
      case Phase::kRequestBody:
        size = stream_.request_body.size();
        break;
      case Phase::kResponseHeaders:
        size = stream_.response_headers.size();
        break;
      case Phase::kResponseBody:
        size = stream_.response_body.size();
        break;
      case Phase::kUpstreamFilter:
        size = stream_.candidate_view.size();
        break;
    }
    stream_.continue_requested = false;
    auto outcome = phase == Phase::kUpstreamFilter
                       ? entry.instance->callStream(callback, entry.context, stream_, {size})
                       : entry.instance->callStream(callback, entry.context, stream_,
                                                    {size, end_of_stream_ ? 1u : 0u});
    noteRequests(entry);
    if (!outcome.ok) {
      stream_.http_calls.clear();
      stream_.redis_calls.clear();
      stream_.local_response.reset();
      if (fail(entry, outcome.error) == ChainStatus::kFailed) return ChainStatus::kFailed;
      if (phase == Phase::kUpstreamFilter) undoVerdicts();
      continue;
    }
    if (stream_.local_response) return ChainStatus::kLocalResponse;
    if (outcome.value == static_cast<uint64_t>(abi::Action::kPause)) {
      if (!stream_.http_calls.empty() || !stream_.redis_calls.empty()) {
        paused_at_ = i;
        return ChainStatus::kPause;
      }
      if (phase == Phase::kResponseBody && !end_of_stream_) {
        body_paused_at_ = i;  // the plugin wants more of the body before it decides
        held_body_ = std::move(stream_.response_body);
        stream_.response_body.clear();
        return ChainStatus::kPause;
      }
      // A pause with nothing to wait for cannot be resumed: treat it as continue.
    }
  }
  return ChainStatus::kContinue;
}

ChainStatus PluginChain::onRequestHeaders(bool end_of_stream) {
  end_of_stream_ = end_of_stream;
  return run(Phase::kRequestHeaders, 0, entries_.size());
}

ChainStatus PluginChain::onRequestBody() {
  end_of_stream_ = true;
  return run(Phase::kRequestBody, 0, entries_.size());
}

ChainStatus PluginChain::onUpstreamFilter() {
  end_of_stream_ = true;
  auto status = run(Phase::kUpstreamFilter, 0, entries_.size());
  if (status != ChainStatus::kPause) stream_.candidate_view.clear();
  return status;
}

ChainStatus PluginChain::onResponseHeaders(bool end_of_stream) {
  end_of_stream_ = end_of_stream;
  return run(Phase::kResponseHeaders, 0, entries_.size());
}

ChainStatus PluginChain::onResponseBody(bool end_of_stream) {
  end_of_stream_ = end_of_stream;
  if (body_paused_at_ == SIZE_MAX) return run(Phase::kResponseBody, 0, entries_.size());
  // The new chunk first passes the plugins before the one that holds the body back.
  const size_t holder = body_paused_at_;
  if (auto status = run(Phase::kResponseBody, 0, holder); status != ChainStatus::kContinue) {
    return status;
  }
  const auto limit = entries_[holder].instance->plugin().settings().limits.max_body_bytes;
  held_body_ += stream_.response_body;
  stream_.response_body = std::move(held_body_);
  held_body_.clear();
  body_paused_at_ = SIZE_MAX;
  if (stream_.response_body.size() > limit) end_of_stream_ = true;  // bounded: no more holding
  return run(Phase::kResponseBody, holder, entries_.size());
}

PluginChain::Entry* PluginChain::caller(const PluginInstance* instance, uint32_t context) {
  if (instance == nullptr) return nullptr;
  for (auto& entry : entries_) {
    if (entry.instance == instance && entry.context == context &&
        entry.generation == entry.instance->generation()) {
      return &entry;
    }
  }
  return nullptr;
}

void PluginChain::deliveryFailed(Entry& entry, const std::string& why) {
  if (fail(entry, why) == ChainStatus::kFailed) {
    stream_.close_requested = true;
  } else if (phase_ == Phase::kUpstreamFilter) {
    undoVerdicts();
  }
  stream_.continue_requested = true;
}

void PluginChain::deliver(const HttpCallRequest& call, const HttpCallResponse& response) {
  if (auto* entry = caller(call.instance, call.context_id)) {
    auto outcome = call.instance->deliverHttpCallResponse(call, response, stream_);
    noteRequests(*entry);
    if (!outcome.ok) deliveryFailed(*entry, outcome.error);
  }
}

void PluginChain::deliver(const RedisCallRequest& call, const RedisCallResponse& response) {
  if (auto* entry = caller(call.instance, call.context_id)) {
    auto outcome = call.instance->deliverRedisCallResponse(call, response, stream_);
    noteRequests(*entry);
    if (!outcome.ok) deliveryFailed(*entry, outcome.error);
  }
}

ChainStatus PluginChain::resume() {
  auto status = resumeRun();
  if (phase_ == Phase::kUpstreamFilter && status != ChainStatus::kPause) {
    stream_.candidate_view.clear();
  }
  return status;
}

ChainStatus PluginChain::resumeRun() {
  if (!failure_.empty()) return ChainStatus::kFailed;
  if (stream_.local_response) return ChainStatus::kLocalResponse;
  if (!stream_.http_calls.empty() || !stream_.redis_calls.empty()) return ChainStatus::kPause;
  if (!stream_.continue_requested) {
    failure_ = fmt::format("plugin {} paused the request and did not resume it",
                           entries_[paused_at_].instance->name());
    return ChainStatus::kFailed;
  }
  return run(phase_, paused_at_ + 1, entries_.size());
}

void PluginChain::onLog() {
  if (logged_) return;
  logged_ = true;
  for (auto& entry : entries_) {
    if (entry.context != 0 && !entry.skipped && entry.instance->healthy() &&
        entry.instance->generation() == entry.generation) {
      entry.instance->callStream("proxy_on_log", entry.context, stream_, {});
    }
  }
}

}  // namespace sluice::wasm
