// The server side of authentication: calls the application's hook for each new
// connection, bounds how many wait at once (max_pending_auth) and how long
// (auth_timeout), and counts the outcomes. Also the wire form of the authentication
// packet of TCP, TLS and QUIC (docs/wire-format.md, "Authentication").
#pragma once

#include <msgtrans/auth.hpp>
#include <msgtrans/packet.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace msgtrans::detail {

/// What a session holds of packets sent behind its credentials before the verdict; past
/// either bound it is closed as a protocol error (docs/wire-format.md).
inline constexpr std::size_t auth_hold_packets = 64;
inline constexpr std::size_t auth_hold_bytes = 1u << 20;

/// The ext_header that marks the authentication request and its answer.
inline constexpr std::string_view auth_ext = "msgtrans.auth/1";
inline bool is_auth_ext(bytes_view ext) noexcept { return as_string(ext) == auth_ext; }
/// The answer's payload: 1 then the user id (accepted), or 0 then the reason.
byte_buffer auth_answer(bool accepted, std::string_view text);
/// Reads an answer payload: {accepted, text}; nullopt if it is not one.
std::optional<std::pair<bool, std::string>> parse_auth_answer(bytes_view payload);

/// One decision, shared by the responder, the timeout and the connection. The first
/// decide() wins; `deliver` runs once, on the deciding thread.
struct auth_verdict {
  std::atomic<bool> decided{false};
  std::function<void(auth_outcome)> deliver;
  bool decide(auth_outcome o);
};

struct auth_counters {
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, timed_out{0}, refused_busy{0};
  std::atomic<std::size_t> pending{0};
  std::atomic<bool> alive{true};  // false once the server (and its loops) went away
};

class auth_service {
 public:
  auth_service(auth_handler h, std::chrono::milliseconds timeout, std::size_t max_pending);
  ~auth_service() { counters_->alive.store(false); }
  auth_service(const auth_service&) = delete;
  auth_service& operator=(const auth_service&) = delete;

  /// On `loop`'s thread. `done` runs once, on any thread (the caller posts it home).
  void authenticate(boost::asio::io_context& loop, auth_request r, std::function<void(auth_outcome)> done);
  const auth_counters& counters() const noexcept { return *counters_; }

 private:
  auth_handler handler_;
  std::chrono::milliseconds timeout_;
  std::size_t max_pending_;
  std::shared_ptr<auth_counters> counters_ = std::make_shared<auth_counters>();
};

}  // namespace msgtrans::detail
