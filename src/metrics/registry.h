#pragma once

// Metrics for the gateway's Prometheus /metrics: counter, gauge and histogram families
// registered once (at start, like config), series looked up once per label set and cached,
// counted from any thread without a lock, rendered as text exposition 0.0.4 on scrape.
//
//   auto& requests = registry.addCounter("sluice_requests_total", "Requests answered.",
//                                        {"route", "model", "provider", "status"});
//   Counter* ok = requests.with({"chat", "gpt-4o", "openai", "200"});  // cache this
//   ok->inc();

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/family.h"

namespace sluice::metrics {

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Register a family; it lives as long as the registry. Registering the same definition again
  // (name, type, help, labels, buckets, cap) returns the family already there, so that two
  // parts, or two gateways in one test, may each register what they use. Throws
  // std::invalid_argument for an invalid metric or label name ("le" is reserved for histogram
  // buckets), repeated label names, invalid bounds, a max_series of 0, or a name that another
  // family's series already use.
  CounterFamily& addCounter(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {},
                            size_t max_series = kDefaultMaxSeries);
  GaugeFamily& addGauge(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {},
                        size_t max_series = kDefaultMaxSeries);
  // `bounds`: upper bounds of the buckets, strictly increasing and finite; a last +Inf may be
  // given and is implied anyway.
  HistogramFamily& addHistogram(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names,
                                std::span<const double> bounds,
                                size_t max_series = kDefaultMaxSeries);

  // Series the caller renders itself, appended to the exposition at this point of the
  // registration order. `append` runs on the scraping thread under the registry's lock: it
  // must not call into the registry, and after removeCollector returns it never runs again.
  using CollectorId = uint64_t;
  CollectorId addCollector(std::function<void(std::string& out)> append);
  void removeCollector(CollectorId id);

  // The whole exposition: families in registration order, their series in creation order.
  void appendPrometheus(std::string& out) const;
  std::string render() const;

 private:
  detail::FamilyBase& add(detail::FamilyDefinition definition);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process-wide registry that /metrics serves. Never destroyed, so threads still counting
// while the process exits do not touch a dead object.
Registry& defaultRegistry();

}  // namespace sluice::metrics
