#include "core/scratch_region.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace msgtrans::detail {

namespace {
std::size_t page_round(std::size_t n) {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}
}  // namespace

scratch_region::~scratch_region() {
  if (base_) ::munmap(base_, size_);
}

std::span<std::byte> scratch_region::acquire(std::size_t size) {
  if (size > size_) {
    if (base_) ::munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
    const std::size_t want = page_round(size);
    void* p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return {};
    base_ = static_cast<std::byte*>(p);
    size_ = want;
  }
  busy_ = true;
  return {base_, size};
}

void scratch_region::done(std::size_t used) noexcept {
  busy_ = false;
  if (used <= keep || !base_) return;
  const std::size_t end = std::min(page_round(used), size_);
  ::madvise(base_ + keep, end - keep, MADV_DONTNEED);
}

scratch_region& thread_scratch() noexcept {
  thread_local scratch_region r;
  return r;
}

}  // namespace msgtrans::detail
