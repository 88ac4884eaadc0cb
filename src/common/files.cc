#include "common/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sluice {

tl::expected<void, std::string> writeFileAtomic(const std::string& path, std::string_view bytes) {
  const auto directory = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!directory.empty()) std::filesystem::create_directories(directory, ec);
  const auto temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return tl::make_unexpected(fmt::format("{}: {}", temporary, std::strerror(errno)));
  size_t written = 0;
  while (written < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      return tl::make_unexpected(fmt::format("{}: {}", temporary, std::strerror(error)));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return tl::make_unexpected(fmt::format("{}: {}", temporary, std::strerror(errno)));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return tl::make_unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  }
  const int dir = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

}  // namespace sluice
