// Replaces the global operator new/delete to count the allocations of threads that set
// `counting` (a server's loop thread, say). Include it in exactly one file of a test
// executable (it defines the replacements); the target needs
// -Wno-mismatched-new-delete on GCC (malloc/free behind new/delete on purpose).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace msgtrans::test::alloc {
inline thread_local bool counting = false;
inline std::atomic<std::uint64_t> allocations{0};
}  // namespace msgtrans::test::alloc

void* operator new(std::size_t n) {
  if (msgtrans::test::alloc::counting) msgtrans::test::alloc::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
