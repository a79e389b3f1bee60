// Stats: process memory and mean latency in server_stats and client_stats, and their
// Prometheus text.
#include "runtime/host_counters.hpp"
#include "support/test_support.hpp"

#include <memory>

#include <sys/mman.h>

using namespace msgtrans;
using namespace msgtrans::test;

TEST(Stats, ResidentMemoryIsCurrentNotPeak) {
  const auto before = detail::resident_memory_bytes();
  ASSERT_GT(before, 1024u * 1024) << "a running test process has over 1 MiB resident";
  // Touch 64 MiB, then give it back: the current figure follows, a peak would not fall.
  constexpr std::size_t big = 64u * 1024 * 1024;
  // mmap / munmap directly: malloc'd memory is kept back by allocators (and by ASan's
  // quarantine), unmapped memory leaves the resident set at once.
  void* m = ::mmap(nullptr, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  auto* block = static_cast<char*>(m);
  for (std::size_t i = 0; i < big; i += 4096) block[i] = 1;
  const auto during = detail::resident_memory_bytes();
  EXPECT_GE(during, before + big / 2);
  ::munmap(m, big);
  const auto after = detail::resident_memory_bytes();
  EXPECT_LT(after, during - big / 2);
}

TEST(Stats, MeanOfTheHistogram) {
  latency_histogram h;
  EXPECT_EQ(h.mean_us(), 0.0);
  detail::atomic_histogram a;
  a.record(std::chrono::microseconds(100));
  a.record(std::chrono::microseconds(300));
  h = a.snapshot();
  EXPECT_EQ(h.total, 2u);
  EXPECT_DOUBLE_EQ(h.mean_us(), 200.0);
}

TEST(Stats, ServerAndClientReportMemoryAndMeanLatency) {
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(1)
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .build();
  ASSERT_FALSE(s.start());
  auto c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
  ASSERT_FALSE(c.connect());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.call(as_bytes("ping")));
  ASSERT_FALSE(c.send(as_bytes("one-way")));

  client_stats cs = c.stats();
  EXPECT_TRUE(cs.connected);
  EXPECT_EQ(cs.request_latency.total, 10u);
  EXPECT_GT(cs.request_latency_mean_us, 0.0);
  EXPECT_DOUBLE_EQ(cs.request_latency_mean_us, cs.request_latency.mean_us());
  EXPECT_EQ(cs.packets_in, 10u);
  EXPECT_GE(cs.packets_out, 10u);
  EXPECT_EQ(cs.requests_in_flight, 0u);
  EXPECT_GT(cs.resident_memory_bytes, 0u);

  server_stats ss = s.stats();
  EXPECT_EQ(ss.response_latency.total, 10u);
  EXPECT_GT(ss.response_latency_mean_us, 0.0);
  EXPECT_EQ(ss.request_latency_mean_us, 0.0) << "the server sent no request";
  EXPECT_GT(ss.resident_memory_bytes, 0u);

  const auto text = to_prometheus(ss);
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE msgtrans_response_duration_mean_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE msgtrans_request_duration_mean_seconds gauge\n"), std::string::npos);

  const auto ctext = to_prometheus(cs);
  EXPECT_NE(ctext.find("msgtrans_client_connected 1\n"), std::string::npos) << ctext;
  EXPECT_NE(ctext.find("msgtrans_client_request_duration_seconds_count 10\n"), std::string::npos);
  EXPECT_NE(ctext.find("process_resident_memory_bytes "), std::string::npos);
  c.disconnect();
  EXPECT_FALSE(c.stats().connected);
}
