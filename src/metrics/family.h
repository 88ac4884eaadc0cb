#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/counter.h"
#include "metrics/gauge.h"
#include "metrics/histogram.h"

namespace sluice::metrics {

// Distinct label sets a family takes before it folds the rest into one series (see `with`).
inline constexpr size_t kDefaultMaxSeries = 10'000;

enum class MetricType { kCounter, kGauge, kHistogram };

namespace detail {

// A family as registered: fixed for its life.
struct FamilyDefinition {
  std::string name;
  std::string help;
  MetricType type;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms: strictly increasing, finite (+Inf is implied)
  size_t max_series;

  bool operator==(const FamilyDefinition&) const = default;
};

// What the registry keeps of every family, whatever its type.
class FamilyBase {
 public:
  explicit FamilyBase(FamilyDefinition definition) : definition_(std::move(definition)) {}
  virtual ~FamilyBase() = default;

  const FamilyDefinition& definition() const { return definition_; }
  // # HELP, # TYPE and every series in creation order; nothing while the family has no series.
  virtual void appendPrometheus(std::string& out) const = 0;

 protected:
  const FamilyDefinition definition_;
};

}  // namespace detail

// The series of one metric name, one per set of label values; the label names are fixed at
// registration. A Registry creates and owns it.
template <class Metric>
class Family final : public detail::FamilyBase {
 public:
  ~Family() override;

  // The series of these label values, given in the order of the label names, created on first
  // use. The pointer stays valid as long as the family: callers look it up once and cache it.
  // Finding an existing series takes no lock (a hash, then a probe of a table that entries are
  // only ever added to); creating one takes the family's mutex.
  // Cardinality guard: past `max_series` distinct label sets, every new one is counted in a
  // single series whose label values are all "other" (and a warning is logged once), so that
  // clients sending endless model names or key ids cannot grow memory or the scrape unbounded.
  // The cap counts label sets as given (a set with invalid UTF-8 counts twice: as given and
  // repaired); the "other" series comes on top of it. Past the cap, each call with a set not
  // seen before takes the mutex to find that out: callers should pass values they control
  // (configured model names, key ids) rather than raw client input where they can.
  // Label values need not be valid UTF-8: invalid bytes are rendered as U+FFFD.
  // Throws std::invalid_argument when the number of values is not the number of label names:
  // a programming error, found by the first test that reaches the call.
  Metric* with(std::span<const std::string_view> values);
  Metric* with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }

  // Series created so far, the "other" one included.
  size_t size() const;

  void appendPrometheus(std::string& out) const override;

 private:
  friend class Registry;
  explicit Family(detail::FamilyDefinition definition);

  Metric* create(uint64_t hash, std::span<const std::string_view> values);
  Metric* newSeries(std::span<const std::string> values);
  Metric* overflowSeries();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace sluice::metrics
