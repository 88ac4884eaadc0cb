#include "redis/resp_parser.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace sluice::redis {
namespace {

using namespace std::string_literals;
using Array = RedisReply::Array;
using Bulk = RedisReply::BulkString;
using Simple = RedisReply::SimpleString;
using Error = RedisReply::Error;

// Every reply `parser` can give now; fails the test on a parse error.
std::vector<RedisReply> drain(RespParser& parser) {
  std::vector<RedisReply> replies;
  while (true) {
    auto next = parser.next();
    EXPECT_TRUE(next.has_value()) << next.error();
    if (!next || !*next) return replies;
    replies.push_back(std::move(**next));
  }
}

// The error the parser reports for `bytes` fed at once.
std::string errorFor(std::string_view bytes, RespParser::Limits limits = {}) {
  RespParser parser(limits);
  parser.feed(bytes);
  while (true) {
    auto next = parser.next();
    if (!next) return next.error();
    if (!*next) return "(no error: waiting for more bytes)";
  }
}

std::string nested(size_t depth) {
  std::string bytes;
  for (size_t i = 0; i < depth; ++i) bytes += "*1\r\n";
  return bytes + ":1\r\n";
}

// Replies of every kind, back to back as on a pipelined connection.
const std::string kStream =
    "+OK\r\n"
    "-ERR unknown command 'NOPE'\r\n"
    ":42\r\n"
    ":-9223372036854775808\r\n"
    "$5\r\nhello\r\n"
    "$0\r\n\r\n"
    "$-1\r\n"
    "*-1\r\n"
    "*0\r\n"
    "$12\r\nline\r\nbreaks\r\n"
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n-NOSCRIPT No matching script.\r\n"
    "+\r\n";

const std::vector<RedisReply> kExpected = {
    Simple{"OK"},
    Error{"ERR unknown command 'NOPE'"},
    RedisReply(42),
    RedisReply(INT64_MIN),
    Bulk{"hello"},
    Bulk{""},
    RedisReply(),
    RedisReply(),
    Array{},
    Bulk{"line\r\nbreaks"},
    Array{RedisReply(1), Array{Bulk{"a"}, RedisReply()},
          Array{Error{"NOSCRIPT No matching script."}}},
    Simple{""},
};

TEST(RespParser, ParsesEveryKindOfReply) {
  RespParser parser;
  parser.feed(kStream);
  EXPECT_EQ(drain(parser), kExpected);
  EXPECT_EQ(parser.buffered(), 0u);
}

// Replies handed on as bytes (plugins' proxy_redis_call) read back as the same replies.
TEST(RedisReply, AppendRespRoundTripsThroughTheParser) {
  const std::vector<RedisReply> replies = {
      RedisReply(Simple{"OK"}),
      RedisReply(int64_t{-42}),
      RedisReply(Bulk{"a\r\n\0b"s}),
      RedisReply(),
      RedisReply(Error{"ERR wrong type"}),
      RedisReply(Array{RedisReply(int64_t{1}), RedisReply(Array{}), RedisReply(Bulk{""})})};
  std::string bytes;
  for (const auto& reply : replies) reply.appendResp(bytes);
  EXPECT_EQ(bytes.substr(0, 15), "+OK\r\n:-42\r\n$5\r\n");
  RespParser parser;
  parser.feed(bytes);
  EXPECT_EQ(drain(parser), replies);
}

TEST(RespParser, StreamSplitAtEveryByteBoundary) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    RespParser parser;
    parser.feed(std::string_view(kStream).substr(0, cut));
    auto replies = drain(parser);
    parser.feed(std::string_view(kStream).substr(cut));
    for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
    ASSERT_EQ(replies, kExpected) << "split at byte " << cut;
    EXPECT_EQ(parser.buffered(), 0u);
  }
}

TEST(RespParser, StreamFedOneByteAtATime) {
  RespParser parser;
  std::vector<RedisReply> replies;
  for (const char byte : kStream) {
    parser.feed(std::string_view(&byte, 1));
    for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
  }
  EXPECT_EQ(replies, kExpected);
}

TEST(RespParser, WaitsForTheWholeReply) {
  RespParser parser;
  parser.feed("*2\r\n$3\r\nfoo\r\n");
  EXPECT_TRUE(drain(parser).empty());
  parser.feed("$3\r\nba");
  EXPECT_TRUE(drain(parser).empty());
  parser.feed("r\r\n");
  // One reply holding an array (spelled out: `{Array{...}}` alone would copy the array itself).
  const std::vector<RedisReply> expected = {RedisReply(Array{Bulk{"foo"}, Bulk{"bar"}})};
  EXPECT_EQ(drain(parser), expected);
}

TEST(RespParser, BulkStringsAreBinarySafe) {
  const std::string payload("a\0b\r\n\xff", 6);
  RespParser parser;
  parser.feed("$6\r\n" + payload + "\r\n");
  const std::vector<RedisReply> expected = {Bulk{payload}};
  EXPECT_EQ(drain(parser), expected);
}

TEST(RespParser, LargeBulkStringInSmallPieces) {
  const std::string payload(1u << 20, 'x');
  const std::string bytes = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n:7\r\n";
  RespParser parser;
  std::vector<RedisReply> replies;
  for (size_t pos = 0; pos < bytes.size(); pos += 1000) {
    parser.feed(std::string_view(bytes).substr(pos, 1000));
    for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
  }
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].string(), payload);
  EXPECT_EQ(replies[1].integer(), 7);
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(RespParser, RejectsMalformedInput) {
  EXPECT_EQ(errorFor("?what\r\n"), "unexpected reply type byte 0x3f");
  EXPECT_EQ(errorFor("+OK\n"), "line not terminated by CRLF");
  EXPECT_EQ(errorFor("\r\n"), "line not terminated by CRLF");
  EXPECT_EQ(errorFor(":12a\r\n"), "invalid integer reply \"12a\"");
  EXPECT_EQ(errorFor(":\r\n"), "invalid integer reply \"\"");
  EXPECT_EQ(errorFor(":9223372036854775808\r\n"), "invalid integer reply \"9223372036854775808\"");
  EXPECT_EQ(errorFor("$-2\r\n"), "invalid bulk string length \"-2\"");
  EXPECT_EQ(errorFor("$x\r\n"), "invalid bulk string length \"x\"");
  EXPECT_EQ(errorFor("$3\r\nabcXY"), "bulk string not followed by CRLF");
  EXPECT_EQ(errorFor("*-5\r\n"), "invalid array length \"-5\"");
  EXPECT_EQ(errorFor("*1\r\n!\r\n"), "unexpected reply type byte 0x21");
}

TEST(RespParser, ErrorIsFinal) {
  RespParser parser;
  parser.feed("+OK\r\n?bad\r\n+LATER\r\n");
  auto first = parser.next();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->string(), "OK");
  EXPECT_FALSE(parser.next());
  parser.feed("+MORE\r\n");
  const auto again = parser.next();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), "unexpected reply type byte 0x3f");
}

TEST(RespParser, RefusesABulkStringOverTheLimitBeforeItsBytesArrive) {
  const RespParser::Limits limits{.max_reply_bytes = 1024, .max_depth = 16};
  // "$1015\r\n" + 1015 bytes + "\r\n" is exactly 1024 bytes.
  EXPECT_EQ(errorFor("$1015\r\n", limits), "(no error: waiting for more bytes)");
  EXPECT_EQ(errorFor("$1016\r\n", limits), "reply exceeds the limit of 1024 bytes");
  EXPECT_EQ(errorFor("$9223372036854775807\r\n"), "reply exceeds the limit of 16777216 bytes");
}

TEST(RespParser, RefusesAnArrayThatCannotFitTheLimit) {
  const RespParser::Limits limits{.max_reply_bytes = 1024, .max_depth = 16};
  EXPECT_EQ(errorFor("*1000\r\n", limits), "reply exceeds the limit of 1024 bytes");
  EXPECT_EQ(errorFor("*9223372036854775807\r\n"), "reply exceeds the limit of 16777216 bytes");
}

TEST(RespParser, CountsEveryElementOfAReplyAgainstTheLimit) {
  const RespParser::Limits limits{.max_reply_bytes = 1024, .max_depth = 16};
  std::string bytes = "*100\r\n";
  for (int i = 0; i < 100; ++i) bytes += "$10\r\n0123456789\r\n";  // 16 bytes each
  EXPECT_EQ(errorFor(bytes, limits), "reply exceeds the limit of 1024 bytes");

  // The limit is per reply: many replies in a row may add up to more.
  RespParser parser(limits);
  for (int i = 0; i < 100; ++i) parser.feed("$10\r\n0123456789\r\n");
  EXPECT_EQ(drain(parser).size(), 100u);
}

TEST(RespParser, RefusesALineWithoutEndOverTheLimit) {
  const RespParser::Limits limits{.max_reply_bytes = 1024, .max_depth = 16};
  RespParser parser(limits);
  parser.feed("+" + std::string(1000, 'a'));
  EXPECT_TRUE(drain(parser).empty());
  parser.feed(std::string(100, 'a'));
  const auto next = parser.next();
  ASSERT_FALSE(next);
  EXPECT_EQ(next.error(), "reply exceeds the limit of 1024 bytes");
}

TEST(RespParser, LimitsNestingDepth) {
  const RespParser::Limits limits{.max_reply_bytes = 1024, .max_depth = 4};
  RespParser parser(limits);
  parser.feed(nested(4));
  const auto replies = drain(parser);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].describe(), "[[[[1]]]]");
  EXPECT_EQ(errorFor(nested(5), limits), "arrays nested deeper than 4 levels");
  EXPECT_EQ(errorFor("*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", limits),
            "arrays nested deeper than 4 levels");
}

TEST(RespCommand, EncodesArgumentsAsBulkStrings) {
  std::string out;
  const std::string binary("x\0y", 3);
  const std::array<std::string_view, 4> args{"SET", "key", "", binary};
  appendCommand(out, args);
  EXPECT_EQ(out, "*4\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n$3\r\nx\0y\r\n"s);
}

TEST(RedisReply, DescribesItselfForLogs) {
  const RedisReply reply =
      Array{Simple{"OK"}, RedisReply(-3), RedisReply(), Bulk{"a\"b"}, Error{"ERR x"}, Array{}};
  EXPECT_EQ(reply.describe(), R"(["OK", -3, nil, "a\"b", (error) ERR x, []])");
}

TEST(RedisReply, AccessorsFollowTheKind) {
  const RedisReply simple = Simple{"PONG"};
  const RedisReply bulk = Bulk{"v"};
  EXPECT_TRUE(simple.isString());
  EXPECT_TRUE(bulk.isString());
  EXPECT_EQ(simple.string(), "PONG");
  EXPECT_NE(simple, RedisReply(Bulk{"PONG"}));  // the kind is part of the value
  EXPECT_TRUE(RedisReply().isNil());
  EXPECT_EQ(RedisReply(Error{"NOSCRIPT x"}).errorMessage(), "NOSCRIPT x");
  EXPECT_THROW((void)RedisReply(5).string(), std::bad_variant_access);
}

}  // namespace
}  // namespace sluice::redis
