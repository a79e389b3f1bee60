/// @file url.hpp
/// Client targets by URL: `tcp://host:port`, `tls://host:port` (TCP inside TLS), and the
/// schemes other transports register (`ws://`, `wss://`, `quic://`). Adding a transport adds one line to the table in
/// src/runtime/url.cpp.
#pragma once

#include <msgtrans/transport.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace msgtrans {

/// Settings a URL cannot carry.
struct url_options {
  std::string tls_ca_file;               ///< trust these CAs (TLS transports)
  std::string tls_server_name;           ///< SNI / verification name, if not the URL's host
  bool tls_insecure_skip_verify = false;  ///< do not verify the server certificate (development only)
  /// Mutual TLS (`tls://`, `wss://`, `quic://`): this client's PEM certificate chain and
  /// key (both or neither). `tcp://` or `ws://` with them set is an error (not silently
  /// ignored).
  std::string tls_cert_file;
  std::string tls_key_file;
  /// quic:// only: offer no ALPN instead of "msgtrans" (the Rust original's QUIC server
  /// configures none and refuses a client that offers one: docs/interop.md).
  bool quic_no_alpn = false;
};

/// A connector for `url`, or null with `error` saying what is wrong.
std::unique_ptr<connector> connector_for_url(std::string_view url, const url_options& o, std::string& error);
/// The schemes connector_for_url knows.
std::vector<std::string> url_schemes();

}  // namespace msgtrans
