#include "proxy/key_sync.h"

#include <spdlog/spdlog.h>

#include <array>

namespace sluice::proxy {

using namespace http;

namespace {
constexpr std::string_view kHash = "sluice:keys";
constexpr std::string_view kVersion = "sluice:keys:version";
constexpr auto kInterval = std::chrono::milliseconds(200);
}  // namespace

KeySync::KeySync(asio::io_context& io, const redis::RedisAddress& address, ControlPlane& control)
    : io_(io), redis_(io, address), control_(control) {}

void KeySync::start() { asio::co_spawn(io_, run(), asio::detached); }

Task<void> KeySync::run() {
  asio::steady_timer timer(io_);
  while (!stopped_) {
    // Pull first: a replica that was down learns the revocations made meanwhile before it
    // writes anything.
    co_await pull();
    if (dirty_) {
      dirty_ = false;  // changes made while pushing set it again
      if (!co_await push()) dirty_ = true;
    }
    timer.expires_after(kInterval);
    co_await timer.async_wait(kNoThrow);
  }
}

Task<bool> KeySync::push() {
  const auto records = keys::persistentKeys(control_.current->keys->records());
  for (const auto& record : records) {
    const auto text = keys::keyText(std::span(&record, 1));
    // A revocation overwrites; anything else is only added, so that a replica with an older
    // state can never undo a revocation made elsewhere.
    const std::array<std::string_view, 4> command{record.revoked ? "HSET" : "HSETNX", kHash,
                                                  record.id, text};
    auto reply = co_await redis_.call(command);
    if (!reply || reply->isError()) co_return false;
  }
  const std::array<std::string_view, 2> bump{"INCR", kVersion};
  auto reply = co_await redis_.call(bump);
  co_return reply && !reply->isError();
}

Task<void> KeySync::pull() {
  const std::array<std::string_view, 2> get{"GET", kVersion};
  auto version = co_await redis_.call(get);
  if (!version || !version->isString() || version->string() == seen_version_) co_return;
  const std::array<std::string_view, 2> all{"HGETALL", kHash};
  auto reply = co_await redis_.call(all);
  if (!reply || !reply->isArray()) co_return;
  std::vector<keys::KeyRecord> shared;
  const auto& items = reply->array();
  for (size_t i = 1; i < items.size(); i += 2) {
    if (!items[i].isString()) continue;
    auto parsed = keys::parseKeyText(items[i].string(), "redis sluice:keys");
    if (!parsed) {
      spdlog::warn("key sync: {}", parsed.error());
      continue;
    }
    shared.insert(shared.end(), parsed->begin(), parsed->end());
  }
  const auto& current = control_.current->keys->records();
  std::vector<keys::KeyRecord> records(current.begin(), current.end());
  if (keys::mergeShared(records, shared)) {
    if (auto applied = applyKeyRecords(control_, std::move(records)); !applied) {
      spdlog::error("key sync: {} (tried again at the next turn)", applied.error());
      co_return;
    }
    spdlog::info("key sync: keys changed by another replica applied");
  }
  seen_version_ = version->string();
}

}  // namespace sluice::proxy
