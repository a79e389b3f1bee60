// Heap per connection, for the idle-memory tests (glibc's heap, as mallinfo2 counts it;
// the sanitizers replace that allocator, so those tests skip under them).
#pragma once

#include <malloc.h>

#include <cstddef>

namespace msgtrans::test {

/// False under ASan / TSan, whose allocator replaces glibc's heap (the tests skip then).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool heap_probe_works = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool heap_probe_works = false;
#else
inline constexpr bool heap_probe_works = true;
#endif
#else
inline constexpr bool heap_probe_works = true;
#endif

/// Heap bytes that each of `n` more connections costs: `open(k)` opens k connections and
/// returns once the server holds them. 100 are opened first, so the loop's buffers, tables
/// and caches exist before the measurement.
template <class Open>
double heap_per_connection(Open&& open, std::size_t n) {
  open(100);
  const auto before = mallinfo2().uordblks;
  open(n);
  const auto after = mallinfo2().uordblks;
  return static_cast<double>(after - before) / static_cast<double>(n);
}

}  // namespace msgtrans::test
