// sluice::buffer_pair<Buffer>: a buffer sequence of at most two buffers, the shape of a ring
// region that wraps.
#pragma once

#include <array>
#include <cstddef>

namespace sluice {

/// A buffer sequence of at most two buffers of type `Buffer` (an Asio `const_buffer` or
/// `mutable_buffer`, or any type with `size()`): the shape of a ring region that may wrap.
///
/// It meets Asio's ConstBufferSequence requirements, and MutableBufferSequence's when `Buffer`
/// is a mutable buffer type: `begin()` and `end()` iterate over one buffer for a contiguous
/// region, two for a region that wraps, and none for an empty one, so Asio never sees an empty
/// buffer in the sequence. A copy iterates over its own buffers (copies never dangle); the
/// memory they point at belongs to the ring and stays valid as long as the grant it came from
/// is neither committed nor released.
///
/// sluice::asio::buffer() and sluice::boost_asio::buffer() make these from split grants, and
/// basic_dynamic_ring_buffer returns them from data() and prepare().
///
/// Any thread (a plain value).
template <class Buffer>
class buffer_pair {
 public:
  /// The buffer type.
  using value_type = Buffer;
  /// Iterates over the non-empty buffers.
  using const_iterator = const Buffer*;

  /// An empty sequence (no buffers).
  buffer_pair() noexcept = default;

  /// The sequence `first`, then `second`; empty buffers are left out.
  buffer_pair(const Buffer& first, const Buffer& second) noexcept {
    if (first.size() != 0) buffers_[count_++] = first;
    if (second.size() != 0) buffers_[count_++] = second;
  }

  /// The first buffer.
  [[nodiscard]] const_iterator begin() const noexcept { return buffers_.data(); }
  /// One past the last buffer.
  [[nodiscard]] const_iterator end() const noexcept { return buffers_.data() + count_; }
  /// How many buffers the sequence holds: 0, 1 or 2.
  [[nodiscard]] std::size_t count() const noexcept { return count_; }
  /// Total bytes over all buffers.
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t total = 0;
    for (std::size_t i = 0; i < count_; ++i) total += buffers_[i].size();
    return total;
  }

 private:
  std::array<Buffer, 2> buffers_{};  // the first count_ are used, all non-empty
  std::size_t count_ = 0;            // in [0, 2]
};

}  // namespace sluice
