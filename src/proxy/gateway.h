#pragma once

#include "config/config.h"

namespace sluice::proxy {

// Starts the worker threads and the listeners, serves until SIGTERM/SIGINT, then drains:
// stops accepting, lets requests in flight finish (up to timeouts.drain_ms). Returns the
// process exit code.
int runGateway(const config::Config& config);

}  // namespace sluice::proxy
