// The sans-I/O parts of the cluster: envelopes, presence bodies, room names, subjects.
#include "cluster/envelope.hpp"
#include "cluster/room_name.hpp"
#include "runtime/cluster_node.hpp"

#include <gtest/gtest.h>

using namespace msgtrans;
using namespace msgtrans::detail;

TEST(ClusterEnvelope, RoundTripsEveryField) {
  const std::string ext = "trace:1", body = "payload bytes";
  envelope e;
  e.kind = envelope_kind::request;
  e.biz_type = 7;
  e.flags = 0x8001;
  e.origin = 0xABCDEF;
  e.session = 0x0123456789ABCDEFull;
  e.correlation = 42;
  e.timeout_ms = 5000;
  e.error = 17;
  e.ext = as_bytes(ext);
  e.body = as_bytes(body);
  const auto bytes = encode(e);
  ASSERT_EQ(bytes.size(), envelope_header_size + ext.size() + body.size());
  auto d = decode_envelope(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, envelope_kind::request);
  EXPECT_EQ(d->biz_type, 7);
  EXPECT_EQ(d->flags, 0x8001);
  EXPECT_EQ(d->origin, 0xABCDEFu);
  EXPECT_EQ(d->session, 0x0123456789ABCDEFull);
  EXPECT_EQ(d->correlation, 42u);
  EXPECT_EQ(d->timeout_ms, 5000u);
  EXPECT_EQ(d->error, 17);
  EXPECT_EQ(as_string(d->ext), ext);
  EXPECT_EQ(as_string(d->body), body);
}

TEST(ClusterEnvelope, RefusesWhatIsNotAnEnvelope) {
  envelope e;
  auto bytes = encode(e);
  EXPECT_TRUE(decode_envelope(bytes));
  EXPECT_FALSE(decode_envelope(bytes_view(bytes).first(envelope_header_size - 1)));  // short
  auto bad_magic = bytes;
  bad_magic[3] = std::byte{'2'};
  EXPECT_FALSE(decode_envelope(bad_magic));
  auto bad_kind = bytes;
  bad_kind[4] = std::byte{9};
  EXPECT_FALSE(decode_envelope(bad_kind));
  auto long_ext = bytes;
  long_ext[34] = std::byte{1};  // one ext byte declared, none there
  EXPECT_FALSE(decode_envelope(long_ext));
}

TEST(ClusterEnvelope, PresenceBodies) {
  byte_buffer body;
  append_presence(body, "lobby", 50);
  append_presence(body, std::string(255, 'x'), 0xFFFFFFFF);
  std::vector<std::pair<std::string, std::uint32_t>> got;
  EXPECT_TRUE(for_each_presence(body, [&](std::string_view r, std::uint32_t n) { got.emplace_back(r, n); }));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (std::pair<std::string, std::uint32_t>{"lobby", 50}));
  EXPECT_EQ(got[1].second, 0xFFFFFFFFu);
  body.pop_back();  // truncated count
  EXPECT_FALSE(for_each_presence(body, [](std::string_view, std::uint32_t) {}));
}

TEST(ClusterRoomNames, RulesAndSubjectTokens) {
  EXPECT_EQ(room_name_error(""), "empty");
  EXPECT_EQ(room_name_error(std::string(256, 'a')), "longer than 255 bytes");
  EXPECT_EQ(room_name_error("\xff"), "not valid UTF-8");
  EXPECT_EQ(room_name_error("\xc0\xaf"), "not valid UTF-8");      // overlong '/'
  EXPECT_EQ(room_name_error("\xed\xa0\x80"), "not valid UTF-8");  // a surrogate
  EXPECT_EQ(room_name_error("\xf4\x90\x80\x80"), "not valid UTF-8");  // past U+10FFFF
  EXPECT_EQ(room_name_error("caf\xc3\xa9"), "");
  EXPECT_EQ(room_name_error(std::string(255, 'a')), "");
  EXPECT_THROW(check_room_name(""), std::invalid_argument);

  EXPECT_EQ(subject_token("lobby-1_A"), "lobby-1_A");
  EXPECT_EQ(subject_token("a.b"), "a%2Eb");
  EXPECT_EQ(subject_token(">"), "%3E");
  EXPECT_EQ(subject_token("*"), "%2A");
  EXPECT_EQ(subject_token("a b\t"), "a%20b%09");
  EXPECT_EQ(subject_token("%2E"), "%252E");  // '%' itself is escaped: no two names share a token
  EXPECT_NE(subject_token("a.b"), subject_token("a%2Eb"));
}

TEST(ClusterNodeIds, StableNonZeroAndInsideSessionIds) {
  EXPECT_EQ(node_id_of("node-1"), node_id_of("node-1"));
  EXPECT_NE(node_id_of("node-1"), node_id_of("node-2"));
  for (auto name : {"", "a", "node-1", "chat-eu-west-17"}) {
    EXPECT_NE(node_id_of(name), 0u);
    EXPECT_LT(node_id_of(name), 1u << 24);
  }
  EXPECT_NE(default_node_name(), default_node_name());  // a random part
}
