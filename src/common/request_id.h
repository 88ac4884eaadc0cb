#pragma once

#include <string>

namespace sluice {

// A random 128-bit id as 32 hex digits, from a per-thread generator (no locks).
std::string newRequestId();

}  // namespace sluice
