// Every socket msgtrans opens is close-on-exec: a process that starts a child after
// its servers and clients exist must not hand the child their connections.
#include "support/test_support.hpp"

#include <msgtrans/msgtrans.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

// Socket descriptors of this process without FD_CLOEXEC, and how many sockets there are.
std::pair<std::vector<int>, int> sockets_without_cloexec() {
  std::vector<int> bad;
  int sockets = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (auto* e = ::readdir(d)) {
    const int fd = std::atoi(e->d_name);
    struct stat st {};
    if (fd <= 2 || fd == ::dirfd(d) || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    ++sockets;
    if (!(::fcntl(fd, F_GETFD) & FD_CLOEXEC)) bad.push_back(fd);
  }
  ::closedir(d);
  return {bad, sockets};
}

}  // namespace

TEST(net_close_on_exec, tcp_and_websocket_listeners_accepted_and_connected_sockets) {
  ws_server_config wsc;
  wsc.bind_address = "127.0.0.1:0";
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .listen(wsc)
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .threads(1)
               .build();
  ASSERT_FALSE(s.start());
  auto tcp = client_builder{}.connect_to(tcp_client_config{address_of(s, 0)}).build();
  ws_client_config wcc;
  wcc.url = "ws://" + address_of(s, 1);  // the address carries the path
  auto ws = client_builder{}.connect_to(wcc).build();
  ASSERT_FALSE(tcp.connect());
  auto e = ws.connect();
  ASSERT_FALSE(e) << e.message();
  ASSERT_TRUE(tcp.call("x"));  // the server has accepted both by now
  ASSERT_TRUE(ws.call("x"));
  auto [bad, sockets] = sockets_without_cloexec();
  EXPECT_GE(sockets, 6);  // 2 listeners, 2 accepted, 2 connected
  EXPECT_TRUE(bad.empty()) << bad.size() << " socket(s) without FD_CLOEXEC, first fd " << (bad.empty() ? -1 : bad[0]);
}
