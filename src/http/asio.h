#pragma once

// The one private header that pulls in Asio and Beast: only .cc files of the parts that do
// network I/O include it, so the rest of the tree compiles without them.

#include <boost/asio.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace sluice::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

template <typename T = void>
using Task = asio::awaitable<T>;

// Completion token that returns (error_code, result...) instead of throwing.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace sluice::http
