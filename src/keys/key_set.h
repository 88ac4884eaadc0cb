#pragma once

// Client API keys (virtual keys): who may call the gateway, for which models, at what rate.
// Only a SHA-256 of each key is kept in memory and on disk; the secret itself is shown once,
// when the admin API creates it.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace sluice::keys {

struct KeyRecord {
  std::string id;
  std::string hash;                 // hex SHA-256 of the key
  std::vector<std::string> models;  // allowed patterns; empty: all
  uint32_t rpm = 0;                 // 0: no limit
  uint32_t tpm = 0;
  uint64_t daily_tokens = 0;
  bool revoked = false;
  bool from_config = false;   // defined in the config file (else created by the admin API)
  int64_t created_unix = 0;  // seconds

  bool allows(std::string_view model) const;
};

// Hex SHA-256 of `key`.
std::string hashKey(std::string_view key);
// A new random key: "sk-sluice-" + 43 characters (256 bits, base64url).
std::string newKeySecret();

// An immutable set of keys, looked up by the hash of the presented key.
class KeySet {
 public:
  KeySet() = default;
  explicit KeySet(std::vector<KeyRecord> records);

  // The key presented by a client, or null when unknown (revoked keys are returned: the caller
  // says why it refuses).
  const KeyRecord* find(std::string_view presented) const;
  const KeyRecord* byId(std::string_view id) const;
  // Whether requests need a key: some key is defined (even if all are revoked).
  bool enabled() const { return !records_.empty(); }
  std::span<const KeyRecord> records() const { return records_; }

 private:
  std::vector<KeyRecord> records_;
  std::unordered_map<std::string, size_t> by_hash_;
};

// The config's keys, hashed.
std::vector<KeyRecord> configKeys(const std::vector<config::ClientKey>& keys);

// Keys persisted in `state_dir`/keys.json: those the admin API created and the revocations of
// config keys. A missing file is empty; a corrupt one is an error naming the problem.
tl::expected<std::vector<KeyRecord>, std::string> loadKeyFile(const std::string& path);
// Writes atomically (temporary file, fsync, rename, fsync of the directory).
tl::expected<void, std::string> saveKeyFile(const std::string& path,
                                            std::span<const KeyRecord> records);

// The state file's text for `records`, and back (`origin` names the source in errors). Also the
// form in which replicas share keys through Redis.
std::string keyText(std::span<const KeyRecord> records);
tl::expected<std::vector<KeyRecord>, std::string> parseKeyText(std::string_view text,
                                                               std::string_view origin);

// `records` with what another replica shared: revocations of keys known here (same id and
// hash), and keys created there. Returns whether anything changed.
bool mergeShared(std::vector<KeyRecord>& records, const std::vector<KeyRecord>& shared);

// Config keys with the saved records applied: a saved revocation applies to the config key with
// the same id and hash (a rotated key is not revoked by its predecessor's revocation); saved
// admin keys follow, unless a config key took their id.
std::vector<KeyRecord> mergeKeys(std::vector<KeyRecord> from_config,
                                 const std::vector<KeyRecord>& saved);

// What the state file should hold: admin keys and revoked config keys.
std::vector<KeyRecord> persistentKeys(std::span<const KeyRecord> records);

}  // namespace sluice::keys
