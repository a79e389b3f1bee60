#include <msgtrans/error.hpp>

namespace msgtrans {
namespace {

class msgtrans_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msgtrans"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::short_header: return "packet shorter than its 16-byte header";
      case errc::bad_version: return "unsupported packet version (only version 1 exists)";
      case errc::bad_compression: return "unknown compression value (0 none, 1 zstd, 2 zlib)";
      case errc::bad_packet_type: return "unknown packet type (0 one-way, 1 request, 2 response)";
      case errc::truncated: return "packet body shorter than its header declares";
      case errc::trailing_bytes: return "message holds bytes after its one packet";
      case errc::ext_header_too_large: return "extension header over the configured limit (max_ext_header)";
      case errc::message_too_large: return "packet over the configured maximum message size (max_message_size)";
      case errc::decompress_failed: return "payload could not be decompressed (corrupt zstd/zlib data)";
      case errc::decompressed_too_large: return "payload would decompress past the maximum message size";
      case errc::connection_closed: return "connection closed";
      case errc::not_connected: return "not connected (call connect first)";
      case errc::timeout: return "timed out";
      case errc::queue_full: return "outgoing queue full: the peer is not reading fast enough (raise write_high_water or slow down)";
      case errc::protocol_error: return "protocol error";
      case errc::limit_reached: return "limit reached";
      case errc::unknown_session: return "unknown session (closed, or never existed)";
      case errc::already_responded: return "request already answered";
      case errc::not_a_request: return "only a request can be answered";
      case errc::shutting_down: return "shutting down";
      case errc::invalid_argument: return "invalid argument";
      case errc::tls_error: return "TLS handshake or certificate verification failed";
      case errc::address_error: return "address could not be parsed or resolved";
      case errc::bind_failed: return "could not bind the listening address";
      case errc::cancelled: return "operation cancelled";
      case errc::wrong_thread:
        return "blocking call on a msgtrans loop thread (inside a handler): use the async_ form or call it from "
               "another thread";
      case errc::unauthenticated: return "the server refused the credentials (or none were given)";
    }
    return "unknown msgtrans error";
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const msgtrans_category c;
  return c;
}

}  // namespace msgtrans
