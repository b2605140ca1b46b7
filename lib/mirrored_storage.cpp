// Mirrored mappings: one memory object (a memfd, or a shared-memory segment's file) mapped twice
// into one reserved range of address space.
//
//   1. reserve 2 * size bytes of address space (PROT_NONE, MAP_NORESERVE): the range is ours
//      and nothing else can be mapped into it meanwhile;
//   2. map the object over the first half and again over the second (MAP_FIXED | MAP_SHARED):
//      MAP_FIXED replaces the reservation's pages atomically, so no other thread's mmap can
//      slip into a gap.
// Any failure unmaps the whole range before throwing, so no half-mapped object survives.
#include <sluice/detail/errors.hpp>
#include <sluice/mirrored_storage.hpp>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace sluice {
namespace {

constexpr std::string_view storage_owner = "sluice: mirrored storage";

[[noreturn]] void fail(int error, std::string_view owner, std::string_view step) {
  throw mapping_error(error, detail::concat({owner, ": ", step}));
}

}  // namespace

std::size_t mirrored_storage::page_size() noexcept {
#if defined(__linux__)
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
#else
  return 4096;
#endif
}

std::size_t mirrored_storage::rounded_size(std::size_t min_bytes, std::size_t granule) {
  if (min_bytes == 0) throw std::invalid_argument("sluice: mirrored storage of 0 bytes");
  if (granule == 0) throw std::invalid_argument("sluice: mirrored storage with an element size of 0");
  // Half the address space at most: the mapping is twice the size.
  constexpr std::size_t limit = std::numeric_limits<std::size_t>::max() / 4;
  const std::size_t page = page_size();
  // The unit, lcm(page, granule), computed so that it cannot overflow.
  const std::size_t per_page = granule / std::gcd(page, granule);
  if (per_page > limit / page)
    throw std::length_error(detail::concat({"sluice: mirrored storage of elements of ", granule,
                                            " bytes: a whole number of pages of them exceeds the largest "
                                            "mappable size (",
                                            limit, " bytes)"}));
  const std::size_t unit = per_page * page;
  const std::size_t units = min_bytes / unit + (min_bytes % unit != 0 ? 1 : 0);
  if (units > limit / unit)
    throw std::length_error(detail::concat(
        {"sluice: mirrored storage of ", min_bytes, " bytes exceeds the largest mappable size (", limit, ")"}));
  return units * unit;
}

namespace detail {

std::byte* map_mirrored(int fd, long long offset, std::size_t size, std::string_view owner) {
#if defined(__linux__)
  void* base = ::mmap(nullptr, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) fail(errno, owner, detail::concat({"reserving ", 2 * size, " bytes of address space"}));
  auto* first = static_cast<std::byte*>(base);
  for (std::byte* at : {first, first + size}) {
    void* got = ::mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, static_cast<off_t>(offset));
    if (got == MAP_FAILED) {
      const int error = errno;
      ::munmap(base, 2 * size);
      fail(error, owner, detail::concat({"mapping the ", at == first ? "first" : "second", " copy of ", size, " bytes"}));
    }
  }
  return first;
#else
  (void)fd;
  (void)offset;
  (void)size;
  fail(ENOSYS, owner, "not supported on this system");
#endif
}

void unmap_mirrored(std::byte* data, std::size_t size) noexcept {
#if defined(__linux__)
  if (data) ::munmap(data, 2 * size);
#else
  (void)data;
  (void)size;
#endif
}

}  // namespace detail

mirrored_storage::mirrored_storage(std::size_t min_bytes, std::size_t granule) {
  const std::size_t size = rounded_size(min_bytes, granule);
#if defined(__linux__)
  const int fd = ::memfd_create("sluice-mirror", MFD_CLOEXEC);
  if (fd < 0) fail(errno, storage_owner, "memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int error = errno;
    ::close(fd);
    fail(error, storage_owner, detail::concat({"sizing the memfd to ", size, " bytes"}));
  }
  try {
    data_ = detail::map_mirrored(fd, 0, size, storage_owner);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mappings keep the memory object alive
  size_ = size;
#else
  (void)size;
  fail(ENOSYS, storage_owner, "not supported on this system");
#endif
}

void mirrored_storage::release() noexcept {
  detail::unmap_mirrored(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace sluice
