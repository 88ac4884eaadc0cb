#include "wasm/plugin_stats.h"

#include <algorithm>

namespace sluice::wasm {

PluginStats::Shard& PluginStats::shard() {
  static std::atomic<size_t> next{0};
  thread_local const size_t index = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shards_[index];
}

PluginStats::Totals PluginStats::totals() const {
  Totals t;
  for (const auto& s : shards_) {
    auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    t.calls += load(s.calls);
    t.errors += load(s.errors);
    t.traps += load(s.traps);
    t.deadline_misses += load(s.deadline_misses);
    t.rejects += load(s.rejects);
    t.modifications += load(s.modifications);
    t.total_ns += load(s.total_ns);
    t.max_ns = std::max(t.max_ns, load(s.max_ns));
    for (size_t i = 0; i < t.buckets.size(); ++i) t.buckets[i] += load(s.buckets[i]);
  }
  return t;
}

uint64_t PluginStats::Totals::quantileNs(double q) const {
  uint64_t count = 0;
  for (auto n : buckets) count += n;
  if (count == 0) return 0;
  const double rank = q * static_cast<double>(count);
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0 || static_cast<double>(seen + buckets[i]) < rank) {
      seen += buckets[i];
      continue;
    }
    const double lower = i == 0 ? 0.0 : static_cast<double>(kCallbackBucketsNs[i - 1]);
    // The open last bucket ends at the largest time seen.
    const double upper =
        i < kCallbackBucketsNs.size()
            ? static_cast<double>(kCallbackBucketsNs[i])
            : static_cast<double>(std::max<uint64_t>(max_ns, kCallbackBucketsNs.back()));
    const double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[i]);
    return std::min<uint64_t>(static_cast<uint64_t>(lower + within * (upper - lower)),
                              std::max(max_ns, uint64_t{1}));
  }
  return max_ns;
}

}  // namespace sluice::wasm
