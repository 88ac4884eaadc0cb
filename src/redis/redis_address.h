#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace sluice::redis {

// Where a Redis server listens and how to log in, parsed from
//   redis://[[username]:password@]host[:port][/db]     (port 6379, db 0 by default)
//   unix://[[username]:password@]/path/to/redis.sock[?db=N]
// Username and password may be percent-encoded. A password means AUTH on every connect, a db
// other than 0 means SELECT.
struct RedisAddress {
  enum class Kind { kTcp, kUnix };

  Kind kind = Kind::kTcp;
  std::string host;  // kTcp: a name or an IP address (IPv6 without brackets)
  uint16_t port = 6379;
  std::string path;      // kUnix: the socket's path
  std::string username;  // empty: Redis's default user
  std::string password;  // empty: no AUTH
  int db = 0;

  // The address for logs and error messages, with the password replaced by "***".
  std::string describe() const;
};

// Fails with a message that says what was expected (for config validation); the message never
// repeats the password.
tl::expected<RedisAddress, std::string> parseRedisAddress(std::string_view text);

}  // namespace sluice::redis
