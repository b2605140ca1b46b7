// sluice::mirrored_storage: the same physical pages mapped twice, back to back, so that a view
// starting anywhere in the first copy may run on into the second and still be one contiguous
// span. Every ring can be built over it (the `sluice::mirrored` constructors): grants and reads
// then never wrap, split or skip.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace sluice {

/// Tag for the ring constructors that build a ring over its own mirrored_storage.
struct mirrored_t {
  /// Explicit, so that `{}` never selects a tagged constructor.
  explicit mirrored_t() = default;
};
/// Selects the ring constructors that build a ring over its own mirrored_storage, as in
/// `sluice::spsc_ring<float> ring(sluice::mirrored, 4096);`.
inline constexpr mirrored_t mirrored{};

/// Thrown when memory cannot be mapped (mirrored storage, shared-memory segments): what() names
/// the step that failed and the system's reason; code() is the errno. Nothing stays mapped or
/// open after it.
class mapping_error : public std::system_error {
 public:
  /// An error with errno value `error` (code() in std::generic_category()) and `what`, which
  /// names the step that failed, as the message.
  mapping_error(int error, const std::string& what) : std::system_error(error, std::generic_category(), what) {}
};

/// `size()` bytes of memory mapped twice in a row: `data()[i]` and `data()[i + size()]` are the
/// same byte for every i < size(). The size is a whole number of pages. Move-only; unmaps on
/// destruction. Linux only (memfd_create and mmap with MAP_FIXED); elsewhere the constructor
/// throws mapping_error.
class mirrored_storage {
 public:
  /// Empty: no mapping (data() is null, size() 0).
  mirrored_storage() noexcept = default;

  /// Maps rounded_size(min_bytes, granule) bytes twice. Throws std::invalid_argument if
  /// min_bytes or granule is 0, std::length_error if the rounded size overflows, and
  /// mapping_error if the system refuses (no memfd, address space exhausted, a limit).
  explicit mirrored_storage(std::size_t min_bytes, std::size_t granule = 1);

  /// Takes over `other`'s mapping; `other` is left empty.
  mirrored_storage(mirrored_storage&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  /// Unmaps this storage's mapping, if any, then takes over `other`'s; `other` is left empty.
  mirrored_storage& operator=(mirrored_storage&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  /// Unmaps both copies, if mapped. Nothing may use the memory afterwards.
  ~mirrored_storage() { release(); }

  /// The first copy; the second starts at data() + size().
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  /// Bytes in one copy.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// True if the storage holds a mapping (it is not empty or moved from).
  [[nodiscard]] explicit operator bool() const noexcept { return data_ != nullptr; }

  /// The system's page size.
  [[nodiscard]] static std::size_t page_size() noexcept;

  /// The size the constructor maps for `min_bytes`: the least multiple of both the page size
  /// and `granule` (an element size, so that elements never straddle the seam) that is at
  /// least `min_bytes`. Throws as the constructor does for a zero or overflowing request.
  [[nodiscard]] static std::size_t rounded_size(std::size_t min_bytes, std::size_t granule = 1);

  /// Adopts `size` bytes mapped twice at `data` by detail::map_mirrored() (shared segments).
  static mirrored_storage adopt(std::byte* data, std::size_t size) noexcept {
    mirrored_storage m;
    m.data_ = data;
    m.size_ = size;
    return m;
  }

 private:
  void release() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {
// Maps `size` bytes of `fd` at `offset` twice in a row (both page-aligned); returns the start.
// Throws mapping_error, leaving nothing mapped. Unmap with unmap_mirrored(p, size).
// `owner` starts each error message ("sluice: mirrored storage", or the segment it maps).
std::byte* map_mirrored(int fd, long long offset, std::size_t size, std::string_view owner);
void unmap_mirrored(std::byte* data, std::size_t size) noexcept;
}  // namespace detail

}  // namespace sluice
