// The loop read buffer: one 64 KiB buffer per thread (a loop runs on one thread), shared
// by all of that loop's connections. A connection waits for readability holding no
// buffer, then borrows this one, reads into it, hands on the whole frames and keeps only
// the rest. A handler that re-enters a read on the same thread finds it borrowed and
// uses the connection's own buffer instead.
#pragma once

#include <msgtrans/packet.hpp>

#include <cstddef>

namespace msgtrans::net {

class loop_read_buffer {
 public:
  static constexpr std::size_t size = 64 * 1024;

  /// The thread's buffer, borrowed until the lease ends; an empty lease when it is
  /// borrowed already (test with `if (lease)`).
  class lease {
   public:
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (owner_) owner_->busy_ = false;
    }
    explicit operator bool() const noexcept { return owner_ != nullptr; }
    /// `size` bytes; a connection may swap its own (empty) buffer with it for the
    /// length of the lease, and must swap it back before the lease ends.
    byte_buffer& buffer() noexcept { return owner_->buf_; }
    std::byte* data() noexcept { return owner_->buf_.data(); }

   private:
    friend class loop_read_buffer;
    explicit lease(loop_read_buffer* o) : owner_(o) {
      if (owner_) owner_->busy_ = true;
    }
    loop_read_buffer* owner_;
  };

  /// Borrows this thread's buffer.
  static lease borrow() {
    thread_local loop_read_buffer t;
    if (t.busy_) return lease(nullptr);
    if (t.buf_.size() < size) t.buf_.resize(size);
    return lease(&t);
  }

 private:
  byte_buffer buf_;
  bool busy_ = false;
};

}  // namespace msgtrans::net
