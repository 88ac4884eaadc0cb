#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace sluice::proxy {

// What one request did, written as one JSON line when it ends.
struct AccessRecord {
  std::string_view request_id;
  std::string_view method;
  std::string_view path;
  std::string_view route;
  std::string_view model;
  std::string_view provider;
  std::string_view upstream;
  std::string_view key_id;
  uint32_t retries = 0;
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  uint64_t cached_tokens = 0;
  bool usage_reported = false;  // from the upstream's usage (else estimated or none)
  std::string_view peer;
  int status = 0;
  bool stream = false;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double duration_ms = 0;
  double ttfb_ms = -1;  // negative: nothing was sent
  std::string_view error;
  std::string_view plugin_actions;  // PluginChain::actions()
};

class AccessLog {
 public:
  // `target`: "stdout", "off" or a file path.
  explicit AccessLog(const std::string& target);
  void write(const AccessRecord& record);

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace sluice::proxy
