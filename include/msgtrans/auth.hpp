/// @file auth.hpp
/// Who may connect: the authentication hook of a server (`server_builder::on_authenticate`),
/// what it is asked (`auth_request`), how it answers (`auth_responder`), the identity an
/// accepted connection carries, and a ready-made JWT check (`jwt_authenticator`).
///
/// How credentials travel (docs/wire-format.md, "Authentication"):
/// - WebSocket: `Authorization: Bearer TOKEN` or a `token` query parameter on the upgrade
///   request. The hook answers before the upgrade: a rejection is HTTP 401 (no
///   credentials) or 403, with the reason as the body.
/// - TCP, TLS, QUIC: the client's first packet is an authentication request (a request
///   whose ext_header is "msgtrans.auth/1" and whose payload is the token), answered with
///   an accept or reject response; a rejection is followed by a close.
/// Until the hook accepts, nothing of the connection reaches on_connected, on_message or
/// on_request, and it is not among server::sessions().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msgtrans {

/// Who a connection belongs to, as the authentication hook decided.
struct identity {
  std::string user;  ///< the user id (for JWT: the `sub` claim)
  /// Further claims, as the hook chose to keep them (for JWT: every string or number
  /// claim, numbers in decimal).
  std::vector<std::pair<std::string, std::string>> claims;

  /// The claim's value, or nullptr.
  const std::string* claim(std::string_view name) const noexcept {
    for (auto& [k, v] : claims)
      if (k == name) return &v;
    return nullptr;
  }
};

/// A verified TLS client certificate (mutual TLS).
struct peer_certificate {
  std::string subject;                   ///< e.g. "CN=alice,O=Example"
  std::vector<std::string> subject_alt_names;  ///< DNS names, IPs, e-mails, URIs
  std::string sha256_fingerprint;        ///< hex, lower case, no separators
};

/// What the hook is asked, once per new connection.
struct auth_request {
  std::string protocol;      ///< "tcp", "ws", "wss", "quic", ...
  std::string peer_address;  ///< "127.0.0.1:53211"
  /// The credentials the client presented (the bearer token, the `token` query
  /// parameter, or the first packet's payload); empty if none.
  std::string token;
  /// WebSocket only: the upgrade request.
  std::string path;   ///< "/ws" (without the query)
  std::string query;  ///< "token=...&room=a" (without the '?'), as sent
  std::vector<std::pair<std::string, std::string>> headers;  ///< as sent, names as written
  /// TLS with a client certificate only.
  std::optional<peer_certificate> certificate;

  /// The first header of that name (ASCII case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const noexcept;
};

namespace detail {
struct auth_verdict;
}

/// Answers one authentication, exactly once, from any thread; move-only. Dropping it
/// unanswered rejects the connection ("authentication handler dropped the request").
/// An answer after `server_builder::auth_timeout` changes nothing (the connection was
/// rejected at the deadline). accept()/reject() return false when the connection was
/// already decided or gone.
class auth_responder {
 public:
  auth_responder() = default;
  explicit auth_responder(std::shared_ptr<detail::auth_verdict> v) noexcept : v_(std::move(v)) {}
  auth_responder(auth_responder&&) noexcept = default;
  auth_responder& operator=(auth_responder&& o) noexcept;
  auth_responder(const auth_responder&) = delete;
  auth_responder& operator=(const auth_responder&) = delete;
  ~auth_responder();

  bool accept(identity who);
  bool reject(std::string reason);

 private:
  std::shared_ptr<detail::auth_verdict> v_;
};

/// The hook: inspect the request, then answer now or later.
using auth_handler = std::function<void(const auth_request&, auth_responder)>;

/// JWT (RFC 7519) checking on libjwt. Accepts a token whose signature verifies with the
/// key, whose `alg` is exactly `algorithm` (so "none" and algorithm swaps are refused),
/// that is within `exp` and `nbf` (with `leeway`), and whose `aud`/`iss` match when set.
/// The identity's user is the `sub` claim (required).
struct jwt_config {
  /// "HS256" (key = the shared secret), "RS256" or "ES256" (key = a PEM public key).
  std::string algorithm = "HS256";
  std::string key;
  std::string audience;  ///< required `aud` (a string, or one entry of an array); empty: not checked
  std::string issuer;    ///< required `iss`; empty: not checked
  std::chrono::seconds leeway{0};
};

/// A ready hook: `server_builder{}.on_authenticate(msgtrans::jwt_authenticator{cfg})`.
/// Answers at once, on the calling thread. Throws std::invalid_argument for an unknown
/// algorithm or an empty key.
class jwt_authenticator {
 public:
  explicit jwt_authenticator(jwt_config c);
  void operator()(const auth_request& r, auth_responder a) const;
  /// The check alone: the identity, or the reason for refusing.
  std::pair<std::optional<identity>, std::string> verify(const std::string& token) const;

 private:
  jwt_config cfg_;
  int alg_ = 0;
};

}  // namespace msgtrans
