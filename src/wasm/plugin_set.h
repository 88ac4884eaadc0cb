#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "config/config.h"
#include "wasm/plugin.h"

namespace sluice::wasm {

// The plugins of one configuration, compiled once per process and shared by every thread.
class PluginSet {
 public:
  // Reads and compiles every plugin. A plugin that cannot load is an error when its policy is
  // fail_closed (the gateway must not run without it) and a warning when it is fail_open.
  static tl::expected<std::shared_ptr<const PluginSet>, std::string> load(
      const config::Config& config, WasmEngine& engine, std::vector<std::string>& warnings);

  const std::vector<std::shared_ptr<const Plugin>>& plugins() const { return plugins_; }
  // For each route (by index), then for requests without a route (last): the indexes into
  // plugins() that apply, in execution order.
  const std::vector<std::vector<size_t>>& chains() const { return chains_; }

 private:
  std::vector<std::shared_ptr<const Plugin>> plugins_;
  std::vector<std::vector<size_t>> chains_;
};

// One thread's instances of a PluginSet.
class ThreadPlugins {
 public:
  ThreadPlugins(std::shared_ptr<const PluginSet> set, ThreadHooks hooks);

  // The chain for a route index, or for requests without a route (-1).
  std::span<PluginInstance* const> chainFor(int route_index) const;
  void tick(std::chrono::steady_clock::time_point now);
  const std::vector<std::unique_ptr<PluginInstance>>& instances() const { return instances_; }

 private:
  std::shared_ptr<const PluginSet> set_;
  std::vector<std::unique_ptr<PluginInstance>> instances_;
  std::vector<std::vector<PluginInstance*>> chains_;
};

}  // namespace sluice::wasm
