#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "admin/admin_handler.h"

// Declared, not included: this header stays free of Asio so that including it is cheap.
namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace sluice::admin {

// The admin API's own HTTP/1.1 listener (keep-alive). Every request must carry
// `Authorization: Bearer <token>` (401 otherwise, with `www-authenticate: Bearer`); then the
// handler registered for the method and the longest matching path prefix answers it (404 when
// no prefix matches, 405 with Allow when the prefix has no handler for the method; see
// AdminRouter). The body of a request without the token is not read: 401 and the connection
// closes. Bodies over `max_body_bytes` get 413, headers over 16 KiB 431, malformed requests 400,
// and the connection is closed after those; a request must arrive within 10 s. Error bodies are
// JSON (errorResponse).
//
// Threads: everything runs on `io`'s thread, handlers included. Register handlers before
// listen(); call stop() and destroy the server on that thread, or once `io` no longer runs.
class AdminServer {
 public:
  // Only a digest of `token` is kept (see BearerToken).
  AdminServer(boost::asio::io_context& io, std::string_view token,
              uint64_t max_body_bytes = uint64_t{1} << 20);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // `method` is matched exactly ("GET", "POST", ...). Throws std::invalid_argument for an
  // empty method or handler, or a prefix that does not start with '/'.
  void handle(std::string method, std::string path_prefix, AdminHandler handler);

  // Binds `host` (an IP address) and `port` (0: any free port, see boundPort()) and starts
  // accepting on `io`. Fails with a message naming the address when the token is empty, the
  // address is invalid or busy, or the server already listens.
  tl::expected<void, std::string> listen(const std::string& host, uint16_t port);

  // The port listen() bound; 0 before.
  uint16_t boundPort() const;

  // Stops accepting and closes every admin connection; requests in progress are dropped.
  void stop();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with the connections' coroutines, which may outlive us
};

}  // namespace sluice::admin
