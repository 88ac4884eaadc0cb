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

// Starts a throw-away instance of `plugin` on the calling thread: proves that the module
// instantiates with the host's functions, starts, and accepts its configuration.
tl::expected<void, std::string> canaryStart(const std::shared_ptr<const Plugin>& plugin);

// The plugins in effect at one time, compiled once per process and shared by every thread;
// immutable (a change builds a new set).
class PluginSet {
 public:
  // Each plugin goes into the chain of every route it is attached to (all, when global), by
  // `order`, ties keeping the order of `plugins`.
  static std::shared_ptr<const PluginSet> build(std::vector<std::shared_ptr<const Plugin>> plugins,
                                                const std::vector<config::Route>& routes);

  const std::vector<std::shared_ptr<const Plugin>>& plugins() const { return plugins_; }
  // For each route (by index), then for requests without a route (last): the indexes into
  // plugins() that apply, in execution order.
  const std::vector<std::vector<size_t>>& chains() const { return chains_; }

 private:
  std::vector<std::shared_ptr<const Plugin>> plugins_;
  std::vector<std::vector<size_t>> chains_;
};

// One thread's instances of a PluginSet. A request holds the ThreadPlugins it started with
// for its whole life, so that it never mixes two sets.
class ThreadPlugins {
 public:
  // Instances of plugins that `previous` (this thread's former set) already runs are shared
  // with it, state included; the others are started here.
  ThreadPlugins(std::shared_ptr<const PluginSet> set, ThreadHooks hooks,
                const ThreadPlugins* previous = nullptr);

  const PluginSet& set() const { return *set_; }
  // The chain for a route index, or for requests without a route (-1).
  std::span<PluginInstance* const> chainFor(int route_index) const;
  void tick(std::chrono::steady_clock::time_point now);
  const std::vector<std::shared_ptr<PluginInstance>>& instances() const { return instances_; }

 private:
  std::shared_ptr<const PluginSet> set_;
  std::vector<std::shared_ptr<PluginInstance>> instances_;
  std::vector<std::vector<PluginInstance*>> chains_;
};

}  // namespace sluice::wasm
