// A TCP connection: the TCP framing (stream_connection.hpp) over a plain socket. The
// template is instantiated in tcp_connection.cpp only, so tcp_transport.cpp stays small.
#pragma once

#include <msgtrans/transport.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>

namespace msgtrans::detail {

// `ctx` gives the decode limits, and where to report notices and take budget from (both
// may be null); the pointers must outlive the connection.
std::unique_ptr<connection> make_tcp_connection(boost::asio::ip::tcp::socket socket, const transport_context& ctx);

}  // namespace msgtrans::detail
