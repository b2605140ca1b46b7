// A log-linear histogram of latencies in nanoseconds: constant memory however long the run,
// and every percentile within 1/32 (about 3 %) of the true value.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace net_pipeline {

class latency_histogram {
 public:
  void add(std::uint64_t ns) noexcept {
    ++buckets_[index_of(ns)];
    ++count_;
    max_ = std::max(max_, ns);
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

  // The smallest bucket bound below which at least fraction q of the samples lie (never above
  // the largest sample); 0 when empty.
  [[nodiscard]] std::uint64_t percentile(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(upper_bound_of(i), max_);
    }
    return max_;
  }

 private:
  // Values below 64 have a bucket each. Above, a value with bit width w lands in one of 32
  // buckets of width 2^(w-6) for its power of two: bucket = shift * 32 + (ns >> shift), where
  // ns >> shift is in [32, 64), so the buckets of successive powers follow on without a hole.
  static constexpr unsigned sub_bits = 5;
  static constexpr std::size_t index_of(std::uint64_t ns) noexcept {
    if (ns < (2u << sub_bits)) return static_cast<std::size_t>(ns);
    const unsigned shift = static_cast<unsigned>(std::bit_width(ns)) - (sub_bits + 1);
    return (std::size_t{shift} << sub_bits) + static_cast<std::size_t>(ns >> shift);
  }
  static constexpr std::uint64_t upper_bound_of(std::size_t i) noexcept {
    if (i < (2u << sub_bits)) return i;
    const std::size_t shift = (i >> sub_bits) - 1;
    const std::uint64_t top = i - (shift << sub_bits);  // ns >> shift, in [32, 64)
    return ((top + 1) << shift) - 1;
  }

  std::array<std::uint64_t, ((64 - sub_bits) << sub_bits) + (2u << sub_bits)> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace net_pipeline
