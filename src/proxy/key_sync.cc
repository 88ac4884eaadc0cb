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
    if (dirty_ && co_await push()) dirty_ = false;
    co_await pull();
    timer.expires_after(kInterval);
    co_await timer.async_wait(kNoThrow);
  }
}

Task<bool> KeySync::push() {
  const auto records = keys::persistentKeys(control_.current->keys->records());
  for (const auto& record : records) {
    const auto text = keys::keyText(std::span(&record, 1));
    const std::array<std::string_view, 4> command{"HSET", kHash, record.id, text};
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
  seen_version_ = version->string();
  const auto& current = control_.current->keys->records();
  std::vector<keys::KeyRecord> records(current.begin(), current.end());
  if (!keys::mergeShared(records, shared)) co_return;
  if (auto applied = applyKeyRecords(control_, std::move(records)); !applied) {
    spdlog::error("key sync: {}", applied.error());
  } else {
    spdlog::info("key sync: keys changed by another replica applied");
  }
}

}  // namespace sluice::proxy
