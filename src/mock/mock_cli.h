#pragma once

// The command-line options of `sluice mock`, kept next to the mock so that a new option needs no
// change to main.cc.
#include <CLI/CLI.hpp>

#include "mock/mock_server.h"

namespace sluice::mock {

inline void addMockOptions(CLI::App& command, MockOptions& options) {
  command.add_option("--listen", options.listen, "address:port to listen on");
  command.add_option("--threads", options.threads, "worker threads")->check(CLI::Range(1, 256));
  command.add_option("--tokens", options.tokens, "tokens per answer")
      ->check(CLI::Range(0, 10000000));
  command
      .add_option("--token-delay-ms", options.token_delay_ms, "delay before each streamed token")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--latency-ms", options.latency_ms, "delay before response headers")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--fail-rate", options.fail_rate, "probability of a 500 answer")
      ->check(CLI::Range(0.0, 1.0));
  command.add_option("--seed", options.seed, "seed of the failure generator");
  command
      .add_option("--require-key", options.require_keys,
                  "API key that requests must present (Bearer, x-api-key or api-key); "
                  "repeatable or comma-separated")
      ->delimiter(',')
      ->take_all();
  command
      .add_option("--reject-key", options.reject_keys,
                  "API key answered with 429, as a rate-limited token; repeatable or "
                  "comma-separated")
      ->delimiter(',')
      ->take_all();
  auto* cert = command.add_option("--tls-cert", options.tls_cert,
                                  "PEM certificate chain: serve HTTPS instead of HTTP");
  auto* key = command.add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert");
  cert->needs(key);
  key->needs(cert);
}

}  // namespace sluice::mock
