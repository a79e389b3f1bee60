/// @file error.hpp
/// Error codes of msgtrans: one `std::error_category` named "msgtrans".
/// Every failure the library reports is a `std::error_code`; compare with `msgtrans::errc::*`.
#pragma once

#include <string>
#include <system_error>
#include <utility>

namespace msgtrans {

/// What went wrong. The message of each code says what to check or change.
enum class errc {
  // Packet decoding (the receiver rules of the wire format)
  short_header = 1,        ///< fewer than 16 bytes where a header was expected
  bad_version,             ///< version byte is not 1
  bad_compression,         ///< compression value is not 0, 1 or 2
  bad_packet_type,         ///< packet_type value is not 0, 1 or 2
  truncated,               ///< the body is shorter than the header declares
  trailing_bytes,          ///< a message holds more bytes than its one packet
  ext_header_too_large,    ///< ext_header_len over the configured limit
  message_too_large,       ///< declared packet length over the configured maximum
  decompress_failed,       ///< the payload is not valid zstd / zlib data
  decompressed_too_large,  ///< decompressing would exceed the maximum message size
  // Connections and requests
  connection_closed,       ///< the connection ended before the operation completed
  not_connected,           ///< the client has no connection
  timeout,                 ///< the deadline passed
  queue_full,              ///< the connection's outgoing queue is past its high-water mark
  protocol_error,          ///< the peer broke the protocol
  limit_reached,           ///< a configured limit (connections, ...) refused the operation
  unknown_session,         ///< no session with that id (closed, or never existed)
  already_responded,       ///< a request was answered already
  not_a_request,           ///< respond() on something that is not a request
  shutting_down,           ///< the server or client is stopping
  invalid_argument,        ///< a bad argument or configuration value
  tls_error,               ///< TLS handshake or verification failed
  address_error,           ///< an address could not be parsed or resolved
  bind_failed,             ///< a listener could not bind its address
  cancelled,               ///< the operation was cancelled
  wrong_thread,            ///< a blocking call on a msgtrans loop thread (see threads.hpp)
  unauthenticated,         ///< the server's authentication refused this client (auth.hpp)
};

/// The "msgtrans" error category.
const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}


}  // namespace msgtrans

/// @cond STD_SPECIALISATIONS (plumbing, not API; doxygen cannot place std:: specialisations)
template <>
struct std::is_error_code_enum<msgtrans::errc> : std::true_type {};
/// @endcond

namespace msgtrans {

/// A runtime failure: its code, and what a person needs to know about this instance of
/// it (which address, which file, which field). Every call that can fail for more than
/// one reason returns this (or `result<T>`, whose error is the code alone). An empty
/// `code` means success; `if (auto e = server.start()) ...` tests for failure.
struct error_info {
  std::error_code code;
  std::string detail;  ///< empty when the code's own message says it all

  error_info() = default;
  error_info(std::error_code c, std::string d = {}) : code(c), detail(std::move(d)) {}  // NOLINT: implicit
  error_info(errc e, std::string d = {}) : code(e), detail(std::move(d)) {}            // NOLINT: implicit

  explicit operator bool() const noexcept { return static_cast<bool>(code); }
  /// The detail if there is one, else the code's message.
  std::string message() const { return detail.empty() ? code.message() : detail; }

  /// Compares the code only (the detail is for people): `EXPECT_EQ(c.connect(), errc::timeout)`.
  friend bool operator==(const error_info& a, const std::error_code& b) noexcept { return a.code == b; }
  friend bool operator==(const error_info& a, errc b) noexcept { return a.code == b; }
};

/// Prints message(): the detail, or the code's message when there is none.
template <class Ostream>
  requires requires(Ostream& os, const std::string& s) { os << s; }
Ostream& operator<<(Ostream& os, const error_info& e) {
  os << e.message();
  return os;
}

}  // namespace msgtrans
