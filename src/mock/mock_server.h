#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::mock {

// Options of `sluice mock`: a deterministic stand-in for an OpenAI/Anthropic model server,
// used by the tests, the benchmarks and the default `make run` config.
struct MockOptions {
  std::string listen = "127.0.0.1:18001";
  int threads = 1;
  int tokens = 16;         // tokens per answer (completion length)
  int token_delay_ms = 0;  // pause before each streamed token
  int latency_ms = 0;      // pause before the response headers
  double fail_rate = 0.0;  // probability of answering 500
  uint64_t seed = 1;       // seed of the fail-rate generator
  // Non-empty: every API request must present one of these keys (Bearer, x-api-key or
  // api-key header), else 401.
  std::vector<std::string> require_keys;
  std::vector<std::string> reject_keys;  // these keys get 429 (a rate-limited token)
  std::string tls_cert;                  // PEM files: serve HTTPS instead of HTTP
  std::string tls_key;
};

// Serves until SIGINT or SIGTERM; returns the process exit code.
int runMock(const MockOptions& options);

}  // namespace sluice::mock
