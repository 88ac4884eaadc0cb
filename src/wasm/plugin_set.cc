#include "wasm/plugin_set.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <numeric>

namespace sluice::wasm {

tl::expected<std::shared_ptr<const PluginSet>, std::string> PluginSet::load(
    const config::Config& config, WasmEngine& engine, std::vector<std::string>& warnings) {
  auto set = std::make_shared<PluginSet>();
  std::vector<const config::Plugin*> loaded;
  for (const auto& settings : config.plugins) {
    auto problem = [&](const std::string& what) -> std::optional<std::string> {
      auto message = fmt::format("plugin {} ({}): {}", settings.name, settings.path, what);
      if (settings.failure_policy == config::FailurePolicy::kFailClosed) {
        return message + " (failure_policy fail_closed: the gateway does not start without it)";
      }
      warnings.push_back(message + " (failure_policy fail_open: skipped)");
      return std::nullopt;
    };
    std::ifstream file(settings.path, std::ios::binary);
    if (!file) {
      if (auto error = problem("cannot read the file")) return tl::make_unexpected(*error);
      continue;
    }
    std::vector<uint8_t> bytes;
    file.seekg(0, std::ios::end);
    const auto size = static_cast<uint64_t>(file.tellg());
    file.seekg(0);
    if (size > settings.limits.max_module_bytes) {
      auto what = fmt::format("the module has {} bytes, more than limits.max_module_bytes ({})",
                              size, settings.limits.max_module_bytes);
      if (auto error = problem(what)) return tl::make_unexpected(*error);
      continue;
    }
    bytes.resize(size);
    file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    auto plugin = Plugin::load(engine, settings, bytes);
    if (!plugin) {
      if (auto error = problem(plugin.error())) return tl::make_unexpected(*error);
      continue;
    }
    // A canary instance proves the module starts and accepts its configuration. What it logs
    // at warn or above is kept: a plugin that refuses its configuration usually says why.
    std::string complaint;
    ThreadHooks hooks;
    hooks.log = [&complaint](abi::LogLevel level, std::string_view, std::string_view message) {
      if (level >= abi::LogLevel::kWarn) complaint.assign(message.substr(0, 512));
    };
    PluginInstance canary(*plugin, hooks);
    if (auto started = canary.start(); !started) {
      auto what = complaint.empty() ? started.error() : started.error() + ": " + complaint;
      if (auto error = problem(what)) return tl::make_unexpected(*error);
      continue;
    }
    set->plugins_.push_back(std::move(*plugin));
    loaded.push_back(&settings);
  }

  std::vector<size_t> order(set->plugins_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return loaded[a]->order < loaded[b]->order; });
  for (size_t route = 0; route <= config.routes.size(); ++route) {
    auto& chain = set->chains_.emplace_back();
    for (size_t index : order) {
      const auto& settings = *loaded[index];
      const bool attached =
          settings.global || (route < config.routes.size() &&
                              std::find(settings.routes.begin(), settings.routes.end(),
                                        config.routes[route].name) != settings.routes.end());
      if (attached) chain.push_back(index);
    }
  }
  return set;
}

ThreadPlugins::ThreadPlugins(std::shared_ptr<const PluginSet> set, ThreadHooks hooks)
    : set_(std::move(set)) {
  for (const auto& plugin : set_->plugins()) {
    auto instance = std::make_unique<PluginInstance>(plugin, hooks);
    if (auto started = instance->start(); !started && hooks.log) {
      hooks.log(abi::LogLevel::kError, plugin->settings().name,
                "starting the instance failed: " + started.error());
    }
    instances_.push_back(std::move(instance));
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
