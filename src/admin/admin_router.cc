#include "admin/admin_router.h"

#include <stdexcept>

namespace sluice::admin {

void AdminRouter::add(std::string method, std::string path_prefix, AdminHandler handler) {
  if (method.empty()) throw std::invalid_argument("admin handler: the method is empty");
  if (path_prefix.empty() || path_prefix.front() != '/') {
    throw std::invalid_argument("admin handler: the path prefix \"" + path_prefix +
                                "\" does not start with '/'");
  }
  if (!handler) throw std::invalid_argument("admin handler for " + path_prefix + " is empty");
  for (auto& route : routes_) {
    if (route.method == method && route.prefix == path_prefix) {
      route.handler = std::move(handler);
      return;
    }
  }
  routes_.push_back(Route{std::move(method), std::move(path_prefix), std::move(handler)});
}

AdminRouter::Match AdminRouter::find(std::string_view method, std::string_view path) const {
  const Route* best = nullptr;
  for (const auto& route : routes_) {
    if (!prefixMatches(route.prefix, path)) continue;
    if (best && route.prefix.size() < best->prefix.size()) continue;
    // Among routes of the longest prefix, the one with the request's method wins.
    if (!best || route.prefix.size() > best->prefix.size() || route.method == method) {
      best = &route;
    }
  }
  Match match;
  if (!best) return match;
  if (best->method == method) {
    match.handler = &best->handler;
    return match;
  }
  for (const auto& route : routes_) {
    if (route.prefix != best->prefix) continue;
    if (!match.allow.empty()) match.allow += ", ";
    match.allow += route.method;
  }
  return match;
}

bool AdminRouter::prefixMatches(std::string_view prefix, std::string_view path) {
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

}  // namespace sluice::admin
