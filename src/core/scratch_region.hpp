// A reusable scratch buffer whose large use is handed back to the OS at once. Backed by
// its own anonymous mapping (reserved, not committed), so after a 16 MiB decompression
// the pages past `keep` are returned with madvise(MADV_DONTNEED): resident memory goes
// back to its floor, whatever the allocator would have kept. One per loop thread.
#pragma once

#include <cstddef>
#include <span>

namespace msgtrans::detail {

class scratch_region {
 public:
  /// Pages kept resident between uses (small messages cost no system call).
  static constexpr std::size_t keep = 256 * 1024;

  scratch_region() = default;
  scratch_region(const scratch_region&) = delete;
  scratch_region& operator=(const scratch_region&) = delete;
  ~scratch_region();

  /// At least `size` writable bytes (empty if the mapping failed). Marks the region busy
  /// until done(); a nested user must check busy() first and use memory of its own.
  std::span<std::byte> acquire(std::size_t size);
  /// The last acquire's user wrote `used` bytes and is finished with them.
  void done(std::size_t used) noexcept;
  bool busy() const noexcept { return busy_; }
  /// Bytes mapped (virtual; only what is in use or within `keep` is resident).
  std::size_t reserved() const noexcept { return size_; }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  bool busy_ = false;
};

/// The calling thread's scratch region (for decompression on a loop).
scratch_region& thread_scratch() noexcept;

}  // namespace msgtrans::detail
