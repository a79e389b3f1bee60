// A log-linear latency histogram (HdrHistogram style): 128 linear sub-buckets per power
// of two, so every recorded value keeps about 3 significant digits (<1% error).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace msgtrans::cli {

class hdr_histogram {
 public:
  static constexpr int sub_bits = 7;  // 128 sub-buckets
  static constexpr std::uint64_t sub_count = 1u << sub_bits;

  hdr_histogram() : counts_(64 * sub_count, 0) {}

  void record(std::uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
  }
  void merge(const hdr_histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }
  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  /// The smallest recorded-bucket value at or above quantile q (0..1).
  std::uint64_t quantile(double q) const {
    if (!total_) return 0;
    const auto want = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(want, 1)) return std::min(value_of(i), max_);
    }
    return max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < sub_count) return static_cast<std::size_t>(v);
    const int shift = std::bit_width(v) - 1 - sub_bits;  // >= 0
    return static_cast<std::size_t>((shift + 1) * sub_count + ((v >> shift) - sub_count));
  }
  static std::uint64_t value_of(std::size_t i) {
    if (i < sub_count) return i;
    const std::size_t shift = i / sub_count - 1;
    const std::uint64_t sub = i % sub_count + sub_count;
    return ((sub + 1) << shift) - 1;  // upper edge of the bucket
  }
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0, max_ = 0, min_ = ~std::uint64_t{0};
};

}  // namespace msgtrans::cli
