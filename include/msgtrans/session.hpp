/// @file session.hpp
/// Types that describe sessions (connections) and what arrives on them.
#pragma once

#include <msgtrans/options.hpp>
#include <msgtrans/transport.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace msgtrans {

namespace detail {
class session_core;
}

/// Identifies one connection of a server. Never reused within a server's life.
struct session_id {
  std::uint64_t value = 0;
  bool operator==(const session_id&) const = default;
  auto operator<=>(const session_id&) const = default;
};

/// A snapshot of one connection.
struct connection_info {
  session_id session;
  endpoint_info endpoint;  ///< protocol, local and peer address
  std::chrono::system_clock::time_point established_at;
  std::uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  /// Batches handed to the transport: packets queued in one loop turn leave together
  /// (one writev on TCP), so packets_out / write_batches shows the corking at work.
  std::uint64_t write_batches = 0;
  /// Who the connection belongs to, when the server authenticates (auth.hpp); else null.
  std::shared_ptr<const msgtrans::identity> identity;
  /// Mutual TLS (tls://, wss://, QUIC), server side: the client's verified certificate;
  /// empty when it sent none or the listener asks for none.
  std::optional<peer_certificate> certificate;
};

/// A received packet: one-way message, or the content of a request. The views are valid
/// only during the handler call; copy what you keep (or use `packet` from an event).
struct message {
  session_id session;
  packet_header header;  ///< as received (compression tells how it travelled)
  bytes_view ext_header;
  bytes_view payload;    ///< decompressed
  /// The sender's identity, when the server authenticates (auth.hpp); else null. Valid
  /// while the handler runs (server::identity() gives one to keep).
  const msgtrans::identity* identity = nullptr;
  std::uint8_t biz_type() const noexcept { return header.biz_type; }
  std::uint32_t message_id() const noexcept { return header.message_id; }
  std::string_view text() const noexcept { return as_string(payload); }
  /// An owning copy, to keep after the handler returns.
  packet copy() const {
    packet p;
    p.type = header.type;
    p.biz_type = header.biz_type;
    p.message_id = header.message_id;
    p.flags = header.flags;
    p.compression = header.compression;
    p.ext_header = to_buffer(ext_header);
    p.payload = to_buffer(payload);
    return p;
  }
};

/// Answers one request, exactly once, from any thread. Move-only. Responding twice
/// returns errc::already_responded; responding after the connection closed returns
/// errc::connection_closed. Nothing is dropped silently.
class responder {
 public:
  responder() = default;
  responder(std::shared_ptr<detail::session_core> s, std::uint32_t id, std::uint8_t biz,
            std::chrono::steady_clock::time_point received = {}) noexcept
      : session_(std::move(s)), id_(id), biz_type_(biz), received_(received) {}
  responder(responder&& o) noexcept { *this = std::move(o); }
  responder& operator=(responder&& o) noexcept;
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder();

  /// Sends the response. By default it carries the request's biz_type; options may set
  /// biz_type, ext header, flags and compression.
  std::error_code respond(bytes_view payload) { return respond(payload, send_options{biz_type_}); }
  std::error_code respond(std::string_view text) { return respond(as_bytes(text)); }
  std::error_code respond(bytes_view payload, const send_options& opts);

  bool responded() const noexcept { return done_; }
  std::uint32_t message_id() const noexcept { return id_; }

 private:
  std::shared_ptr<detail::session_core> session_;
  std::uint32_t id_ = 0;
  std::uint8_t biz_type_ = 0;
  std::chrono::steady_clock::time_point received_;
  bool done_ = false;
};

/// A received request: the message plus its responder.
class request : public message {
 public:
  request(const message& m, responder r) : message(m), responder_(std::move(r)) {}
  std::error_code respond(bytes_view payload) { return responder_.respond(payload); }
  std::error_code respond(std::string_view text) { return responder_.respond(text); }
  std::error_code respond(bytes_view payload, const send_options& o) { return responder_.respond(payload, o); }
  bool responded() const noexcept { return responder_.responded(); }
  /// Takes the responder, to answer later or from another thread (copy the payload
  /// first: the views end with the handler call).
  responder take_responder() noexcept { return std::move(responder_); }

 private:
  responder responder_;
};

}  // namespace msgtrans

/// @cond STD_SPECIALISATIONS (plumbing, not API; doxygen cannot place std:: specialisations)
template <>
struct std::hash<msgtrans::session_id> {
  std::size_t operator()(const msgtrans::session_id& s) const noexcept { return std::hash<std::uint64_t>{}(s.value); }
};
/// @endcond
