// chat_cpp_client: a C++ msgtrans client in a chat room, the browser's counterpart in
// tests/ws/chat_page_test.mjs. It joins ROOM, prints "joined ROOM", waits for a room line
// containing EXPECT (printing "got: LINE"), says REPLY, and exits 0 once its own line
// comes back (1 on any failure, 3 after 20 s).
//
//   chat_cpp_client ws://HOST:PORT/PATH ROOM EXPECT REPLY
#include <msgtrans/msgtrans.hpp>

#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: chat_cpp_client URL ROOM EXPECT REPLY\n";
    return 1;
  }
  const std::string url = argv[1], room = argv[2], expect = argv[3], reply = argv[4];
  std::mutex mu;
  std::condition_variable cv;
  enum { joining, waiting, replied, done } stage = joining;
  msgtrans::client* self = nullptr;
  msgtrans::ws_client_config cfg;
  cfg.url = url;
  auto c = msgtrans::client_builder{}
               .connect_to(cfg)
               .on_message([&](const msgtrans::message& m) {
                 const std::string line(m.text());
                 std::lock_guard lock(mu);
                 if (stage == joining && line == "joined " + room) {
                   std::printf("joined %s\n", room.c_str());
                   stage = waiting;
                 } else if (stage == waiting && line.find(expect) != std::string::npos) {
                   std::printf("got: %s\n", line.c_str());
                   (void)self->send(reply);
                   stage = replied;
                 } else if (stage == replied && line.find(reply) != std::string::npos) {
                   stage = done;
                 }
                 std::fflush(stdout);
                 cv.notify_all();
               })
               .build();
  self = &c;
  if (auto e = c.connect()) {
    std::cerr << "chat_cpp_client: " << e.message() << "\n";
    return 1;
  }
  if (c.send("/join " + room)) return 1;
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, 20s, [&] { return stage == done; })) {
    std::cerr << "chat_cpp_client: timed out (stage " << static_cast<int>(stage) << ")\n";
    return 3;
  }
  lock.unlock();
  c.disconnect();
  std::printf("done\n");
  return 0;
}
