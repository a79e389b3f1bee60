// A TCP connection: reads into the frame decoder (TCP framing), writes each batch of
// packets with one gather write, tried at once and queued only if the kernel did not
// take it all.
#pragma once

#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <vector>

namespace msgtrans::detail {

class tcp_connection final : public connection {
 public:
  // `ctx` gives the decode limits, and where to report notices and take budget from
  // (both may be null); the pointers must outlive the connection.
  tcp_connection(boost::asio::ip::tcp::socket socket, const transport_context& ctx, std::string protocol = "tcp");
  ~tcp_connection() override;

  void start(connection_owner& owner) override;
  void write(std::span<const bytes_view> packets) override;
  void set_reading(bool enabled) override;
  void close(close_info info) override;
  endpoint_info info() const override;

 private:
  struct state;
  std::shared_ptr<state> s_;
};

}  // namespace msgtrans::detail
