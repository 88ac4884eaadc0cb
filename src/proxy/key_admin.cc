#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "admin/admin_server.h"
#include "common/digest.h"
#include "common/json_writer.h"
#include "proxy/worker_admin.h"

namespace sluice::proxy {
namespace {

using admin::AdminRequest;
using admin::AdminResponse;
using admin::errorResponse;

void writeKey(JsonWriter& json, const keys::KeyRecord& key, std::string_view secret = {}) {
  json.beginObject();
  json.key("id").value(key.id);
  if (!secret.empty()) json.key("key").value(secret);  // shown once, at creation
  json.key("models").beginArray();
  for (const auto& model : key.models) json.value(model);
  json.endArray();
  json.key("rpm").value(uint64_t{key.rpm}).key("tpm").value(uint64_t{key.tpm});
  json.key("daily_tokens").value(key.daily_tokens);
  json.key("revoked").value(key.revoked);
  json.key("source").value(key.from_config ? "config" : "admin");
  json.key("created").value(key.created_unix);
  json.endObject();
}

// Applies an admin change and tells the replicas.
tl::expected<void, std::string> applyKeys(ControlPlane& control,
                                          std::vector<keys::KeyRecord> records) {
  auto applied = applyKeyRecords(control, std::move(records));
  if (applied && control.keys_changed) control.keys_changed();
  return applied;
}

}  // namespace

tl::expected<void, std::string> applyKeyRecords(ControlPlane& control,
                                                std::vector<keys::KeyRecord> records) {
  const auto& state_dir = control.current->config.state_dir;
  if (!state_dir.empty()) {
    auto saved = keys::saveKeyFile(state_dir + "/keys.json", keys::persistentKeys(records));
    if (!saved) return tl::make_unexpected(saved.error());
  } else {
    spdlog::warn("admin: no state_dir configured: key changes are lost at restart");
  }
  return applyState(control, control.current->config,
                    std::make_shared<keys::KeySet>(std::move(records)));
}

namespace {

AdminResponse createKey(ControlPlane& control, const AdminRequest& request) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(request.body.empty() ? std::string("{}") : request.body).get(object)) {
    return errorResponse(400,
                         "expected a JSON object {\"id\", \"models\", \"rpm\", \"tpm\", "
                         "\"daily_tokens\"}");
  }
  keys::KeyRecord record;
  for (auto field : object) {
    const std::string_view name = field.key;
    if (name == "id") {
      std::string_view id;
      if (field.value.get(id) || id.empty() || id.size() > 128 ||
          id.find_first_of("/ \t\"") != std::string_view::npos) {
        return errorResponse(400,
                             "\"id\" must be a string of 1 to 128 characters, without "
                             "spaces, quotes or /");
      }
      record.id = std::string(id);
    } else if (name == "models") {
      simdjson::dom::array models;
      if (field.value.get(models)) return errorResponse(400, "\"models\" must be a list");
      for (auto model : models) {
        std::string_view pattern;
        const auto star = model.get(pattern) ? 0 : pattern.find('*');
        if (pattern.empty() || (star != std::string_view::npos && star != pattern.size() - 1)) {
          return errorResponse(400,
                               "\"models\" lists model names, prefix wildcards like "
                               "\"gpt-4*\" or \"*\"");
        }
        record.models.emplace_back(pattern);
      }
    } else if (name == "rpm" || name == "tpm" || name == "daily_tokens") {
      uint64_t value = 0;
      const uint64_t max = name == "daily_tokens" ? uint64_t{1} << 50 : 2000000000;
      if (field.value.get(value) || value > max) {
        return errorResponse(400, fmt::format("\"{}\" must be an integer from 0 to {}", name, max));
      }
      if (name == "rpm") record.rpm = static_cast<uint32_t>(value);
      if (name == "tpm") record.tpm = static_cast<uint32_t>(value);
      if (name == "daily_tokens") record.daily_tokens = value;
    } else {
      return errorResponse(400, fmt::format("unknown field \"{}\"", name));
    }
  }
  const auto& current = *control.current->keys;
  if (record.id.empty()) {
    unsigned char bytes[4];
    randomBytes(bytes);
    record.id = fmt::format("key-{:02x}{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2], bytes[3]);
  }
  if (current.byId(record.id) != nullptr) {
    return errorResponse(409, fmt::format("a key with id \"{}\" exists", record.id));
  }
  const auto secret = keys::newKeySecret();
  record.hash = keys::hashKey(secret);
  record.created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  std::vector<keys::KeyRecord> records(current.records().begin(), current.records().end());
  records.push_back(record);
  if (auto applied = applyKeys(control, std::move(records)); !applied) {
    spdlog::error("admin: key {} not created: {}", record.id, applied.error());
    return errorResponse(500, "the key could not be saved: " + applied.error(), "server_error");
  }
  spdlog::info("admin: key {} created", record.id);
  AdminResponse response{201, ""};
  JsonWriter json(response.body);
  writeKey(json, record, secret);
  return response;
}

AdminResponse revokeKey(ControlPlane& control, std::string_view id) {
  const auto& current = *control.current->keys;
  if (current.byId(id) == nullptr)
    return errorResponse(404, fmt::format("no key with id \"{}\"", id));
  std::vector<keys::KeyRecord> records(current.records().begin(), current.records().end());
  for (auto& record : records) {
    if (record.id == id) record.revoked = true;
  }
  if (auto applied = applyKeys(control, std::move(records)); !applied) {
    return errorResponse(500, "the revocation could not be saved: " + applied.error(),
                         "server_error");
  }
  spdlog::info("admin: key {} revoked", id);
  return AdminResponse{200, fmt::format(R"({{"revoked":"{}"}})", id)};
}

}  // namespace

void addKeyApi(admin::AdminServer& server, ControlPlane& control) {
  server.handle("GET", "/keys", [&control](const AdminRequest& request) {
    if (request.path != "/keys") return errorResponse(404, "GET /keys lists the keys");
    AdminResponse response;
    JsonWriter json(response.body);
    json.beginObject().key("keys").beginArray();
    for (const auto& key : control.current->keys->records()) writeKey(json, key);
    json.endArray().endObject();
    return response;
  });
  server.handle("POST", "/keys", [&control](const AdminRequest& request) {
    if (request.path != "/keys") return errorResponse(404, "POST /keys creates a key");
    return createKey(control, request);
  });
  server.handle("DELETE", "/keys", [&control](const AdminRequest& request) {
    const std::string_view path = request.path;
    if (!path.starts_with("/keys/") || path.size() == 6) {
      return errorResponse(404, "DELETE /keys/{id} revokes a key");
    }
    return revokeKey(control, path.substr(6));
  });
}

}  // namespace sluice::proxy
