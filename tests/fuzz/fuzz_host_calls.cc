// proxy-wasm host functions fed whatever a hostile guest can pass: arbitrary pointers, lengths,
// map types and header-map bytes. A guest module of trampolines (abi_probe.wat) forwards each
// call's arguments to one host function; the input chooses the guest memory's contents, the
// function and its arguments. The host must answer with a status (or trap the guest), never
// touch memory outside the guest's, and keep every limit.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "wasm/module_bytes.h"
#include "wasm/plugin.h"

namespace {

using namespace sluice::wasm;

struct Host {
  std::shared_ptr<const Plugin> plugin;
  std::unique_ptr<PluginInstance> instance;
  std::vector<std::string> trampolines;
  std::vector<size_t> arity;  // parameters of each trampoline (context id included)
};

Host& host() {
  static Host h = [] {
    Host made;
    std::ifstream file(std::string(SLUICE_WASM_DIR) + "/abi_probe.wasm", std::ios::binary);
    std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(file), {}};
    sluice::config::Plugin settings;
    settings.name = "fuzz";
    settings.limits.max_body_bytes = 4096;
    settings.limits.max_header_bytes = 4096;
    settings.limits.max_local_response_bytes = 4096;
    auto plugin = Plugin::load(v8Engine(), settings, bytes);
    if (!plugin) __builtin_trap();
    made.plugin = *plugin;
    made.instance = std::make_unique<PluginInstance>(made.plugin, ThreadHooks{});
    if (!made.instance->start()) __builtin_trap();
    auto info = parseModule(bytes);
    if (!info) __builtin_trap();
    for (const auto& name : made.plugin->module()->functionExports()) {
      if (!name.starts_with("t_")) continue;
      made.trampolines.push_back(name);
      made.arity.push_back(info->exportedFunctionType(name)->params.size());
    }
    return made;
  }();
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& h = host();
  if (!h.instance->ensureHealthy()) return 0;
  // Layout: [4 KiB of guest memory at 0][calls: 1 byte function, 8 x u32 arguments]...
  constexpr size_t kMemory = 4096;
  const size_t prefix = std::min(size, kMemory);
  if (auto memory = h.instance->guestMemory(0, prefix)) std::memcpy(memory->data(), data, prefix);

  StreamData stream;
  stream.request_headers = {{":method", "POST"},
                            {":path", "/v1/chat/completions"},
                            {"content-type", "application/json"},
                            {"authorization", "secret"}};
  stream.response_headers = {{":status", "200"}};
  stream.request_body = "{\"model\":\"m\"}";
  stream.response_body = "data: {}\n\n";
  for (size_t at = prefix; at + 33 <= size; at += 33) {
    const size_t which = data[at] % h.trampolines.size();
    std::vector<RawVal> args = {2};  // context id
    for (int i = 0; i < 8; ++i) {
      uint32_t value;
      std::memcpy(&value, data + at + 1 + 4 * i, 4);
      // Small values are likelier to mean something (map types, lengths near the data).
      if (value >> 31) value &= 0x1fff;
      args.push_back(value);
    }
    const size_t count = std::min(h.arity[which], args.size());
    h.instance->callExport(h.trampolines[which], &stream,
                           std::span<const RawVal>(args.data(), count));
    if (!h.instance->healthy()) break;
  }
  // What the guest may have set stays within the plugin's limits.
  const auto& limits = h.plugin->settings().limits;
  if (stream.request_body.size() > limits.max_body_bytes ||
      stream.response_body.size() > limits.max_body_bytes) {
    __builtin_trap();
  }
  if (stream.local_response &&
      stream.local_response->body.size() > limits.max_local_response_bytes) {
    __builtin_trap();
  }
  for (const auto& [name, value] : stream.request_headers) {
    if (name == "transfer-encoding" || name == "connection") __builtin_trap();  // hop-by-hop
  }
  return 0;
}
