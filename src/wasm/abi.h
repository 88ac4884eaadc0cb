#pragma once

// Constants of the proxy-wasm ABI 0.2.x (proxy-wasm/spec, abi-versions/v0.2.1), as the guest
// sees them. Values are fixed by the spec: SDKs compiled against it pass them as integers.

#include <cstdint>

namespace sluice::wasm::abi {

enum class Status : uint32_t {
  kOk = 0,
  kNotFound = 1,
  kBadArgument = 2,
  kSerializationFailure = 3,
  kParseFailure = 4,
  kInvalidMemoryAccess = 6,
  kEmpty = 7,
  kCasMismatch = 8,
  kInternalFailure = 10,
  kUnimplemented = 12,
};

enum class Action : uint32_t { kContinue = 0, kPause = 1 };

enum class LogLevel : uint32_t { kTrace = 0, kDebug, kInfo, kWarn, kError, kCritical };

enum class MapType : uint32_t {
  kRequestHeaders = 0,
  kRequestTrailers = 1,
  kResponseHeaders = 2,
  kResponseTrailers = 3,
  kGrpcInitialMetadata = 4,
  kGrpcTrailingMetadata = 5,
  kHttpCallResponseHeaders = 6,
  kHttpCallResponseTrailers = 7,
};

enum class BufferType : uint32_t {
  kRequestBody = 0,
  kResponseBody = 1,
  kDownstreamData = 2,
  kUpstreamData = 3,
  kHttpCallResponseBody = 4,
  kGrpcReceiveBuffer = 5,
  kVmConfiguration = 6,
  kPluginConfiguration = 7,
  kRedisCallResponse = 9,  // Higress 0.2.100: the answer during proxy_on_redis_call_response
};

// Status of a Redis call in proxy_on_redis_call_response (Higress 0.2.100): SDKs only tell
// zero (the answer is in kRedisCallResponse) from non-zero (no answer).
enum class RedisCallStatus : uint32_t { kOk = 0, kNetworkError = 1 };

enum class StreamType : uint32_t { kRequest = 0, kResponse = 1, kDownstream = 2, kUpstream = 3 };

enum class MetricType : uint32_t { kCounter = 0, kGauge = 1, kHistogram = 2 };

enum class Version : uint8_t { kUnknown, k0_2_0, k0_2_1, k0_2_100 };

}  // namespace sluice::wasm::abi
