#include "proxy/sse_event_splitter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::proxy {
namespace {

const std::string kStream =
    "data: {\"n\":1}\n\n"
    ": keep-alive\n\n"
    "event: delta\r\ndata: two\r\ndata: lines\r\n\r\n"
    "data: [DONE]\n\n";
const std::vector<std::string> kEvents = {
    "data: {\"n\":1}\n\n", "event: delta\ndata: two\ndata: lines\n\n", "data: [DONE]\n\n"};

std::vector<std::string> splitInPieces(const std::string& stream, size_t piece) {
  SseEventSplitter splitter(1024);
  std::vector<std::string> events;
  for (size_t at = 0; at < stream.size(); at += piece) {
    EXPECT_TRUE(splitter.feed(std::string_view(stream).substr(at, piece), events));
  }
  splitter.finish(events);
  return events;
}

TEST(SseEventSplitter, WholeStreamGivesWholeEvents) {
  EXPECT_EQ(splitInPieces(kStream, kStream.size()), kEvents);
}

TEST(SseEventSplitter, EverySplitGivesTheSameWholeEvents) {
  for (size_t piece = 1; piece < kStream.size(); ++piece) {
    EXPECT_EQ(splitInPieces(kStream, piece), kEvents) << "pieces of " << piece << " bytes";
  }
}

TEST(SseEventSplitter, EventIsReturnedOnlyOnceComplete) {
  SseEventSplitter splitter(1024);
  std::vector<std::string> events;
  EXPECT_TRUE(splitter.feed("data: {\"a\"", events));
  EXPECT_TRUE(splitter.feed(":1}\n", events));
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(splitter.takePending(), "data: {\"a\":1}\n");
  EXPECT_TRUE(splitter.feed("\n", events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "data: {\"a\":1}\n\n");
}

TEST(SseEventSplitter, FinishReturnsUnterminatedLastEvent) {
  SseEventSplitter splitter(1024);
  std::vector<std::string> events;
  EXPECT_TRUE(splitter.feed("data: last", events));
  splitter.finish(events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "data: last\n\n");
}

TEST(SseEventSplitter, OversizedEventFailsAndKeepsItsRawBytes) {
  SseEventSplitter splitter(32);
  std::vector<std::string> events;
  const std::string big = "data: " + std::string(40, 'x') + "\n";
  EXPECT_TRUE(splitter.feed("data: ok\n\ndata: ", events));
  EXPECT_FALSE(splitter.feed(std::string(40, 'x') + "\n\ndata: after\n\n", events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "data: ok\n\n");
  // Nothing is lost: the unfinished event's bytes and everything after come back raw.
  EXPECT_EQ(splitter.takePending(), big + "\ndata: after\n\n");
  EXPECT_FALSE(splitter.feed("more", events));
  EXPECT_EQ(splitter.takePending(), "more");
}

TEST(SseEventSplitter, CommentsWithoutBlankLineAreBounded) {
  SseEventSplitter splitter(64);
  std::vector<std::string> events;
  bool ok = true;
  for (int i = 0; i < 100 && ok; ++i) ok = splitter.feed(": ping\n", events);
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace sluice::proxy
