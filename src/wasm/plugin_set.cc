#include "wasm/plugin_set.h"

#include <algorithm>
#include <numeric>

namespace sluice::wasm {

tl::expected<void, std::string> canaryStart(const std::shared_ptr<const Plugin>& plugin) {
  // What the canary logs at warn or above is kept: a plugin that refuses its configuration
  // usually says why.
  std::string complaint;
  ThreadHooks hooks;
  hooks.log = [&complaint](abi::LogLevel level, std::string_view, std::string_view message) {
    if (level >= abi::LogLevel::kWarn) complaint.assign(message.substr(0, 512));
  };
  PluginInstance canary(plugin, hooks);
  auto started = canary.start();
  if (!started && !complaint.empty()) {
    return tl::make_unexpected(started.error() + ": " + complaint);
  }
  return started;
}

std::shared_ptr<const PluginSet> PluginSet::build(
    std::vector<std::shared_ptr<const Plugin>> plugins, const std::vector<config::Route>& routes) {
  auto set = std::make_shared<PluginSet>();
  set->plugins_ = std::move(plugins);
  const auto& all = set->plugins_;
  std::vector<size_t> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return all[a]->settings().order < all[b]->settings().order;
  });
  for (size_t route = 0; route <= routes.size(); ++route) {
    auto& chain = set->chains_.emplace_back();
    for (size_t index : order) {
      const auto& settings = all[index]->settings();
      const bool attached =
          settings.global ||
          (route < routes.size() && std::find(settings.routes.begin(), settings.routes.end(),
                                              routes[route].name) != settings.routes.end());
      if (attached) chain.push_back(index);
    }
  }
  return set;
}

ThreadPlugins::ThreadPlugins(std::shared_ptr<const PluginSet> set, ThreadHooks hooks,
                             const ThreadPlugins* previous)
    : set_(std::move(set)) {
  for (const auto& plugin : set_->plugins()) {
    std::shared_ptr<PluginInstance> kept;
    if (previous != nullptr) {
      for (const auto& instance : previous->instances_) {
        if (&instance->plugin() == plugin.get()) kept = instance;
      }
    }
    if (!kept) {
      kept = std::make_shared<PluginInstance>(plugin, hooks);
      if (auto started = kept->start(); !started) {
        plugin->stats().startFailure();
        if (hooks.log) {
          hooks.log(abi::LogLevel::kError, plugin->settings().name,
                    "starting the instance failed: " + started.error());
        }
      }
    }
    instances_.push_back(std::move(kept));
  }
  for (const auto& indexes : set_->chains()) {
    auto& chain = chains_.emplace_back();
    for (size_t index : indexes) chain.push_back(instances_[index].get());
  }
}

std::span<PluginInstance* const> ThreadPlugins::chainFor(int route_index) const {
  if (chains_.empty()) return {};
  if (route_index < 0 || static_cast<size_t>(route_index) + 1 >= chains_.size()) {
    return chains_.back();
  }
  return chains_[route_index];
}

void ThreadPlugins::tick(std::chrono::steady_clock::time_point now) {
  for (auto& instance : instances_) instance->tickIfDue(now);
}

}  // namespace sluice::wasm
