#include "redis/redis_address.h"

#include <fmt/format.h>
#include <sys/un.h>

#include <charconv>
#include <limits>
#include <optional>

namespace sluice::redis {
namespace {

constexpr std::string_view kExpected =
    "expected redis://[[username]:password@]host[:port][/db] or "
    "unix://[[username]:password@]/path/to/redis.sock[?db=N]";

tl::unexpected<std::string> invalid(std::string_view what) {
  return tl::unexpected(fmt::format("invalid redis address: {}", what));
}

std::optional<uint64_t> parseNumber(std::string_view text) {
  uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hexDigit(text[i + 1]);
    const int low = hexDigit(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

// "[username]:password" or "username" before the '@'.
tl::expected<void, std::string> parseUserInfo(std::string_view userinfo, RedisAddress& address) {
  const size_t colon = userinfo.find(':');
  const auto username = percentDecode(userinfo.substr(0, colon));
  if (!username) return invalid("the username has a malformed %-escape");
  address.username = *username;
  if (colon != std::string_view::npos) {
    const auto password = percentDecode(userinfo.substr(colon + 1));
    if (!password) return invalid("the password has a malformed %-escape");
    address.password = *password;
  }
  if (!address.username.empty() && address.password.empty()) {
    return invalid("a username needs a password (username:password@)");
  }
  return {};
}

tl::expected<void, std::string> parseDb(std::string_view text, RedisAddress& address) {
  const auto db = parseNumber(text);
  if (!db || *db > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
    return invalid(fmt::format("the database {:?} is not a number 0 or above", text));
  }
  address.db = static_cast<int>(*db);
  return {};
}

tl::expected<void, std::string> parseHostPort(std::string_view text, RedisAddress& address) {
  std::string_view port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return invalid("an IPv6 host lacks its closing ']'");
    address.host = text.substr(1, close - 1);
    const auto after = text.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return invalid("expected ':port' after the IPv6 host");
      port = after.substr(1);
      if (port.empty()) return invalid("the port is empty");
    }
  } else {
    const size_t colon = text.rfind(':');
    address.host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      if (port.empty()) return invalid("the port is empty");
    }
  }
  if (address.host.empty()) return invalid("the host is missing");
  if (address.host.find_first_of(" \t:@?#") != std::string::npos && !text.starts_with('[')) {
    return invalid(fmt::format("the host {:?} is not a name or an IP address", address.host));
  }
  if (!port.empty()) {
    const auto number = parseNumber(port);
    if (!number || *number == 0 || *number > 65535) {
      return invalid(fmt::format("the port {:?} is not a number from 1 to 65535", port));
    }
    address.port = static_cast<uint16_t>(*number);
  }
  return {};
}

tl::expected<RedisAddress, std::string> parseTcp(std::string_view rest) {
  RedisAddress address;
  address.kind = RedisAddress::Kind::kTcp;
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return invalid("redis:// addresses take no query; put the database in the path (/db)");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    if (auto parsed = parseUserInfo(authority.substr(0, at), address); !parsed) {
      return tl::unexpected(parsed.error());
    }
    authority = authority.substr(at + 1);
  }
  if (auto parsed = parseHostPort(authority, address); !parsed) {
    return tl::unexpected(parsed.error());
  }
  if (slash != std::string_view::npos) {
    const auto db = rest.substr(slash + 1);
    if (!db.empty()) {
      if (auto parsed = parseDb(db, address); !parsed) return tl::unexpected(parsed.error());
    }
  }
  return address;
}

tl::expected<RedisAddress, std::string> parseUnix(std::string_view rest) {
  RedisAddress address;
  address.kind = RedisAddress::Kind::kUnix;
  if (!rest.starts_with('/')) {
    const size_t at = rest.find('@');
    if (at == std::string_view::npos) {
      return invalid("a unix socket path must be absolute: unix:///path/to/redis.sock");
    }
    if (auto parsed = parseUserInfo(rest.substr(0, at), address); !parsed) {
      return tl::unexpected(parsed.error());
    }
    rest = rest.substr(at + 1);
    if (!rest.starts_with('/')) {
      return invalid("a unix socket path must be absolute: unix://:password@/path/to/redis.sock");
    }
  }
  const size_t query = rest.find('?');
  address.path = rest.substr(0, query);
  if (address.path.size() <= 1) return invalid("the unix socket path is missing");
  if (address.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return invalid(fmt::format("the unix socket path is longer than {} bytes",
                               sizeof(sockaddr_un{}.sun_path) - 1));
  }
  if (query != std::string_view::npos) {
    const auto parameter = rest.substr(query + 1);
    if (!parameter.starts_with("db=") || parameter.find('&') != std::string_view::npos) {
      return invalid("a unix socket address takes only ?db=N");
    }
    if (auto parsed = parseDb(parameter.substr(3), address); !parsed) {
      return tl::unexpected(parsed.error());
    }
  }
  return address;
}

}  // namespace

std::string RedisAddress::describe() const {
  std::string credentials;
  if (!password.empty()) credentials = fmt::format("{}:***@", username);
  const std::string db_suffix =
      db != 0 ? fmt::format("{}{}", kind == Kind::kTcp ? "/" : "?db=", db) : std::string();
  if (kind == Kind::kUnix) return fmt::format("unix://{}{}{}", credentials, path, db_suffix);
  const bool ipv6 = host.find(':') != std::string::npos;
  return fmt::format("redis://{}{}{}{}:{}{}", credentials, ipv6 ? "[" : "", host, ipv6 ? "]" : "",
                     port, db_suffix);
}

tl::expected<RedisAddress, std::string> parseRedisAddress(std::string_view text) {
  constexpr std::string_view kTcpScheme = "redis://";
  constexpr std::string_view kUnixScheme = "unix://";
  if (text.starts_with(kTcpScheme)) return parseTcp(text.substr(kTcpScheme.size()));
  if (text.starts_with(kUnixScheme)) return parseUnix(text.substr(kUnixScheme.size()));
  if (text.starts_with("rediss://")) {
    return invalid("TLS (rediss://) is not supported; use redis:// or unix://");
  }
  if (text.empty()) return invalid(fmt::format("empty; {}", kExpected));
  const size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    return invalid(fmt::format("no scheme; {}", kExpected));
  }
  return invalid(fmt::format("unknown scheme {:?}; {}", text.substr(0, scheme_end), kExpected));
}

}  // namespace sluice::redis
