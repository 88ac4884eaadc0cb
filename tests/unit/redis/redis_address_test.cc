#include "redis/redis_address.h"

#include <gtest/gtest.h>

#include <string>

#include "redis/redis_script.h"

namespace sluice::redis {
namespace {

RedisAddress parsed(std::string_view text) {
  auto address = parseRedisAddress(text);
  EXPECT_TRUE(address.has_value()) << text << ": " << address.error();
  return address.value_or(RedisAddress{});
}

std::string errorOf(std::string_view text) {
  auto address = parseRedisAddress(text);
  EXPECT_FALSE(address.has_value()) << text;
  return address ? std::string() : address.error();
}

TEST(RedisAddress, TcpHostAndPort) {
  const auto address = parsed("redis://cache.internal:6380");
  EXPECT_EQ(address.kind, RedisAddress::Kind::kTcp);
  EXPECT_EQ(address.host, "cache.internal");
  EXPECT_EQ(address.port, 6380);
  EXPECT_EQ(address.password, "");
  EXPECT_EQ(address.db, 0);
}

TEST(RedisAddress, DefaultPortIs6379) {
  EXPECT_EQ(parsed("redis://127.0.0.1").port, 6379);
  EXPECT_EQ(parsed("redis://127.0.0.1/").port, 6379);
}

TEST(RedisAddress, PasswordAndDatabase) {
  const auto address = parsed("redis://:s3cret@10.0.0.5:6379/2");
  EXPECT_EQ(address.host, "10.0.0.5");
  EXPECT_EQ(address.username, "");
  EXPECT_EQ(address.password, "s3cret");
  EXPECT_EQ(address.db, 2);
}

TEST(RedisAddress, UsernameAndPercentEncodedPassword) {
  const auto address = parsed("redis://limiter:p%40ss%3Aw%2Frd@redis:7000");
  EXPECT_EQ(address.username, "limiter");
  EXPECT_EQ(address.password, "p@ss:w/rd");
  EXPECT_EQ(address.host, "redis");
  EXPECT_EQ(address.port, 7000);
}

TEST(RedisAddress, Ipv6InBrackets) {
  const auto address = parsed("redis://[::1]:6390/1");
  EXPECT_EQ(address.host, "::1");
  EXPECT_EQ(address.port, 6390);
  EXPECT_EQ(address.db, 1);
  EXPECT_EQ(parsed("redis://[fe80::1]").port, 6379);
}

TEST(RedisAddress, UnixSocket) {
  const auto address = parsed("unix:///run/redis/redis.sock");
  EXPECT_EQ(address.kind, RedisAddress::Kind::kUnix);
  EXPECT_EQ(address.path, "/run/redis/redis.sock");
  EXPECT_EQ(address.db, 0);
}

TEST(RedisAddress, UnixSocketWithPasswordAndDatabase) {
  const auto address = parsed("unix://:pw@/tmp/redis.sock?db=4");
  EXPECT_EQ(address.path, "/tmp/redis.sock");
  EXPECT_EQ(address.password, "pw");
  EXPECT_EQ(address.db, 4);
}

TEST(RedisAddress, ErrorsSayWhatWasExpected) {
  EXPECT_EQ(errorOf("localhost:6379"),
            "invalid redis address: no scheme; expected "
            "redis://[[username]:password@]host[:port][/db] or "
            "unix://[[username]:password@]/path/to/redis.sock[?db=N]");
  EXPECT_TRUE(errorOf("http://localhost")
                  .starts_with("invalid redis address: unknown scheme \"http\"; expected"));
  EXPECT_EQ(errorOf("rediss://localhost"),
            "invalid redis address: TLS (rediss://) is not supported; use redis:// or unix://");
  EXPECT_EQ(errorOf("redis://"), "invalid redis address: the host is missing");
  EXPECT_EQ(errorOf("redis://:pw@:6379"), "invalid redis address: the host is missing");
  EXPECT_EQ(errorOf("redis://host:0"),
            "invalid redis address: the port \"0\" is not a number from 1 to 65535");
  EXPECT_EQ(errorOf("redis://host:70000"),
            "invalid redis address: the port \"70000\" is not a number from 1 to 65535");
  EXPECT_EQ(errorOf("redis://host:"), "invalid redis address: the port is empty");
  EXPECT_EQ(errorOf("redis://host/x"),
            "invalid redis address: the database \"x\" is not a number 0 or above");
  EXPECT_EQ(errorOf("redis://host/-1"),
            "invalid redis address: the database \"-1\" is not a number 0 or above");
  EXPECT_EQ(errorOf("redis://::1:6379"),
            "invalid redis address: the host \"::1\" is not a name or an IP address");
  EXPECT_EQ(errorOf("redis://[::1:6379"),
            "invalid redis address: an IPv6 host lacks its closing ']'");
  EXPECT_EQ(errorOf("redis://host?db=1"),
            "invalid redis address: redis:// addresses take no query; put the database in the "
            "path (/db)");
  EXPECT_EQ(errorOf("redis://user@host"),
            "invalid redis address: a username needs a password (username:password@)");
  EXPECT_EQ(errorOf("redis://:bad%zz@host"),
            "invalid redis address: the password has a malformed %-escape");
  EXPECT_EQ(errorOf("unix://relative.sock"),
            "invalid redis address: a unix socket path must be absolute: "
            "unix:///path/to/redis.sock");
  EXPECT_EQ(errorOf("unix://"),
            "invalid redis address: a unix socket path must be absolute: "
            "unix:///path/to/redis.sock");
  EXPECT_EQ(errorOf("unix:///tmp/r.sock?timeout=1"),
            "invalid redis address: a unix socket address takes only ?db=N");
  EXPECT_EQ(errorOf("unix:///" + std::string(120, 'a')),
            "invalid redis address: the unix socket path is longer than 107 bytes");
}

TEST(RedisAddress, ErrorsNeverRepeatThePassword) {
  for (const auto* text : {"redis://:hunter2@host:99999", "redis://:hunter2@",
                           "redis://u:hunter2@h/x", "unix://:hunter2@relative"}) {
    EXPECT_EQ(errorOf(text).find("hunter2"), std::string::npos) << text;
  }
}

TEST(RedisAddress, DescribeHidesThePassword) {
  EXPECT_EQ(parsed("redis://:s3cret@10.0.0.5:6379/2").describe(), "redis://:***@10.0.0.5:6379/2");
  EXPECT_EQ(parsed("redis://app:s3cret@h").describe(), "redis://app:***@h:6379");
  EXPECT_EQ(parsed("redis://[::1]:7000").describe(), "redis://[::1]:7000");
  EXPECT_EQ(parsed("unix://:pw@/tmp/r.sock?db=3").describe(), "unix://:***@/tmp/r.sock?db=3");
  EXPECT_EQ(parsed("unix:///tmp/r.sock").describe(), "unix:///tmp/r.sock");
}

TEST(RedisScript, Sha1IsWhatScriptLoadAnswers) {
  const RedisScript script("return 1");
  EXPECT_EQ(script.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  EXPECT_EQ(script.source(), "return 1");
  const RedisScript copy = script;
  EXPECT_EQ(&copy.source(), &script.source());  // copies share the text
}

}  // namespace
}  // namespace sluice::redis
