#include "metrics/registry.h"

#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>

#include "metrics/exposition.h"

namespace sluice::metrics {
namespace {

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

// The sample names a family's lines carry.
std::vector<std::string> sampleNames(const detail::FamilyDefinition& definition) {
  if (definition.type != MetricType::kHistogram) return {definition.name};
  return {definition.name + "_bucket", definition.name + "_sum", definition.name + "_count"};
}

void validate(detail::FamilyDefinition& definition) {
  const std::string& name = definition.name;
  if (!isValidMetricName(name)) {
    throw std::invalid_argument("metric name " + quoted(name) +
                                " is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  std::set<std::string_view> seen;
  for (const auto& label : definition.label_names) {
    if (!isValidLabelName(label)) {
      throw std::invalid_argument("metric " + name + ": label name " + quoted(label) +
                                  " is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not "
                                  "start with \"__\"");
    }
    if (definition.type == MetricType::kHistogram && label == "le") {
      throw std::invalid_argument("histogram " + name +
                                  ": the label name \"le\" is reserved for bucket bounds");
    }
    if (!seen.insert(label).second) {
      throw std::invalid_argument("metric " + name + ": label name " + quoted(label) +
                                  " is given twice");
    }
  }
  auto& bounds = definition.bounds;
  if (!bounds.empty() && bounds.back() == INFINITY) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      throw std::invalid_argument("histogram " + name +
                                  ": bucket bounds must be finite (+Inf is implied)");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      throw std::invalid_argument("histogram " + name +
                                  ": bucket bounds must be strictly increasing");
    }
  }
  if (definition.max_series == 0) {
    throw std::invalid_argument("metric " + name + ": max_series must be at least 1");
  }
}

}  // namespace

struct Registry::Impl {
  // A family or a collector, in registration order.
  struct Entry {
    std::unique_ptr<detail::FamilyBase> family;
    CollectorId collector_id = 0;
    std::function<void(std::string&)> collector;
  };

  mutable std::mutex mutex;
  std::vector<Entry> entries;
  std::set<std::string, std::less<>> sample_names;  // of every family registered
  CollectorId next_collector_id = 1;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

detail::FamilyBase& Registry::add(detail::FamilyDefinition definition) {
  validate(definition);
  std::lock_guard lock(impl_->mutex);
  for (const auto& entry : impl_->entries) {
    if (entry.family == nullptr || entry.family->definition().name != definition.name) continue;
    if (entry.family->definition() == definition) return *entry.family;
    throw std::invalid_argument("metric " + definition.name +
                                " is already registered with another type, help, labels, "
                                "buckets or cap");
  }
  const auto names = sampleNames(definition);
  for (const auto& name : names) {
    if (impl_->sample_names.contains(name)) {
      throw std::invalid_argument("metric " + definition.name + ": the series name " + name +
                                  " is already used by another family");
    }
  }
  std::unique_ptr<detail::FamilyBase> family;
  switch (definition.type) {
    case MetricType::kCounter:
      family.reset(new CounterFamily(std::move(definition)));
      break;
    case MetricType::kGauge:
      family.reset(new GaugeFamily(std::move(definition)));
      break;
    case MetricType::kHistogram:
      family.reset(new HistogramFamily(std::move(definition)));
      break;
  }
  impl_->sample_names.insert(names.begin(), names.end());
  return *impl_->entries.emplace_back(Impl::Entry{std::move(family), 0, nullptr}).family;
}

CounterFamily& Registry::addCounter(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names, size_t max_series) {
  return static_cast<CounterFamily&>(add({std::string(name),
                                          std::string(help),
                                          MetricType::kCounter,
                                          std::move(label_names),
                                          {},
                                          max_series}));
}

GaugeFamily& Registry::addGauge(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names, size_t max_series) {
  return static_cast<GaugeFamily&>(add({std::string(name),
                                        std::string(help),
                                        MetricType::kGauge,
                                        std::move(label_names),
                                        {},
                                        max_series}));
}

HistogramFamily& Registry::addHistogram(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::span<const double> bounds, size_t max_series) {
  return static_cast<HistogramFamily&>(
      add({std::string(name), std::string(help), MetricType::kHistogram, std::move(label_names),
           std::vector<double>(bounds.begin(), bounds.end()), max_series}));
}

Registry::CollectorId Registry::addCollector(std::function<void(std::string& out)> append) {
  if (!append) throw std::invalid_argument("metrics collector is empty");
  std::lock_guard lock(impl_->mutex);
  const CollectorId id = impl_->next_collector_id++;
  impl_->entries.push_back(Impl::Entry{nullptr, id, std::move(append)});
  return id;
}

void Registry::removeCollector(CollectorId id) {
  std::lock_guard lock(impl_->mutex);
  std::erase_if(impl_->entries, [id](const Impl::Entry& entry) {
    return entry.family == nullptr && entry.collector_id == id;
  });
}

void Registry::appendPrometheus(std::string& out) const {
  std::lock_guard lock(impl_->mutex);
  for (const auto& entry : impl_->entries) {
    if (entry.family != nullptr) {
      entry.family->appendPrometheus(out);
    } else {
      entry.collector(out);
    }
  }
}

std::string Registry::render() const {
  std::string out;
  appendPrometheus(out);
  return out;
}

Registry& defaultRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

}  // namespace sluice::metrics
