// Config files and the admin API's JSON: the YAML/JSON readers (config, a plugin's settings as
// POST /wasm sends them, the keys state file) answer any input with a value or a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"
#include "keys/key_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      if (auto config = sluice::config::parseConfig(text, "fuzz.yaml"); !config) {
        if (config.error().empty()) __builtin_trap();
      }
      break;
    case 1:
      if (auto plugin = sluice::config::parsePluginSettings(text, "modules[0]"); !plugin) {
        if (plugin.error().empty()) __builtin_trap();
      }
      break;
    default:
      (void)sluice::keys::parseKeyText(text, "keys.json");
      break;
  }
  return 0;
}
