#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace sluice {

// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a
// mix: write to `path`.tmp (mode 0600), fsync, rename over `path`, fsync the directory (which
// is created when missing). Errors name the file and the system's reason.
tl::expected<void, std::string> writeFileAtomic(const std::string& path, std::string_view bytes);

}  // namespace sluice
