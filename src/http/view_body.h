#pragma once

// A Beast body type for relaying: the parser hands over where the body's bytes are in the read
// buffer instead of copying them into a buffer of the body's own.

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <cstdint>
#include <string_view>

namespace sluice::http {

struct ViewBody {
  // The piece of the body the last read brought: it points into the read buffer the parser was
  // given and stays valid until that buffer is read into again. Clear it before each read.
  struct value_type {
    std::string_view piece;
  };

  class reader {
   public:
    template <bool kIsRequest, class Fields>
    reader(boost::beast::http::header<kIsRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>&, boost::beast::error_code& ec) { ec = {}; }

    // One piece per read: a second one (another chunk in the same read) waits in the read
    // buffer for the next read, as with a full buffer_body.
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      if (!body_.piece.empty()) {
        ec = boost::beast::http::error::need_buffer;
        return 0;
      }
      const auto first = *boost::asio::buffer_sequence_begin(buffers);
      body_.piece = {static_cast<const char*>(first.data()), first.size()};
      ec = {};
      return first.size();
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace sluice::http
