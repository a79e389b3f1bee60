// The echo client flow shared by echo_client_tcp / _websocket / _quic: connect, two
// one-way messages, two requests, answer a request from the server, disconnect.
#pragma once

#include <msgtrans/msgtrans.hpp>

#include <cstdio>
#include <future>

inline int run_echo_client(const std::string& url, const msgtrans::url_options& opts = {}) {
  std::string error;
  auto target = msgtrans::connector_for_url(url, opts, error);
  if (!target) return std::fprintf(stderr, "%s\n", error.c_str()), 1;
  std::promise<void> echoes_done;
  std::atomic<int> echoes{0};
  auto client = msgtrans::client_builder{}
                    .connect_to(std::move(target))
                    .on_message([&](const msgtrans::message& m) {
                      std::printf("echo: %.*s\n", static_cast<int>(m.payload.size()),
                                  reinterpret_cast<const char*>(m.payload.data()));
                      if (++echoes == 2) echoes_done.set_value();
                    })
                    .on_request([](msgtrans::request& r) { r.respond("pong from the client"); })
                    .build();
  if (auto ec = client.connect()) return std::fprintf(stderr, "connect %s: %s\n", url.c_str(), ec.message().c_str()), 1;
  std::printf("connected to %s\n", url.c_str());
  client.send("Hello, MsgTrans!");
  client.send("second message");
  for (const char* q : {"What time is it?", "ping"}) {
    auto r = client.call(q);
    if (!r) return std::fprintf(stderr, "request: %s\n", r.error().message().c_str()), 1;
    std::printf("response: %.*s\n", static_cast<int>(r->payload.size()), reinterpret_cast<const char*>(r->payload.data()));
  }
  if (echoes_done.get_future().wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    return std::fprintf(stderr, "echoes missing\n"), 1;
  client.disconnect();
  std::printf("disconnected\n");
  return 0;
}
