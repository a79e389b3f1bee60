// session_options: one check for server and client, naming the field.
#include "support/expect_invalid.hpp"

#include <msgtrans/msgtrans.hpp>

#include <gtest/gtest.h>

using namespace msgtrans;
using namespace std::chrono_literals;

TEST(session_options_check, server_and_client_refuse_the_same_values_naming_the_field) {
  auto refused_by_both = [](session_options o, const std::string& field) {
    test::expect_invalid_naming([&] { server_builder{}.options(o); }, field);
    test::expect_invalid_naming([&] { client_builder{}.options(o); }, field);
  };
  session_options o;
  o.max_message_size = 15;
  refused_by_both(o, "session_options.max_message_size");
  o = {};
  o.write_high_water = 0;
  refused_by_both(o, "session_options.write_high_water");
  o = {};
  o.idle_timeout = -1ms;
  refused_by_both(o, "session_options.idle_timeout");
  o = {};
  o.close_timeout = -1ms;
  refused_by_both(o, "session_options.close_timeout");
  o = {};
  o.request_timeout = 0ms;
  refused_by_both(o, "session_options.request_timeout");
  o = {};
  o.rate_burst = 0ms;
  refused_by_both(o, "session_options.rate_burst");
  o = {};
  o.max_messages_per_second = 2'000'000'000;
  refused_by_both(o, "session_options.max_messages_per_second");
  o = {};
  o.max_bytes_per_second = std::uint64_t{1} << 41;
  refused_by_both(o, "session_options.max_bytes_per_second");
  test::expect_invalid_naming([] { server_builder{}.max_handshakes_per_second_per_ip(2'000'000'000); },
                              "max_handshakes_per_second_per_ip");
  // 0 turns a timeout off; that is accepted.
  o = {};
  o.idle_timeout = 0ms;
  o.first_packet_timeout = 0ms;
  o.heartbeat_interval = 0ms;
  EXPECT_NO_THROW(server_builder{}.options(o));
  EXPECT_NO_THROW(client_builder{}.options(o));
}
