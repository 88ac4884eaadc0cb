#include "proxy/worker_admin.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "admin/admin_server.h"
#include "common/json_writer.h"
#include "metrics/exposition.h"
#include "proxy/gateway_metrics.h"

namespace sluice::proxy {
namespace {

using admin::AdminRequest;
using admin::AdminResponse;
using admin::errorResponse;

// The routes whose pools contain provider `index`.
std::vector<std::string_view> routesOf(const GatewayState& state, size_t index) {
  std::vector<std::string_view> names;
  for (const auto& route : state.config.routes) {
    for (const auto& target : route.targets) {
      if (target.provider_index == index) {
        names.push_back(route.name);
        break;
      }
    }
  }
  return names;
}

void writeWorker(JsonWriter& json, const GatewayState& state, size_t provider, size_t index) {
  const auto& endpoint = *state.endpoints[provider][index];
  const auto& config = state.config.providers[provider].endpoints[index];
  json.beginObject();
  json.key("id").value(endpoint.id);
  json.key("provider").value(endpoint.provider);
  json.key("url").value(config.url);
  json.key("weight").value(uint64_t{config.weight});
  json.key("state").value(routing::stateName(endpoint.health.state(routing::steadyNowMs())));
  json.key("outstanding").value(uint64_t{endpoint.outstanding.load(std::memory_order_relaxed)});
  json.key("attempts").value(endpoint.requests.load(std::memory_order_relaxed));
  json.key("failures").value(endpoint.failures.load(std::memory_order_relaxed));
  json.key("breaker_opens").value(endpoint.health.breakerOpens());
  json.key("routes").beginArray();
  for (auto name : routesOf(state, provider)) json.value(name);
  json.endArray();
  json.endObject();
}

AdminResponse listWorkers(const GatewayState& state) {
  AdminResponse response;
  JsonWriter json(response.body);
  json.beginObject().key("workers").beginArray();
  for (size_t p = 0; p < state.endpoints.size(); ++p) {
    for (size_t e = 0; e < state.endpoints[p].size(); ++e) writeWorker(json, state, p, e);
  }
  json.endArray().endObject();
  return response;
}

AdminResponse addWorker(ControlPlane& control, const AdminRequest& request) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(request.body).get(object)) {
    return errorResponse(400, "expected a JSON object {\"provider\", \"url\", \"weight\"}");
  }
  std::string_view provider_id, url;
  uint64_t weight = 1;
  if (object["provider"].get(provider_id) || provider_id.empty()) {
    return errorResponse(400, "\"provider\" is required: the id of a configured provider");
  }
  if (object["url"].get(url)) return errorResponse(400, "\"url\" is required");
  if (auto value = object["weight"]; value.error() != simdjson::NO_SUCH_FIELD) {
    if (value.get(weight) || weight > 1000000) {
      return errorResponse(400, "\"weight\" must be an integer from 0 to 1000000");
    }
  }
  for (auto field : object) {
    if (field.key != "provider" && field.key != "url" && field.key != "weight") {
      return errorResponse(400, fmt::format("unknown field \"{}\"", std::string_view(field.key)));
    }
  }
  auto endpoint = config::parseEndpointUrl(url);
  if (!endpoint) return errorResponse(400, endpoint.error());
  endpoint->weight = static_cast<uint32_t>(weight);

  auto config = control.current->config;
  auto provider = std::find_if(config.providers.begin(), config.providers.end(),
                               [&](const auto& p) { return p.id == provider_id; });
  if (provider == config.providers.end()) {
    return errorResponse(404, fmt::format("no provider with id \"{}\"", provider_id));
  }
  const auto id = endpointId(provider->id, endpoint->url);
  if (control.current->findEndpoint(id) != nullptr) {
    return errorResponse(409, fmt::format("provider {} already has the endpoint {} (id {})",
                                          provider->id, endpoint->url, id));
  }
  provider->endpoints.push_back(std::move(*endpoint));
  const auto provider_index = static_cast<size_t>(provider - config.providers.begin());
  if (auto applied = applyState(control, std::move(config)); !applied) {
    return errorResponse(400, applied.error());
  }
  spdlog::info("admin: worker {} ({}) added to provider {}", id, url, provider_id);
  AdminResponse response;
  response.status = 201;
  JsonWriter json(response.body);
  writeWorker(json, *control.current, provider_index,
              control.current->endpoints[provider_index].size() - 1);
  return response;
}

AdminResponse removeWorker(ControlPlane& control, std::string_view id) {
  auto config = control.current->config;
  for (size_t p = 0; p < config.providers.size(); ++p) {
    const auto& endpoints = control.current->endpoints[p];
    for (size_t e = 0; e < endpoints.size(); ++e) {
      if (endpoints[e]->id != id) continue;
      const auto url = endpoints[e]->endpoint.url;
      auto& list = config.providers[p].endpoints;
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(e));
      if (auto applied = applyState(control, std::move(config)); !applied) {
        return errorResponse(500, applied.error(), "server_error");
      }
      spdlog::info("admin: worker {} ({}) removed", id, url);
      return AdminResponse{200, fmt::format(R"({{"removed":"{}"}})", id)};
    }
  }
  return errorResponse(404, fmt::format("no worker with id \"{}\"", id));
}

// 200 while every route has an available worker, else 503; the body says which are not.
AdminResponse health(const GatewayState& state) {
  const auto now = routing::steadyNowMs();
  AdminResponse response;
  JsonWriter json(response.body);
  bool all_served = true;
  size_t available_endpoints = 0, endpoints = 0;
  for (const auto& list : state.endpoints) {
    for (const auto& endpoint : list) {
      ++endpoints;
      if (endpoint->health.available(now)) ++available_endpoints;
    }
  }
  std::string routes;
  JsonWriter route_json(routes);
  route_json.beginArray();
  for (size_t r = 0; r < state.config.routes.size(); ++r) {
    uint64_t available = 0;
    for (const auto& worker : state.pools[r].workers) {
      if (worker.weight > 0 && worker.endpoint->health.available(now)) ++available;
    }
    all_served = all_served && available > 0;
    route_json.beginObject().key("name").value(state.config.routes[r].name);
    route_json.key("workers").value(uint64_t{state.pools[r].workers.size()});
    route_json.key("available").value(available).endObject();
  }
  route_json.endArray();
  json.beginObject();
  json.key("status").value(!all_served                       ? "unavailable"
                           : available_endpoints < endpoints ? "degraded"
                                                             : "ok");
  json.key("endpoints").beginObject();
  for (auto wanted :
       {routing::EndpointHealth::State::kHealthy, routing::EndpointHealth::State::kUnhealthy,
        routing::EndpointHealth::State::kOpen, routing::EndpointHealth::State::kHalfOpen}) {
    uint64_t count = 0;
    for (const auto& list : state.endpoints) {
      for (const auto& endpoint : list) count += endpoint->health.state(now) == wanted;
    }
    json.key(routing::stateName(wanted)).value(count);
  }
  json.endObject();
  json.key("routes").raw(routes);
  json.endObject();
  response.status = all_served ? 200 : 503;
  return response;
}

}  // namespace

tl::expected<void, std::string> applyState(ControlPlane& control, config::Config config,
                                           std::shared_ptr<const keys::KeySet> keys,
                                           std::shared_ptr<const wasm::PluginSet> plugins) {
  auto built = buildGatewayState(std::move(config), control.current.get(), std::move(keys),
                                 std::move(plugins));
  if (!built) return tl::make_unexpected(built.error());
  control.current = std::move(*built);
  control.publish(control.current);
  return {};
}

void addWorkerApi(admin::AdminServer& server, ControlPlane& control) {
  server.handle("GET", "/workers", [&control](const AdminRequest& request) {
    if (request.path != "/workers") return errorResponse(404, "GET /workers lists all workers");
    return listWorkers(*control.current);
  });
  server.handle("POST", "/workers", [&control](const AdminRequest& request) {
    if (request.path != "/workers") return errorResponse(404, "POST /workers adds a worker");
    return addWorker(control, request);
  });
  server.handle("DELETE", "/workers", [&control](const AdminRequest& request) {
    const std::string_view path = request.path;
    if (!path.starts_with("/workers/") || path.size() == 9) {
      return errorResponse(404, "DELETE /workers/{id} removes a worker");
    }
    return removeWorker(control, path.substr(9));
  });
  server.handle("GET", "/metrics", [&control](const AdminRequest&) {
    AdminResponse response;
    response.content_type = std::string(metrics::kContentType);
    appendMetrics(*control.current, response.body);
    return response;
  });
  server.handle("GET", "/health",
                [&control](const AdminRequest&) { return health(*control.current); });
}

}  // namespace sluice::proxy
