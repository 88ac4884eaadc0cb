#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "routing/balancing_policy.h"

namespace sluice::config {

// One upstream address, split once at load so the request path never parses URLs.
struct Endpoint {
  std::string url;     // as written in the config, for logs
  std::string scheme;  // "http" or "https"
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // path prefix without trailing slash, e.g. "" or "/openai"
  uint32_t weight = 1;    // share of its provider's traffic within a route's pool
};

// How well a model pattern (an exact name, "prefix*" or "*") matches `model`: 0 when it does
// not; an exact name beats every wildcard, a longer prefix a shorter one, "*" (1) comes last.
// Routes, model mappings, model limits and key permissions all choose by this rank.
size_t modelPatternRank(std::string_view pattern, std::string_view model);

// How a provider's model names are rewritten: exact names first, then the longest prefix
// wildcard ("gpt-4*"), then "*"; an empty target keeps the requested name.
struct ModelMapping {
  std::vector<std::pair<std::string, std::string>> rules;  // pattern → upstream name
  // The upstream model for `model` (the same name when no rule applies).
  std::string map(std::string_view model) const;
};

struct UpstreamTls {
  std::string ca_file;                // extra CA bundle; the system store is always used
  bool insecure_skip_verify = false;  // only by explicit config
};

// Active health checks: GET base_path + path on every endpoint; off while path is empty.
struct HealthCheck {
  std::string path;
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;
  uint32_t healthy_threshold = 2;    // consecutive successes that bring an endpoint back
  uint32_t unhealthy_threshold = 3;  // consecutive failures that take it out
};

// Passive outlier detection: consecutive failed requests (connect errors, 5xx) open the
// endpoint's circuit breaker; after the cool-down one request probes it (half-open).
struct OutlierDetection {
  uint32_t consecutive_failures = 5;  // 0: off
  uint32_t cooldown_ms = 10000;
};

struct Provider {
  std::string id;
  std::string type;
  std::vector<Endpoint> endpoints;      // from endpoints / custom_url / server_host / default
  bool full_path = false;               // custom_url names the API path itself
  std::vector<std::string> api_tokens;  // secrets: never logged
  ModelMapping model_mapping;
  UpstreamTls tls;
  std::string anthropic_version = "2023-06-01";
  uint32_t max_tokens_default = 4096;      // Anthropic requires max_tokens
  std::string deployment;                  // azure: deployment name (default: the model)
  std::string api_version = "2024-10-21";  // azure: api-version query
  uint32_t token_cooldown_ms = 60000;      // a token answered 401/403/429 rests this long
  HealthCheck health_check;
  OutlierDetection outlier;
};

// One provider in a route's pool; its endpoints become the pool's workers, each with weight
// target weight × endpoint weight.
struct RouteTarget {
  std::string provider;
  size_t provider_index = 0;  // resolved index into Config::providers
  uint32_t weight = 1;
};

// Retries happen only before any byte reaches the client, on connect errors and on answers
// 429, 500, 502, 503 and 504, to another endpoint when the pool has one.
struct Retry {
  uint32_t attempts = 3;          // tries per request in this route's pool, the first included
  uint32_t backoff_base_ms = 25;  // before retry n: a random wait in [d/2, d], d = base·2^(n-1)
  uint32_t backoff_max_ms = 1000;
  double budget_ratio = 0.2;            // retries may add at most this share of requests ...
  uint32_t min_retries_per_second = 5;  // ... plus this many, so quiet routes can still retry
};

// Per-route timeouts; 0 takes the global value (total_ms 0: no total limit).
struct RouteTimeouts {
  uint32_t connect_ms = 0;
  uint32_t first_byte_ms = 0;
  uint32_t idle_ms = 0;
  uint32_t total_ms = 0;  // whole exchange, retries included
};

struct Route {
  std::string name;                  // defaults to "route<N>"
  std::vector<std::string> models;   // exact names, "prefix*" wildcards or "*"
  std::vector<RouteTarget> targets;  // `provider: x` is one target of weight 1
  std::string policy = "round_robin";
  routing::BalancerOptions balancer;
  Retry retry;
  std::vector<std::string> fallback;     // route names tried in order when this pool fails
  std::vector<size_t> fallback_indexes;  // resolved
  RouteTimeouts timeouts;  // resolved: every field set from the global ones when not given

  const std::string& provider() const { return targets.front().provider; }
  size_t providerIndex() const { return targets.front().provider_index; }
};

// The admin listener: off unless configured; every request needs the token as Bearer.
struct Admin {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: no admin listener
  std::string token;  // secret: never logged
};

// TLS on the client listener: off unless both files are given (PEM; the certificate file may
// hold the chain). Loaded at start.
struct ListenerTls {
  std::string cert_file;
  std::string key_file;  // secret: never logged (only its path is)
  bool enabled() const { return !cert_file.empty(); }
};

// A client API key (virtual key). The secret is only kept until the gateway hashes it.
struct ClientKey {
  std::string id;
  std::string key;                  // secret: never logged
  std::vector<std::string> models;  // allowed: exact names, "prefix*" or "*"; empty: all
  uint32_t rpm = 0;                 // requests per minute; 0: no limit
  uint32_t tpm = 0;                 // tokens per minute; 0: no limit
  uint64_t daily_tokens = 0;        // token budget per UTC day; 0: no limit
};

// Limits of one model (pattern) across all keys.
struct ModelLimit {
  std::string model;  // exact name, "prefix*" or "*"
  uint32_t rpm = 0;
  uint32_t tpm = 0;
};

struct Limits {
  uint64_t max_body_bytes = 10 * 1024 * 1024;
  uint32_t max_header_bytes = 64 * 1024;
  uint64_t max_upstream_body_bytes = 64 * 1024 * 1024;  // non-streamed answers read whole
  std::vector<ModelLimit> models;
  std::string redis;            // redis://host:port or unix:///path; empty: in-process limits
  bool redis_fail_open = true;  // when Redis is unreachable: allow (true) or reject
};

struct Timeouts {
  uint32_t connect_ms = 5000;       // TCP connect to an upstream
  uint32_t first_byte_ms = 120000;  // request sent → response headers
  uint32_t idle_ms = 120000;        // gap between two reads of an upstream body
  uint32_t client_read_ms = 30000;  // a client's request must arrive within this
  uint32_t keepalive_ms = 60000;    // idle keep-alive client connection
  uint32_t drain_ms = 30000;        // SIGTERM: in-flight requests get this long to finish
};

enum class FailurePolicy { kFailClosed, kFailOpen };

// Bounds a plugin cannot exceed, whatever its code does.
struct PluginLimits {
  uint32_t max_memory_pages = 512;  // 64 KiB pages: 32 MiB of linear memory
  uint32_t deadline_ms = 100;       // per callback; the watchdog stops the call
  uint64_t max_module_bytes = 32 * 1024 * 1024;
  uint64_t max_body_bytes = 4 * 1024 * 1024;  // bodies a plugin reads, sets or buffers
  uint64_t max_header_bytes = 64 * 1024;      // a header map a plugin sets
  uint64_t max_local_response_bytes = 1024 * 1024;
};

// One WebAssembly plugin (proxy-wasm ABI) of the chain.
struct Plugin {
  std::string name;
  std::string path;           // the .wasm file
  std::string configuration;  // given to proxy_on_configure (YAML maps/lists become JSON)
  std::string vm_configuration;
  std::string root_id;
  bool global = true;               // attach: global
  std::vector<std::string> routes;  // attach: [route names]
  int order = 0;                    // lower runs first; ties keep config order
  FailurePolicy failure_policy = FailurePolicy::kFailClosed;
  PluginLimits limits;
  bool expose_credentials = false;          // may read authorization, x-api-key, cookie, ...
  std::vector<std::string> hidden_headers;  // more header names to hide from it
  std::vector<std::pair<std::string, std::string>> env;  // WASI environment
};

// Settings of the plugin host as a whole (the `wasm:` section).
struct WasmSettings {
  // Directories POST /wasm may read modules from ("file_path"); none: only uploaded bytes.
  std::vector<std::string> module_roots;
  // Redis for plugins' proxy_redis_call (Higress ABI); empty: limits.redis, else none.
  std::string redis;
};

struct Config {
  std::string source;  // file name, for messages
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  ListenerTls tls;
  int threads = 0;  // 0: one per core
  std::vector<Provider> providers;
  std::vector<Route> routes;
  std::vector<Plugin> plugins;
  WasmSettings wasm;
  Limits limits;
  Timeouts timeouts;
  Admin admin;
  std::vector<ClientKey> keys;
  std::string state_dir;              // where admin changes persist (keys); empty: nowhere
  std::string access_log = "stdout";  // "stdout", "off" or a file path
  std::string log_level = "info";
};

// Parses and validates; the error lists every problem as "source:line: key: what".
tl::expected<Config, std::string> parseConfig(std::string_view yaml, std::string_view source);
tl::expected<Config, std::string> loadConfigFile(const std::string& path);

// One plugin's settings from a YAML or JSON mapping with the keys of a `plugins:` entry, but
// without `path` (the admin API names the module's bytes its own way). Errors name `path`
// (e.g. "modules[0]") and the key.
tl::expected<Plugin, std::string> parsePluginSettings(std::string_view text, std::string_view path);

// Splits "http://host:port/path"; the error says what is wrong with the URL.
tl::expected<Endpoint, std::string> parseEndpointUrl(std::string_view url);

// Replaces ${NAME} with the environment variable; "$${" escapes a literal "${".
tl::expected<std::string, std::string> interpolateEnv(std::string_view text);

}  // namespace sluice::config
