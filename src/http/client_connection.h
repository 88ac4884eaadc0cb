#pragma once

#include <memory>
#include <string>

#include "http/asio.h"
#include "http/byte_stream.h"

namespace sluice::http {

// Lets a client's disconnect end the upstream exchange at once: while armed, the client
// socket is watched for EOF, and on EOF the upstream socket is closed, which completes its
// pending operation with an error. Shared with the pending wait, which may outlive a request.
struct DisconnectWatch {
  bool armed = false;
  bool client_gone = false;
  tcp::socket* upstream = nullptr;  // the socket of the upstream connection
};

// A client connection as the request handler sees it: the stream and the bytes already read
// past the current request (pipelined requests stay there for the next turn).
struct ClientConnection {
  explicit ClientConnection(tcp::socket socket) : stream(std::move(socket)) {}

  ByteStream stream;  // TLS once the listener has a certificate
  beast::flat_buffer buffer;
  std::string peer;   // "ip:port", for logs
  bool idle = false;  // waiting for the next request; graceful shutdown may close it
  std::shared_ptr<DisconnectWatch> watch;
};

}  // namespace sluice::http
