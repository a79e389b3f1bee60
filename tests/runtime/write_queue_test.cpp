// write_queue: priority order, shared buffers, byte accounting, memory reuse.
#include "core/write_queue.hpp"

#include <gtest/gtest.h>

#include <cstring>

using msgtrans::detail::write_queue;

namespace {
void put(write_queue& q, const char* s, bool high) {
  auto out = q.append(std::strlen(s), high);
  std::memcpy(out.data(), s, out.size());
}
std::string str(msgtrans::bytes_view b) { return std::string(msgtrans::as_string(b)); }
}  // namespace

TEST(WriteQueue, HighPriorityGoesFirstAndBytesAreCounted) {
  write_queue q;
  put(q, "n1", false);
  put(q, "n2", false);
  put(q, "H1", true);
  q.append_shared(std::make_shared<const msgtrans::byte_buffer>(msgtrans::to_buffer(msgtrans::as_bytes("s1"))), false);
  EXPECT_EQ(q.queued_bytes(), 8u);
  auto batch = q.take_batch();
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(str(batch[0]), "H1");
  EXPECT_EQ(str(batch[1]), "n1");
  EXPECT_EQ(str(batch[2]), "n2");
  EXPECT_EQ(str(batch[3]), "s1");
  // Queued while the batch is in flight: stays for the next batch.
  put(q, "n3", false);
  EXPECT_EQ(q.batch_count(), 4u);
  EXPECT_EQ(q.batch_done(), 8u);
  EXPECT_EQ(q.queued_bytes(), 2u);
  auto next = q.take_batch();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(str(next[0]), "n3");
  q.batch_done();
  EXPECT_EQ(q.queued_bytes(), 0u);
  EXPECT_FALSE(q.has_pending());
}
