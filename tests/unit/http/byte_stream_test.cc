#include "http/byte_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>

namespace sluice::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A connected pair on loopback: `stream` is the side under test, `peer` the other end.
class ByteStreamTest : public ::testing::Test {
 protected:
  ByteStreamTest() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), peer_(io_) {
    peer_.connect(acceptor_.local_endpoint());
    stream_.emplace(acceptor_.accept());
  }

  // Reads from `stream` while the peer writes a byte after `peer_delay`, then lifts the deadline;
  // returns the read's error as the stream reports it, and how long it took.
  std::pair<beast::error_code, Clock::duration> readWithPeerWritingAfter(
      Clock::duration peer_delay) {
    std::optional<beast::error_code> result;
    const auto start = Clock::now();
    Clock::time_point end;
    stream_->async_read_some(asio::buffer(&byte_, 1), [&](beast::error_code ec, size_t) {
      result = stream_->translate(ec);
      end = Clock::now();
      stream_->expires_never();  // as the gateway does after each bounded operation
    });
    asio::steady_timer peer_timer(io_, peer_delay);
    peer_timer.async_wait([&](beast::error_code ec) {
      beast::error_code ignored;
      if (!ec && peer_.is_open()) asio::write(peer_, asio::buffer("x", 1), ignored);
    });
    io_.run_for(std::chrono::seconds(5));
    EXPECT_TRUE(result.has_value()) << "the read never completed";
    return {result.value_or(beast::error_code{}), end - start};
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  tcp::socket peer_;
  std::optional<ByteStream> stream_;
  char byte_ = 0;
};

TEST_F(ByteStreamTest, AReadPastItsDeadlineFailsAsATimeoutAndClosesTheStream) {
  stream_->expires_after(milliseconds(50));
  const auto [ec, took] = readWithPeerWritingAfter(milliseconds(1000));
  EXPECT_EQ(ec, beast::error::timeout);
  EXPECT_GE(took, milliseconds(45));
  EXPECT_LT(took, milliseconds(900));
  EXPECT_TRUE(stream_->timedOut());
  EXPECT_FALSE(stream_->socket().is_open());
}

TEST_F(ByteStreamTest, ADeadlineMovedLaterIsTheOneThatCounts) {
  stream_->expires_after(milliseconds(50));   // the timer waits for this one...
  stream_->expires_after(milliseconds(400));  // ...and finds it moved when it fires
  const auto [ec, took] = readWithPeerWritingAfter(milliseconds(150));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_GE(took, milliseconds(140));
  EXPECT_FALSE(stream_->timedOut());
}

TEST_F(ByteStreamTest, ADeadlineMovedSoonerIsKept) {
  stream_->expires_after(std::chrono::seconds(3));
  stream_->expires_after(milliseconds(50));
  const auto [ec, took] = readWithPeerWritingAfter(milliseconds(1000));
  EXPECT_EQ(ec, beast::error::timeout);
  EXPECT_LT(took, milliseconds(900));
}

TEST_F(ByteStreamTest, ExpiresNeverLiftsTheDeadline) {
  stream_->expires_after(milliseconds(50));
  stream_->expires_never();
  const auto [ec, took] = readWithPeerWritingAfter(milliseconds(150));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(stream_->timedOut());
  EXPECT_TRUE(stream_->socket().is_open());
}

TEST_F(ByteStreamTest, TheTimerMayOutliveTheStream) {
  stream_->expires_after(milliseconds(20));
  stream_.reset();  // its timer's wait is still pending
  io_.run_for(milliseconds(100));
  SUCCEED();  // under ASan, a use of the destroyed stream would fail here
}

}  // namespace
}  // namespace sluice::http
