#pragma once

#include <functional>
#include <memory>

#include "proxy/gateway_state.h"

namespace sluice::admin {
class AdminServer;
}

namespace sluice::proxy {

// The control thread's view of the configuration: the current snapshot, and how a new one
// reaches every worker thread. Only the control thread touches it.
struct ControlPlane {
  std::shared_ptr<const GatewayState> current;
  std::function<void(std::shared_ptr<const GatewayState>)> publish;
  std::function<void()> keys_changed;  // the admin API changed keys (for replicas); may be empty
};

// Builds the snapshot of `config` (with `keys` and `plugins`; null: the current ones), keeping
// what the current one has at run time, and publishes it to every worker thread.
tl::expected<void, std::string> applyState(
    ControlPlane& control, config::Config config,
    std::shared_ptr<const keys::KeySet> keys = nullptr,
    std::shared_ptr<const wasm::PluginSet> plugins = nullptr);

// Saves `records` to state_dir (when configured), then publishes them; a change that could not
// be made durable is not made.
tl::expected<void, std::string> applyKeyRecords(ControlPlane& control,
                                                std::vector<keys::KeyRecord> records);

// GET/POST /workers, DELETE /workers/{id} and GET /health on the admin listener. A change builds
// a new snapshot that keeps every other endpoint's state, and applies from each thread's next
// request; requests in flight finish on the endpoints they started with.
void addWorkerApi(admin::AdminServer& server, ControlPlane& control);

// GET/POST /keys and DELETE /keys/{id} (revoke). Only hashes are kept; a new key's secret is in
// the creation answer and nowhere else. Changes are saved to state_dir/keys.json before they
// apply, and apply from each thread's next request.
void addKeyApi(admin::AdminServer& server, ControlPlane& control);

}  // namespace sluice::proxy
