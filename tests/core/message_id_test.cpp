// message_id_allocator (include/msgtrans/packet.hpp): 1, 2, ..., 0xFFFFFFFF, 1, ... never 0.
#include <msgtrans/packet.hpp>

#include <gtest/gtest.h>

namespace msgtrans {
namespace {

TEST(MessageId, StartsAtOneAndIncrements) {
  message_id_allocator ids;
  EXPECT_EQ(ids.next(), 1u);
  EXPECT_EQ(ids.next(), 2u);
  EXPECT_EQ(ids.next(), 3u);
}

TEST(MessageId, WrapsFromMaxToOneSkippingZero) {
  message_id_allocator ids(0xFFFFFFFEu);
  EXPECT_EQ(ids.next(), 0xFFFFFFFEu);
  EXPECT_EQ(ids.next(), 0xFFFFFFFFu);
  EXPECT_EQ(ids.next(), 1u);
  EXPECT_EQ(ids.next(), 2u);
}

TEST(MessageId, NeverYieldsZeroAcrossTheWrap) {
  message_id_allocator ids(0xFFFFFF00u);
  std::uint32_t prev = ids.next();
  int wraps = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t id = ids.next();
    ASSERT_NE(id, 0u);
    if (prev == 0xFFFFFFFFu) {
      ASSERT_EQ(id, 1u);
      ++wraps;
    } else {
      ASSERT_EQ(id, prev + 1);
    }
    prev = id;
  }
  EXPECT_EQ(wraps, 1);
}

TEST(MessageId, StartingAtZeroMeansOne) {
  message_id_allocator ids(0);
  EXPECT_EQ(ids.next(), 1u);
}

TEST(MessageId, ResetStartsAgainAtOne) {
  message_id_allocator ids(0xFFFFFFFFu);
  EXPECT_EQ(ids.next(), 0xFFFFFFFFu);
  ids.next();
  ids.next();
  ids.reset();
  EXPECT_EQ(ids.next(), 1u);
}

}  // namespace
}  // namespace msgtrans
