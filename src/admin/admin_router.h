#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_handler.h"

namespace sluice::admin {

// Picks the handler of an admin request. The longest registered prefix that matches the path
// names the resource, then the method picks among that prefix's handlers. A prefix matches at a
// segment boundary: "/wasm" matches "/wasm" and "/wasm/abc" but not "/wasmer"; "/wasm/" matches
// "/wasm/abc" only; "/" matches every path.
class AdminRouter {
 public:
  // A second handler for the same method and prefix replaces the first. Throws
  // std::invalid_argument for an empty method or handler, or a prefix not starting with '/'.
  void add(std::string method, std::string path_prefix, AdminHandler handler);

  struct Match {
    const AdminHandler* handler = nullptr;
    // Without a handler: empty when no prefix matched (404), else the methods registered for
    // the longest matching prefix, comma-separated, for the Allow header of a 405.
    std::string allow;
  };
  Match find(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::string prefix;
    AdminHandler handler;
  };

  static bool prefixMatches(std::string_view prefix, std::string_view path);

  std::vector<Route> routes_;  // a handful: a linear scan beats any index
};

}  // namespace sluice::admin
