#include "proxy/wasm_admin.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <array>

#include "admin/admin_server.h"
#include "common/json_writer.h"
#include "metrics/exposition.h"

namespace sluice::proxy {
namespace {

using admin::AdminRequest;
using admin::AdminResponse;
using admin::errorResponse;

// Strict RFC 4648 base64 (padding optional, no whitespace); nullopt on anything else.
std::optional<std::string> decodeBase64(std::string_view text) {
  static const std::array<int8_t, 256> kValues = [] {
    std::array<int8_t, 256> values{};
    values.fill(-1);
    const std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < alphabet.size(); ++i) {
      values[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    }
    return values;
  }();
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const int value = kValues[static_cast<unsigned char>(c)];
    if (value < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    if (++count == 4) {
      out += static_cast<char>(bits >> 16);
      out += static_cast<char>(bits >> 8);
      out += static_cast<char>(bits);
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out += static_cast<char>(bits >> 4);
  if (count == 3) {
    out += static_cast<char>(bits >> 10);
    out += static_cast<char>(bits >> 2);
  }
  return out;
}

// One module of a request: settings over those of `base` (PUT) and the bytes, when given.
tl::expected<ModuleChange, std::string> readModule(simdjson::dom::element element,
                                                   const std::string& where,
                                                   const DeployedModule* base,
                                                   const PluginManager& manager) {
  simdjson::dom::object object;
  if (element.get(object)) return tl::make_unexpected(where + ": expected an object");
  auto fields = base ? pluginSettingsFields(base->settings)
                     : std::vector<std::pair<std::string, std::string>>{};
  ModuleChange change;
  for (auto field : object) {
    const std::string_view key = field.key;
    if (key == "file_path" || key == "wasm_base64") {
      std::string_view text;
      if (field.value.get(text))
        return tl::make_unexpected(fmt::format("{}.{}: expected a string", where, key));
      if (change.bytes) {
        return tl::make_unexpected(where + ": give file_path or wasm_base64, not both");
      }
      change.bytes =
          key == "file_path" ? manager.readModuleFile(std::string(text)) : decodeBase64(text);
      if (!change.bytes) {
        // Outside the roots and missing get the same answer: the API does not probe files.
        return tl::make_unexpected(
            key == "file_path"
                ? fmt::format("{}.file_path: no module file \"{}\" under wasm.module_roots", where,
                              text)
                : where + ".wasm_base64: not valid base64");
      }
      continue;
    }
    auto value = simdjson::minify(field.value);
    auto it =
        std::find_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == key; });
    if (it != fields.end()) {
      it->second = std::move(value);
    } else {
      fields.emplace_back(std::string(key), std::move(value));
    }
  }
  auto settings = config::parsePluginSettings(joinFields(fields), where);
  if (!settings) {
    auto message = settings.error();
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return tl::make_unexpected(message);
  }
  change.settings = std::move(*settings);
  return change;
}

void writeModule(JsonWriter& json, const DeployedModule& module) {
  const auto& s = module.settings;
  json.beginObject();
  json.key("uuid").value(module.uuid);
  json.key("name").value(s.name);
  json.key("version").value(module.version);
  json.key("sha256").value(module.sha256);
  json.key("source").value(module.from_config ? "config" : "api");
  json.key("state").value(module.plugin ? "active" : "failed");
  if (!module.error.empty()) json.key("error").value(module.error);
  // Settings as they are given, except the plugin's configuration, which may hold secrets: only
  // its size is shown.
  for (const auto& [key, value] : pluginSettingsFields(s)) {
    if (key == "name") continue;
    if (key == "config" || key == "vm_config") {
      json.key(key + "_bytes")
          .value(uint64_t{key == "config" ? s.configuration.size() : s.vm_configuration.size()});
      continue;
    }
    json.key(key).raw(value);
  }
  json.key("created").value(module.created_unix);
  json.key("updated").value(module.updated_unix);
  const auto t = module.stats->totals();
  auto micros = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  json.key("metrics").beginObject();
  json.key("calls").value(t.calls);
  json.key("errors").value(t.errors);
  json.key("traps").value(t.traps);
  json.key("deadline_misses").value(t.deadline_misses);
  json.key("rejects").value(t.rejects);
  json.key("modifications").value(t.modifications);
  json.key("total_us").value(micros(t.total_ns));
  json.key("avg_us").value(t.calls ? micros(t.total_ns) / static_cast<double>(t.calls) : 0.0);
  json.key("max_us").value(micros(t.max_ns));
  json.key("p99_us").value(micros(t.quantileNs(0.99)));
  json.endObject();
  json.endObject();
}

AdminResponse moduleResponse(int status, const DeployedModule& module) {
  AdminResponse response;
  response.status = status;
  JsonWriter json(response.body);
  writeModule(json, module);
  return response;
}

AdminResponse failure(const ManagerError& error) {
  return errorResponse(error.status, error.message,
                       error.status >= 500 ? "server_error" : "invalid_request_error");
}

// Publishes the manager's set; the change is already saved, so a failure here is the server's.
AdminResponse publish(ControlPlane& control, PluginManager& manager, AdminResponse response) {
  auto applied = applyState(control, control.current->config, nullptr, manager.set());
  if (!applied) return errorResponse(500, applied.error(), "server_error");
  return response;
}

AdminResponse deploy(ControlPlane& control, PluginManager& manager, const AdminRequest& request) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(request.body).get(root) || !root.is_object()) {
    return errorResponse(400,
                         "expected a JSON object {\"modules\": [{\"name\", \"file_path\" or "
                         "\"wasm_base64\", \"config\", \"attach\", ...}]}");
  }
  // {"modules": [...]}, or one module on its own.
  std::vector<simdjson::dom::element> elements;
  simdjson::dom::array list;
  if (auto modules = root["modules"]; !modules.error()) {
    if (modules.get(list)) return errorResponse(400, "modules: expected a list");
    if (root.get_object().size() != 1) {
      return errorResponse(400, "expected only \"modules\" beside the list");
    }
    for (auto element : list) elements.push_back(element);
  } else {
    elements.push_back(root);
  }
  if (elements.empty() || elements.size() > 64) {
    return errorResponse(400, "modules: expected 1 to 64 modules");
  }
  std::vector<ModuleChange> changes;
  for (size_t i = 0; i < elements.size(); ++i) {
    auto change = readModule(elements[i], fmt::format("modules[{}]", i), nullptr, manager);
    if (!change) return errorResponse(400, change.error());
    if (!change->bytes) {
      return errorResponse(400,
                           fmt::format("modules[{}]: file_path or wasm_base64 is required", i));
    }
    changes.push_back(std::move(*change));
  }
  auto deployed = manager.deploy(std::move(changes));
  if (!deployed) return failure(deployed.error());
  AdminResponse response;
  response.status = 201;
  JsonWriter json(response.body);
  json.beginObject().key("modules").beginArray();
  for (const auto* module : *deployed) {
    spdlog::info("admin: plugin {} deployed as {} (sha256 {})", module->settings.name, module->uuid,
                 module->sha256);
    json.beginObject();
    json.key("uuid").value(module->uuid);
    json.key("name").value(module->settings.name);
    json.key("version").value(module->version);
    json.key("sha256").value(module->sha256);
    json.endObject();
  }
  json.endArray().endObject();
  return publish(control, manager, std::move(response));
}

AdminResponse replace(ControlPlane& control, PluginManager& manager, const std::string& uuid,
                      const AdminRequest& request) {
  const auto* current = manager.find(uuid);
  if (current == nullptr)
    return errorResponse(404, fmt::format("no module with uuid \"{}\"", uuid));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(request.body).get(root) || !root.is_object()) {
    return errorResponse(400,
                         "expected a JSON object with the fields to change (\"config\", "
                         "\"file_path\" or \"wasm_base64\", \"attach\", ...)");
  }
  auto change = readModule(root, "module", current, manager);
  if (!change) return errorResponse(400, change.error());
  auto replaced = manager.replace(uuid, std::move(*change));
  if (!replaced) return failure(replaced.error());
  spdlog::info("admin: plugin {} ({}) replaced by version {}", (*replaced)->settings.name, uuid,
               (*replaced)->version);
  return publish(control, manager, moduleResponse(200, **replaced));
}

}  // namespace

void addWasmApi(admin::AdminServer& server, ControlPlane& control, PluginManager& manager) {
  auto uuidOf = [](const AdminRequest& request) -> std::optional<std::string> {
    if (!request.path.starts_with("/wasm/")) return std::nullopt;
    auto uuid = request.path.substr(6);
    if (uuid.empty() || uuid.find('/') != std::string::npos) return std::nullopt;
    return uuid;
  };
  server.handle("GET", "/wasm", [&manager, uuidOf](const AdminRequest& request) {
    if (request.path == "/wasm") {
      AdminResponse response;
      JsonWriter json(response.body);
      json.beginObject().key("modules").beginArray();
      for (const auto& module : manager.modules()) writeModule(json, module);
      json.endArray();
      json.key("compilations").value(manager.compilations());
      json.endObject();
      return response;
    }
    auto uuid = uuidOf(request);
    const auto* module = uuid ? manager.find(*uuid) : nullptr;
    if (module == nullptr) return errorResponse(404, "no such module");
    return moduleResponse(200, *module);
  });
  server.handle("POST", "/wasm", [&control, &manager](const AdminRequest& request) {
    if (request.path != "/wasm") return errorResponse(404, "POST /wasm deploys modules");
    return deploy(control, manager, request);
  });
  server.handle("PUT", "/wasm", [&control, &manager, uuidOf](const AdminRequest& request) {
    auto uuid = uuidOf(request);
    if (!uuid) return errorResponse(404, "PUT /wasm/{uuid} replaces a module");
    return replace(control, manager, *uuid, request);
  });
  server.handle("DELETE", "/wasm", [&control, &manager, uuidOf](const AdminRequest& request) {
    auto uuid = uuidOf(request);
    if (!uuid) return errorResponse(404, "DELETE /wasm/{uuid} removes a module");
    const auto* module = manager.find(*uuid);
    const std::string name = module ? module->settings.name : "";
    if (auto removed = manager.remove(*uuid); !removed) return failure(removed.error());
    spdlog::info("admin: plugin {} ({}) removed", name, *uuid);
    return publish(control, manager,
                   AdminResponse{200, fmt::format(R"({{"removed":"{}"}})", *uuid)});
  });
}

void appendPluginMetrics(const wasm::PluginSet* set, std::string& out) {
  if (set == nullptr || set->plugins().empty()) return;
  struct Row {
    std::string labels;
    wasm::PluginStats::Totals totals;
  };
  std::vector<Row> rows;
  for (const auto& plugin : set->plugins()) {
    std::string labels = "plugin=\"";
    metrics::appendLabelValue(labels, plugin->settings().name);
    labels += "\",uuid=\"";
    metrics::appendLabelValue(labels, plugin->identity().uuid);
    labels += '"';
    rows.push_back({std::move(labels), plugin->stats().totals()});
  }
  auto counter = [&](const char* name, const char* help,
                     uint64_t wasm::PluginStats::Totals::*field) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n", name, help, name);
    for (const auto& row : rows) {
      fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, row.labels, row.totals.*field);
    }
  };
  using T = wasm::PluginStats::Totals;
  counter("sluice_wasm_calls_total", "Callbacks into a plugin module.", &T::calls);
  counter("sluice_wasm_errors_total",
          "Failed callbacks (traps, deadline misses) and instances that failed to start.",
          &T::errors);
  counter("sluice_wasm_traps_total", "Callbacks that trapped.", &T::traps);
  counter("sluice_wasm_deadline_misses_total", "Callbacks stopped at their deadline.",
          &T::deadline_misses);
  counter("sluice_wasm_rejects_total", "Local responses a plugin sent.", &T::rejects);
  counter("sluice_wasm_modifications_total",
          "Changes a plugin made to headers, bodies or properties.", &T::modifications);
  const char* histogram = "sluice_wasm_callback_seconds";
  fmt::format_to(std::back_inserter(out),
                 "# HELP {} Time spent in one plugin callback.\n# TYPE {} histogram\n", histogram,
                 histogram);
  for (const auto& row : rows) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < row.totals.buckets.size(); ++i) {
      cumulative += row.totals.buckets[i];
      const auto le =
          i < wasm::kCallbackBucketsNs.size()
              ? fmt::format("{}", static_cast<double>(wasm::kCallbackBucketsNs[i]) / 1e9)
              : std::string("+Inf");
      fmt::format_to(std::back_inserter(out), "{}_bucket{{{},le=\"{}\"}} {}\n", histogram,
                     row.labels, le, cumulative);
    }
    fmt::format_to(std::back_inserter(out), "{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", histogram,
                   row.labels, static_cast<double>(row.totals.total_ns) / 1e9, histogram,
                   row.labels, cumulative);
  }
}

}  // namespace sluice::proxy
