#include "config/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "common/json_writer.h"

namespace sluice::config {
namespace {

const std::set<std::string, std::less<>> kProviderTypes = {
    "openai", "generic", "vllm", "sglang", "github", "anthropic", "azure", "ollama"};
constexpr const char* kProviderTypeList =
    "openai, generic, vllm, sglang, github, anthropic, azure, ollama";

// Where a provider type lives when the config names no endpoint.
const char* defaultBaseUrl(std::string_view type) {
  if (type == "openai") return "https://api.openai.com/v1";
  if (type == "github") return "https://models.github.ai/inference";
  if (type == "anthropic") return "https://api.anthropic.com";
  if (type == "ollama") return "http://127.0.0.1:11434";
  return nullptr;
}

// Collects every problem in a file, each tied to the key path and line that caused it.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  void error(const YAML::Node& node, std::string_view path, std::string_view what) {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    if (source_.empty()) {  // not a file (an admin request): the key path says where
      errors_ += fmt::format("{}: {}\n", path, what);
    } else if (line > 0) {
      errors_ += fmt::format("{}:{}: {}: {}\n", source_, line, path, what);
    } else {
      errors_ += fmt::format("{}: {}: {}\n", source_, path, what);
    }
  }

  // Only the listed keys may appear in a mapping: a typo must not be silently ignored.
  void allowKeys(const YAML::Node& map, std::string_view path,
                 std::initializer_list<std::string_view> keys) {
    for (const auto& item : map) {
      const auto name = item.first.as<std::string>("");
      bool known = false;
      for (auto key : keys) known = known || key == name;
      if (!known) {
        error(item.first, path.empty() ? name : fmt::format("{}.{}", path, name), "unknown key");
      }
    }
  }

  bool string(const YAML::Node& node, std::string_view path, std::string& out) {
    if (!node.IsScalar()) {
      error(node, path, "expected a string");
      return false;
    }
    auto value = interpolateEnv(node.Scalar());
    if (!value) {
      error(node, path, value.error());
      return false;
    }
    out = std::move(*value);
    return true;
  }

  template <typename Int>
  bool integer(const YAML::Node& node, std::string_view path, Int& out, Int min, Int max) {
    std::string text;
    if (!node.IsScalar() || !string(node, path, text)) return false;
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < int64_t(min) ||
        value > int64_t(max)) {
      error(node, path,
            fmt::format("expected an integer from {} to {}, got \"{}\"", min, max, text));
      return false;
    }
    out = static_cast<Int>(value);
    return true;
  }

  bool number(const YAML::Node& node, std::string_view path, double& out, double min, double max) {
    std::string text;
    if (!node.IsScalar() || !string(node, path, text)) return false;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !(value >= min && value <= max)) {
      error(node, path, fmt::format("expected a number from {} to {}, got \"{}\"", min, max, text));
      return false;
    }
    out = value;
    return true;
  }

  bool boolean(const YAML::Node& node, std::string_view path, bool& out) {
    std::string text;
    if (!string(node, path, text)) return false;
    if (text != "true" && text != "false") {
      error(node, path, "expected true or false");
      return false;
    }
    out = text == "true";
    return true;
  }

  // A mapping of integer fields: reads those present, rejects unknown keys.
  void integerFields(const YAML::Node& node, const std::string& path,
                     std::initializer_list<std::pair<const char*, uint32_t*>> fields, uint32_t min,
                     uint32_t max) {
    if (!node.IsMap()) return error(node, path, "expected a mapping");
    for (const auto& item : node) {
      const auto name = item.first.as<std::string>("");
      bool known = false;
      for (auto [key, field] : fields) {
        if (name == key) {
          known = true;
          integer<uint32_t>(item.second, fmt::format("{}.{}", path, name), *field, min, max);
        }
      }
      if (!known) error(item.first, fmt::format("{}.{}", path, name), "unknown key");
    }
  }

  void stringList(const YAML::Node& node, std::string_view path, std::vector<std::string>& out) {
    if (!node.IsSequence()) {
      error(node, path, "expected a list of strings");
      return;
    }
    for (size_t i = 0; i < node.size(); ++i) {
      std::string value;
      if (string(node[i], fmt::format("{}[{}]", path, i), value)) out.push_back(std::move(value));
    }
  }

  const std::string& errors() const { return errors_; }

 private:
  std::string source_;
  std::string errors_;
};

bool parseHostPort(std::string_view text, std::string& host, uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  host = std::string(text.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto digits = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

void readProvider(Reader& reader, const YAML::Node& node, const std::string& path,
                  Provider& provider) {
  if (!node.IsMap()) {
    reader.error(node, path, "expected a mapping with id, type and endpoints");
    return;
  }
  reader.allowKeys(node, path,
                   {"id", "type", "endpoints", "custom_url", "server_host", "api_tokens",
                    "model_mapping", "tls", "anthropic_version", "max_tokens_default", "deployment",
                    "api_version", "token_cooldown_ms", "health_check", "outlier"});
  if (!node["id"]) {
    reader.error(node, path + ".id", "required");
  } else {
    reader.string(node["id"], path + ".id", provider.id);
  }
  if (!node["type"]) {
    reader.error(node, path + ".type", fmt::format("required (one of: {})", kProviderTypeList));
  } else if (reader.string(node["type"], path + ".type", provider.type) &&
             !kProviderTypes.contains(provider.type)) {
    reader.error(
        node["type"], path + ".type",
        fmt::format("unknown provider type \"{}\" (known: {})", provider.type, kProviderTypeList));
  }

  // Where it lives: endpoints, or custom_url (a base URL or a full API URL), or the legacy
  // server_host (host:port), or the type's public default.
  auto addUrl = [&](const YAML::Node& at, const std::string& where, const std::string& url) {
    auto endpoint = parseEndpointUrl(url);
    if (!endpoint) {
      reader.error(at, where, endpoint.error());
    } else {
      provider.endpoints.push_back(std::move(*endpoint));
    }
  };
  if (const auto endpoints = node["endpoints"]) {
    if (!endpoints.IsSequence() || endpoints.size() == 0) {
      reader.error(endpoints, path + ".endpoints",
                   "expected a list of URLs (or of {url, weight} mappings), at least one");
    } else {
      for (size_t i = 0; i < endpoints.size(); ++i) {
        const auto item = endpoints[i];
        const auto where = fmt::format("{}.endpoints[{}]", path, i);
        std::string url;
        uint32_t weight = 1;
        if (item.IsMap()) {
          reader.allowKeys(item, where, {"url", "weight"});
          if (!item["url"]) reader.error(item, where + ".url", "required");
          if (item["url"]) reader.string(item["url"], where + ".url", url);
          if (item["weight"])
            reader.integer<uint32_t>(item["weight"], where + ".weight", weight, 0, 1000000);
        } else {
          reader.string(item, where, url);
        }
        if (url.empty()) continue;
        addUrl(item, where, url);
        if (!provider.endpoints.empty()) provider.endpoints.back().weight = weight;
      }
    }
  }
  if (node["custom_url"]) {
    std::string url;
    if (reader.string(node["custom_url"], path + ".custom_url", url)) {
      addUrl(node["custom_url"], path + ".custom_url", url);
      static constexpr std::string_view kApiPaths[] = {
          "/chat/completions", "/completions", "/embeddings", "/rerank", "/messages", "/generate"};
      for (auto api : kApiPaths) {
        if (!provider.endpoints.empty() && provider.endpoints.back().base_path.ends_with(api)) {
          provider.full_path = true;
        }
      }
    }
  }
  if (node["server_host"]) {
    std::string host;
    if (reader.string(node["server_host"], path + ".server_host", host)) {
      addUrl(node["server_host"], path + ".server_host", "http://" + host);
    }
  }
  if (provider.endpoints.empty() && node["type"] && kProviderTypes.contains(provider.type)) {
    if (const char* url = defaultBaseUrl(provider.type)) {
      provider.endpoints.push_back(*parseEndpointUrl(url));
    } else if (!node["endpoints"]) {
      reader.error(
          node, path + ".endpoints",
          fmt::format("required for type {}: endpoints, custom_url or server_host", provider.type));
    }
  }

  if (node["api_tokens"]) {
    reader.stringList(node["api_tokens"], path + ".api_tokens", provider.api_tokens);
    for (size_t i = 0; i < provider.api_tokens.size(); ++i) {
      if (provider.api_tokens[i].empty()) {
        reader.error(node["api_tokens"][i], fmt::format("{}.api_tokens[{}]", path, i),
                     "empty token (is the environment variable set?)");
      }
    }
  }
  if (const auto mapping = node["model_mapping"]) {
    if (!mapping.IsMap()) {
      reader.error(mapping, path + ".model_mapping",
                   "expected a mapping of model names or patterns to upstream names");
    } else {
      for (const auto& item : mapping) {
        const auto pattern = item.first.as<std::string>("");
        std::string target;
        if (item.second.IsNull()) {
          provider.model_mapping.rules.emplace_back(pattern, "");
        } else if (reader.string(item.second, path + ".model_mapping." + pattern, target)) {
          provider.model_mapping.rules.emplace_back(pattern, target);
        }
        const auto star = pattern.find('*');
        if (pattern.empty() || (star != std::string::npos && star != pattern.size() - 1)) {
          reader.error(
              item.first, path + ".model_mapping",
              fmt::format("\"{}\" is not a model name, a prefix wildcard or \"*\"", pattern));
        }
      }
    }
  }
  if (const auto tls = node["tls"]) {
    if (!tls.IsMap()) {
      reader.error(tls, path + ".tls", "expected a mapping (ca_file, insecure_skip_verify)");
    } else {
      reader.allowKeys(tls, path + ".tls", {"ca_file", "insecure_skip_verify"});
      if (tls["ca_file"])
        reader.string(tls["ca_file"], path + ".tls.ca_file", provider.tls.ca_file);
      if (tls["insecure_skip_verify"]) {
        std::string flag;
        if (reader.string(tls["insecure_skip_verify"], path + ".tls.insecure_skip_verify", flag)) {
          if (flag == "true") {
            provider.tls.insecure_skip_verify = true;
          } else if (flag != "false") {
            reader.error(tls["insecure_skip_verify"], path + ".tls.insecure_skip_verify",
                         "expected true or false");
          }
        }
      }
    }
  }
  if (node["anthropic_version"]) {
    reader.string(node["anthropic_version"], path + ".anthropic_version",
                  provider.anthropic_version);
  }
  if (node["max_tokens_default"]) {
    reader.integer<uint32_t>(node["max_tokens_default"], path + ".max_tokens_default",
                             provider.max_tokens_default, 1, 10000000);
  }
  if (node["deployment"])
    reader.string(node["deployment"], path + ".deployment", provider.deployment);
  if (node["api_version"]) {
    reader.string(node["api_version"], path + ".api_version", provider.api_version);
  }
  if (node["token_cooldown_ms"]) {
    reader.integer<uint32_t>(node["token_cooldown_ms"], path + ".token_cooldown_ms",
                             provider.token_cooldown_ms, 0, 24u * 3600 * 1000);
  }
  if (const auto check = node["health_check"]) {
    auto& h = provider.health_check;
    const auto where = path + ".health_check";
    if (!check.IsMap()) {
      reader.error(check, where, "expected a mapping (path, interval_ms, timeout_ms, ...)");
    } else {
      reader.allowKeys(
          check, where,
          {"path", "interval_ms", "timeout_ms", "healthy_threshold", "unhealthy_threshold"});
      if (!check["path"]) reader.error(check, where + ".path", "required, e.g. /health");
      if (check["path"] && reader.string(check["path"], where + ".path", h.path) &&
          !h.path.starts_with('/')) {
        reader.error(check["path"], where + ".path", "must start with /");
      }
      if (check["interval_ms"])
        reader.integer<uint32_t>(check["interval_ms"], where + ".interval_ms", h.interval_ms, 10,
                                 3600000);
      if (check["timeout_ms"])
        reader.integer<uint32_t>(check["timeout_ms"], where + ".timeout_ms", h.timeout_ms, 1,
                                 600000);
      if (check["healthy_threshold"])
        reader.integer<uint32_t>(check["healthy_threshold"], where + ".healthy_threshold",
                                 h.healthy_threshold, 1, 1000);
      if (check["unhealthy_threshold"])
        reader.integer<uint32_t>(check["unhealthy_threshold"], where + ".unhealthy_threshold",
                                 h.unhealthy_threshold, 1, 1000);
    }
  }
  if (const auto outlier = node["outlier"]) {
    reader.integerFields(outlier, path + ".outlier",
                         {{"consecutive_failures", &provider.outlier.consecutive_failures},
                          {"cooldown_ms", &provider.outlier.cooldown_ms}},
                         0, 24u * 3600 * 1000);
  }
  if (provider.type == "azure" && provider.endpoints.empty() && !node["endpoints"]) {
    reader.error(node, path + ".endpoints",
                 "required for type azure: https://<resource>.openai.azure.com");
  }
}

// Model patterns: exact names, a prefix wildcard like "gpt-4*", or "*".
void checkModelPattern(Reader& reader, const YAML::Node& node, const std::string& path,
                       const std::string& model) {
  const auto star = model.find('*');
  if (model.empty() || (star != std::string::npos && star != model.size() - 1)) {
    reader.error(
        node, path,
        fmt::format("\"{}\" is not a model name, a prefix wildcard like \"gpt-4*\" or \"*\"",
                    model));
  }
}

void readBalancerOptions(Reader& reader, const YAML::Node& node, const std::string& path,
                         Route& route) {
  if (const auto hash = node["consistent_hash"]) {
    const auto where = path + ".consistent_hash";
    auto& options = route.balancer.consistent_hash;
    if (!hash.IsMap()) {
      reader.error(hash, where, "expected a mapping (header, epsilon, virtual_nodes)");
    } else {
      reader.allowKeys(hash, where, {"header", "epsilon", "virtual_nodes"});
      if (hash["header"]) reader.string(hash["header"], where + ".header", options.hash_header);
      if (hash["epsilon"])
        reader.number(hash["epsilon"], where + ".epsilon", options.epsilon, 0, 100);
      if (hash["virtual_nodes"])
        reader.integer<uint32_t>(hash["virtual_nodes"], where + ".virtual_nodes",
                                 options.virtual_nodes, 1, 10000);
    }
  }
  if (const auto cache = node["cache_aware"]) {
    const auto where = path + ".cache_aware";
    auto& options = route.balancer.cache_aware;
    if (!cache.IsMap()) {
      reader.error(cache, where,
                   "expected a mapping (cache_threshold, balance_abs_threshold, ...)");
    } else {
      reader.allowKeys(cache, where,
                       {"cache_threshold", "balance_abs_threshold", "balance_rel_threshold",
                        "eviction_interval_ms", "max_tree_size", "chunk_chars"});
      if (cache["cache_threshold"])
        reader.number(cache["cache_threshold"], where + ".cache_threshold", options.cache_threshold,
                      0, 1);
      if (cache["balance_abs_threshold"])
        reader.integer<uint32_t>(cache["balance_abs_threshold"], where + ".balance_abs_threshold",
                                 options.balance_abs_threshold, 0, 1000000);
      if (cache["balance_rel_threshold"])
        reader.number(cache["balance_rel_threshold"], where + ".balance_rel_threshold",
                      options.balance_rel_threshold, 1, 1000);
      if (cache["eviction_interval_ms"])
        reader.integer<uint32_t>(cache["eviction_interval_ms"], where + ".eviction_interval_ms",
                                 options.eviction_interval_ms, 1, 24u * 3600 * 1000);
      if (cache["max_tree_size"])
        reader.integer<size_t>(cache["max_tree_size"], where + ".max_tree_size",
                               options.max_tree_size, 1024, size_t{1} << 34);
      if (cache["chunk_chars"])
        reader.integer<uint32_t>(cache["chunk_chars"], where + ".chunk_chars", options.chunk_chars,
                                 1, 65536);
    }
  }
  for (const auto& problem : routing::checkBalancerOptions(route.balancer)) {
    reader.error(node, path, problem);
  }
}

void readRetry(Reader& reader, const YAML::Node& node, const std::string& path, Retry& retry) {
  if (!node.IsMap()) return reader.error(node, path, "expected a mapping");
  reader.allowKeys(
      node, path,
      {"attempts", "backoff_base_ms", "backoff_max_ms", "budget_ratio", "min_retries_per_second"});
  if (node["attempts"])
    reader.integer<uint32_t>(node["attempts"], path + ".attempts", retry.attempts, 1, 20);
  if (node["backoff_base_ms"])
    reader.integer<uint32_t>(node["backoff_base_ms"], path + ".backoff_base_ms",
                             retry.backoff_base_ms, 0, 600000);
  if (node["backoff_max_ms"])
    reader.integer<uint32_t>(node["backoff_max_ms"], path + ".backoff_max_ms", retry.backoff_max_ms,
                             0, 600000);
  if (node["budget_ratio"])
    reader.number(node["budget_ratio"], path + ".budget_ratio", retry.budget_ratio, 0, 100);
  if (node["min_retries_per_second"])
    reader.integer<uint32_t>(node["min_retries_per_second"], path + ".min_retries_per_second",
                             retry.min_retries_per_second, 0, 1000000);
}

void readRoute(Reader& reader, const YAML::Node& node, const std::string& path, Route& route) {
  if (!node.IsMap()) {
    reader.error(node, path, "expected a mapping with models and provider");
    return;
  }
  reader.allowKeys(node, path,
                   {"name", "models", "provider", "targets", "policy", "consistent_hash",
                    "cache_aware", "retry", "fallback", "timeouts"});
  if (node["name"]) reader.string(node["name"], path + ".name", route.name);
  if (!node["models"]) {
    reader.error(node, path + ".models", "required: a list of model names or patterns");
  } else {
    reader.stringList(node["models"], path + ".models", route.models);
    for (size_t i = 0; i < route.models.size(); ++i) {
      checkModelPattern(reader, node["models"][i], fmt::format("{}.models[{}]", path, i),
                        route.models[i]);
    }
  }
  if (node["provider"] && node["targets"]) {
    reader.error(node["targets"], path + ".targets", "give either provider or targets, not both");
  } else if (node["provider"]) {
    auto& target = route.targets.emplace_back();
    reader.string(node["provider"], path + ".provider", target.provider);
  } else if (const auto targets = node["targets"]) {
    if (!targets.IsSequence() || targets.size() == 0) {
      reader.error(targets, path + ".targets",
                   "expected a list of {provider, weight} mappings, at least one");
    } else {
      for (size_t i = 0; i < targets.size(); ++i) {
        const auto where = fmt::format("{}.targets[{}]", path, i);
        const auto item = targets[i];
        auto& target = route.targets.emplace_back();
        if (!item.IsMap()) {
          reader.error(item, where, "expected a mapping with provider and weight");
          continue;
        }
        reader.allowKeys(item, where, {"provider", "weight"});
        if (!item["provider"]) reader.error(item, where + ".provider", "required");
        if (item["provider"]) reader.string(item["provider"], where + ".provider", target.provider);
        if (item["weight"])
          reader.integer<uint32_t>(item["weight"], where + ".weight", target.weight, 0, 1000000);
      }
    }
  } else {
    reader.error(node, path + ".provider", "required: the id of a provider (or targets)");
  }
  if (node["policy"] && reader.string(node["policy"], path + ".policy", route.policy)) {
    const auto names = routing::balancingPolicyNames();
    if (std::find(names.begin(), names.end(), route.policy) == names.end()) {
      reader.error(
          node["policy"], path + ".policy",
          fmt::format("unknown policy \"{}\" (known: {})", route.policy, fmt::join(names, ", ")));
    }
  }
  readBalancerOptions(reader, node, path, route);
  if (node["retry"]) readRetry(reader, node["retry"], path + ".retry", route.retry);
  if (node["fallback"]) reader.stringList(node["fallback"], path + ".fallback", route.fallback);
  if (const auto timeouts = node["timeouts"]) {
    reader.integerFields(timeouts, path + ".timeouts",
                         {{"connect_ms", &route.timeouts.connect_ms},
                          {"first_byte_ms", &route.timeouts.first_byte_ms},
                          {"idle_ms", &route.timeouts.idle_ms},
                          {"total_ms", &route.timeouts.total_ms}},
                         1, 24u * 3600 * 1000);
  }
}

void readAdmin(Reader& reader, const YAML::Node& node, Admin& admin) {
  if (!node.IsMap()) return reader.error(node, "admin", "expected a mapping (listen, token)");
  reader.allowKeys(node, "admin", {"listen", "token"});
  std::string listen = "127.0.0.1:9090";
  if (node["listen"]) reader.string(node["listen"], "admin.listen", listen);
  if (!parseHostPort(listen, admin.host, admin.port)) {
    reader.error(node["listen"], "admin.listen",
                 fmt::format("expected host:port like 127.0.0.1:9090, got \"{}\"", listen));
  }
  if (!node["token"]) {
    reader.error(node, "admin.token", "required: the admin API accepts only this Bearer token");
  } else if (reader.string(node["token"], "admin.token", admin.token) && admin.token.size() < 16) {
    reader.error(node["token"], "admin.token", "too short: use at least 16 characters");
  }
}

void readListenerTls(Reader& reader, const YAML::Node& node, ListenerTls& tls) {
  if (!node.IsMap()) return reader.error(node, "tls", "expected a mapping (cert, key)");
  reader.allowKeys(node, "tls", {"cert", "key"});
  for (auto [name, out] : {std::pair{"cert", &tls.cert_file}, std::pair{"key", &tls.key_file}}) {
    const auto path = fmt::format("tls.{}", name);
    if (!node[name]) {
      reader.error(node, path, "required: a PEM file (tls needs both cert and key)");
    } else if (reader.string(node[name], path, *out) && !std::ifstream(*out).good()) {
      reader.error(node[name], path, fmt::format("cannot read \"{}\"", *out));
    }
  }
}

void readWasm(Reader& reader, const YAML::Node& node, WasmSettings& wasm) {
  if (!node.IsMap()) return reader.error(node, "wasm", "expected a mapping (module_roots, redis)");
  reader.allowKeys(node, "wasm", {"module_roots", "redis"});
  if (node["module_roots"]) {
    reader.stringList(node["module_roots"], "wasm.module_roots", wasm.module_roots);
    for (const auto& root : wasm.module_roots) {
      if (!root.starts_with('/')) {
        reader.error(node["module_roots"], "wasm.module_roots",
                     fmt::format("\"{}\" is not an absolute path", root));
      }
    }
  }
  if (node["redis"] && reader.string(node["redis"], "wasm.redis", wasm.redis) &&
      !wasm.redis.starts_with("redis://") && !wasm.redis.starts_with("unix://")) {
    reader.error(node["redis"], "wasm.redis",
                 "expected redis://host:port or unix:///path/to/redis.sock");
  }
}

void readKey(Reader& reader, const YAML::Node& node, const std::string& path, ClientKey& key) {
  if (!node.IsMap()) return reader.error(node, path, "expected a mapping with id and key");
  reader.allowKeys(node, path, {"id", "key", "models", "rpm", "tpm", "daily_tokens"});
  if (!node["id"]) reader.error(node, path + ".id", "required");
  if (node["id"] && reader.string(node["id"], path + ".id", key.id) &&
      (key.id.empty() || key.id.find_first_of("/ \t\"") != std::string::npos)) {
    reader.error(node["id"], path + ".id", "must be non-empty, without spaces, quotes or /");
  }
  if (!node["key"])
    reader.error(node, path + ".key", "required (use ${ENV} to keep it out of the file)");
  if (node["key"] && reader.string(node["key"], path + ".key", key.key) && key.key.size() < 16) {
    reader.error(node["key"], path + ".key", "too short: use at least 16 characters");
  }
  if (node["models"]) {
    reader.stringList(node["models"], path + ".models", key.models);
    for (size_t i = 0; i < key.models.size(); ++i) {
      checkModelPattern(reader, node["models"][i], fmt::format("{}.models[{}]", path, i),
                        key.models[i]);
    }
  }
  if (node["rpm"]) reader.integer<uint32_t>(node["rpm"], path + ".rpm", key.rpm, 0, 100000000);
  if (node["tpm"]) reader.integer<uint32_t>(node["tpm"], path + ".tpm", key.tpm, 0, 2000000000);
  if (node["daily_tokens"])
    reader.integer<uint64_t>(node["daily_tokens"], path + ".daily_tokens", key.daily_tokens, 0,
                             uint64_t(1) << 50);
}

void readLimits(Reader& reader, const YAML::Node& node, Limits& limits) {
  if (!node.IsMap()) return reader.error(node, "limits", "expected a mapping");
  reader.allowKeys(node, "limits",
                   {"max_body_bytes", "max_header_bytes", "max_upstream_body_bytes", "models",
                    "redis", "on_redis_error"});
  if (const auto models = node["models"]) {
    if (!models.IsSequence()) {
      reader.error(models, "limits.models", "expected a list of {model, rpm, tpm}");
    } else {
      for (size_t i = 0; i < models.size(); ++i) {
        const auto where = fmt::format("limits.models[{}]", i);
        auto& limit = limits.models.emplace_back();
        if (!models[i].IsMap()) {
          reader.error(models[i], where, "expected a mapping with model, rpm and tpm");
          continue;
        }
        reader.allowKeys(models[i], where, {"model", "rpm", "tpm"});
        if (!models[i]["model"]) reader.error(models[i], where + ".model", "required");
        if (models[i]["model"] && reader.string(models[i]["model"], where + ".model", limit.model))
          checkModelPattern(reader, models[i]["model"], where + ".model", limit.model);
        if (models[i]["rpm"])
          reader.integer<uint32_t>(models[i]["rpm"], where + ".rpm", limit.rpm, 0, 100000000);
        if (models[i]["tpm"])
          reader.integer<uint32_t>(models[i]["tpm"], where + ".tpm", limit.tpm, 0, 2000000000);
      }
    }
  }
  if (node["redis"] && reader.string(node["redis"], "limits.redis", limits.redis) &&
      !limits.redis.starts_with("redis://") && !limits.redis.starts_with("unix://")) {
    reader.error(node["redis"], "limits.redis",
                 "expected redis://host:port or unix:///path/to/redis.sock");
  }
  if (const auto mode = node["on_redis_error"]) {
    std::string text;
    if (reader.string(mode, "limits.on_redis_error", text)) {
      if (text == "allow") {
        limits.redis_fail_open = true;
      } else if (text == "reject") {
        limits.redis_fail_open = false;
      } else {
        reader.error(mode, "limits.on_redis_error", "expected allow (fail open) or reject");
      }
    }
  }
  if (node["max_body_bytes"])
    reader.integer<uint64_t>(node["max_body_bytes"], "limits.max_body_bytes", limits.max_body_bytes,
                             1, uint64_t(1) << 32);
  if (node["max_header_bytes"])
    reader.integer<uint32_t>(node["max_header_bytes"], "limits.max_header_bytes",
                             limits.max_header_bytes, 1024, 1u << 24);
  if (node["max_upstream_body_bytes"])
    reader.integer<uint64_t>(node["max_upstream_body_bytes"], "limits.max_upstream_body_bytes",
                             limits.max_upstream_body_bytes, 1024, uint64_t(1) << 34);
}

void readTimeouts(Reader& reader, const YAML::Node& node, Timeouts& timeouts) {
  if (!node.IsMap()) return reader.error(node, "timeouts", "expected a mapping");
  reader.allowKeys(
      node, "timeouts",
      {"connect_ms", "first_byte_ms", "idle_ms", "client_read_ms", "keepalive_ms", "drain_ms"});
  const std::pair<const char*, uint32_t*> fields[] = {
      {"connect_ms", &timeouts.connect_ms},     {"first_byte_ms", &timeouts.first_byte_ms},
      {"idle_ms", &timeouts.idle_ms},           {"client_read_ms", &timeouts.client_read_ms},
      {"keepalive_ms", &timeouts.keepalive_ms}, {"drain_ms", &timeouts.drain_ms}};
  for (auto [name, field] : fields) {
    if (node[name]) {
      reader.integer<uint32_t>(node[name], fmt::format("timeouts.{}", name), *field, 1,
                               24u * 3600 * 1000);
    }
  }
}

// Plugin configuration may be written as YAML; the plugin receives JSON (or the string as is).
std::string toJson(const YAML::Node& node);

void appendJsonString(std::string& out, const std::string& text) {
  out += '"';
  appendJsonEscaped(out, text);
  out += '"';
}

std::string toJson(const YAML::Node& node) {
  std::string out;
  if (node.IsMap()) {
    out += '{';
    bool first = true;
    for (const auto& item : node) {
      if (!first) out += ',';
      first = false;
      appendJsonString(out, item.first.as<std::string>(""));
      out += ':';
      out += toJson(item.second);
    }
    out += '}';
  } else if (node.IsSequence()) {
    out += '[';
    for (size_t i = 0; i < node.size(); ++i) {
      if (i > 0) out += ',';
      out += toJson(node[i]);
    }
    out += ']';
  } else if (node.IsScalar()) {
    const auto& text = node.Scalar();
    const bool quoted = node.Tag() == "!";
    int64_t integer;
    double real;
    if (!quoted && (text == "true" || text == "false" || text == "null")) {
      out += text;
    } else if (!quoted && YAML::convert<int64_t>::decode(node, integer)) {
      out += std::to_string(integer);
    } else if (!quoted && YAML::convert<double>::decode(node, real) && text != "." &&
               text.find_first_of("0123456789") != std::string::npos) {
      out += text;
    } else {
      appendJsonString(out, text);
    }
  } else {
    out += "null";
  }
  return out;
}

// `with_path`: the config's entries name their file; the admin API's name bytes otherwise.
void readPlugin(Reader& reader, const YAML::Node& node, const std::string& path, Plugin& plugin,
                bool with_path = true) {
  if (!node.IsMap()) {
    reader.error(
        node, path,
        with_path ? "expected a mapping with name and path" : "expected an object with a name");
    return;
  }
  if (with_path) {
    reader.allowKeys(node, path,
                     {"name", "path", "config", "vm_config", "root_id", "attach", "order",
                      "failure_policy", "limits", "expose_credentials", "hidden_headers", "env"});
  } else {
    reader.allowKeys(node, path,
                     {"name", "config", "vm_config", "root_id", "attach", "order", "failure_policy",
                      "limits", "expose_credentials", "hidden_headers", "env"});
  }
  if (!node["name"]) {
    reader.error(node, path + ".name", "required");
  } else if (reader.string(node["name"], path + ".name", plugin.name) &&
             (plugin.name.empty() || plugin.name.size() > 128)) {
    reader.error(node["name"], path + ".name", "expected 1 to 128 characters");
  }
  if (!with_path) {
  } else if (!node["path"]) {
    reader.error(node, path + ".path", "required: the .wasm file");
  } else {
    reader.string(node["path"], path + ".path", plugin.path);
  }
  for (auto [key, field] : {std::pair{"config", &plugin.configuration},
                            std::pair{"vm_config", &plugin.vm_configuration}}) {
    const auto value = node[key];
    if (!value) continue;
    if (value.IsScalar()) {
      reader.string(value, path + "." + key, *field);
    } else {
      *field = toJson(value);
    }
  }
  if (node["root_id"]) reader.string(node["root_id"], path + ".root_id", plugin.root_id);
  if (const auto attach = node["attach"]) {
    std::string scope;
    if (attach.IsScalar() && reader.string(attach, path + ".attach", scope)) {
      if (scope != "global") {
        reader.error(attach, path + ".attach", "expected \"global\" or a list of route names");
      }
    } else if (attach.IsSequence()) {
      plugin.global = false;
      reader.stringList(attach, path + ".attach", plugin.routes);
    } else {
      reader.error(attach, path + ".attach", "expected \"global\" or a list of route names");
    }
  }
  if (node["order"])
    reader.integer<int>(node["order"], path + ".order", plugin.order, -100000, 100000);
  if (const auto policy = node["failure_policy"]) {
    std::string text;
    if (reader.string(policy, path + ".failure_policy", text)) {
      if (text == "fail_closed") {
        plugin.failure_policy = FailurePolicy::kFailClosed;
      } else if (text == "fail_open") {
        plugin.failure_policy = FailurePolicy::kFailOpen;
      } else {
        reader.error(policy, path + ".failure_policy", "expected fail_closed or fail_open");
      }
    }
  }
  if (const auto limits = node["limits"]) {
    const auto where = path + ".limits";
    if (!limits.IsMap()) {
      reader.error(limits, where, "expected a mapping");
    } else {
      reader.allowKeys(limits, where,
                       {"max_memory_mb", "deadline_ms", "max_module_bytes", "max_body_bytes",
                        "max_header_bytes", "max_local_response_bytes"});
      auto& l = plugin.limits;
      if (limits["max_memory_mb"]) {
        uint32_t mb = 0;
        if (reader.integer<uint32_t>(limits["max_memory_mb"], where + ".max_memory_mb", mb, 1,
                                     4095)) {
          l.max_memory_pages = mb * 16;
        }
      }
      if (limits["deadline_ms"])
        reader.integer<uint32_t>(limits["deadline_ms"], where + ".deadline_ms", l.deadline_ms, 1,
                                 60000);
      if (limits["max_module_bytes"])
        reader.integer<uint64_t>(limits["max_module_bytes"], where + ".max_module_bytes",
                                 l.max_module_bytes, 8, uint64_t(1) << 30);
      if (limits["max_body_bytes"])
        reader.integer<uint64_t>(limits["max_body_bytes"], where + ".max_body_bytes",
                                 l.max_body_bytes, 0, uint64_t(1) << 30);
      if (limits["max_header_bytes"])
        reader.integer<uint64_t>(limits["max_header_bytes"], where + ".max_header_bytes",
                                 l.max_header_bytes, 0, uint64_t(1) << 24);
      if (limits["max_local_response_bytes"])
        reader.integer<uint64_t>(limits["max_local_response_bytes"],
                                 where + ".max_local_response_bytes", l.max_local_response_bytes, 0,
                                 uint64_t(1) << 30);
    }
  }
  if (const auto expose = node["expose_credentials"]) {
    std::string text;
    if (reader.string(expose, path + ".expose_credentials", text)) {
      if (text == "true") {
        plugin.expose_credentials = true;
      } else if (text != "false") {
        reader.error(expose, path + ".expose_credentials", "expected true or false");
      }
    }
  }
  if (node["hidden_headers"]) {
    reader.stringList(node["hidden_headers"], path + ".hidden_headers", plugin.hidden_headers);
  }
  if (const auto env = node["env"]) {
    if (!env.IsMap()) {
      reader.error(env, path + ".env", "expected a mapping of variable names to values");
    } else {
      for (const auto& item : env) {
        const auto name = item.first.as<std::string>("");
        std::string value;
        if (reader.string(item.second, path + ".env." + name, value)) {
          plugin.env.emplace_back(name, std::move(value));
        }
      }
    }
  }
}

}  // namespace

tl::expected<Plugin, std::string> parsePluginSettings(std::string_view text,
                                                      std::string_view path) {
  Reader reader("");
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return tl::make_unexpected(fmt::format("{}: invalid JSON: {}", path, e.msg));
  }
  Plugin plugin;
  readPlugin(reader, node, std::string(path), plugin, false);
  if (!reader.errors().empty()) return tl::make_unexpected(reader.errors());
  return plugin;
}

namespace {

void validateReferences(Reader& reader, const YAML::Node& root, Config& config) {
  std::set<std::string, std::less<>> ids;
  for (size_t i = 0; i < config.providers.size(); ++i) {
    if (!config.providers[i].id.empty() && !ids.insert(config.providers[i].id).second) {
      reader.error(root["providers"][i]["id"], fmt::format("providers[{}].id", i),
                   fmt::format("duplicate provider id \"{}\"", config.providers[i].id));
    }
  }
  std::set<std::string, std::less<>> route_names;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    auto& route = config.routes[i];
    if (route.name.empty()) route.name = fmt::format("route{}", i);
    if (!route_names.insert(route.name).second) {
      const auto node = root["routes"][i];
      reader.error(node["name"] ? node["name"] : node, fmt::format("routes[{}].name", i),
                   fmt::format("duplicate route name \"{}\"", route.name));
    }
    for (size_t t = 0; t < route.targets.size(); ++t) {
      auto& target = route.targets[t];
      if (target.provider.empty()) continue;
      bool found = false;
      for (size_t p = 0; p < config.providers.size(); ++p) {
        if (config.providers[p].id == target.provider) {
          target.provider_index = p;
          found = true;
        }
      }
      if (!found) {
        const auto route_node = root["routes"][i];
        const bool single = static_cast<bool>(route_node["provider"]);
        reader.error(single ? route_node["provider"] : route_node["targets"][t]["provider"],
                     single ? fmt::format("routes[{}].provider", i)
                            : fmt::format("routes[{}].targets[{}].provider", i, t),
                     fmt::format("no provider with id \"{}\"", target.provider));
      }
    }
    auto& timeouts = route.timeouts;
    const auto& global = config.timeouts;
    if (timeouts.connect_ms == 0) timeouts.connect_ms = global.connect_ms;
    if (timeouts.first_byte_ms == 0) timeouts.first_byte_ms = global.first_byte_ms;
    if (timeouts.idle_ms == 0) timeouts.idle_ms = global.idle_ms;
  }
  for (size_t i = 0; i < config.routes.size(); ++i) {
    auto& route = config.routes[i];
    for (size_t f = 0; f < route.fallback.size(); ++f) {
      const auto& name = route.fallback[f];
      size_t index = 0;
      while (index < config.routes.size() && config.routes[index].name != name) ++index;
      if (index == config.routes.size() || index == i) {
        reader.error(root["routes"][i]["fallback"][f], fmt::format("routes[{}].fallback[{}]", i, f),
                     index == i ? "a route cannot fall back to itself"
                                : fmt::format("no route named \"{}\"", name));
      } else {
        route.fallback_indexes.push_back(index);
      }
    }
  }
  std::set<std::string, std::less<>> plugin_names;
  for (size_t i = 0; i < config.plugins.size(); ++i) {
    const auto& plugin = config.plugins[i];
    const auto node = root["plugins"][i];
    if (!plugin.name.empty() && !plugin_names.insert(plugin.name).second) {
      reader.error(node["name"], fmt::format("plugins[{}].name", i),
                   fmt::format("duplicate plugin name \"{}\"", plugin.name));
    }
    for (size_t r = 0; r < plugin.routes.size(); ++r) {
      if (!route_names.contains(plugin.routes[r])) {
        reader.error(node["attach"][r], fmt::format("plugins[{}].attach[{}]", i, r),
                     fmt::format("no route named \"{}\"", plugin.routes[r]));
      }
    }
  }
}

}  // namespace

size_t modelPatternRank(std::string_view pattern, std::string_view model) {
  if (pattern == model) return SIZE_MAX;
  if (pattern.ends_with('*') && model.starts_with(pattern.substr(0, pattern.size() - 1))) {
    return pattern.size();  // the prefix's length + 1
  }
  return 0;
}

std::string ModelMapping::map(std::string_view model) const {
  const std::pair<std::string, std::string>* best = nullptr;
  size_t best_rank = 0;
  for (const auto& rule : rules) {
    const auto rank = modelPatternRank(rule.first, model);
    if (rank > best_rank) {
      best = &rule;
      best_rank = rank;
    }
  }
  if (best == nullptr || best->second.empty()) return std::string(model);
  return best->second;
}

tl::expected<std::string, std::string> interpolateEnv(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return tl::make_unexpected(std::string("unterminated ${ in value"));
    }
    const std::string name(text.substr(i + 2, close - i - 2));
    if (name.empty()) return tl::make_unexpected(std::string("empty variable name in ${}"));
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return tl::make_unexpected(fmt::format("environment variable {} is not set", name));
    }
    out += value;
    i = close + 1;
  }
  return out;
}

tl::expected<Endpoint, std::string> parseEndpointUrl(std::string_view url) {
  Endpoint endpoint;
  endpoint.url = std::string(url);
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return tl::make_unexpected(fmt::format("\"{}\" is not a URL like http://host:port", url));
  }
  endpoint.scheme = std::string(url.substr(0, scheme_end));
  if (endpoint.scheme != "http" && endpoint.scheme != "https") {
    return tl::make_unexpected(
        fmt::format("unsupported scheme \"{}\" (expected http or https)", endpoint.scheme));
  }
  auto rest = url.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    auto path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    endpoint.base_path = std::string(path);
  }
  if (authority.empty()) return tl::make_unexpected(fmt::format("\"{}\" has no host", url));
  const bool has_port = authority.back() != ']' && authority.find(':') != std::string_view::npos;
  if (has_port) {
    if (!parseHostPort(authority, endpoint.host, endpoint.port) || endpoint.port == 0) {
      return tl::make_unexpected(fmt::format("\"{}\" has an invalid port", url));
    }
  } else {
    endpoint.host = std::string(authority);
    if (endpoint.host.size() > 2 && endpoint.host.front() == '[') {
      endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
    }
    endpoint.port = endpoint.scheme == "https" ? 443 : 80;
  }
  return endpoint;
}

tl::expected<Config, std::string> parseConfig(std::string_view yaml, std::string_view source) {
  Reader reader(source);
  Config config;
  config.source = std::string(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    return tl::make_unexpected(
        fmt::format("{}:{}: invalid YAML: {}\n", source, e.mark.line + 1, e.msg));
  }
  if (!root.IsMap()) {
    return tl::make_unexpected(fmt::format("{}: expected a mapping at the top level\n", source));
  }
  reader.allowKeys(root, "",
                   {"listen", "threads", "providers", "routes", "plugins", "limits", "timeouts",
                    "admin", "keys", "state_dir", "access_log", "log_level", "wasm", "tls"});

  if (root["listen"]) {
    std::string listen;
    if (reader.string(root["listen"], "listen", listen) &&
        !parseHostPort(listen, config.listen_host, config.listen_port)) {
      reader.error(root["listen"], "listen",
                   fmt::format("expected host:port like 127.0.0.1:8080, got \"{}\"", listen));
    }
  }
  if (root["tls"]) readListenerTls(reader, root["tls"], config.tls);
  if (root["threads"]) reader.integer<int>(root["threads"], "threads", config.threads, 0, 1024);
  if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());

  const auto providers = root["providers"];
  if (!providers || !providers.IsSequence() || providers.size() == 0) {
    reader.error(providers ? providers : root, "providers", "required: a list of providers");
  } else {
    config.providers.resize(providers.size());
    for (size_t i = 0; i < providers.size(); ++i) {
      readProvider(reader, providers[i], fmt::format("providers[{}]", i), config.providers[i]);
    }
  }
  const auto routes = root["routes"];
  if (!routes || !routes.IsSequence() || routes.size() == 0) {
    reader.error(routes ? routes : root, "routes", "required: a list of routes");
  } else {
    config.routes.resize(routes.size());
    for (size_t i = 0; i < routes.size(); ++i) {
      readRoute(reader, routes[i], fmt::format("routes[{}]", i), config.routes[i]);
    }
  }
  if (const auto plugins = root["plugins"]) {
    if (!plugins.IsSequence()) {
      reader.error(plugins, "plugins", "expected a list of plugins");
    } else {
      config.plugins.resize(plugins.size());
      for (size_t i = 0; i < plugins.size(); ++i) {
        readPlugin(reader, plugins[i], fmt::format("plugins[{}]", i), config.plugins[i]);
        if (!plugins[i]["order"]) config.plugins[i].order = static_cast<int>(i);
      }
    }
  }
  if (root["limits"]) readLimits(reader, root["limits"], config.limits);
  if (root["wasm"]) readWasm(reader, root["wasm"], config.wasm);
  if (config.wasm.redis.empty()) config.wasm.redis = config.limits.redis;
  if (root["timeouts"]) readTimeouts(reader, root["timeouts"], config.timeouts);
  if (root["admin"]) readAdmin(reader, root["admin"], config.admin);
  if (const auto keys = root["keys"]) {
    if (!keys.IsSequence()) {
      reader.error(keys, "keys", "expected a list of client keys");
    } else {
      config.keys.resize(keys.size());
      std::set<std::string, std::less<>> ids;
      for (size_t i = 0; i < keys.size(); ++i) {
        readKey(reader, keys[i], fmt::format("keys[{}]", i), config.keys[i]);
        if (!config.keys[i].id.empty() && !ids.insert(config.keys[i].id).second) {
          reader.error(keys[i]["id"], fmt::format("keys[{}].id", i),
                       fmt::format("duplicate key id \"{}\"", config.keys[i].id));
        }
      }
    }
  }
  if (root["state_dir"]) reader.string(root["state_dir"], "state_dir", config.state_dir);
  if (root["access_log"]) reader.string(root["access_log"], "access_log", config.access_log);
  if (root["log_level"]) {
    static const std::set<std::string, std::less<>> kLevels = {"trace", "debug", "info",
                                                               "warn",  "error", "off"};
    if (reader.string(root["log_level"], "log_level", config.log_level) &&
        !kLevels.contains(config.log_level)) {
      reader.error(root["log_level"], "log_level",
                   "expected one of trace, debug, info, warn, error, off");
    }
  }
  validateReferences(reader, root, config);

  if (!reader.errors().empty()) return tl::make_unexpected(reader.errors());
  return config;
}

tl::expected<Config, std::string> loadConfigFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return tl::make_unexpected(fmt::format("{}: cannot open the file\n", path));
  std::stringstream text;
  text << file.rdbuf();
  return parseConfig(text.str(), path);
}

}  // namespace sluice::config
