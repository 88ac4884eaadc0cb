#include "http/sse_decoder.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace sluice::http {
namespace {

struct Collected {
  std::string event, data, id;
  bool operator==(const Collected&) const = default;
};

std::vector<Collected> decodeInPieces(const std::string& stream, const std::vector<size_t>& cuts) {
  SseDecoder decoder;
  std::vector<Collected> events;
  auto collect = [&](const SseEvent& e) {
    events.push_back({std::string(e.event), std::string(e.data), std::string(e.id)});
  };
  size_t pos = 0;
  for (size_t cut : cuts) {
    EXPECT_TRUE(decoder.feed(std::string_view(stream).substr(pos, cut - pos), collect));
    pos = cut;
  }
  EXPECT_TRUE(decoder.feed(std::string_view(stream).substr(pos), collect));
  decoder.finish(collect);
  return events;
}

const std::string kStream =
    "event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
    ": keep-alive comment\n\n"
    "data: line one\ndata: line two\n\n"
    "id: 7\rdata:no-space\r\r"
    "data: [DONE]\n\n";

const std::vector<Collected> kExpected = {
    {"message_start", "{\"a\":1}", ""},
    {"", "line one\nline two", ""},
    {"", "no-space", "7"},
    {"", "[DONE]", "7"},
};

TEST(SseDecoder, DecodesWholeStream) { EXPECT_EQ(decodeInPieces(kStream, {}), kExpected); }

TEST(SseDecoder, EventSplitAcrossThreeReads) {
  EXPECT_EQ(decodeInPieces(kStream, {10, 30}), kExpected);
}

TEST(SseDecoder, CrLfSplitBetweenReads) {
  const size_t cr = kStream.find('\r');
  EXPECT_EQ(decodeInPieces(kStream, {cr + 1}), kExpected);
}

TEST(SseDecoder, EveryByteSeparately) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < kStream.size(); ++i) cuts.push_back(i);
  EXPECT_EQ(decodeInPieces(kStream, cuts), kExpected);
}

TEST(SseDecoder, ArbitrarySplitsGiveSameEvents) {
  std::mt19937 random(12345);
  for (int round = 0; round < 500; ++round) {
    std::vector<size_t> cuts;
    for (size_t pos = 0;;) {
      pos += 1 + random() % 12;
      if (pos >= kStream.size()) break;
      cuts.push_back(pos);
    }
    ASSERT_EQ(decodeInPieces(kStream, cuts), kExpected) << "round " << round;
  }
}

TEST(SseDecoder, FinishDispatchesUnterminatedEvent) {
  EXPECT_EQ(decodeInPieces("data: tail", {}), (std::vector<Collected>{{"", "tail", ""}}));
}

TEST(SseDecoder, EventWithoutDataIsNotDispatched) {
  EXPECT_TRUE(decodeInPieces("event: ping\n\n", {}).empty());
}

TEST(SseDecoder, OversizedEventFailsInsteadOfGrowing) {
  SseDecoder decoder(64);
  int events = 0;
  auto count = [&](const SseEvent&) { ++events; };
  EXPECT_TRUE(decoder.feed("data: short\n\n", count));
  EXPECT_FALSE(decoder.feed("data: " + std::string(100, 'x'), count));
  EXPECT_TRUE(decoder.failed());
  EXPECT_FALSE(decoder.feed("\n\n", count));
  EXPECT_EQ(events, 1);
}

}  // namespace
}  // namespace sluice::http
