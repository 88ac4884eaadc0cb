#include "routing/route_table.h"

#include <algorithm>

namespace sluice::routing {

RouteTable::RouteTable(const std::vector<config::Route>& routes) {
  for (int index = 0; index < static_cast<int>(routes.size()); ++index) {
    for (const auto& model : routes[index].models) {
      if (model == "*") {
        if (fallback_ < 0) fallback_ = index;
      } else if (model.back() == '*') {
        prefixes_.emplace_back(model.substr(0, model.size() - 1), index);
      } else if (exact_.emplace(model, index).second) {
        exact_models_.push_back(model);
      }
    }
  }
  std::stable_sort(prefixes_.begin(), prefixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

int RouteTable::find(std::string_view model) const {
  if (auto it = exact_.find(model); it != exact_.end()) return it->second;
  for (const auto& [prefix, index] : prefixes_) {
    if (model.starts_with(prefix)) return index;
  }
  return fallback_;
}

}  // namespace sluice::routing
