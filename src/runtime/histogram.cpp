// The latency histogram writer (atomic_histogram) and the process memory reading.
#include "runtime/host_counters.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace msgtrans::detail {

void atomic_histogram::record(std::chrono::nanoseconds d) noexcept {
  // Log-linear: 4 buckets per power of two of microseconds, i = floor(4 log2(us)). This
  // runs per message, so without log2 (2% of a QUIC echo's instructions): the power of two
  // from the exponent, the quarter from the mantissa m in [1, 2) against 2^(1/4), 2^(1/2),
  // 2^(3/4).
  const double us = std::max(1.0, static_cast<double>(d.count()) / 1000.0);
  const auto bits = std::bit_cast<std::uint64_t>(us);  // us >= 1: a normal double
  const auto e = static_cast<int>(bits >> 52) - 1023;
  const double m = std::bit_cast<double>((bits & ((std::uint64_t{1} << 52) - 1)) | (std::uint64_t{1023} << 52));
  const std::size_t q = (m >= 1.189207115002721) + (m >= 1.4142135623730951) + (m >= 1.6817928305074290);
  std::size_t i = 4 * static_cast<std::size_t>(e) + q;
  if (i >= counts.size()) i = counts.size() - 1;
  counts[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())), std::memory_order_relaxed);
}

latency_histogram atomic_histogram::snapshot() const noexcept {
  latency_histogram h;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    h.counts[i] = counts[i].load(std::memory_order_relaxed);
    h.total += h.counts[i];
  }
  h.sum_us = static_cast<double>(sum_ns.load(std::memory_order_relaxed)) / 1000.0;
  return h;
}

std::uint64_t resident_memory_bytes() noexcept {
  // /proc/self/statm: "size resident shared text lib data dt", in pages. Read with plain
  // system calls into a stack buffer: stats() allocates nothing for it.
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2 || page <= 0) return 0;
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(page);
}

}  // namespace msgtrans::detail
