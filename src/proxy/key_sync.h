#pragma once

// Private to src/proxy: includes Asio.

#include <memory>
#include <string>

#include "http/asio.h"
#include "proxy/worker_admin.h"
#include "redis/redis_client.h"

namespace sluice::proxy {

// Shares client keys between replicas through the Redis of the rate limits: each key created or
// revoked through a replica's admin API is written to the hash `sluice:keys` (one field per key
// id, the state file's JSON) and bumps `sluice:keys:version`; every replica polls the version
// every 200 ms and merges what changed, so a revocation reaches all replicas within a second.
// Runs on the control thread; while Redis is down, local changes wait and are written later.
class KeySync {
 public:
  KeySync(http::asio::io_context& io, const redis::RedisAddress& address, ControlPlane& control);
  void start();
  void stop() { stopped_ = true; }
  // Local keys changed (admin API): write them out at the next turn.
  void markDirty() { dirty_ = true; }

 private:
  http::Task<void> run();
  http::Task<bool> push();
  http::Task<void> pull();

  http::asio::io_context& io_;
  redis::RedisClient redis_;
  ControlPlane& control_;
  bool dirty_ = true;  // the first turn writes what this replica has
  bool stopped_ = false;
  std::string seen_version_;
};

}  // namespace sluice::proxy
