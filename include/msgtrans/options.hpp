/// @file options.hpp
/// Settings shared by servers and clients: limits, liveness, back-pressure, compression,
/// and the named presets. Every field has an effect and a test (tests/runtime, tests/tcp).
#pragma once

#include <msgtrans/packet.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace msgtrans {

using namespace std::chrono_literals;

/// Options for one outgoing packet.
struct send_options {
  std::uint8_t biz_type = 0;
  bytes_view ext_header = {};  ///< opaque metadata, never compressed
  std::uint16_t flags = 0;     ///< e.g. flags::high_priority
  /// Compress this payload. `std::nullopt` lets the automatic mode decide.
  std::optional<msgtrans::compression> compression = std::nullopt;
};

/// What `send` does when the connection's outgoing queue is past its high-water mark.
enum class backpressure_mode {
  fail,  ///< return errc::queue_full at once (default)
  /// send() called off the loop threads blocks until the queue has room (at most
  /// request_timeout, then queue_full). On a loop thread (in a handler) it cannot block:
  /// when it would have to wait it returns errc::wrong_thread (threads.hpp).
  wait,
};

/// What a connection gets when it sends faster than max_messages_per_second or
/// max_bytes_per_second allow.
enum class rate_limit_action {
  close,  ///< closed at once with close_reason::rate_limited (default)
  /// reading from it pauses until the bucket has refilled half of its burst; nothing is
  /// lost, the peer is slowed down by its transport's flow control
  pause,
};

/// Per-connection settings, the same for every transport.
struct session_options {
  /// Largest packet accepted or sent, checked from the header (default 16 MiB).
  std::size_t max_message_size = default_max_message_size;
  /// Largest extension header accepted (default 4 KiB).
  std::size_t max_ext_header = default_max_ext_header;
  /// Outgoing bytes queued per connection before send() reports back-pressure and
  /// reading from the peer pauses (default 4 MiB). Reading resumes below half of it.
  std::size_t write_high_water = 4u * 1024 * 1024;
  backpressure_mode backpressure = backpressure_mode::fail;
  /// Close a server connection that sends no packet within this time after it is
  /// established (0 = off, default 10 s).
  std::chrono::milliseconds first_packet_timeout = 10s;
  /// Close a connection that receives nothing for this long (0 = off, default 300 s).
  std::chrono::milliseconds idle_timeout = 300s;
  /// When set, send a one-way heartbeat packet with this biz_type whenever nothing was
  /// sent for `heartbeat_interval`, so a peer with an idle timeout keeps the link.
  std::optional<std::uint8_t> heartbeat_biz_type = std::nullopt;
  std::chrono::milliseconds heartbeat_interval = 30s;
  /// Bound on ending a connection: flushing what was queued, then the transport's close
  /// handshake (WebSocket close frames, QUIC CONNECTION_CLOSE, TCP linger). Past it the
  /// socket is closed anyway (default 5 s).
  std::chrono::milliseconds close_timeout = 5s;
  /// Default timeout of request() (default 10 s).
  std::chrono::milliseconds request_timeout = 10s;
  /// Automatic compression: payloads of at least `auto_compress_min` bytes are
  /// compressed with `auto_compress` unless send_options says otherwise (default off).
  msgtrans::compression auto_compress = msgtrans::compression::none;
  std::size_t auto_compress_min = 1024;
  /// Packets a connection may send per second, on average (a token bucket; 0 = no limit,
  /// the default). Applies to what this side receives; see docs/security.md.
  std::uint64_t max_messages_per_second = 0;
  /// Bytes (whole packets, headers included) a connection may send per second, on
  /// average (a token bucket; 0 = no limit, the default). A single packet larger than
  /// the burst passes when the bucket is full, and its cost is then owed.
  std::uint64_t max_bytes_per_second = 0;
  /// Size of both buckets, as time at the rate: a peer that was quiet may send this
  /// long's worth at once (default 1 s: max_messages_per_second packets in a burst).
  std::chrono::milliseconds rate_burst = 1s;
  /// What going over either rate does (default: close with close_reason::rate_limited).
  rate_limit_action rate_limit = rate_limit_action::close;

  decode_limits limits() const noexcept { return {max_message_size, max_ext_header}; }
};

/// Named presets that change real settings (see docs: configuration reference).
enum class preset {
  balanced,         ///< the defaults
  low_latency,      ///< one loop per core, TCP_NODELAY, small queues so latency shows early
  high_throughput,  ///< large queues and socket buffers, automatic zstd above 64 KiB
  low_memory,       ///< small queues and messages, one loop, buffers released when idle
};

}  // namespace msgtrans
