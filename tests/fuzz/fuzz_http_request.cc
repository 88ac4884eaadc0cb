// HTTP/1.1 requests as the client listener reads them (Beast's parser with the gateway's header
// and body limits), then the routing fields and the prompt text of the body.
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/request_fields.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(256 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  const char* cursor = reinterpret_cast<const char*>(data);
  size_t left = size;
  while (left > 0 && !parser.is_done()) {
    const auto used = parser.put(boost::asio::buffer(cursor, left), ec);
    if (ec == http::error::need_more) break;
    if (ec) return 0;  // rejected: the gateway answers 400/413/431
    if (used == 0) break;
    cursor += used;
    left -= used;
  }
  if (!parser.is_done()) return 0;
  std::string body = parser.get().body();
  auto fields = sluice::proxy::parseRequestFields(body);
  if (!fields && fields.error().status != 400) __builtin_trap();  // bad input is always a 400
  (void)sluice::proxy::promptText(body, 4096);
  return 0;
}
