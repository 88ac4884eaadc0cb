#pragma once

// The one private header that pulls in Asio and Beast: only .cc files of the parts that do
// network I/O include it, so the rest of the tree compiles without them.

#include <boost/asio.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <string>

namespace sluice::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

template <typename T = void>
using Task = asio::awaitable<T>;

// Completion token that returns (error_code, result...) instead of throwing.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Lets a client's disconnect end the upstream exchange at once: while armed, the client
// socket is watched for EOF, and on EOF the upstream socket is closed, which completes its
// pending operation with an error. Shared with the pending wait, which may outlive a request.
struct DisconnectWatch {
  bool armed = false;
  bool client_gone = false;
  beast::tcp_stream* upstream = nullptr;  // the TCP layer of the upstream connection
};

// A client connection as the request handler sees it: the stream and the bytes already read
// past the current request (pipelined requests stay there for the next turn).
struct ClientConnection {
  explicit ClientConnection(tcp::socket socket) : stream(std::move(socket)) {}

  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string peer;   // "ip:port", for logs
  bool idle = false;  // waiting for the next request; graceful shutdown may close it
  std::shared_ptr<DisconnectWatch> watch;
};

}  // namespace sluice::http
