// An allocator for the operation an idle connection keeps pending (a readiness wait, a
// timer wait). Sans-I/O.
//
// Asio's default handler allocator recycles per thread whatever freed block is big
// enough, so an op that then stays pending for minutes can hold a block sized for an
// earlier, larger op (an accept, an HTTP upgrade read: 200-700 bytes). Bound with
// `boost::asio::bind_allocator(op_allocator<void>{}, handler)`, an op gets a block of its
// own size (rounded up to 16 bytes) from a small per-thread cache kept per size: no heap
// allocation in the steady state (the op's memory is freed before its handler runs, and
// the handler's next wait takes it back). Ops over `op_max` bytes use the heap directly.
#pragma once

#include <cstddef>
#include <new>

namespace msgtrans::detail {

inline constexpr std::size_t op_max = 512;

struct op_cache {
  static constexpr std::size_t granule = 16;
  static constexpr std::size_t classes = op_max / granule;
  static constexpr std::size_t slots = 16;  // free blocks kept per size
  void* free[classes][slots];
  std::size_t n[classes] = {};
  bool alive = true;
  ~op_cache() {
    for (std::size_t c = 0; c < classes; ++c)
      while (n[c] > 0) ::operator delete(free[c][--n[c]]);
    alive = false;  // ops freed later on this thread (thread exit) go straight to the heap
  }
};

inline op_cache& this_thread_op_cache() noexcept {
  thread_local op_cache c;
  return c;
}

template <class T>
struct op_allocator {
  using value_type = T;
  op_allocator() noexcept = default;
  template <class U>
  op_allocator(const op_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes == 0 || bytes > op_max || alignof(T) > alignof(std::max_align_t))
      return static_cast<T*>(::operator new(bytes));
    const std::size_t c = (bytes - 1) / op_cache::granule;
    auto& cache = this_thread_op_cache();
    if (cache.alive && cache.n[c] > 0) return static_cast<T*>(cache.free[c][--cache.n[c]]);
    return static_cast<T*>(::operator new((c + 1) * op_cache::granule));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes > 0 && bytes <= op_max && alignof(T) <= alignof(std::max_align_t)) {
      const std::size_t c = (bytes - 1) / op_cache::granule;
      auto& cache = this_thread_op_cache();
      if (cache.alive && cache.n[c] < op_cache::slots) {
        cache.free[c][cache.n[c]++] = p;
        return;
      }
    }
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const op_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace msgtrans::detail
