#include "wasm/shared_state.h"

#include <fmt/format.h>

namespace sluice::wasm {

std::optional<SharedData::Value> SharedData::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

abi::Status SharedData::set(const std::string& key, std::string value, uint32_t cas) {
  std::lock_guard lock(mutex_);
  auto it = values_.find(key);
  if (cas != 0 && (it == values_.end() || it->second.cas != cas)) return abi::Status::kCasMismatch;
  if (next_cas_ == 0) next_cas_ = 1;  // 0 means "no cas" to the guest
  auto& entry = values_[key];
  entry.bytes = std::move(value);
  entry.cas = next_cas_++;
  return abi::Status::kOk;
}

uint32_t SharedQueues::registerQueue(const std::string& vm_id, const std::string& name,
                                     std::function<void(uint32_t)> notify) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = ids_.try_emplace({vm_id, name}, next_id_);
  if (inserted) ++next_id_;
  queues_[it->second].notify = std::move(notify);
  return it->second;
}

std::optional<uint32_t> SharedQueues::resolve(const std::string& vm_id,
                                              const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = ids_.find({vm_id, name});
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

abi::Status SharedQueues::enqueue(uint32_t id, std::string value) {
  std::function<void(uint32_t)> notify;
  {
    std::lock_guard lock(mutex_);
    auto it = queues_.find(id);
    if (it == queues_.end()) return abi::Status::kNotFound;
    if (it->second.items.size() >= 10000) return abi::Status::kInternalFailure;  // bounded
    it->second.items.push_back(std::move(value));
    notify = it->second.notify;
  }
  if (notify) notify(id);
  return abi::Status::kOk;
}

abi::Status SharedQueues::dequeue(uint32_t id, std::string& value) {
  std::lock_guard lock(mutex_);
  auto it = queues_.find(id);
  if (it == queues_.end()) return abi::Status::kNotFound;
  if (it->second.items.empty()) return abi::Status::kEmpty;
  value = std::move(it->second.items.front());
  it->second.items.pop_front();
  return abi::Status::kOk;
}

std::optional<uint32_t> PluginMetrics::define(abi::MetricType type, const std::string& name) {
  if (type != abi::MetricType::kCounter && type != abi::MetricType::kGauge &&
      type != abi::MetricType::kHistogram) {
    return std::nullopt;
  }
  std::lock_guard lock(mutex_);
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  if (metrics_.size() >= 10000) return std::nullopt;
  auto& metric = metrics_.emplace_back();
  metric.type = type;
  metric.name = name;
  const auto id = static_cast<uint32_t>(metrics_.size());
  by_name_.emplace(name, id);
  return id;
}

abi::Status PluginMetrics::increment(uint32_t id, int64_t delta) {
  std::lock_guard lock(mutex_);  // guards the deque's size, not the value
  if (id == 0 || id > metrics_.size()) return abi::Status::kNotFound;
  auto& metric = metrics_[id - 1];
  if (metric.type == abi::MetricType::kHistogram) return abi::Status::kBadArgument;
  metric.value.fetch_add(delta, std::memory_order_relaxed);
  return abi::Status::kOk;
}

abi::Status PluginMetrics::record(uint32_t id, uint64_t value) {
  std::lock_guard lock(mutex_);
  if (id == 0 || id > metrics_.size()) return abi::Status::kNotFound;
  auto& metric = metrics_[id - 1];
  if (metric.type == abi::MetricType::kHistogram) {
    metric.value.fetch_add(static_cast<int64_t>(value), std::memory_order_relaxed);
    metric.count.fetch_add(1, std::memory_order_relaxed);
  } else {
    metric.value.store(static_cast<int64_t>(value), std::memory_order_relaxed);
  }
  return abi::Status::kOk;
}

std::optional<uint64_t> PluginMetrics::get(uint32_t id) const {
  std::lock_guard lock(mutex_);
  if (id == 0 || id > metrics_.size()) return std::nullopt;
  return static_cast<uint64_t>(metrics_[id - 1].value.load(std::memory_order_relaxed));
}

void PluginMetrics::appendPrometheus(std::string& out) const {
  std::lock_guard lock(mutex_);
  for (const auto& metric : metrics_) {
    std::string name = "sluice_plugin_";
    for (char c : metric.name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      name += ok ? c : '_';
    }
    const auto value = metric.value.load(std::memory_order_relaxed);
    switch (metric.type) {
      case abi::MetricType::kCounter:
        fmt::format_to(std::back_inserter(out), "# TYPE {} counter\n{} {}\n", name, name, value);
        break;
      case abi::MetricType::kGauge:
        fmt::format_to(std::back_inserter(out), "# TYPE {} gauge\n{} {}\n", name, name, value);
        break;
      case abi::MetricType::kHistogram:
        fmt::format_to(std::back_inserter(out), "# TYPE {} summary\n{}_sum {}\n{}_count {}\n", name,
                       name, value, name, metric.count.load(std::memory_order_relaxed));
        break;
    }
  }
}

SharedState& sharedState() {
  static SharedState state;
  return state;
}

}  // namespace sluice::wasm
