#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace sluice::routing {

// Maps a requested model name to a route. Precedence: an exact name, then the longest
// matching prefix wildcard ("gpt-4*"), then "*"; among equals, the route listed first.
class RouteTable {
 public:
  explicit RouteTable(const std::vector<config::Route>& routes);

  // Index into the routes the table was built from, or -1 when no route takes the model.
  int find(std::string_view model) const;

  // Model names that routes list literally (no wildcard), in config order, deduplicated.
  const std::vector<std::string>& exactModels() const { return exact_models_; }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> exact_;
  std::vector<std::pair<std::string, int>> prefixes_;  // longest first
  int fallback_ = -1;
  std::vector<std::string> exact_models_;
};

}  // namespace sluice::routing
