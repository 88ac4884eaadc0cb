#include "keys/key_set.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/digest.h"
#include "common/files.h"
#include "common/json_writer.h"

namespace sluice::keys {

bool KeyRecord::allows(std::string_view model) const {
  if (models.empty()) return true;
  return std::any_of(models.begin(), models.end(), [model](const std::string& pattern) {
    return config::modelPatternRank(pattern, model) > 0;
  });
}

std::string hashKey(std::string_view key) { return sha256Hex(key); }

std::string newKeySecret() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::array<unsigned char, 32> bytes{};
  randomBytes(bytes);
  std::string key = "sk-sluice-";
  uint32_t buffer = 0;
  int bits = 0;
  for (auto byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      key += kAlphabet[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) key += kAlphabet[(buffer << (6 - bits)) & 63];
  return key;
}

KeySet::KeySet(std::vector<KeyRecord> records) : records_(std::move(records)) {
  for (size_t i = 0; i < records_.size(); ++i) by_hash_.emplace(records_[i].hash, i);
}

const KeyRecord* KeySet::find(std::string_view presented) const {
  if (presented.empty() || by_hash_.empty()) return nullptr;
  auto it = by_hash_.find(hashKey(presented));
  return it == by_hash_.end() ? nullptr : &records_[it->second];
}

const KeyRecord* KeySet::byId(std::string_view id) const {
  for (const auto& record : records_) {
    if (record.id == id) return &record;
  }
  return nullptr;
}

std::vector<KeyRecord> configKeys(const std::vector<config::ClientKey>& keys) {
  std::vector<KeyRecord> records;
  for (const auto& key : keys) {
    records.push_back(KeyRecord{.id = key.id,
                                .hash = hashKey(key.key),
                                .models = key.models,
                                .rpm = key.rpm,
                                .tpm = key.tpm,
                                .daily_tokens = key.daily_tokens,
                                .from_config = true});
  }
  return records;
}

namespace {

tl::unexpected<std::string> corrupt(const std::string& path, std::string_view what) {
  return tl::make_unexpected(fmt::format("{}: {}", path, what));
}

}  // namespace

tl::expected<std::vector<KeyRecord>, std::string> loadKeyFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    if (!std::filesystem::exists(path)) return std::vector<KeyRecord>{};
    return corrupt(path, "cannot be read");
  }
  std::stringstream text;
  text << file.rdbuf();
  return parseKeyText(text.str(), path);
}

tl::expected<std::vector<KeyRecord>, std::string> parseKeyText(std::string_view text,
                                                               std::string_view origin_view) {
  const std::string path(origin_view);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto error = parser.parse(text.data(), text.size()).get(root)) {
    return corrupt(path, fmt::format("invalid JSON: {}", simdjson::error_message(error)));
  }
  simdjson::dom::array items;
  if (root["keys"].get(items)) return corrupt(path, "expected {\"keys\": [...]}");
  std::vector<KeyRecord> records;
  for (auto item : items) {
    KeyRecord record;
    std::string_view id, hash, source;
    simdjson::dom::array models;
    if (item["id"].get(id) || item["hash"].get(hash) || hash.size() != 64 ||
        item["source"].get(source) || item["models"].get(models)) {
      return corrupt(path, "a key needs id, hash (64 hex digits), source and models");
    }
    record.id = std::string(id);
    record.hash = std::string(hash);
    record.from_config = source == "config";
    for (auto model : models) {
      std::string_view pattern;
      if (model.get(pattern)) return corrupt(path, fmt::format("key {}: models", id));
      record.models.emplace_back(pattern);
    }
    uint64_t rpm = 0, tpm = 0, daily = 0;
    int64_t created = 0;
    bool revoked = false;
    if (item["rpm"].get(rpm) || item["tpm"].get(tpm) || item["daily_tokens"].get(daily) ||
        item["revoked"].get(revoked) || item["created"].get(created) || rpm > UINT32_MAX ||
        tpm > UINT32_MAX) {
      return corrupt(path, fmt::format("key {}: rpm, tpm, daily_tokens, revoked, created", id));
    }
    record.rpm = static_cast<uint32_t>(rpm);
    record.tpm = static_cast<uint32_t>(tpm);
    record.daily_tokens = daily;
    record.revoked = revoked;
    record.created_unix = created;
    records.push_back(std::move(record));
  }
  return records;
}

std::string keyText(std::span<const KeyRecord> records) {
  std::string text;
  JsonWriter json(text);
  json.beginObject().key("version").value(1).key("keys").beginArray();
  for (const auto& record : records) {
    json.beginObject();
    json.key("id").value(record.id).key("hash").value(record.hash);
    json.key("source").value(record.from_config ? "config" : "admin");
    json.key("models").beginArray();
    for (const auto& model : record.models) json.value(model);
    json.endArray();
    json.key("rpm").value(uint64_t{record.rpm}).key("tpm").value(uint64_t{record.tpm});
    json.key("daily_tokens").value(record.daily_tokens);
    json.key("revoked").value(record.revoked).key("created").value(record.created_unix);
    json.endObject();
  }
  json.endArray().endObject();
  return text;
}

bool mergeShared(std::vector<KeyRecord>& records, const std::vector<KeyRecord>& shared) {
  bool changed = false;
  for (const auto& remote : shared) {
    auto local = std::find_if(records.begin(), records.end(),
                              [&](const KeyRecord& r) { return r.id == remote.id; });
    if (local == records.end()) {
      if (!remote.from_config) {
        records.push_back(remote);
        changed = true;
      }
    } else if (local->hash == remote.hash && remote.revoked && !local->revoked) {
      local->revoked = true;
      changed = true;
    }
  }
  return changed;
}

tl::expected<void, std::string> saveKeyFile(const std::string& path,
                                            std::span<const KeyRecord> records) {
  std::string text = keyText(records);
  text += '\n';
  return writeFileAtomic(path, text);
}

std::vector<KeyRecord> mergeKeys(std::vector<KeyRecord> from_config,
                                 const std::vector<KeyRecord>& saved) {
  for (const auto& record : saved) {
    if (record.from_config) {
      for (auto& key : from_config) {
        if (key.id == record.id && key.hash == record.hash && record.revoked) key.revoked = true;
      }
    }
  }
  const size_t configured = from_config.size();
  for (const auto& record : saved) {
    if (record.from_config) continue;
    bool taken = false;
    for (size_t i = 0; i < configured; ++i) taken = taken || from_config[i].id == record.id;
    if (!taken) from_config.push_back(record);
  }
  return from_config;
}

std::vector<KeyRecord> persistentKeys(std::span<const KeyRecord> records) {
  std::vector<KeyRecord> kept;
  for (const auto& record : records) {
    if (!record.from_config || record.revoked) kept.push_back(record);
  }
  return kept;
}

}  // namespace sluice::keys
