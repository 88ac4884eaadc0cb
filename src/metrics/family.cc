#include "metrics/family.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "metrics/exposition.h"

namespace sluice::metrics {
namespace {

constexpr std::string_view kOther = "other";
constexpr size_t kInitialSlots = 16;

uint64_t mix(uint64_t x) {
  // splitmix64's finalizer: every input bit moves the low bits a probe starts from.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

template <class Strings>
uint64_t hashValues(const Strings& values) {
  uint64_t hash = values.size();
  for (std::string_view value : values) hash = mix(hash ^ std::hash<std::string_view>{}(value));
  return hash;
}

template <class Strings>
bool sameValues(const std::vector<std::string>& stored, const Strings& values) {
  if (stored.size() != values.size()) return false;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (std::string_view(stored[i]) != std::string_view(values[i])) return false;
  }
  return true;
}

std::string_view typeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void appendSample(std::string& out, std::string_view name, std::string_view suffix,
                  std::string_view labels) {
  out += name;
  out += suffix;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
}

void appendSeries(std::string& out, std::string_view name, std::string_view labels,
                  const Counter& counter, std::span<const std::string>) {
  appendSample(out, name, "", labels);
  appendNumber(out, counter.value());
  out += '\n';
}

void appendSeries(std::string& out, std::string_view name, std::string_view labels,
                  const Gauge& gauge, std::span<const std::string>) {
  appendSample(out, name, "", labels);
  appendNumber(out, gauge.value());
  out += '\n';
}

void appendSeries(std::string& out, std::string_view name, std::string_view labels,
                  const Histogram& histogram, std::span<const std::string> le) {
  const auto snapshot = histogram.snapshot();
  for (size_t b = 0; b < snapshot.cumulative.size(); ++b) {
    out += name;
    out += "_bucket{";
    if (!labels.empty()) {
      out += labels;
      out += ',';
    }
    out += "le=\"";
    out += le[b];
    out += "\"} ";
    appendNumber(out, snapshot.cumulative[b]);
    out += '\n';
  }
  appendSample(out, name, "_sum", labels);
  appendNumber(out, snapshot.sum);
  out += '\n';
  appendSample(out, name, "_count", labels);
  appendNumber(out, snapshot.count);
  out += '\n';
}

}  // namespace

template <class Metric>
struct Family<Metric>::Impl {
  // A label set as given to `with`, and its series. Several entries may share a series: a set
  // with invalid UTF-8 and its repaired form.
  struct Entry {
    uint64_t hash = 0;
    std::vector<std::string> values;
    Metric* metric = nullptr;
  };

  // Open addressing with linear probing, at most half full. A slot goes from null to an entry
  // once and never changes again, so readers probe without a lock; growing builds a new table,
  // publishes it, and keeps the old one for readers still probing it (a miss there sends them
  // to the locked path, which looks again in the current table).
  struct Table {
    explicit Table(size_t capacity)
        : mask(capacity - 1), slots(std::make_unique<std::atomic<const Entry*>[]>(capacity)) {}

    template <class Strings>
    const Entry* find(uint64_t hash, const Strings& values) const {
      for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const Entry* entry = slots[i].load(std::memory_order_acquire);
        if (entry == nullptr) return nullptr;
        if (entry->hash == hash && sameValues(entry->values, values)) return entry;
      }
    }

    void place(const Entry* entry) {
      size_t i = entry->hash & mask;
      while (slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & mask;
      slots[i].store(entry, std::memory_order_release);
    }

    size_t mask;
    std::unique_ptr<std::atomic<const Entry*>[]> slots;
  };

  struct Series {
    std::string labels;  // rendered: name="value",... escaped and valid UTF-8
    std::unique_ptr<Metric> metric;
  };

  // Adds an entry; the caller holds `mutex`.
  void insert(uint64_t hash, std::vector<std::string> values, Metric* metric) {
    const Entry& entry = entries.emplace_back(Entry{hash, std::move(values), metric});
    const Table* current = tables.back().get();
    if (entries.size() * 2 <= current->mask + 1) {
      tables.back()->place(&entry);
      return;
    }
    auto grown = std::make_unique<Table>((current->mask + 1) * 2);
    for (const Entry& e : entries) grown->place(&e);
    table.store(grown.get(), std::memory_order_release);
    tables.push_back(std::move(grown));
  }

  std::atomic<const Table*> table{nullptr};
  // Taken to create a series and to render; never to find or count.
  mutable std::mutex mutex;
  std::vector<std::unique_ptr<Table>> tables;  // the current one last
  std::deque<Entry> entries;                   // a deque: entries never move
  std::vector<Series> series;                  // in creation order
  Metric* other = nullptr;                     // the overflow series, once needed
  std::vector<std::string> le;                 // histograms: each bound rendered, then "+Inf"
};

template <class Metric>
Family<Metric>::Family(detail::FamilyDefinition definition)
    : FamilyBase(std::move(definition)), impl_(std::make_unique<Impl>()) {
  impl_->tables.push_back(std::make_unique<typename Impl::Table>(kInitialSlots));
  impl_->table.store(impl_->tables.back().get(), std::memory_order_release);
  for (double bound : definition_.bounds) {
    appendNumber(impl_->le.emplace_back(), bound);
  }
  impl_->le.emplace_back("+Inf");
  // A family without labels has its one series from the start, so that it shows 0 at once.
  if (definition_.label_names.empty()) with({});
}

template <class Metric>
Family<Metric>::~Family() = default;

template <class Metric>
Metric* Family<Metric>::with(std::span<const std::string_view> values) {
  if (values.size() != definition_.label_names.size()) {
    std::string names;
    for (const auto& name : definition_.label_names) names += (names.empty() ? "" : ", ") + name;
    throw std::invalid_argument("metric " + definition_.name + " takes " +
                                std::to_string(definition_.label_names.size()) + " label values (" +
                                names + "), not " + std::to_string(values.size()));
  }
  const uint64_t hash = hashValues(values);
  if (const auto* entry = impl_->table.load(std::memory_order_acquire)->find(hash, values)) {
    return entry->metric;
  }
  return create(hash, values);
}

template <class Metric>
Metric* Family<Metric>::create(uint64_t hash, std::span<const std::string_view> values) {
  std::lock_guard lock(impl_->mutex);
  if (const auto* entry = impl_->tables.back()->find(hash, values)) return entry->metric;
  if (impl_->entries.size() >= definition_.max_series) return overflowSeries();

  std::vector<std::string> given(values.begin(), values.end());
  std::vector<std::string> valid;
  valid.reserve(given.size());
  for (const auto& value : given) valid.push_back(toValidUtf8(value));
  Metric* metric;
  if (valid == given) {
    metric = newSeries(valid);
  } else {
    // Repaired values may equal another set's: both are one series, or the scrape would carry
    // the same series twice.
    const uint64_t valid_hash = hashValues(valid);
    if (const auto* entry = impl_->tables.back()->find(valid_hash, valid)) {
      metric = entry->metric;
    } else {
      metric = newSeries(valid);
      impl_->insert(valid_hash, valid, metric);
    }
  }
  impl_->insert(hash, std::move(given), metric);
  return metric;
}

template <class Metric>
Metric* Family<Metric>::newSeries(std::span<const std::string> values) {
  std::string labels;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) labels += ',';
    labels += definition_.label_names[i];
    labels += "=\"";
    appendLabelValue(labels, values[i]);
    labels += '"';
  }
  std::unique_ptr<Metric> metric;
  if constexpr (std::is_same_v<Metric, Histogram>) {
    metric.reset(new Histogram(definition_.bounds));
  } else {
    metric.reset(new Metric());
  }
  return impl_->series.emplace_back(typename Impl::Series{std::move(labels), std::move(metric)})
      .metric.get();
}

template <class Metric>
Metric* Family<Metric>::overflowSeries() {
  if (impl_->other != nullptr) return impl_->other;
  spdlog::warn(
      "metric {}: more than {} label sets; further ones are counted under label values \"other\"",
      definition_.name, definition_.max_series);
  const std::vector<std::string> other(definition_.label_names.size(), std::string(kOther));
  const uint64_t hash = hashValues(other);
  if (const auto* entry = impl_->tables.back()->find(hash, other)) {
    impl_->other = entry->metric;
  } else {
    impl_->other = newSeries(other);
    impl_->insert(hash, other, impl_->other);
  }
  return impl_->other;
}

template <class Metric>
size_t Family<Metric>::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->series.size();
}

template <class Metric>
void Family<Metric>::appendPrometheus(std::string& out) const {
  std::lock_guard lock(impl_->mutex);
  if (impl_->series.empty()) return;
  const std::string& name = definition_.name;
  if (!definition_.help.empty()) {
    out += "# HELP ";
    out += name;
    out += ' ';
    appendHelp(out, definition_.help);
    out += '\n';
  }
  out += "# TYPE ";
  out += name;
  out += ' ';
  out += typeName(definition_.type);
  out += '\n';
  for (const auto& series : impl_->series) {
    appendSeries(out, name, series.labels, *series.metric, impl_->le);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace sluice::metrics
