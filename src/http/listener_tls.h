#pragma once

#include <memory>
#include <string>
#include <tl/expected.hpp>

#include "config/config.h"
#include "http/asio.h"

namespace sluice::http {

// The server-side TLS context of the client listener (TLS 1.2 and later): the certificate
// chain and its private key from `tls.cert` / `tls.key`. Errors name the setting, the file and
// OpenSSL's reason (a key that does not belong to the certificate is one).
tl::expected<std::unique_ptr<asio::ssl::context>, std::string> makeListenerTls(
    const config::ListenerTls& settings);

}  // namespace sluice::http
