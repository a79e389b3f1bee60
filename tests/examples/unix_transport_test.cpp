// A custom transport built from the public headers only runs the echo service.
#include "../../examples/unix_socket_transport/unix_transport.hpp"

#include "support/test_support.hpp"

#include <unistd.h>

using namespace msgtrans;

TEST(CustomTransport, UnixSocketEcho) {
  const std::string path = "/tmp/msgtrans-test-" + std::to_string(::getpid()) + ".sock";
  test::waiter w;
  std::optional<close_info> closed;
  auto s = server_builder{}
               .listen(unix_transport::unix_server_config{path})
               .on_request([](request& r) { r.respond(r.payload); })
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(s.start());
  EXPECT_EQ(s.local_addresses().at(0).first, "unix");
  auto c = client_builder{}.connect_to(unix_transport::unix_client_config{path}).build();
  ASSERT_FALSE(c.connect());
  for (int i = 0; i < 100; ++i) {
    std::string text = "message " + std::to_string(i);
    auto r = c.call(as_bytes(text));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_string(r->payload), text);
  }
  EXPECT_EQ(s.stats().active_by_protocol["unix"], 1u);
  c.disconnect();
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  ::unlink(path.c_str());
}
