#include "wasm/plugin.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "common/json_writer.h"
#include "wasm/shared_state.h"

namespace sluice::wasm {

using abi::Status;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kMaxPropertyBytes = 64 * 1024;
constexpr uint32_t kMaxLogBytes = 16 * 1024;
constexpr uint32_t kMaxKeyBytes = 4 * 1024;
constexpr uint32_t kMaxSharedValueBytes = 1024 * 1024;
constexpr uint32_t kMaxRejectReasonBytes = 64;
constexpr uint32_t kMaxRedisQueryBytes = 1024 * 1024;
constexpr size_t kMaxRedisArgs = 4096;
constexpr size_t kMaxCallsPerCallback = 16;

// Splits a RESP command (an array of bulk strings, as Higress SDKs send it) into its arguments.
// False for anything else: an inline command, other element types, trailing bytes.
bool parseRespCommand(std::string_view query, std::vector<std::string>& args) {
  auto number = [&query](char type, int64_t& out) {
    if (query.empty() || query.front() != type) return false;
    const auto end = query.find("\r\n");
    if (end == std::string_view::npos || end < 2 || end > 12) return false;
    int64_t value = 0;
    for (size_t i = 1; i < end; ++i) {
      if (query[i] < '0' || query[i] > '9') return false;
      value = value * 10 + (query[i] - '0');
    }
    out = value;
    query.remove_prefix(end + 2);
    return true;
  };
  int64_t count = 0;
  if (!number('*', count) || count < 1 || static_cast<size_t>(count) > kMaxRedisArgs) return false;
  args.clear();
  args.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int64_t size = 0;
    if (!number('$', size) || static_cast<uint64_t>(size) + 2 > query.size()) return false;
    if (query.substr(static_cast<size_t>(size), 2) != "\r\n") return false;
    args.emplace_back(query.substr(0, static_cast<size_t>(size)));
    query.remove_prefix(static_cast<size_t>(size) + 2);
  }
  return query.empty();
}

int64_t nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Header names a plugin is never allowed to set: they describe one hop, or the gateway
// computes them.
bool isHopByHop(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding",
      "te",         "trailer",    "upgrade",          "content-length"};
  for (auto hop : kNames) {
    if (name == hop) return true;
  }
  return false;
}

bool isCredential(const config::Plugin& settings, std::string_view name) {
  static constexpr std::string_view kNames[] = {"authorization", "x-api-key", "api-key",
                                                "proxy-authorization", "cookie"};
  for (auto secret : kNames) {
    if (name == secret) return true;
  }
  for (const auto& extra : settings.hidden_headers) {
    if (lowerCase(extra) == name) return true;
  }
  return false;
}

HostResult result(RawVal value) {
  HostResult out;
  out.value = value;
  return out;
}
HostResult ok(Status status) { return result(static_cast<RawVal>(status)); }
uint32_t u32(RawVal value) { return static_cast<uint32_t>(value); }

// ai.candidates: the candidates the running plugin sees, as a JSON array.
std::string candidatesJson(const StreamData& stream) {
  std::string out;
  JsonWriter json(out);
  json.beginArray();
  for (const auto index : stream.candidate_view) {
    const auto& candidate = stream.candidates[index];
    json.beginObject().key("id").value(candidate.id).key("provider").value(candidate.provider);
    json.key("url").value(candidate.url).key("healthy").value(candidate.healthy);
    json.key("outstanding").value(static_cast<uint64_t>(candidate.outstanding));
    json.key("cache_match").value(candidate.cache_match).endObject();
  }
  json.endArray();
  return out;
}

}  // namespace

bool isCandidateRejectReason(std::string_view reason) {
  return reason == "rate_limited" || reason == "insufficient_quota" || reason == "unhealthy" ||
         reason == "rejected";
}

// ---------------------------------------------------------------------------------------
// Watchdog

Watchdog& Watchdog::instance() {
  // Never destroyed: its thread runs until the process ends, also during static destruction.
  static auto* watchdog = new Watchdog;
  return *watchdog;
}

Watchdog::Watchdog() {
  std::thread([this] { run(); }).detach();
}

Watchdog::Slot& Watchdog::slot() {
  thread_local Slot* mine = nullptr;
  if (mine == nullptr) {
    std::lock_guard lock(mutex_);
    mine = slots_.emplace_back(std::make_unique<Slot>()).get();
  }
  return *mine;
}

void Watchdog::run() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto now = nowNanos();
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_) {
      const auto deadline = slot->deadline_ns.load(std::memory_order_acquire);
      if (deadline == 0 || now < deadline) continue;
      std::lock_guard vm_lock(slot->vm_mutex);
      auto* vm = slot->vm.load(std::memory_order_acquire);
      if (vm != nullptr && slot->deadline_ns.load(std::memory_order_acquire) == deadline) {
        vm->terminate();
        slot->deadline_ns.store(0, std::memory_order_release);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Plugin

tl::expected<std::shared_ptr<const Plugin>, std::string> Plugin::load(
    WasmEngine& engine, const config::Plugin& settings, std::span<const uint8_t> bytes,
    PluginIdentity identity) {
  EngineLimits limits;
  limits.max_memory_pages = settings.limits.max_memory_pages;
  limits.max_module_bytes = settings.limits.max_module_bytes;
  auto module = engine.compile(bytes, limits);
  if (!module) return tl::make_unexpected(module.error());
  return fromModule(engine, settings, std::move(*module), std::move(identity));
}

tl::expected<std::shared_ptr<const Plugin>, std::string> Plugin::fromModule(
    WasmEngine& engine, const config::Plugin& settings,
    std::shared_ptr<const CompiledModule> module, PluginIdentity identity) {
  std::shared_ptr<Plugin> plugin(new Plugin(engine, settings, std::move(identity)));
  plugin->module_ = std::move(module);
  if (plugin->exports("proxy_abi_version_0_2_100")) {
    plugin->version_ = abi::Version::k0_2_100;
  } else if (plugin->exports("proxy_abi_version_0_2_1")) {
    plugin->version_ = abi::Version::k0_2_1;
  } else if (plugin->exports("proxy_abi_version_0_2_0")) {
    plugin->version_ = abi::Version::k0_2_0;
  } else {
    return tl::make_unexpected(std::string(
        "the module exports no proxy_abi_version_0_2_0, _0_2_1 or _0_2_100 function: it is not "
        "a proxy-wasm 0.2.x plugin"));
  }
  if (!plugin->exports("malloc") && !plugin->exports("proxy_on_memory_allocate")) {
    return tl::make_unexpected(std::string(
        "the module exports neither malloc nor proxy_on_memory_allocate: the host cannot hand "
        "it data"));
  }
  return plugin;
}

bool Plugin::exports(std::string_view name) const {
  const auto& names = module_->functionExports();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// ---------------------------------------------------------------------------------------
// Host calls: the proxy-wasm and WASI functions a guest imports.

class HostCalls {
 public:
  using Impl = HostResult (*)(PluginInstance&, std::span<const RawVal>);
  struct Spec {
    const char* module;
    const char* name;
    std::vector<ValType> params;
    std::vector<ValType> results;
    Impl impl;
  };
  static const std::vector<Spec>& specs();

  // --- memory helpers
  static std::optional<std::string_view> read(PluginInstance& self, RawVal ptr, RawVal size,
                                              uint32_t limit = UINT32_MAX) {
    if (size > limit) return std::nullopt;
    if (size == 0) return std::string_view();
    auto span = self.vm_->memory(u32(ptr), u32(size));
    if (!span) return std::nullopt;
    return std::string_view(reinterpret_cast<const char*>(span->data()), span->size());
  }
  static bool writeU32(PluginInstance& self, RawVal ptr, uint32_t value) {
    auto span = self.vm_->memory(u32(ptr), 4);
    if (!span) return false;
    for (int i = 0; i < 4; ++i) (*span)[i] = static_cast<uint8_t>(value >> (8 * i));
    return true;
  }
  static bool writeU64(PluginInstance& self, RawVal ptr, uint64_t value) {
    auto span = self.vm_->memory(u32(ptr), 8);
    if (!span) return false;
    for (int i = 0; i < 8; ++i) (*span)[i] = static_cast<uint8_t>(value >> (8 * i));
    return true;
  }

  static HeaderMap* headerMap(PluginInstance& self, RawVal type) {
    auto* stream = self.stream_;
    if (stream == nullptr) return nullptr;
    switch (static_cast<abi::MapType>(u32(type))) {
      case abi::MapType::kRequestHeaders:
        return &stream->request_headers;
      case abi::MapType::kRequestTrailers:
        return &stream->request_trailers;
      case abi::MapType::kResponseHeaders:
        return &stream->response_headers;
      case abi::MapType::kResponseTrailers:
        return &stream->response_trailers;
      case abi::MapType::kHttpCallResponseHeaders:
        return stream->call_response ? const_cast<HeaderMap*>(&stream->call_response->headers)
                                     : nullptr;
      default:
        return nullptr;
    }
  }
  static bool hidden(PluginInstance& self, RawVal type, std::string_view name) {
    const auto& settings = self.plugin_->settings();
    return !settings.expose_credentials &&
           static_cast<abi::MapType>(u32(type)) == abi::MapType::kRequestHeaders &&
           isCredential(settings, name);
  }
  static bool withinHeaderLimit(PluginInstance& self, const HeaderMap& map) {
    size_t total = 0;
    for (const auto& [name, value] : map) total += name.size() + value.size();
    return total <= self.plugin_->settings().limits.max_header_bytes;
  }

  // --- logging, time, ticks
  static HostResult log(PluginInstance& self, std::span<const RawVal> a) {
    auto message = read(self, a[1], a[2], kMaxLogBytes);
    if (!message) return ok(Status::kInvalidMemoryAccess);
    const auto level = std::min<uint32_t>(u32(a[0]), 5);
    if (self.hooks_.log) self.hooks_.log(static_cast<abi::LogLevel>(level), self.name(), *message);
    return ok(Status::kOk);
  }
  static HostResult getLogLevel(PluginInstance& self, std::span<const RawVal> a) {
    return ok(writeU32(self, a[0], static_cast<uint32_t>(abi::LogLevel::kInfo))
                  ? Status::kOk
                  : Status::kInvalidMemoryAccess);
  }
  static HostResult currentTime(PluginInstance& self, std::span<const RawVal> a) {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return ok(writeU64(self, a[0], static_cast<uint64_t>(now)) ? Status::kOk
                                                               : Status::kInvalidMemoryAccess);
  }
  static HostResult setTickPeriod(PluginInstance& self, std::span<const RawVal> a) {
    self.tick_period_ms_ = u32(a[0]);
    self.next_tick_ = Clock::now() + std::chrono::milliseconds(self.tick_period_ms_);
    return ok(Status::kOk);
  }

  // --- buffers
  static std::string* buffer(PluginInstance& self, RawVal type, bool* changed) {
    auto* stream = self.stream_;
    switch (static_cast<abi::BufferType>(u32(type))) {
      case abi::BufferType::kRequestBody:
        if (changed) *changed = true;
        return stream ? (changed ? (stream->request_body_changed = true, &stream->request_body)
                                 : &stream->request_body)
                      : nullptr;
      case abi::BufferType::kResponseBody:
        return stream ? (changed ? (stream->response_body_changed = true, &stream->response_body)
                                 : &stream->response_body)
                      : nullptr;
      default:
        return nullptr;
    }
  }
  static std::optional<std::string_view> readableBuffer(PluginInstance& self, RawVal type) {
    const auto& settings = self.plugin_->settings();
    switch (static_cast<abi::BufferType>(u32(type))) {
      case abi::BufferType::kPluginConfiguration:
        return settings.configuration;
      case abi::BufferType::kVmConfiguration:
        return settings.vm_configuration;
      case abi::BufferType::kHttpCallResponseBody:
        if (self.stream_ && self.stream_->call_response) return self.stream_->call_response->body;
        return std::nullopt;
      case abi::BufferType::kRedisCallResponse:
        if (self.stream_ && self.stream_->redis_response) {
          return self.stream_->redis_response->reply;
        }
        return std::nullopt;
      default:
        if (auto* text = buffer(self, type, nullptr)) return *text;
        return std::nullopt;
    }
  }
  static HostResult getBufferBytes(PluginInstance& self, std::span<const RawVal> a) {
    auto bytes = readableBuffer(self, a[0]);
    if (!bytes) return ok(Status::kNotFound);
    const uint64_t start = u32(a[1]);
    const uint64_t max = u32(a[2]);
    if (start > bytes->size()) return ok(Status::kBadArgument);
    const auto slice = bytes->substr(start, max);
    return ok(self.writeOut(slice, u32(a[3]), u32(a[4])));
  }
  static HostResult getBufferStatus(PluginInstance& self, std::span<const RawVal> a) {
    auto bytes = readableBuffer(self, a[0]);
    if (!bytes) return ok(Status::kNotFound);
    if (!writeU32(self, a[1], static_cast<uint32_t>(bytes->size())) || !writeU32(self, a[2], 0)) {
      return ok(Status::kInvalidMemoryAccess);
    }
    return ok(Status::kOk);
  }
  static HostResult setBufferBytes(PluginInstance& self, std::span<const RawVal> a) {
    bool changed = false;
    auto* target = buffer(self, a[0], &changed);
    if (target == nullptr) return ok(Status::kNotFound);
    const auto limit = self.plugin_->settings().limits.max_body_bytes;
    auto data =
        read(self, a[3], a[4], static_cast<uint32_t>(std::min<uint64_t>(limit, UINT32_MAX)));
    if (!data) return ok(u32(a[4]) > limit ? Status::kBadArgument : Status::kInvalidMemoryAccess);
    const uint64_t start = std::min<uint64_t>(u32(a[1]), target->size());
    const uint64_t size = std::min<uint64_t>(u32(a[2]), target->size() - start);
    if (target->size() - size + data->size() > limit) return ok(Status::kBadArgument);
    target->replace(start, size, *data);
    self.plugin_->stats().modification();
    return ok(Status::kOk);
  }

  // --- header maps
  static HostResult getHeaderMapPairs(PluginInstance& self, std::span<const RawVal> a) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr) return ok(Status::kNotFound);
    HeaderMap visible;
    visible.reserve(map->size());
    for (const auto& pair : *map) {
      if (!hidden(self, a[0], pair.first)) visible.push_back(pair);
    }
    return ok(self.writeOut(serializeHeaderMap(visible), u32(a[1]), u32(a[2])));
  }
  static HostResult setHeaderMapPairs(PluginInstance& self, std::span<const RawVal> a) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr ||
        static_cast<abi::MapType>(u32(a[0])) == abi::MapType::kHttpCallResponseHeaders) {
      return ok(Status::kNotFound);
    }
    auto bytes = read(self, a[1], a[2]);
    if (!bytes) return ok(Status::kInvalidMemoryAccess);
    auto pairs =
        deserializeHeaderMap({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()});
    if (!pairs) return ok(Status::kBadArgument);
    HeaderMap result;
    for (auto& [name, value] : *pairs) {
      auto lower = lowerCase(name);
      if (!isHopByHop(lower)) result.emplace_back(std::move(lower), std::move(value));
    }
    // Entries the plugin could not see are kept unless it named them itself.
    for (const auto& pair : *map) {
      if (hidden(self, a[0], pair.first) || isHopByHop(pair.first)) {
        const bool named = std::any_of(result.begin(), result.end(),
                                       [&](const auto& p) { return p.first == pair.first; });
        if (!named) result.push_back(pair);
      }
    }
    if (!withinHeaderLimit(self, result)) return ok(Status::kBadArgument);
    *map = std::move(result);
    self.plugin_->stats().modification();
    return ok(Status::kOk);
  }
  static HostResult getHeaderMapValue(PluginInstance& self, std::span<const RawVal> a) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr) return ok(Status::kNotFound);
    auto key = read(self, a[1], a[2], kMaxKeyBytes);
    if (!key) return ok(Status::kInvalidMemoryAccess);
    const auto name = lowerCase(*key);
    if (hidden(self, a[0], name)) return ok(Status::kNotFound);
    for (const auto& [n, value] : *map) {
      if (n == name) return ok(self.writeOut(value, u32(a[3]), u32(a[4])));
    }
    return ok(Status::kNotFound);
  }
  static HostResult changeHeader(PluginInstance& self, std::span<const RawVal> a, bool add) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr ||
        static_cast<abi::MapType>(u32(a[0])) == abi::MapType::kHttpCallResponseHeaders) {
      return ok(Status::kNotFound);
    }
    auto key = read(self, a[1], a[2], kMaxKeyBytes);
    auto value = read(self, a[3], a[4]);
    if (!key || !value) return ok(Status::kInvalidMemoryAccess);
    const auto name = lowerCase(*key);
    if (name.empty()) return ok(Status::kBadArgument);
    if (isHopByHop(name)) return ok(Status::kOk);  // ignored by design
    HeaderMap result = *map;
    if (add) {
      result.emplace_back(name, std::string(*value));
    } else {
      auto it = std::find_if(result.begin(), result.end(),
                             [&](const auto& p) { return p.first == name; });
      if (it == result.end()) {
        result.emplace_back(name, std::string(*value));
      } else {
        it->second.assign(*value);
        result.erase(std::remove_if(std::next(it), result.end(),
                                    [&](const auto& p) { return p.first == name; }),
                     result.end());
      }
    }
    if (!withinHeaderLimit(self, result)) return ok(Status::kBadArgument);
    *map = std::move(result);
    self.plugin_->stats().modification();
    return ok(Status::kOk);
  }
  static HostResult addHeader(PluginInstance& self, std::span<const RawVal> a) {
    return changeHeader(self, a, true);
  }
  static HostResult replaceHeader(PluginInstance& self, std::span<const RawVal> a) {
    return changeHeader(self, a, false);
  }
  static HostResult removeHeader(PluginInstance& self, std::span<const RawVal> a) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr) return ok(Status::kNotFound);
    auto key = read(self, a[1], a[2], kMaxKeyBytes);
    if (!key) return ok(Status::kInvalidMemoryAccess);
    const auto name = lowerCase(*key);
    if (hidden(self, a[0], name) || name.starts_with(':')) return ok(Status::kOk);
    std::erase_if(*map, [&](const auto& p) { return p.first == name; });
    self.plugin_->stats().modification();
    return ok(Status::kOk);
  }
  static HostResult getHeaderMapSize(PluginInstance& self, std::span<const RawVal> a) {
    auto* map = headerMap(self, a[0]);
    if (map == nullptr) return ok(Status::kNotFound);
    HeaderMap visible;
    for (const auto& pair : *map) {
      if (!hidden(self, a[0], pair.first)) visible.push_back(pair);
    }
    const auto size = serializeHeaderMap(visible).size();
    return ok(writeU32(self, a[1], static_cast<uint32_t>(size)) ? Status::kOk
                                                                : Status::kInvalidMemoryAccess);
  }

  // --- properties
  static std::optional<std::string> property(PluginInstance& self, std::string_view path) {
    // Segments are NUL-separated; the dotted form is accepted too.
    std::string dotted(path);
    std::replace(dotted.begin(), dotted.end(), '\0', '.');
    const auto& settings = self.plugin_->settings();
    if (dotted == "plugin_name") return settings.name;
    if (dotted == "plugin_root_id") return settings.root_id;
    if (dotted == "plugin_vm_id") return std::string();
    auto* stream = self.stream_;
    if (stream == nullptr) return std::nullopt;
    auto header = [&](std::string_view name) -> std::optional<std::string> {
      for (const auto& [n, v] : stream->request_headers) {
        if (n == name) return v;
      }
      return std::nullopt;
    };
    if (dotted == "request.path") return header(":path");
    if (dotted == "request.url_path") {
      auto full = header(":path");
      if (full) full = full->substr(0, full->find('?'));
      return full;
    }
    if (dotted == "request.method") return header(":method");
    if (dotted == "request.host") return header(":authority");
    if (dotted == "request.scheme") return header(":scheme");
    if (dotted == "request.protocol") return std::string("HTTP/1.1");
    if (dotted == "request.id") return stream->request_id;
    if (dotted.starts_with("request.headers.")) {
      const auto name = lowerCase(std::string_view(dotted).substr(16));
      if (hidden(self, static_cast<RawVal>(abi::MapType::kRequestHeaders), name)) {
        return std::nullopt;
      }
      return header(name);
    }
    if (dotted == "source.address") return stream->source_address;
    // What the Higress Go SDK (wasm-go) reads to pick a rule's configuration and for its logs:
    // the route, the upstream (a provider here), the consumer (the client's key).
    auto known = [&](const char* name) -> std::optional<std::string> {
      auto it = stream->properties.find(name);
      if (it == stream->properties.end()) return std::string();
      return it->second;
    };
    if (!stream->properties.contains(dotted)) {
      if (dotted == "route_name") return known("ai.route");
      if (dotted == "cluster_name") return known("ai.provider");
      if (dotted == "consumer_name") return known("ai.api_key_id");
      if (dotted == "x_request_id") return stream->request_id;
    }
    if (dotted == "response.code") {
      if (stream->response_code == 0) return std::nullopt;
      // Integers are 8-byte little-endian, as Envoy encodes them.
      std::string bytes(8, '\0');
      uint64_t code = stream->response_code;
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(code >> (8 * i));
      return bytes;
    }
    if (dotted == "ai.candidates") {
      if (stream->candidate_view.empty()) return std::nullopt;  // only during the filter
      return candidatesJson(*stream);
    }
    if (auto it = stream->properties.find(dotted); it != stream->properties.end()) {
      return it->second;
    }
    return std::nullopt;
  }
  static HostResult getProperty(PluginInstance& self, std::span<const RawVal> a) {
    auto path = read(self, a[0], a[1], kMaxKeyBytes);
    if (!path) return ok(Status::kInvalidMemoryAccess);
    auto value = property(self, *path);
    if (!value) return ok(Status::kNotFound);
    return ok(self.writeOut(*value, u32(a[2]), u32(a[3])));
  }
  static HostResult setProperty(PluginInstance& self, std::span<const RawVal> a) {
    auto path = read(self, a[0], a[1], kMaxKeyBytes);
    auto value = read(self, a[2], a[3], kMaxPropertyBytes);
    if (!path || !value) return ok(Status::kInvalidMemoryAccess);
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    std::string dotted(*path);
    std::replace(dotted.begin(), dotted.end(), '\0', '.');
    if (dotted.empty() || self.stream_->properties.size() >= 1024) return ok(Status::kBadArgument);
    if (dotted == "sluice.sse_events") self.stream_->sse_events_request = *value == "true";
    self.stream_->properties[dotted] = std::string(*value);
    self.plugin_->stats().modification();
    return ok(Status::kOk);
  }

  // --- upstream filter: sluice_reject_candidate(index, reason, reason_len), where index is
  // the candidate's position in ai.candidates as this plugin read it.
  static HostResult rejectCandidate(PluginInstance& self, std::span<const RawVal> a) {
    auto* stream = self.stream_;
    if (stream == nullptr || stream->candidate_view.empty()) return ok(Status::kNotFound);
    if (u32(a[2]) > kMaxRejectReasonBytes) return ok(Status::kBadArgument);
    auto reason = read(self, a[1], a[2], kMaxRejectReasonBytes);
    if (!reason) return ok(Status::kInvalidMemoryAccess);
    const auto index = u32(a[0]);
    if (index >= stream->candidate_view.size() || !isCandidateRejectReason(*reason)) {
      return ok(Status::kBadArgument);
    }
    auto& candidate = stream->candidates[stream->candidate_view[index]];
    if (candidate.rejected.empty()) {
      candidate.rejected = std::string(*reason);
      candidate.rejected_by = self.name();
    }
    return ok(Status::kOk);
  }

  // --- stream control
  static HostResult sendLocalResponse(PluginInstance& self, std::span<const RawVal> a) {
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    const auto status = u32(a[0]);
    if (status < 200 || status > 599) return ok(Status::kBadArgument);
    const auto& limits = self.plugin_->settings().limits;
    auto details = read(self, a[1], a[2], kMaxKeyBytes);
    auto body = read(
        self, a[3], a[4],
        static_cast<uint32_t>(std::min<uint64_t>(limits.max_local_response_bytes, UINT32_MAX)));
    auto headers = read(self, a[5], a[6]);
    if (!details || !body || !headers) {
      return ok(u32(a[4]) > limits.max_local_response_bytes ? Status::kBadArgument
                                                            : Status::kInvalidMemoryAccess);
    }
    LocalResponse response;
    response.status = status;
    response.details = std::string(*details);
    response.body = std::string(*body);
    if (!headers->empty()) {
      auto pairs = deserializeHeaderMap(
          {reinterpret_cast<const uint8_t*>(headers->data()), headers->size()});
      if (!pairs) return ok(Status::kBadArgument);
      for (auto& [name, value] : *pairs) {
        auto lower = lowerCase(name);
        if (!isHopByHop(lower) && !lower.starts_with(':')) {
          response.headers.emplace_back(std::move(lower), std::move(value));
        }
      }
      if (!withinHeaderLimit(self, response.headers)) return ok(Status::kBadArgument);
    }
    self.stream_->local_response = std::move(response);
    self.plugin_->stats().reject();
    return ok(Status::kOk);
  }
  static HostResult continueStream(PluginInstance& self, std::span<const RawVal>) {
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    self.stream_->continue_requested = true;
    return ok(Status::kOk);
  }
  static HostResult closeStream(PluginInstance& self, std::span<const RawVal>) {
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    self.stream_->close_requested = true;
    return ok(Status::kOk);
  }
  static HostResult continueLegacy(PluginInstance& self, std::span<const RawVal> a) {
    return continueStream(self, a);
  }
  static HostResult getStatus(PluginInstance& self, std::span<const RawVal> a) {
    if (!writeU32(self, a[0], 0)) return ok(Status::kInvalidMemoryAccess);
    return ok(self.writeOut("", u32(a[1]), u32(a[2])));
  }
  static HostResult setEffectiveContext(PluginInstance& self, std::span<const RawVal> a) {
    self.effective_context_ = u32(a[0]);
    return ok(Status::kOk);
  }
  static HostResult done(PluginInstance&, std::span<const RawVal>) { return ok(Status::kOk); }

  // --- HTTP call-outs
  static HostResult httpCall(PluginInstance& self, std::span<const RawVal> a) {
    if (self.stream_ == nullptr) return ok(Status::kBadArgument);  // only from a request
    auto upstream = read(self, a[0], a[1], kMaxKeyBytes);
    auto headers = read(self, a[2], a[3]);
    auto body = read(self, a[4], a[5],
                     static_cast<uint32_t>(std::min<uint64_t>(
                         self.plugin_->settings().limits.max_body_bytes, UINT32_MAX)));
    if (!upstream || !headers || !body) return ok(Status::kInvalidMemoryAccess);
    auto pairs =
        deserializeHeaderMap({reinterpret_cast<const uint8_t*>(headers->data()), headers->size()});
    if (!pairs) return ok(Status::kBadArgument);
    if (self.stream_->http_calls.size() >= kMaxCallsPerCallback) return ok(Status::kBadArgument);
    HttpCallRequest call;
    call.instance = &self;
    call.context_id = self.effective_context_;
    call.token = self.next_call_token_++;
    call.upstream = std::string(*upstream);
    call.headers = std::move(*pairs);
    call.body = std::string(*body);
    call.timeout_ms = std::clamp<uint32_t>(u32(a[8]), 1, 60000);
    if (!writeU32(self, a[9], call.token)) return ok(Status::kInvalidMemoryAccess);
    self.stream_->http_calls.push_back(std::move(call));
    return ok(Status::kOk);
  }

  // --- metrics
  static HostResult defineMetric(PluginInstance& self, std::span<const RawVal> a) {
    auto name = read(self, a[1], a[2], 256);
    if (!name) return ok(Status::kInvalidMemoryAccess);
    auto id =
        sharedState().metrics.define(static_cast<abi::MetricType>(u32(a[0])), std::string(*name));
    if (!id) return ok(Status::kBadArgument);
    return ok(writeU32(self, a[3], *id) ? Status::kOk : Status::kInvalidMemoryAccess);
  }
  static HostResult incrementMetric(PluginInstance&, std::span<const RawVal> a) {
    return ok(sharedState().metrics.increment(u32(a[0]), static_cast<int64_t>(a[1])));
  }
  static HostResult recordMetric(PluginInstance&, std::span<const RawVal> a) {
    return ok(sharedState().metrics.record(u32(a[0]), a[1]));
  }
  static HostResult getMetric(PluginInstance& self, std::span<const RawVal> a) {
    auto value = sharedState().metrics.get(u32(a[0]));
    if (!value) return ok(Status::kNotFound);
    return ok(writeU64(self, a[1], *value) ? Status::kOk : Status::kInvalidMemoryAccess);
  }

  // --- shared data and queues
  static HostResult getSharedData(PluginInstance& self, std::span<const RawVal> a) {
    auto key = read(self, a[0], a[1], kMaxKeyBytes);
    if (!key) return ok(Status::kInvalidMemoryAccess);
    auto value = sharedState().data.get(std::string(*key));
    if (!value) return ok(Status::kNotFound);
    if (!writeU32(self, a[4], value->cas)) return ok(Status::kInvalidMemoryAccess);
    return ok(self.writeOut(value->bytes, u32(a[2]), u32(a[3])));
  }
  static HostResult setSharedData(PluginInstance& self, std::span<const RawVal> a) {
    auto key = read(self, a[0], a[1], kMaxKeyBytes);
    auto value = read(self, a[2], a[3], kMaxSharedValueBytes);
    if (!key || !value) return ok(Status::kInvalidMemoryAccess);
    return ok(sharedState().data.set(std::string(*key), std::string(*value), u32(a[4])));
  }
  static HostResult registerQueue(PluginInstance& self, std::span<const RawVal> a) {
    auto name = read(self, a[0], a[1], kMaxKeyBytes);
    if (!name) return ok(Status::kInvalidMemoryAccess);
    std::weak_ptr<bool> alive = self.alive_;
    auto post = self.hooks_.post;
    PluginInstance* instance = &self;
    const auto id = sharedState().queues.registerQueue(
        self.plugin_->settings().root_id, std::string(*name), [alive, post, instance](uint32_t id) {
          if (!post) return;
          post([alive, instance, id] {
            if (alive.lock()) instance->queueReady(id);
          });
        });
    return ok(writeU32(self, a[2], id) ? Status::kOk : Status::kInvalidMemoryAccess);
  }
  static HostResult resolveQueue(PluginInstance& self, std::span<const RawVal> a) {
    auto vm_id = read(self, a[0], a[1], kMaxKeyBytes);
    auto name = read(self, a[2], a[3], kMaxKeyBytes);
    if (!vm_id || !name) return ok(Status::kInvalidMemoryAccess);
    auto id = sharedState().queues.resolve(std::string(*vm_id), std::string(*name));
    if (!id) return ok(Status::kNotFound);
    return ok(writeU32(self, a[4], *id) ? Status::kOk : Status::kInvalidMemoryAccess);
  }
  static HostResult enqueue(PluginInstance& self, std::span<const RawVal> a) {
    auto value = read(self, a[1], a[2], kMaxSharedValueBytes);
    if (!value) return ok(Status::kInvalidMemoryAccess);
    return ok(sharedState().queues.enqueue(u32(a[0]), std::string(*value)));
  }
  static HostResult dequeue(PluginInstance& self, std::span<const RawVal> a) {
    std::string value;
    const auto status = sharedState().queues.dequeue(u32(a[0]), value);
    if (status != Status::kOk) return ok(status);
    return ok(self.writeOut(value, u32(a[1]), u32(a[2])));
  }

  static HostResult unimplemented(PluginInstance&, std::span<const RawVal>) {
    return ok(Status::kUnimplemented);
  }
  static HostResult foreignFunction(PluginInstance& self, std::span<const RawVal> a) {
    auto name = read(self, a[0], a[1], kMaxKeyBytes);
    if (!name) return ok(Status::kInvalidMemoryAccess);
    // wasm-go's WithMaxRequestsPerIoCycle tunes Envoy's event loop; nothing to tune here.
    if (*name == "set_global_max_requests_per_io_cycle") {
      return ok(self.writeOut("", u32(a[4]), u32(a[5])));
    }
    return ok(Status::kNotFound);
  }

  // --- Higress 0.2.100: Redis call-outs and upstream hosts
  static HostResult redisInit(PluginInstance& self, std::span<const RawVal> a) {
    // The cluster names a Redis in Higress's Envoy; here there is one, wasm.redis, with its own
    // credentials: the name, username and password are checked for access but not used.
    auto cluster = read(self, a[0], a[1], kMaxKeyBytes);
    auto username = read(self, a[2], a[3], kMaxKeyBytes);
    auto password = read(self, a[4], a[5], kMaxKeyBytes);
    if (!cluster || !username || !password) return ok(Status::kInvalidMemoryAccess);
    if (!self.hooks_.redis) return ok(Status::kNotFound);
    if (u32(a[6]) != 0) self.redis_timeout_ms_ = std::clamp<uint32_t>(u32(a[6]), 1, 60000);
    return ok(Status::kOk);
  }
  static HostResult redisCall(PluginInstance& self, std::span<const RawVal> a) {
    auto cluster = read(self, a[0], a[1], kMaxKeyBytes);
    auto query = read(self, a[2], a[3], kMaxRedisQueryBytes);
    if (!cluster || !query) {
      return ok(u32(a[3]) > kMaxRedisQueryBytes ? Status::kBadArgument
                                                : Status::kInvalidMemoryAccess);
    }
    if (self.stream_ == nullptr) return ok(Status::kBadArgument);  // only from a request
    if (!self.hooks_.redis) return ok(Status::kNotFound);
    if (self.stream_->redis_calls.size() >= kMaxCallsPerCallback) return ok(Status::kBadArgument);
    RedisCallRequest call;
    if (!parseRespCommand(*query, call.args)) return ok(Status::kBadArgument);
    call.instance = &self;
    call.context_id = self.effective_context_;
    call.token = self.next_call_token_++;
    call.timeout_ms = self.redis_timeout_ms_;
    if (!writeU32(self, a[4], call.token)) return ok(Status::kInvalidMemoryAccess);
    self.stream_->redis_calls.push_back(std::move(call));
    return ok(Status::kOk);
  }
  static HostResult getUpstreamHosts(PluginInstance& self, std::span<const RawVal> a) {
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    HeaderMap pairs;
    pairs.reserve(self.stream_->upstream_hosts.size());
    for (const auto& host : self.stream_->upstream_hosts)
      pairs.emplace_back(host.address, host.info);
    return ok(self.writeOut(serializeHeaderMap(pairs), u32(a[0]), u32(a[1])));
  }
  static HostResult setUpstreamOverrideHost(PluginInstance& self, std::span<const RawVal> a) {
    auto host = read(self, a[0], a[1], kMaxKeyBytes);
    if (!host) return ok(Status::kInvalidMemoryAccess);
    if (self.stream_ == nullptr) return ok(Status::kNotFound);
    self.stream_->upstream_override.assign(*host);
    return ok(Status::kOk);
  }

  // --- WASI preview1 (errno results: 0 success, 8 EBADF, 21 EFAULT, 28 EINVAL, 52 ENOSYS)
  static HostResult fdWrite(PluginInstance& self, std::span<const RawVal> a) {
    const auto fd = u32(a[0]);
    if (fd != 1 && fd != 2) return result(8);
    uint64_t total = 0;
    std::string text;
    for (uint32_t i = 0; i < std::min<uint32_t>(u32(a[2]), 64); ++i) {
      auto iov = self.vm_->memory(u32(a[1]) + uint64_t(i) * 8, 8);
      if (!iov) return result(21);
      uint32_t ptr, len;
      std::memcpy(&ptr, iov->data(), 4);
      std::memcpy(&len, iov->data() + 4, 4);
      auto bytes = read(self, ptr, len);
      if (!bytes) return result(21);
      total += len;
      if (text.size() < kMaxLogBytes) text.append(bytes->substr(0, kMaxLogBytes - text.size()));
    }
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && self.hooks_.log) {
      self.hooks_.log(fd == 2 ? abi::LogLevel::kWarn : abi::LogLevel::kInfo, self.name(), text);
    }
    return result(writeU32(self, a[3], static_cast<uint32_t>(total)) ? 0u : 21u);
  }
  static HostResult clockTimeGet(PluginInstance& self, std::span<const RawVal> a) {
    int64_t nanos;
    if (u32(a[0]) == 0) {
      nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    } else {
      nanos = nowNanos();
    }
    return result(writeU64(self, a[2], static_cast<uint64_t>(nanos)) ? 0u : 21u);
  }
  static HostResult clockResGet(PluginInstance& self, std::span<const RawVal> a) {
    return result(writeU64(self, a[1], 1) ? 0u : 21u);
  }
  static HostResult randomGet(PluginInstance& self, std::span<const RawVal> a) {
    auto span = self.vm_->memory(u32(a[0]), u32(a[1]));
    if (!span) return result(21);
    thread_local std::mt19937_64 generator{std::random_device{}()};
    for (auto& byte : *span) byte = static_cast<uint8_t>(generator());
    return result(0);
  }
  static HostResult environSizes(PluginInstance& self, std::span<const RawVal> a) {
    const auto& env = self.plugin_->settings().env;
    uint32_t bytes = 0;
    for (const auto& [name, value] : env) bytes += name.size() + value.size() + 2;
    return result(writeU32(self, a[0], static_cast<uint32_t>(env.size())) &&
                          writeU32(self, a[1], bytes)
                      ? 0u
                      : 21u);
  }
  static HostResult environGet(PluginInstance& self, std::span<const RawVal> a) {
    uint32_t cursor = u32(a[1]);
    uint32_t slot = u32(a[0]);
    for (const auto& [name, value] : self.plugin_->settings().env) {
      const std::string entry = name + "=" + value;
      auto span = self.vm_->memory(cursor, entry.size() + 1);
      if (!span || !writeU32(self, slot, cursor)) return result(21);
      std::memcpy(span->data(), entry.c_str(), entry.size() + 1);
      cursor += static_cast<uint32_t>(entry.size() + 1);
      slot += 4;
    }
    return result(0);
  }
  static HostResult argsSizes(PluginInstance& self, std::span<const RawVal> a) {
    return result(writeU32(self, a[0], 0) && writeU32(self, a[1], 0) ? 0u : 21u);
  }
  static HostResult argsGet(PluginInstance&, std::span<const RawVal>) { return result(0); }
  static HostResult procExit(PluginInstance&, std::span<const RawVal> a) {
    HostResult result;
    result.trap = true;
    result.trap_message = fmt::format("proc_exit({})", u32(a[0]));
    return result;
  }
  static HostResult badFd(PluginInstance&, std::span<const RawVal>) { return result(8); }
  static HostResult noSys(PluginInstance&, std::span<const RawVal>) { return result(52); }
  static HostResult success(PluginInstance&, std::span<const RawVal>) { return result(0); }
};

const std::vector<HostCalls::Spec>& HostCalls::specs() {
  using V = ValType;
  constexpr auto I = V::kI32;
  constexpr auto L = V::kI64;
  auto i32s = [](int n) { return std::vector<ValType>(n, ValType::kI32); };
  static const std::vector<Spec> table = {
      {"env", "proxy_log", i32s(3), {I}, &log},
      {"env", "proxy_get_log_level", i32s(1), {I}, &getLogLevel},
      {"env", "proxy_get_current_time_nanoseconds", i32s(1), {I}, &currentTime},
      {"env", "proxy_set_tick_period_milliseconds", i32s(1), {I}, &setTickPeriod},
      {"env", "proxy_get_buffer_bytes", i32s(5), {I}, &getBufferBytes},
      {"env", "proxy_get_buffer_status", i32s(3), {I}, &getBufferStatus},
      {"env", "proxy_set_buffer_bytes", i32s(5), {I}, &setBufferBytes},
      {"env", "proxy_get_header_map_pairs", i32s(3), {I}, &getHeaderMapPairs},
      {"env", "proxy_set_header_map_pairs", i32s(3), {I}, &setHeaderMapPairs},
      {"env", "proxy_get_header_map_value", i32s(5), {I}, &getHeaderMapValue},
      {"env", "proxy_add_header_map_value", i32s(5), {I}, &addHeader},
      {"env", "proxy_replace_header_map_value", i32s(5), {I}, &replaceHeader},
      {"env", "proxy_remove_header_map_value", i32s(3), {I}, &removeHeader},
      {"env", "proxy_get_header_map_size", i32s(2), {I}, &getHeaderMapSize},
      {"env", "proxy_get_property", i32s(4), {I}, &getProperty},
      {"env", "proxy_set_property", i32s(4), {I}, &setProperty},
      {"env", "proxy_send_local_response", i32s(8), {I}, &sendLocalResponse},
      {"env", "proxy_continue_stream", i32s(1), {I}, &continueStream},
      {"env", "proxy_close_stream", i32s(1), {I}, &closeStream},
      {"env", "proxy_continue_request", {}, {I}, &continueLegacy},
      {"env", "proxy_continue_response", {}, {I}, &continueLegacy},
      {"env", "proxy_get_status", i32s(3), {I}, &getStatus},
      {"env", "proxy_set_effective_context", i32s(1), {I}, &setEffectiveContext},
      {"env", "proxy_done", {}, {I}, &done},
      {"env", "proxy_http_call", i32s(10), {I}, &httpCall},
      {"env", "proxy_define_metric", i32s(4), {I}, &defineMetric},
      {"env", "proxy_increment_metric", {I, L}, {I}, &incrementMetric},
      {"env", "proxy_record_metric", {I, L}, {I}, &recordMetric},
      {"env", "proxy_get_metric", i32s(2), {I}, &getMetric},
      {"env", "proxy_get_shared_data", i32s(5), {I}, &getSharedData},
      {"env", "proxy_set_shared_data", i32s(5), {I}, &setSharedData},
      {"env", "proxy_register_shared_queue", i32s(3), {I}, &registerQueue},
      {"env", "proxy_resolve_shared_queue", i32s(5), {I}, &resolveQueue},
      {"env", "proxy_enqueue_shared_queue", i32s(3), {I}, &enqueue},
      {"env", "proxy_dequeue_shared_queue", i32s(3), {I}, &dequeue},
      {"env", "proxy_call_foreign_function", i32s(6), {I}, &foreignFunction},
      {"env", "sluice_reject_candidate", i32s(3), {I}, &rejectCandidate},
      {"env", "proxy_redis_init", i32s(7), {I}, &redisInit},
      {"env", "proxy_redis_call", i32s(5), {I}, &redisCall},
      {"env", "proxy_get_upstream_hosts", i32s(2), {I}, &getUpstreamHosts},
      {"env", "proxy_set_upstream_override_host", i32s(2), {I}, &setUpstreamOverrideHost},
      {"env", "proxy_inject_encoded_data_to_filter_chain", i32s(3), {I}, &unimplemented},
      {"env", "proxy_grpc_call", i32s(12), {I}, &unimplemented},
      {"env", "proxy_grpc_stream", i32s(9), {I}, &unimplemented},
      {"env", "proxy_grpc_send", i32s(4), {I}, &unimplemented},
      {"env", "proxy_grpc_cancel", i32s(1), {I}, &unimplemented},
      {"env", "proxy_grpc_close", i32s(1), {I}, &unimplemented},
      {"env", "proxy_get_configuration", i32s(2), {I}, &unimplemented},
      {"wasi_snapshot_preview1", "fd_write", i32s(4), {I}, &fdWrite},
      {"wasi_snapshot_preview1", "fd_read", i32s(4), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_close", i32s(1), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_seek", {I, L, I, I}, {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_tell", i32s(2), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_sync", i32s(1), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_fdstat_get", i32s(2), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_fdstat_set_flags", i32s(2), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_filestat_get", i32s(2), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_prestat_get", i32s(2), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_prestat_dir_name", i32s(3), {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_pread", {I, I, I, L, I}, {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_pwrite", {I, I, I, L, I}, {I}, &badFd},
      {"wasi_snapshot_preview1", "fd_readdir", {I, I, I, L, I}, {I}, &badFd},
      {"wasi_snapshot_preview1", "path_open", {I, I, I, I, I, L, L, I, I}, {I}, &noSys},
      {"wasi_snapshot_preview1", "path_filestat_get", i32s(5), {I}, &noSys},
      {"wasi_snapshot_preview1", "path_create_directory", i32s(3), {I}, &noSys},
      {"wasi_snapshot_preview1", "path_remove_directory", i32s(3), {I}, &noSys},
      {"wasi_snapshot_preview1", "path_unlink_file", i32s(3), {I}, &noSys},
      {"wasi_snapshot_preview1", "path_rename", i32s(6), {I}, &noSys},
      {"wasi_snapshot_preview1", "path_readlink", i32s(6), {I}, &noSys},
      {"wasi_snapshot_preview1", "poll_oneoff", i32s(4), {I}, &noSys},
      {"wasi_snapshot_preview1", "sock_accept", i32s(3), {I}, &noSys},
      {"wasi_snapshot_preview1", "sock_recv", i32s(6), {I}, &noSys},
      {"wasi_snapshot_preview1", "sock_send", i32s(5), {I}, &noSys},
      {"wasi_snapshot_preview1", "sock_shutdown", i32s(2), {I}, &noSys},
      {"wasi_snapshot_preview1", "sched_yield", {}, {I}, &success},
      {"wasi_snapshot_preview1", "clock_time_get", {I, L, I}, {I}, &clockTimeGet},
      {"wasi_snapshot_preview1", "clock_res_get", i32s(2), {I}, &clockResGet},
      {"wasi_snapshot_preview1", "random_get", i32s(2), {I}, &randomGet},
      {"wasi_snapshot_preview1", "environ_sizes_get", i32s(2), {I}, &environSizes},
      {"wasi_snapshot_preview1", "environ_get", i32s(2), {I}, &environGet},
      {"wasi_snapshot_preview1", "args_sizes_get", i32s(2), {I}, &argsSizes},
      {"wasi_snapshot_preview1", "args_get", i32s(2), {I}, &argsGet},
      {"wasi_snapshot_preview1", "proc_exit", i32s(1), {}, &procExit},
  };
  return table;
}

// ---------------------------------------------------------------------------------------
// PluginInstance

PluginInstance::PluginInstance(std::shared_ptr<const Plugin> plugin, ThreadHooks hooks)
    : plugin_(std::move(plugin)),
      hooks_(std::move(hooks)),
      watchdog_(Watchdog::instance().slot()) {}

PluginInstance::~PluginInstance() {
  std::lock_guard lock(watchdog_.vm_mutex);
  vm_.reset();
}

std::vector<HostFunction> PluginInstance::hostFunctions() {
  std::vector<HostFunction> functions;
  for (const auto& spec : HostCalls::specs()) {
    functions.push_back(
        HostFunction{spec.module, spec.name, spec.params, spec.results,
                     [this, impl = spec.impl](WasmVm&, std::span<const RawVal> args) {
                       return impl(*this, args);
                     }});
  }
  return functions;
}

tl::expected<void, std::string> PluginInstance::start() {
  {
    std::lock_guard lock(watchdog_.vm_mutex);
    vm_.reset();
  }
  broken_ = false;
  ++generation_;
  next_context_ = root_context_ + 1;
  tick_period_ms_ = 0;
  auto vm = plugin_->engine().createVm();
  if (auto instantiated = vm->instantiate(plugin_->module(), hostFunctions()); !instantiated) {
    return tl::make_unexpected(instantiated.error());
  }
  vm_ = std::move(vm);
  allocator_ = plugin_->exports("malloc") ? "malloc" : "proxy_on_memory_allocate";

  auto fail = [this](std::string what) -> tl::expected<void, std::string> {
    std::lock_guard lock(watchdog_.vm_mutex);
    vm_.reset();
    return tl::make_unexpected(std::move(what));
  };
  for (const char* entry : {"_initialize", "_start"}) {
    if (!plugin_->exports(entry)) continue;
    auto outcome = call(entry, {});
    if (!outcome.ok && outcome.error.find("proc_exit(0)") == std::string::npos) {
      return fail(fmt::format("{} failed: {}", entry, outcome.error));
    }
    broken_ = false;
    break;
  }
  if (auto outcome = call("proxy_on_context_create", {root_context_, 0}); !outcome.ok) {
    return fail("proxy_on_context_create (root) failed: " + outcome.error);
  }
  const auto& settings = plugin_->settings();
  if (plugin_->exports("proxy_on_vm_start")) {
    auto outcome = call("proxy_on_vm_start", {root_context_, settings.vm_configuration.size()});
    if (!outcome.ok) return fail("proxy_on_vm_start failed: " + outcome.error);
    if (outcome.value == 0) return fail("proxy_on_vm_start returned false");
  }
  if (plugin_->exports("proxy_on_configure")) {
    auto outcome = call("proxy_on_configure", {root_context_, settings.configuration.size()});
    if (!outcome.ok) return fail("proxy_on_configure failed: " + outcome.error);
    if (outcome.value == 0)
      return fail("proxy_on_configure returned false (configuration rejected)");
  }
  return {};
}

bool PluginInstance::ensureHealthy() {
  if (healthy()) return true;
  const auto now = Clock::now();
  if (now < next_rebuild_) return false;
  auto started = start();
  if (!started) {
    plugin_->stats().startFailure();
    markBroken(fmt::format("rebuilding the instance failed: {}", started.error()));
    return false;
  }
  return true;
}

std::string PluginInstance::downReason() const {
  if (last_error_.empty()) return "the instance is down";
  return "the instance is down after repeated failures, the last: " + last_error_;
}

void PluginInstance::markBroken(const std::string& why) {
  broken_ = true;
  last_error_ = why;
  // The first rebuild is immediate; a plugin that keeps failing is rebuilt less and less
  // often (10 ms, 20 ms, ... up to 5 s), and meanwhile its failure policy answers.
  ++consecutive_failures_;
  const auto delay = consecutive_failures_ <= 1
                         ? std::chrono::milliseconds(0)
                         : std::chrono::milliseconds(
                               std::min(10u << std::min(consecutive_failures_ - 2, 9u), 5000u));
  next_rebuild_ = Clock::now() + delay;
  if (hooks_.log) hooks_.log(abi::LogLevel::kError, name(), why);
}

CallOutcome PluginInstance::call(std::string_view function, std::initializer_list<RawVal> args) {
  return call(function, std::span<const RawVal>(args.begin(), args.size()));
}

CallOutcome PluginInstance::call(std::string_view function, std::span<const RawVal> args) {
  if (!vm_ || broken_) return CallOutcome{false, 0, downReason()};
  if (!vm_->hasExport(function)) return CallOutcome{};
  const auto started = nowNanos();
  const auto deadline = started + int64_t(plugin_->settings().limits.deadline_ms) * 1000000;
  watchdog_.vm.store(vm_.get(), std::memory_order_release);
  watchdog_.deadline_ns.store(deadline, std::memory_order_release);
  auto result = vm_->call(function, args);
  watchdog_.deadline_ns.store(0, std::memory_order_release);
  watchdog_.vm.store(nullptr, std::memory_order_release);
  // V8 may not act on a termination request inside some operations (a loop of memory.grow):
  // a call that comes back after its deadline is a deadline miss all the same.
  const auto ended = nowNanos();
  if (result.status == CallStatus::kOk && ended > deadline) {
    result.status = CallStatus::kTerminated;
  }
  auto& stats = plugin_->stats();
  stats.call(static_cast<uint64_t>(std::max<int64_t>(ended - started, 0)));
  switch (result.status) {
    case CallStatus::kOk:
      return CallOutcome{true, result.value.value_or(0), {}};
    case CallStatus::kMissing:
      return CallOutcome{};
    case CallStatus::kTerminated: {
      stats.deadlineMiss();
      auto why = fmt::format("{} exceeded its deadline of {} ms", function,
                             plugin_->settings().limits.deadline_ms);
      markBroken(why);
      return CallOutcome{false, 0, why};
    }
    case CallStatus::kTrap:
    default: {
      auto why = fmt::format("{} trapped: {}", function, result.message);
      if (result.message.find("proc_exit(0)") == std::string::npos) {
        stats.trap();
        markBroken(why);
      }
      return CallOutcome{false, 0, why};
    }
  }
}

abi::Status PluginInstance::writeOut(std::string_view bytes, uint32_t ptr_ptr, uint32_t size_ptr) {
  uint32_t address = 0;
  if (!bytes.empty()) {
    // The guest's allocator runs inside the current call (same deadline).
    auto result = vm_->call(allocator_, std::array<RawVal, 1>{bytes.size()});
    if (result.status != CallStatus::kOk || !result.value || *result.value == 0) {
      return Status::kInternalFailure;
    }
    address = static_cast<uint32_t>(*result.value);
    auto span = vm_->memory(address, bytes.size());
    if (!span) return Status::kInvalidMemoryAccess;
    std::memcpy(span->data(), bytes.data(), bytes.size());
  }
  if (!HostCalls::writeU32(*this, ptr_ptr, address) ||
      !HostCalls::writeU32(*this, size_ptr, static_cast<uint32_t>(bytes.size()))) {
    return Status::kInvalidMemoryAccess;
  }
  return Status::kOk;
}

uint32_t PluginInstance::createContext() {
  if (!ensureHealthy()) return 0;
  const uint32_t context = next_context_++;
  if (auto outcome = call("proxy_on_context_create", {context, root_context_}); !outcome.ok) {
    return 0;
  }
  return context;
}

CallOutcome PluginInstance::callStream(std::string_view function, uint32_t context,
                                       StreamData& stream, std::initializer_list<RawVal> args) {
  std::array<RawVal, 12> full{};
  full[0] = context;
  std::copy(args.begin(), args.end(), full.begin() + 1);
  effective_context_ = context;
  auto outcome =
      callExport(function, &stream, std::span<const RawVal>(full.data(), args.size() + 1));
  // Only a request served without failure proves a rebuilt instance good again.
  if (outcome.ok) consecutive_failures_ = 0;
  return outcome;
}

CallOutcome PluginInstance::callExport(std::string_view function, StreamData* stream,
                                       std::span<const RawVal> args) {
  stream_ = stream;
  auto outcome = call(function, args);
  stream_ = nullptr;
  return outcome;
}

std::optional<std::span<uint8_t>> PluginInstance::guestMemory(uint64_t offset, uint64_t size) {
  if (!vm_) return std::nullopt;
  return vm_->memory(offset, size);
}

void PluginInstance::destroyContext(uint32_t context, StreamData& stream) {
  if (!healthy()) return;
  callStream("proxy_on_done", context, stream, {});
  callStream("proxy_on_delete", context, stream, {});
}

CallOutcome PluginInstance::callForCaller(std::string_view function, uint32_t caller,
                                          StreamData& stream, std::initializer_list<RawVal> args) {
  std::array<RawVal, 8> full{};
  full[0] = root_context_;
  std::copy(args.begin(), args.end(), full.begin() + 1);
  effective_context_ = caller;
  auto outcome =
      callExport(function, &stream, std::span<const RawVal>(full.data(), args.size() + 1));
  if (outcome.ok) consecutive_failures_ = 0;
  return outcome;
}

CallOutcome PluginInstance::deliverHttpCallResponse(const HttpCallRequest& call,
                                                    const HttpCallResponse& response,
                                                    StreamData& stream) {
  stream.call_response = &response;
  auto outcome = callForCaller("proxy_on_http_call_response", call.context_id, stream,
                               {call.token, response.headers.size(), response.body.size(), 0});
  stream.call_response = nullptr;
  return outcome;
}

CallOutcome PluginInstance::deliverRedisCallResponse(const RedisCallRequest& call,
                                                     const RedisCallResponse& response,
                                                     StreamData& stream) {
  stream.redis_response = &response;
  auto outcome =
      callForCaller("proxy_on_redis_call_response", call.context_id, stream,
                    {call.token, static_cast<uint32_t>(response.status), response.reply.size()});
  stream.redis_response = nullptr;
  return outcome;
}

void PluginInstance::tickIfDue(Clock::time_point now) {
  if (tick_period_ms_ == 0 || now < next_tick_ || !healthy()) return;
  next_tick_ = now + std::chrono::milliseconds(tick_period_ms_);
  call("proxy_on_tick", {root_context_});
}

void PluginInstance::queueReady(uint32_t queue_id) {
  if (!healthy()) return;
  call("proxy_on_queue_ready", {root_context_, queue_id});
}

}  // namespace sluice::wasm
