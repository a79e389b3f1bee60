#include "tcp/tcp_connection.hpp"

#include "tcp/stream_connection.hpp"

namespace msgtrans::detail {

std::unique_ptr<connection> make_tcp_connection(boost::asio::ip::tcp::socket socket, const transport_context& ctx) {
  return std::make_unique<stream_connection<boost::asio::ip::tcp::socket>>(std::move(socket), ctx, "tcp");
}

}  // namespace msgtrans::detail
