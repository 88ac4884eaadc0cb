#pragma once

// What the host-function tests share: a plugin instance of a probe module (trampolines into the
// host functions), helpers to write inputs into its memory and read back what the host wrote,
// and a call with the context id in front.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "wasm/plugin.h"

namespace sluice::wasm {

inline constexpr uint32_t kIn = 1024;         // test inputs
inline constexpr uint32_t kOut = 512;         // out-pointer slots (ptr at kOut, size at kOut + 4)
inline constexpr uint32_t kFar = 0x7fff0000;  // far outside the probes' 128 KiB memory

inline std::vector<uint8_t> readModule(const std::string& name) {
  std::ifstream file(std::string(SLUICE_WASM_DIR) + "/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), {}};
}

class ProbeFixture : public ::testing::Test {
 protected:
  // Writes bytes at kIn (+ offset); returns the address.
  uint32_t put(std::string_view bytes, uint32_t offset = 0) {
    auto span = instance_->guestMemory(kIn + offset, bytes.size());
    EXPECT_TRUE(span);
    std::memcpy(span->data(), bytes.data(), bytes.size());
    return kIn + offset;
  }
  uint32_t u32At(uint32_t address) {
    auto span = instance_->guestMemory(address, 4);
    uint32_t value = 0;
    std::memcpy(&value, span->data(), 4);
    return value;
  }
  // The (ptr, size) the host wrote to the out slots, as bytes.
  std::string returned() {
    const auto ptr = u32At(kOut);
    const auto size = u32At(kOut + 4);
    if (size == 0) return {};
    auto span = instance_->guestMemory(ptr, size);
    return std::string(reinterpret_cast<const char*>(span->data()), size);
  }
  // Calls a trampoline with context id 2 and `stream` (default: stream_) visible to the host.
  abi::Status call(std::string_view function, std::initializer_list<RawVal> args,
                   StreamData* stream = nullptr) {
    std::vector<RawVal> full = {2};
    full.insert(full.end(), args.begin(), args.end());
    auto outcome = instance_->callExport(function, stream ? stream : &stream_, full);
    EXPECT_TRUE(outcome.ok) << outcome.error;
    return static_cast<abi::Status>(outcome.value);
  }

  std::unique_ptr<PluginInstance> instance_;
  StreamData stream_;
};

}  // namespace sluice::wasm
