#pragma once

#include <string>

#include "proxy/plugin_manager.h"
#include "proxy/worker_admin.h"

namespace sluice::proxy {

// The plugin management API on the admin listener: POST /wasm (deploy), GET /wasm and
// GET /wasm/{uuid} (modules with settings, state and metrics), PUT /wasm/{uuid} (a new version:
// bytes and/or settings), DELETE /wasm/{uuid}. A change is saved, then published as a new
// snapshot: each worker thread's next request runs on the new plugin set, requests in flight
// finish on the one they started with.
void addWasmApi(admin::AdminServer& server, ControlPlane& control, PluginManager& manager);

// Prometheus series of each module in `set`: calls, errors, traps, deadline misses, rejects,
// modifications, callback time.
void appendPluginMetrics(const wasm::PluginSet* set, std::string& out);

}  // namespace sluice::proxy
