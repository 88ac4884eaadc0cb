#include "http/listener_tls.h"

#include <fmt/format.h>

namespace sluice::http {

tl::expected<std::unique_ptr<asio::ssl::context>, std::string> makeListenerTls(
    const config::ListenerTls& settings) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  beast::error_code ec;
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression,
                       ec);
  context->use_certificate_chain_file(settings.cert_file, ec);
  if (ec) {
    return tl::make_unexpected(
        fmt::format("tls.cert: cannot load \"{}\": {}", settings.cert_file, ec.message()));
  }
  context->use_private_key_file(settings.key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return tl::make_unexpected(
        fmt::format("tls.key: cannot load \"{}\": {}", settings.key_file, ec.message()));
  }
  return context;
}

}  // namespace sluice::http
