#include "proxy/plugin_manager.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/digest.h"
#include "common/files.h"
#include "common/json_writer.h"

namespace sluice::proxy {
namespace {

namespace fs = std::filesystem;

std::string formatUuid(const unsigned char* b) {
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
      "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
      b[15]);
}

// A random (version 4) UUID.
std::string newUuid() {
  unsigned char b[16];
  randomBytes(b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return formatUuid(b);
}

// A config module's uuid follows from its name, so that it stays the same across restarts.
std::string configUuid(const std::string& name) {
  const auto hex = sha256Hex("sluice-config-plugin:" + name);
  unsigned char b[16];
  for (int i = 0; i < 16; ++i)
    b[i] = static_cast<unsigned char>(std::stoi(hex.substr(i * 2, 2), nullptr, 16));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x50);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return formatUuid(b);
}

tl::unexpected<ManagerError> fail(int status, std::string message) {
  return tl::make_unexpected(ManagerError{status, std::move(message)});
}

int64_t nowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

std::optional<std::string> readFile(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  const auto size = fs::file_size(path, ec);
  if (ec || size > max_bytes) return std::nullopt;
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  std::string bytes(size, '\0');
  file.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(file.gcount()) != size) return std::nullopt;
  return bytes;
}

std::string moduleDir(const std::string& state_dir) { return state_dir + "/wasm"; }
std::string stateFile(const std::string& state_dir) {
  return moduleDir(state_dir) + "/modules.json";
}
std::string bytesFile(const std::string& state_dir, const std::string& sha256) {
  return moduleDir(state_dir) + "/" + sha256 + ".wasm";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> pluginSettingsFields(const config::Plugin& s) {
  std::vector<std::pair<std::string, std::string>> fields;
  auto add = [&fields](const char* key, auto write) {
    std::string text;
    JsonWriter json(text);
    write(json);
    fields.emplace_back(key, std::move(text));
  };
  add("name", [&](JsonWriter& j) { j.value(s.name); });
  add("config", [&](JsonWriter& j) { j.value(s.configuration); });
  add("vm_config", [&](JsonWriter& j) { j.value(s.vm_configuration); });
  add("root_id", [&](JsonWriter& j) { j.value(s.root_id); });
  add("attach", [&](JsonWriter& j) {
    if (s.global) {
      j.value("global");
      return;
    }
    j.beginArray();
    for (const auto& route : s.routes) j.value(route);
    j.endArray();
  });
  add("order", [&](JsonWriter& j) { j.value(s.order); });
  add("failure_policy", [&](JsonWriter& j) {
    j.value(s.failure_policy == config::FailurePolicy::kFailOpen ? "fail_open" : "fail_closed");
  });
  add("limits", [&](JsonWriter& j) {
    const auto& l = s.limits;
    j.beginObject();
    j.key("max_memory_mb").value(uint64_t{l.max_memory_pages / 16});
    j.key("deadline_ms").value(uint64_t{l.deadline_ms});
    j.key("max_module_bytes").value(l.max_module_bytes);
    j.key("max_body_bytes").value(l.max_body_bytes);
    j.key("max_header_bytes").value(l.max_header_bytes);
    j.key("max_local_response_bytes").value(l.max_local_response_bytes);
    j.endObject();
  });
  add("expose_credentials", [&](JsonWriter& j) { j.value(s.expose_credentials); });
  add("hidden_headers", [&](JsonWriter& j) {
    j.beginArray();
    for (const auto& name : s.hidden_headers) j.value(name);
    j.endArray();
  });
  add("env", [&](JsonWriter& j) {
    j.beginObject();
    for (const auto& [name, value] : s.env) j.key(name).value(value);
    j.endObject();
  });
  return fields;
}

std::string joinFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string text = "{";
  for (const auto& [key, value] : fields) {
    if (text.size() > 1) text += ',';
    text += '"';
    appendJsonEscaped(text, key);
    text += "\":";
    text += value;
  }
  text += '}';
  return text;
}

PluginManager::PluginManager(wasm::WasmEngine& (*engine)(), config::Config config)
    : engine_(engine), config_(std::move(config)) {}

const DeployedModule* PluginManager::find(std::string_view uuid) const {
  for (const auto& module : modules_) {
    if (module.uuid == uuid) return &module;
  }
  return nullptr;
}

tl::expected<std::shared_ptr<const wasm::Plugin>, std::string> PluginManager::load(
    const config::Plugin& settings, std::string_view bytes, const DeployedModule& identity) {
  if (bytes.size() > settings.limits.max_module_bytes) {
    return tl::make_unexpected(
        fmt::format("the module has {} bytes, more than limits.max_module_bytes ({})", bytes.size(),
                    settings.limits.max_module_bytes));
  }
  if (bytes.size() < 8 || bytes.substr(0, 4) != std::string_view("\0asm", 4)) {
    return tl::make_unexpected(std::string("not a WebAssembly module (no \\0asm magic)"));
  }
  wasm::PluginIdentity id{identity.uuid, identity.version, identity.sha256, identity.stats};
  const auto key = fmt::format("{}:{}", identity.sha256, settings.limits.max_memory_pages);
  tl::expected<std::shared_ptr<const wasm::Plugin>, std::string> plugin;
  if (auto cached = compiled_[key].lock()) {
    plugin = wasm::Plugin::fromModule(engine_(), settings, std::move(cached), std::move(id));
  } else {
    wasm::EngineLimits limits;
    limits.max_memory_pages = settings.limits.max_memory_pages;
    limits.max_module_bytes = settings.limits.max_module_bytes;
    auto module =
        engine_().compile({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, limits);
    if (!module) return tl::make_unexpected(module.error());
    ++compilations_;
    compiled_[key] = *module;
    plugin = wasm::Plugin::fromModule(engine_(), settings, std::move(*module), std::move(id));
  }
  if (!plugin) return plugin;
  if (auto started = wasm::canaryStart(*plugin); !started) {
    return tl::make_unexpected("the canary instance failed: " + started.error());
  }
  // Cache entries of modules nobody uses any more go.
  std::erase_if(compiled_, [](const auto& entry) { return entry.second.expired(); });
  return plugin;
}

tl::expected<void, std::string> PluginManager::checkAttach(const config::Plugin& settings) const {
  for (const auto& route : settings.routes) {
    const bool known = std::any_of(config_.routes.begin(), config_.routes.end(),
                                   [&](const config::Route& r) { return r.name == route; });
    if (!known) return tl::make_unexpected(fmt::format("attach: there is no route \"{}\"", route));
  }
  return {};
}

std::optional<std::string> PluginManager::readModuleFile(const std::string& path) const {
  std::error_code ec;
  const auto real = fs::canonical(path, ec);
  if (ec) return std::nullopt;
  for (const auto& root : config_.wasm.module_roots) {
    const auto real_root = fs::canonical(root, ec);
    if (ec) continue;
    // Inside the root: the root is a prefix of the path, component by component.
    auto [root_end, path_it] =
        std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
    if (root_end == real_root.end() && path_it != real.end()) {
      return readFile(real.string(), uint64_t{1} << 30);
    }
  }
  return std::nullopt;
}

tl::expected<void, std::string> PluginManager::start(std::vector<std::string>& warnings) {
  for (const auto& settings : config_.plugins) {
    DeployedModule module;
    module.uuid = configUuid(settings.name);
    module.from_config = true;
    module.settings = settings;
    module.created_unix = module.updated_unix = nowUnix();
    auto problem = [&](const std::string& what) -> std::optional<std::string> {
      auto message = fmt::format("plugin {} ({}): {}", settings.name, settings.path, what);
      if (settings.failure_policy == config::FailurePolicy::kFailClosed) {
        return message + " (failure_policy fail_closed: the gateway does not start without it)";
      }
      warnings.push_back(message + " (failure_policy fail_open: skipped)");
      module.error = what;
      return std::nullopt;
    };
    auto bytes = readFile(settings.path, settings.limits.max_module_bytes);
    if (!bytes) {
      std::error_code ec;
      const bool exists = fs::is_regular_file(settings.path, ec);
      auto what = exists ? fmt::format("the file is larger than limits.max_module_bytes ({})",
                                       settings.limits.max_module_bytes)
                         : std::string("cannot read the file");
      if (auto error = problem(what)) return tl::make_unexpected(*error);
    } else {
      module.sha256 = sha256Hex(*bytes);
      auto plugin = load(settings, *bytes, module);
      if (!plugin) {
        if (auto error = problem(plugin.error())) return tl::make_unexpected(*error);
      } else {
        module.plugin = std::move(*plugin);
      }
    }
    modules_.push_back(std::move(module));
  }

  if (!config_.state_dir.empty()) {
    const auto path = stateFile(config_.state_dir);
    std::error_code ec;
    if (fs::exists(path, ec)) {
      auto reportCorrupt = [&](const std::string& why) {
        const auto kept = fmt::format("{}.corrupt-{}", path, std::time(nullptr));
        std::rename(path.c_str(), kept.c_str());
        warnings.push_back(fmt::format(
            "{}: {}: skipped (kept as {}): modules deployed through the admin API are not loaded",
            path, why, kept));
      };
      simdjson::dom::parser parser;
      simdjson::dom::element root;
      simdjson::dom::array entries;
      if (auto error = parser.load(path).get(root)) {
        reportCorrupt(fmt::format("not JSON ({})", simdjson::error_message(error)));
      } else if (root["modules"].get(entries)) {
        reportCorrupt("no \"modules\" list");
      } else {
        std::vector<DeployedModule> saved;
        std::string why;
        size_t index = 0;
        for (auto entry : entries) {
          DeployedModule module;
          std::string_view uuid, sha256;
          uint64_t version = 0;
          int64_t created = 0, updated = 0;
          simdjson::dom::element settings;
          const auto where = fmt::format("modules[{}]", index++);
          if (entry["uuid"].get(uuid) || entry["sha256"].get(sha256) ||
              entry["version"].get(version) || entry["settings"].get(settings) ||
              sha256.size() != 64 ||
              sha256.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
            why = where + ": expected uuid, version, sha256 and settings";
            break;
          }
          if (entry["created"].get(created) || entry["updated"].get(updated)) {
            created = updated = 0;  // informative only
          }
          auto parsed = config::parsePluginSettings(simdjson::minify(settings), where);
          if (!parsed) {
            why = parsed.error();
            break;
          }
          module.uuid = std::string(uuid);
          module.version = version;
          module.sha256 = std::string(sha256);
          module.settings = std::move(*parsed);
          module.created_unix = created;
          module.updated_unix = updated;
          saved.push_back(std::move(module));
        }
        if (!why.empty()) {
          reportCorrupt(why);
        } else {
          for (auto& module : saved) {
            // A module that no longer loads stays listed as failed, for the operator to see.
            auto bytes = readFile(bytesFile(config_.state_dir, module.sha256), uint64_t{1} << 30);
            const bool taken = std::any_of(
                modules_.begin(), modules_.end(),
                [&](const DeployedModule& m) { return m.settings.name == module.settings.name; });
            if (taken) {
              module.error = "the config file now has a plugin of this name";
            } else if (!bytes || sha256Hex(*bytes) != module.sha256) {
              module.error = "its bytes are missing or damaged in " + moduleDir(config_.state_dir);
            } else if (auto attached = checkAttach(module.settings); !attached) {
              module.error = attached.error();
            } else if (auto plugin = load(module.settings, *bytes, module); !plugin) {
              module.error = plugin.error();
            } else {
              module.plugin = std::move(*plugin);
              module.bytes = std::make_shared<const std::string>(std::move(*bytes));
            }
            if (!module.error.empty()) {
              warnings.push_back(fmt::format("plugin {} ({}): not loaded: {}", module.settings.name,
                                             module.uuid, module.error));
            }
            modules_.push_back(std::move(module));
          }
        }
      }
    }
  }
  rebuildSet();
  return {};
}

tl::expected<void, ManagerError> PluginManager::save(
    const std::vector<DeployedModule>& modules) const {
  if (config_.state_dir.empty()) {
    spdlog::warn("admin: no state_dir configured: plugin changes are lost at restart");
    return {};
  }
  std::set<std::string> referenced;
  for (const auto& module : modules) {
    if (module.from_config || !module.bytes) continue;
    referenced.insert(module.sha256);
    const auto path = bytesFile(config_.state_dir, module.sha256);
    std::error_code ec;
    if (fs::exists(path, ec)) continue;
    if (auto written = writeFileAtomic(path, *module.bytes); !written) {
      return fail(500, "saving the module failed: " + written.error());
    }
  }
  std::string text;
  JsonWriter json(text);
  json.beginObject().key("modules").beginArray();
  for (const auto& module : modules) {
    if (module.from_config) continue;
    json.beginObject();
    json.key("uuid").value(module.uuid);
    json.key("version").value(module.version);
    json.key("sha256").value(module.sha256);
    json.key("created").value(module.created_unix);
    json.key("updated").value(module.updated_unix);
    json.key("settings").raw(joinFields(pluginSettingsFields(module.settings)));
    json.endObject();
    referenced.insert(module.sha256);
  }
  json.endArray().endObject();
  text += '\n';
  if (auto written = writeFileAtomic(stateFile(config_.state_dir), text); !written) {
    return fail(500, "saving the module list failed: " + written.error());
  }
  // Bytes no module refers to any more.
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(moduleDir(config_.state_dir), ec)) {
    const auto name = file.path().filename().string();
    if (name.size() == 64 + 5 && name.ends_with(".wasm") &&
        !referenced.contains(name.substr(0, 64))) {
      fs::remove(file.path(), ec);
    }
  }
  return {};
}

tl::expected<std::vector<const DeployedModule*>, ManagerError> PluginManager::deploy(
    std::vector<ModuleChange> changes) {
  if (changes.empty()) return fail(400, "no modules given");
  std::vector<DeployedModule> next = modules_;
  const size_t first_new = next.size();
  for (size_t i = 0; i < changes.size(); ++i) {
    auto& change = changes[i];
    const auto where = fmt::format("modules[{}] ({})", i, change.settings.name);
    const bool taken = std::any_of(next.begin(), next.end(), [&](const DeployedModule& m) {
      return m.settings.name == change.settings.name;
    });
    if (taken) {
      return fail(409,
                  fmt::format("{}: a module named \"{}\" exists", where, change.settings.name));
    }
    if (!change.bytes) return fail(400, where + ": no module bytes");
    if (auto attached = checkAttach(change.settings); !attached) {
      return fail(400, where + ": " + attached.error());
    }
    DeployedModule module;
    module.uuid = newUuid();
    module.sha256 = sha256Hex(*change.bytes);
    module.settings = std::move(change.settings);
    module.created_unix = module.updated_unix = nowUnix();
    auto plugin = load(module.settings, *change.bytes, module);
    if (!plugin) return fail(400, where + ": " + plugin.error());
    module.plugin = std::move(*plugin);
    module.bytes = std::make_shared<const std::string>(std::move(*change.bytes));
    next.push_back(std::move(module));
  }
  if (auto saved = save(next); !saved) return tl::make_unexpected(saved.error());
  modules_ = std::move(next);
  rebuildSet();
  std::vector<const DeployedModule*> deployed;
  for (size_t i = first_new; i < modules_.size(); ++i) deployed.push_back(&modules_[i]);
  return deployed;
}

tl::expected<const DeployedModule*, ManagerError> PluginManager::replace(const std::string& uuid,
                                                                         ModuleChange change) {
  std::vector<DeployedModule> next = modules_;
  auto it = std::find_if(next.begin(), next.end(),
                         [&](const DeployedModule& m) { return m.uuid == uuid; });
  if (it == next.end()) return fail(404, "no such module");
  if (it->from_config) {
    return fail(409, "the module is defined in the config file: change it there");
  }
  const bool renamed_onto = std::any_of(next.begin(), next.end(), [&](const DeployedModule& m) {
    return m.uuid != uuid && m.settings.name == change.settings.name;
  });
  if (renamed_onto) {
    return fail(409, fmt::format("a module named \"{}\" exists", change.settings.name));
  }
  if (auto attached = checkAttach(change.settings); !attached) {
    return fail(400, attached.error());
  }
  DeployedModule module = *it;
  module.version += 1;
  module.updated_unix = nowUnix();
  module.settings = std::move(change.settings);
  module.error.clear();
  if (change.bytes) {
    module.sha256 = sha256Hex(*change.bytes);
    module.bytes = std::make_shared<const std::string>(std::move(*change.bytes));
  }
  if (!module.bytes) return fail(400, "the module's bytes are missing: send them again");
  auto plugin = load(module.settings, *module.bytes, module);
  if (!plugin) return fail(400, plugin.error());
  module.plugin = std::move(*plugin);
  *it = std::move(module);
  if (auto saved = save(next); !saved) return tl::make_unexpected(saved.error());
  modules_ = std::move(next);
  rebuildSet();
  return find(uuid);
}

tl::expected<void, ManagerError> PluginManager::remove(const std::string& uuid) {
  std::vector<DeployedModule> next = modules_;
  auto it = std::find_if(next.begin(), next.end(),
                         [&](const DeployedModule& m) { return m.uuid == uuid; });
  if (it == next.end()) return fail(404, "no such module");
  if (it->from_config)
    return fail(409, "the module is defined in the config file: remove it there");
  next.erase(it);
  if (auto saved = save(next); !saved) return tl::make_unexpected(saved.error());
  modules_ = std::move(next);
  rebuildSet();
  return {};
}

void PluginManager::rebuildSet() {
  std::vector<std::shared_ptr<const wasm::Plugin>> plugins;
  for (const auto& module : modules_) {
    if (module.plugin) plugins.push_back(module.plugin);
  }
  set_ = wasm::PluginSet::build(std::move(plugins), config_.routes);
}

}  // namespace sluice::proxy
