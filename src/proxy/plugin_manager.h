#pragma once

// The plugins of a running gateway: those of the config file and those deployed through the
// admin API (/wasm), their compiled modules (one per distinct bytes), and the state file that
// brings deployed modules back after a restart. Used by the control thread only; what the
// worker threads see is the immutable PluginSet it builds.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "config/config.h"
#include "wasm/plugin_set.h"

namespace sluice::proxy {

struct DeployedModule {
  std::string uuid;
  uint64_t version = 1;
  std::string sha256;
  bool from_config = false;  // config modules are listed, and changed by editing the file
  config::Plugin settings;
  std::shared_ptr<const wasm::Plugin> plugin;  // null when it could not be loaded (see error)
  std::string error;
  std::shared_ptr<const std::string> bytes;  // of API modules, kept to rebuild on a change
  std::shared_ptr<wasm::PluginStats> stats = std::make_shared<wasm::PluginStats>();
  int64_t created_unix = 0;
  int64_t updated_unix = 0;
};

// One module of a POST or PUT: its settings and, unless a PUT keeps them, its bytes.
struct ModuleChange {
  config::Plugin settings;
  std::optional<std::string> bytes;
};

// Why a change was refused, with the HTTP status the admin API answers.
struct ManagerError {
  int status = 400;  // 400 invalid, 404 no such module, 409 conflict, 500 not saved
  std::string message;
};

// A module's settings as (key, JSON value) pairs with the keys of a `plugins:` entry.
std::vector<std::pair<std::string, std::string>> pluginSettingsFields(const config::Plugin& s);
// {"key":value,...} of such pairs.
std::string joinFields(const std::vector<std::pair<std::string, std::string>>& fields);

class PluginManager {
 public:
  // `engine` is asked for only when a module is loaded: a gateway without plugins never
  // starts one.
  PluginManager(wasm::WasmEngine& (*engine)(), config::Config config);

  // Loads the config's plugins (a fail_closed one that cannot load is an error; a fail_open one
  // a warning), then the modules saved in state_dir: an unreadable state file is reported,
  // kept aside as <file>.corrupt-<time> and skipped; a module whose bytes are missing or no
  // longer load stays listed as failed (never dropped silently).
  tl::expected<void, std::string> start(std::vector<std::string>& warnings);

  // Validates and compiles every module (bytes, ABI, imports, memory limit, a canary start),
  // then saves and takes them all, or none: the error names the module and the reason.
  tl::expected<std::vector<const DeployedModule*>, ManagerError> deploy(
      std::vector<ModuleChange> modules);
  // A new version of a deployed module: new settings and/or bytes, same uuid and counters.
  tl::expected<const DeployedModule*, ManagerError> replace(const std::string& uuid,
                                                            ModuleChange change);
  tl::expected<void, ManagerError> remove(const std::string& uuid);

  const std::vector<DeployedModule>& modules() const { return modules_; }
  const DeployedModule* find(std::string_view uuid) const;
  // The set the workers run: every loaded module.
  std::shared_ptr<const wasm::PluginSet> set() const { return set_; }
  // Compilations so far (the same bytes and memory cap are compiled once).
  uint64_t compilations() const { return compilations_; }
  // The bytes of a module file under a configured module root; nullopt (whatever the reason:
  // outside the roots, missing, not a file) when the path cannot be used.
  std::optional<std::string> readModuleFile(const std::string& path) const;

 private:
  tl::expected<std::shared_ptr<const wasm::Plugin>, std::string> load(
      const config::Plugin& settings, std::string_view bytes, const DeployedModule& identity);
  tl::expected<void, std::string> checkAttach(const config::Plugin& settings) const;
  tl::expected<void, ManagerError> save(const std::vector<DeployedModule>& modules) const;
  void rebuildSet();

  wasm::WasmEngine& (*engine_)();
  config::Config config_;
  std::vector<DeployedModule> modules_;
  std::map<std::string, std::weak_ptr<const wasm::CompiledModule>> compiled_;  // sha256:pages
  uint64_t compilations_ = 0;
  std::shared_ptr<const wasm::PluginSet> set_;
};

}  // namespace sluice::proxy
