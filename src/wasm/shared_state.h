#pragma once

// Process-wide state that proxy-wasm lets every instance of every plugin share: key/value
// data with compare-and-swap, message queues, and metrics. Plugins reach it only through
// explicit host calls, so a mutex here never sits on a request that uses no such call.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "wasm/abi.h"

namespace sluice::wasm {

class SharedData {
 public:
  struct Value {
    std::string bytes;
    uint32_t cas = 0;
  };
  std::optional<Value> get(const std::string& key) const;
  // cas 0 writes unconditionally; otherwise the write happens only if it matches.
  abi::Status set(const std::string& key, std::string value, uint32_t cas);

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Value> values_;
  uint32_t next_cas_ = 1;
};

class SharedQueues {
 public:
  // `notify` runs (from any thread) when something is enqueued; it must post to its owner.
  uint32_t registerQueue(const std::string& vm_id, const std::string& name,
                         std::function<void(uint32_t)> notify);
  std::optional<uint32_t> resolve(const std::string& vm_id, const std::string& name) const;
  abi::Status enqueue(uint32_t id, std::string value);
  // kEmpty when the queue has nothing, kNotFound when it does not exist.
  abi::Status dequeue(uint32_t id, std::string& value);

 private:
  struct Queue {
    std::deque<std::string> items;
    std::function<void(uint32_t)> notify;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, uint32_t> ids_;
  std::unordered_map<uint32_t, Queue> queues_;
  uint32_t next_id_ = 1;
};

// Metrics defined by plugins; values are atomics, the registry grows under a mutex.
class PluginMetrics {
 public:
  std::optional<uint32_t> define(abi::MetricType type, const std::string& name);
  abi::Status increment(uint32_t id, int64_t delta);
  abi::Status record(uint32_t id, uint64_t value);
  std::optional<uint64_t> get(uint32_t id) const;
  // Prometheus text exposition of every plugin metric (names prefixed "sluice_plugin_").
  void appendPrometheus(std::string& out) const;

 private:
  struct Metric {
    abi::MetricType type;
    std::string name;
    std::atomic<int64_t> value{0};
    std::atomic<uint64_t> count{0};  // histograms: observations
  };
  mutable std::mutex mutex_;
  std::deque<Metric> metrics_;  // stable addresses; id = index + 1
  std::unordered_map<std::string, uint32_t> by_name_;
};

struct SharedState {
  SharedData data;
  SharedQueues queues;
  PluginMetrics metrics;
};

// The one instance of the process.
SharedState& sharedState();

}  // namespace sluice::wasm
