// The one send path, sans-I/O: the encoder and the high-water rule.
#include "runtime/outbound_queue.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace msgtrans;
using namespace msgtrans::detail;

namespace {
std::string text(std::size_t n) { return std::string(n, 'z'); }
}  // namespace

TEST(OutgoingPacket, EncodesWhatDecodes) {
  session_options so;
  send_options o;
  o.biz_type = 5;
  o.flags = flags::high_priority;
  const std::string ext = "meta";
  o.ext_header = as_bytes(ext);
  outgoing_packet p(packet_type::request, 0, as_bytes("hello"), o, so);
  ASSERT_FALSE(p.error());
  p.set_message_id(42);
  EXPECT_TRUE(p.high_priority());
  byte_buffer out(p.size());
  p.encode_into(out);
  auto d = decode(out).value();
  EXPECT_EQ(d.type, packet_type::request);
  EXPECT_EQ(d.message_id, 42u);
  EXPECT_EQ(d.biz_type, 5);
  EXPECT_EQ(as_string(d.payload), "hello");
  EXPECT_EQ(as_string(d.ext_header), "meta");
}

TEST(OutgoingPacket, AutomaticCompressionAndTheSizeLimit) {
  session_options so;
  so.auto_compress = compression::zstd;
  so.auto_compress_min = 100;
  const std::string payload39 = text(50);  // outlives the packet view
  outgoing_packet small(packet_type::one_way, 1, as_bytes(payload39), {}, so);
  EXPECT_EQ(small.size(), header_size + 50);
  const std::string big = text(10000);
  outgoing_packet p(packet_type::one_way, 1, as_bytes(big), {}, so);
  ASSERT_FALSE(p.error());
  EXPECT_LT(p.size(), 1000u);
  byte_buffer out(p.size());
  p.encode_into(out);
  auto d = decode(out).value();
  EXPECT_EQ(d.compression, compression::zstd);
  EXPECT_EQ(d.payload.size(), big.size());

  session_options tight;
  tight.max_message_size = 64;
  const std::string payload54 = text(100);  // outlives the packet view
  outgoing_packet too_big(packet_type::one_way, 1, as_bytes(payload54), {}, tight);
  EXPECT_EQ(too_big.error(), errc::message_too_large);
}

TEST(OutboundQueue, AdmitsUntilTheMarkCountingPostedBytes) {
  outbound_queue q(1000);
  EXPECT_FALSE(q.admit(5000)) << "one packet over the mark goes out on an empty queue";
  q.posted_add(600);
  EXPECT_EQ(q.load(), 600u);
  EXPECT_FALSE(q.admit(400));
  bool first = false;
  EXPECT_EQ(q.admit(401, &first), errc::queue_full);
  EXPECT_TRUE(first);
  EXPECT_EQ(q.admit(401, &first), errc::queue_full);
  EXPECT_FALSE(first) << "the loop is told once per pause";
  q.posted_sub(600);
  EXPECT_FALSE(q.admit(401));
}

TEST(OutboundQueue, PausesPastTheMarkOrOnRefusalAndResumesAtHalf) {
  outbound_queue q(1000);
  session_options so;
  const std::string payload77 = text(584);  // outlives the packet view
  outgoing_packet p(packet_type::one_way, 1, as_bytes(payload77), {}, so);  // 600 bytes
  q.push(p);
  EXPECT_FALSE(q.update_pause());
  EXPECT_EQ(q.admit(600), errc::queue_full);
  EXPECT_TRUE(q.update_pause()) << "a refusal pauses";
  (void)q.take_batch();
  EXPECT_EQ(q.batch().size(), 1u);
  EXPECT_TRUE(q.update_pause()) << "still above half";
  auto done = q.batch_done();
  EXPECT_EQ(done.packets, 1u);
  EXPECT_EQ(done.bytes, 600u);
  EXPECT_FALSE(q.update_pause());

  for (int i = 0; i < 2; ++i) q.push(p);  // 1200 >= mark
  EXPECT_TRUE(q.update_pause());
  EXPECT_TRUE(q.has_pending());
}
