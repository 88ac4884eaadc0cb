#pragma once

// proxy-wasm plugins: a Plugin is a module compiled once per process with its settings; a
// PluginInstance runs it on one worker thread; StreamData is what one request exposes to the
// plugins of its chain. Nothing here knows Asio or V8.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "wasm/abi.h"
#include "wasm/header_map.h"
#include "wasm/plugin_stats.h"
#include "wasm/wasm_vm.h"

namespace sluice::wasm {

class PluginInstance;

struct LocalResponse {
  uint32_t status = 200;
  std::string details;
  std::string body;
  HeaderMap headers;
};

// An HTTP call a plugin asked for with proxy_http_call; the gateway performs it.
struct HttpCallRequest {
  PluginInstance* instance = nullptr;
  uint32_t context_id = 0;
  uint32_t token = 0;
  std::string upstream;  // a provider id
  HeaderMap headers;
  std::string body;
  uint32_t timeout_ms = 0;
};

struct HttpCallResponse {
  HeaderMap headers;  // with ":status"; empty when the call failed
  std::string body;
};

// One worker of the route's pool as the upstream filter (sluice_on_upstream_filter) sees it
// in ai.candidates, with the verdict of the plugins.
struct UpstreamCandidate {
  std::string id;
  std::string provider;
  std::string url;
  bool healthy = true;
  uint32_t outstanding = 0;
  double cache_match = 0;   // predicted prefix-cache match in [0, 1] (cache_aware routes)
  std::string rejected;     // the reason (rate_limited, ...); empty while kept
  std::string rejected_by;  // the plugin that rejected it
};

// The reasons sluice_reject_candidate accepts.
bool isCandidateRejectReason(std::string_view reason);

// A Redis command a plugin sent with proxy_redis_call (Higress ABI); the gateway performs it on
// the Redis of `wasm.redis`. The guest's RESP query, already split into its arguments.
struct RedisCallRequest {
  PluginInstance* instance = nullptr;
  uint32_t context_id = 0;  // the context that made the call
  uint32_t token = 0;
  std::vector<std::string> args;
  uint32_t timeout_ms = 0;
};

struct RedisCallResponse {
  abi::RedisCallStatus status = abi::RedisCallStatus::kNetworkError;
  std::string reply;  // the reply, RESP-encoded (empty unless status is kOk)
};

// An endpoint of the request's route as proxy_get_upstream_hosts shows it (Higress ABI).
struct UpstreamHost {
  std::string address;  // host:port, the key plugins pass to proxy_set_upstream_override_host
  std::string id;       // the gateway's endpoint id, accepted as an override too
  std::string info;     // JSON: id, provider, url, health_status ("Healthy" / "Unhealthy")
};

// What a request shows the plugins of its chain; one per request, shared by the chain so
// that a change by one plugin is seen by the next.
struct StreamData {
  HeaderMap request_headers;  // with :method, :path, :authority, :scheme
  HeaderMap request_trailers;
  std::string request_body;
  HeaderMap response_headers;  // with :status
  HeaderMap response_trailers;
  std::string response_body;  // the chunk (or buffered chunks) being delivered
  bool request_body_changed = false;
  bool response_body_changed = false;

  std::optional<LocalResponse> local_response;
  std::vector<HttpCallRequest> http_calls;            // issued during the last callback
  const HttpCallResponse* call_response = nullptr;    // during proxy_on_http_call_response
  std::vector<RedisCallRequest> redis_calls;          // issued during the last callback
  const RedisCallResponse* redis_response = nullptr;  // during proxy_on_redis_call_response
  // The route's endpoints, filled by the gateway before the request plugins run, and the one a
  // plugin asked for (proxy_set_upstream_override_host): the address or id of one of them.
  std::vector<UpstreamHost> upstream_hosts;
  std::string upstream_override;
  bool continue_requested = false;  // proxy_continue_stream during a callback
  bool close_requested = false;     // proxy_close_stream

  // Read-only facts for properties.
  std::string request_id;
  std::string source_address;
  uint32_t response_code = 0;
  // Properties set by the gateway (e.g. ai.*) or by plugins (proxy_set_property).
  std::unordered_map<std::string, std::string> properties;

  // The upstream filter: the candidates of the pool being balanced, and the indexes (in
  // `candidates`) of those the running plugin sees; empty outside the filter.
  std::vector<UpstreamCandidate> candidates;
  std::vector<uint32_t> candidate_view;
  uint32_t candidates_rejected = 0;  // over the whole request
  // Set when a callback set the property sluice.sse_events: whole SSE events from then on.
  std::optional<bool> sse_events_request;
};

// Who a plugin is for the management API: its uuid and version, the digest of its bytes, and
// the counters its instances keep (shared by its versions).
struct PluginIdentity {
  std::string uuid;
  uint64_t version = 1;
  std::string sha256;
  std::shared_ptr<PluginStats> stats = std::make_shared<PluginStats>();
};

// A module compiled once per process, with its settings. Immutable; shared by the threads.
class Plugin {
 public:
  static tl::expected<std::shared_ptr<const Plugin>, std::string> load(
      WasmEngine& engine, const config::Plugin& settings, std::span<const uint8_t> bytes,
      PluginIdentity identity = {});
  // With a module compiled before (same bytes, same memory cap): checks the ABI only.
  static tl::expected<std::shared_ptr<const Plugin>, std::string> fromModule(
      WasmEngine& engine, const config::Plugin& settings,
      std::shared_ptr<const CompiledModule> module, PluginIdentity identity = {});

  const config::Plugin& settings() const { return settings_; }
  const PluginIdentity& identity() const { return identity_; }
  PluginStats& stats() const { return *identity_.stats; }
  const std::shared_ptr<const CompiledModule>& module() const { return module_; }
  abi::Version version() const { return version_; }
  bool exports(std::string_view name) const;
  WasmEngine& engine() const { return engine_; }

 private:
  Plugin(WasmEngine& engine, config::Plugin settings, PluginIdentity identity)
      : engine_(engine), settings_(std::move(settings)), identity_(std::move(identity)) {}

  WasmEngine& engine_;
  config::Plugin settings_;
  PluginIdentity identity_;
  std::shared_ptr<const CompiledModule> module_;
  abi::Version version_ = abi::Version::kUnknown;
};

// What a thread gives its plugin instances: how to log and how to reach its event loop.
struct ThreadHooks {
  std::function<void(abi::LogLevel, std::string_view plugin, std::string_view message)> log;
  // Runs `task` on the instance's own thread (from any thread).
  std::function<void(std::function<void()> task)> post;
  // Whether proxy_redis_call has a Redis to talk to (config wasm.redis, or limits.redis).
  bool redis = false;
};

// The outcome of one callback into a plugin.
struct CallOutcome {
  bool ok = true;      // false: trap, deadline or broken instance (see error)
  uint64_t value = 0;  // the callback's return value (an Action for stream callbacks)
  std::string error;
};

// Per-thread watchdog slot: the thread publishes the VM it is running and the deadline;
// the watchdog thread terminates calls that overrun.
class Watchdog {
 public:
  static Watchdog& instance();
  struct Slot {
    std::atomic<WasmVm*> vm{nullptr};
    std::atomic<int64_t> deadline_ns{0};
    std::mutex vm_mutex;  // held by the watchdog while it terminates, by owners while destroying
  };
  // The slot of the calling thread (registered on first use).
  Slot& slot();

 private:
  Watchdog();
  void run();
  std::mutex mutex_;
  std::vector<std::unique_ptr<Slot>> slots_;
};

// One plugin running on one worker thread: its VM, its root context and its per-request
// contexts. Used only by its thread.
class PluginInstance {
 public:
  PluginInstance(std::shared_ptr<const Plugin> plugin, ThreadHooks hooks);
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  // Builds the VM: instantiate, _initialize/_start, root context, proxy_on_vm_start,
  // proxy_on_configure. Also used to rebuild after a failure.
  tl::expected<void, std::string> start();

  // False after a trap or a missed deadline until start() succeeds again.
  bool healthy() const { return vm_ != nullptr && !broken_; }
  // Rebuilds a broken instance when its back-off allows; returns healthy().
  bool ensureHealthy();
  // Changes whenever the VM is rebuilt: contexts of an older generation are gone.
  uint64_t generation() const { return generation_; }

  const Plugin& plugin() const { return *plugin_; }
  const std::string& name() const { return plugin_->settings().name; }

  // Why calls fail while the instance is down (names the last failure).
  std::string downReason() const;
  // A new HTTP context (proxy_on_context_create); 0 when the instance is not healthy.
  uint32_t createContext();
  // Calls `function(context, args...)` with `stream` visible to host functions.
  CallOutcome callStream(std::string_view function, uint32_t context, StreamData& stream,
                         std::initializer_list<RawVal> args);
  // Calls any export with `stream` visible to host functions (tests drive host calls so).
  CallOutcome callExport(std::string_view function, StreamData* stream,
                         std::span<const RawVal> args);
  // Bounds-checked view of the guest's memory (nullopt outside it or when down).
  std::optional<std::span<uint8_t>> guestMemory(uint64_t offset, uint64_t size);

  // proxy_on_done + proxy_on_delete for a context of the current generation.
  void destroyContext(uint32_t context, StreamData& stream);

  // Delivers an http call answer (proxy_on_http_call_response) to its context.
  CallOutcome deliverHttpCallResponse(const HttpCallRequest& call, const HttpCallResponse& response,
                                      StreamData& stream);

  // Delivers a Redis call answer (proxy_on_redis_call_response, Higress ABI).
  CallOutcome deliverRedisCallResponse(const RedisCallRequest& call,
                                       const RedisCallResponse& response, StreamData& stream);

  // proxy_on_tick when its period has passed.
  void tickIfDue(std::chrono::steady_clock::time_point now);
  // proxy_on_queue_ready on the root context.
  void queueReady(uint32_t queue_id);

 private:
  friend class HostCalls;

  CallOutcome call(std::string_view function, std::initializer_list<RawVal> args);
  CallOutcome call(std::string_view function, std::span<const RawVal> args);
  // A call-out answer: SDKs expect the root context id first (they find the caller by token);
  // host calls act on the calling context until the guest says otherwise.
  CallOutcome callForCaller(std::string_view function, uint32_t caller, StreamData& stream,
                            std::initializer_list<RawVal> args);
  std::vector<HostFunction> hostFunctions();
  void markBroken(const std::string& why);
  // Copies `bytes` into guest memory allocated by the guest's allocator and stores the
  // pointer and size at the guest addresses given; false on failure.
  abi::Status writeOut(std::string_view bytes, uint32_t ptr_ptr, uint32_t size_ptr);

  std::shared_ptr<const Plugin> plugin_;
  ThreadHooks hooks_;
  Watchdog::Slot& watchdog_;
  std::unique_ptr<WasmVm> vm_;
  bool broken_ = false;
  uint64_t generation_ = 0;
  std::chrono::steady_clock::time_point next_rebuild_{};
  uint32_t consecutive_failures_ = 0;
  std::string last_error_;

  uint32_t root_context_ = 1;
  uint32_t next_context_ = 2;
  uint32_t effective_context_ = 0;  // the context host calls act on
  StreamData* stream_ = nullptr;    // the request being served by the running callback
  uint32_t next_call_token_ = 1;
  uint32_t redis_timeout_ms_ = 1000;  // proxy_redis_init's timeout for later calls
  std::string allocator_;             // "malloc" or "proxy_on_memory_allocate"

  uint32_t tick_period_ms_ = 0;
  std::chrono::steady_clock::time_point next_tick_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posted queue callbacks
};

}  // namespace sluice::wasm
