// Tests for sluice::mirrored_storage and for every ring built over it (the `sluice::mirrored`
// constructors).
//
// The storage: the two copies alias (a write through either copy is read through the other, at
// the first and last byte and around page boundaries); the size is rounded up to the least
// common multiple of the page and the element size; zero and overflowing requests throw the
// documented exceptions naming the limit; moves transfer the one mapping, and destruction
// unmaps it (checked in /proc/self/maps, and with mincore on the old address). Every way the
// system can refuse a mapping throws sluice::mapping_error naming the step and leaves nothing
// mapped or open: an absurd size, and, in forked children, a limit on the address space, on
// open files, on file size, and on the number of mappings (which makes the first and the second
// copy fail, after the reservation succeeded; not under the sanitizers, whose own allocators
// then fail).
//
// The rings: capacity() and mirrored() as documented; over small rings (elements of up to a page,
// so that a page holds 1 to 1024 of them) a grant at every storage offset, of every length, is
// one span that may run past the end of the first copy, lands in the first copy's start, and
// reads back whole through try_read(), lap after lap; an empty ring grants its whole capacity
// wherever the cursors stand; try_reserve(n) succeeds whenever n are free; try_read() returns
// everything committed in one span; split grants never split; the copying calls cross the
// seam. Record rings: a record of max_record_size() == capacity() - 8 bytes at every 8-byte
// offset; records of many sizes crossing the seam lap after lap, committed out of order; an
// mpsc ring fed by three threads at once, every record checked.
#include <sluice/mirrored_storage.hpp>
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "child_exit.hpp"
#include "random_seed.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using sluice::mapping_error;
using sluice::mirrored_storage;
using sluice_test::mix;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLUICE_MST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_MST_SANITIZED 1
#endif
#endif
#if defined(SLUICE_MST_SANITIZED)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

const std::size_t page = mirrored_storage::page_size();
// rounded_size()'s documented ceiling: half the address space, as the mapping is twice the size.
constexpr std::size_t size_limit = std::numeric_limits<std::size_t>::max() / 4;

// ============================================================================ the process's maps

struct mapping {
  std::uintptr_t begin = 0, end = 0;
  std::string perms, name;
};

std::vector<mapping> read_maps() {
  std::ifstream in("/proc/self/maps");
  std::vector<mapping> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    std::string range, offset, device, inode;
    mapping m;
    s >> range >> m.perms >> offset >> device >> inode;
    std::getline(s >> std::ws, m.name);
    const std::size_t dash = range.find('-');
    m.begin = std::stoull(range.substr(0, dash), nullptr, 16);
    m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
    out.push_back(std::move(m));
  }
  return out;
}

bool is_mirror(const mapping& m) { return m.name.find("memfd:sluice-mirror") != std::string::npos; }

// The mappings that overlap [p, p + bytes).
std::vector<mapping> covering(const void* p, std::size_t bytes) {
  const auto lo = reinterpret_cast<std::uintptr_t>(p);
  std::vector<mapping> out;
  for (mapping& m : read_maps())
    if (m.begin < lo + bytes && m.end > lo) out.push_back(std::move(m));
  return out;
}

// Pages of [p, p + bytes) that are mapped (mincore fails with ENOMEM on an unmapped page). Call it
// before anything else can map memory, so that a freed range is not reused in between.
std::size_t mapped_pages(const void* p, std::size_t bytes) {
  std::size_t n = 0;
  unsigned char resident;
  for (std::size_t off = 0; off < bytes; off += page)
    if (::mincore(const_cast<char*>(static_cast<const char*>(p)) + off, page, &resident) == 0) ++n;
  return n;
}

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;  // counts the directory's own descriptor, the same in every snapshot
}

// What a leak of mirrored storage would change: its memfd mappings, the address space it
// reserved (twice its size), the memfd's descriptor. Read with stack buffers, so that the only
// allocation (opendir's) comes before the maps are read: a child at the map count limit must be
// able to look without changing what it sees.
struct footprint {
  std::size_t mappings = 0;
  std::size_t mirrors = 0;  // mappings of a sluice memfd
  std::size_t bytes = 0;    // address space, all mappings
  std::size_t fds = 0;

  static footprint now() {
    footprint f;
    f.fds = open_fds();  // first: what opendir allocates is then counted below
    const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return f;
    char chunk[16384];
    char line[1024];
    std::size_t used = 0;
    for (ssize_t got; (got = ::read(fd, chunk, sizeof chunk)) > 0;) {
      for (ssize_t i = 0; i < got; ++i) {
        if (chunk[i] != '\n') {
          if (used + 1 < sizeof line) line[used++] = chunk[i];
          continue;
        }
        line[used] = '\0';
        used = 0;
        char* dash = nullptr;
        const std::uintptr_t begin = std::strtoull(line, &dash, 16);
        const std::uintptr_t end = std::strtoull(dash + 1, nullptr, 16);
        ++f.mappings;
        f.bytes += end - begin;
        if (std::strstr(line, "memfd:sluice-mirror")) ++f.mirrors;
      }
    }
    ::close(fd);
    return f;
  }
};

// The address space may grow this much between two looks for reasons of its own: the heap, the
// allocators' arenas, the sanitizers' runtimes. A leaked reservation of a large storage is more.
constexpr std::size_t runtime_slack = std::size_t{16} << 20;

// Nothing of a mirrored storage survived between `before` and now: no memfd mapping, no
// descriptor, no large reservation.
::testing::AssertionResult nothing_left(const footprint& before) {
  const footprint after = footprint::now();
  if (after.mirrors != before.mirrors)
    return ::testing::AssertionFailure() << after.mirrors - before.mirrors << " memfd mapping(s) left";
  if (after.bytes >= before.bytes + runtime_slack)
    return ::testing::AssertionFailure() << "the address space grew by " << after.bytes - before.bytes << " bytes";
  if (after.fds != before.fds)
    return ::testing::AssertionFailure() << "open descriptors went from " << before.fds << " to " << after.fds;
  return ::testing::AssertionSuccess();
}

// The storage is mapped as documented: two shared read-write mappings of one memfd, exactly
// [data, data + size) and [data + size, data + 2 * size), and nothing else in that range.
::testing::AssertionResult mapped_twice(const mirrored_storage& m) {
  const std::vector<mapping> maps = covering(m.data(), 2 * m.size());
  const auto lo = reinterpret_cast<std::uintptr_t>(m.data());
  if (maps.size() != 2) return ::testing::AssertionFailure() << maps.size() << " mappings cover the range, expected 2";
  for (std::size_t i = 0; i < 2; ++i) {
    const mapping& c = maps[i];
    if (c.begin != lo + i * m.size() || c.end != lo + (i + 1) * m.size() || !is_mirror(c) || c.perms != "rw-s")
      return ::testing::AssertionFailure() << "copy " << i << " is mapped as " << std::hex << c.begin << "-" << c.end
                                           << " " << c.perms << " " << c.name;
  }
  return ::testing::AssertionSuccess();
}

// The range a storage occupied is entirely unmapped, and no memfd mapping of ours is there.
::testing::AssertionResult unmapped(const void* p, std::size_t size, std::size_t mapped_pages_after) {
  if (mapped_pages_after != 0) return ::testing::AssertionFailure() << mapped_pages_after << " pages still mapped";
  for (const mapping& c : covering(p, 2 * size))
    if (is_mirror(c)) return ::testing::AssertionFailure() << "a memfd mapping still covers the range: " << c.name;
  return ::testing::AssertionSuccess();
}

// Expects `make()` to throw E whose what() contains every string of `parts`.
template <class E, class Make>
::testing::AssertionResult throws_naming(Make make, std::initializer_list<std::string> parts) {
  try {
    make();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& p : parts)
      if (what.find(p) == std::string::npos) return ::testing::AssertionFailure() << "\"" << what << "\" does not name " << p;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw another exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// ============================================================================ forked children
// A child reports through its exit status: 0 when everything went as expected, else one of these.
enum child_status : int {
  ok = 0,
  constructed = 101,     // the construction that should fail succeeded
  wrong_exception = 102,  // something other than mapping_error was thrown
  step_not_named = 103,   // what() does not name the expected step
  wrong_errno = 104,
  mapping_left = 105,     // a memfd mapping or the reservation survived the throw
  fd_left = 106,          // the memfd's descriptor survived the throw
  setup_failed = 107,     // could not set the limit
  never_succeeded = 108,  // (map count) construction still failed with room to spare
};

std::string describe(int status) {
  switch (status) {
    case ok: return "as expected";
    case constructed: return "the construction succeeded despite the limit";
    case wrong_exception: return "the construction threw something other than sluice::mapping_error";
    case step_not_named: return "mapping_error::what() does not name the step that failed";
    case wrong_errno: return "mapping_error::code() is not the system's errno for that failure";
    case mapping_left: return "a mapping survived the throw";
    case fd_left: return "the memfd's descriptor survived the throw";
    case setup_failed: return "the child could not set up the limit";
    case never_succeeded: return "the construction never succeeded, even with room to spare";
    default:
      if (status >= 128) return "the child died of signal " + std::to_string(status - 128);
      return "exit status " + std::to_string(status);
  }
}

// Runs `body` in a forked child (this process is single-threaded here) and returns its exit
// status, or 128 + the signal that killed it.
template <class Body>
int in_child(Body body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return setup_failed;
  if (pid == 0) {
    int status = wrong_exception;
    try {
      status = body();
    } catch (...) {
    }
    sluice_test::exit_child(status);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// In the child: `thrown` must be a mapping_error naming `step` with errno `error`.
int check_refusal(const std::exception_ptr& thrown, const char* step, int error) {
  if (!thrown) return constructed;
  try {
    std::rethrow_exception(thrown);
  } catch (const mapping_error& e) {
    if (std::string(e.what()).find(step) == std::string::npos) return step_not_named;
    if (e.code().value() != error || e.code().category() != std::generic_category()) return wrong_errno;
    return ok;
  } catch (...) {
  }
  return wrong_exception;
}

// Sets the soft limit of `resource` (at most the hard one), keeping the old limits in `old`.
bool set_soft_limit(int resource, rlim_t value, rlimit& old) {
  if (::getrlimit(resource, &old) != 0) return false;
  rlimit now = old;
  now.rlim_cur = std::min(value, old.rlim_max);
  return ::setrlimit(resource, &now) == 0;
}

// The limits a child can set so that exactly one step of the construction fails.
enum class limit { address_space, open_files, file_size };
struct limit_case {
  limit which;
  const char* name;
  const char* step;  // what mapping_error::what() must name
  int error;         // and its errno
};
constexpr limit_case limit_cases[] = {
    {limit::address_space, "RLIMIT_AS", "reserving", ENOMEM},
    {limit::open_files, "RLIMIT_NOFILE", "memfd_create", EMFILE},
    {limit::file_size, "RLIMIT_FSIZE", "sizing the memfd", EFBIG},
};

// In the child: sets the limit, constructs (which must fail at the limit's step), restores the
// limit, and checks that no mapping and no descriptor of the attempt survived. A storage of
// `size` bytes (large: a leak shows in the address space however the runtime allocates).
template <class Construct>
int refused_under(const limit_case& lc, std::size_t size, Construct construct) {
  const footprint before = footprint::now();
  int resource = RLIMIT_AS;
  rlim_t value = 0;
  switch (lc.which) {
    case limit::address_space:  // room for the runtime to allocate, not for the reservation
      resource = RLIMIT_AS;
      value = before.bytes + size / 2;
      break;
    case limit::open_files: {  // the lowest free descriptor is the first one refused
      const int lowest = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (lowest < 0) return setup_failed;
      ::close(lowest);
      resource = RLIMIT_NOFILE;
      value = static_cast<rlim_t>(lowest);
      break;
    }
    case limit::file_size:  // ftruncate beyond the limit fails with EFBIG (and SIGXFSZ, ignored)
      std::signal(SIGXFSZ, SIG_IGN);
      resource = RLIMIT_FSIZE;
      value = 0;
      break;
  }
  rlimit old{};
  if (!set_soft_limit(resource, value, old)) return setup_failed;
  std::exception_ptr thrown;
  try {
    construct();
  } catch (...) {
    thrown = std::current_exception();
  }
  // The limit goes before anything looks at the exception: UBSan's checks need descriptors.
  if (::setrlimit(resource, &old) != 0) return setup_failed;
  if (const int status = check_refusal(thrown, lc.step, lc.error); status != ok) return status;
  const footprint after = footprint::now();
  if (after.mirrors != before.mirrors || after.bytes >= before.bytes + size / 2) return mapping_left;
  if (after.fds != before.fds) return fd_left;
  return ok;
}

// ============================================================================ the storage

TEST(MirroredStorage, DefaultConstructedIsEmpty) {
  const mirrored_storage m;
  EXPECT_EQ(m.data(), nullptr);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m);
  static_assert(!std::is_copy_constructible_v<mirrored_storage> && !std::is_copy_assignable_v<mirrored_storage>);
  static_assert(std::is_nothrow_move_constructible_v<mirrored_storage> && std::is_nothrow_move_assignable_v<mirrored_storage>);
  static_assert(std::is_base_of_v<std::system_error, mapping_error>);
}

// A byte written through one copy is read through the other, both ways, at the first byte, the
// last byte, around every page boundary; then every byte of the storage, both ways.
TEST(MirroredStorage, BothCopiesAlias) {
  for (const auto& [min_bytes, granule] : {std::pair<std::size_t, std::size_t>{1, 1}, {page, 1}, {page + 1, 1},
                                          {1, 12}, {5 * page - 3, 8}}) {
    SCOPED_TRACE("mirrored_storage(" + std::to_string(min_bytes) + ", " + std::to_string(granule) + ")");
    mirrored_storage m(min_bytes, granule);
    ASSERT_TRUE(m);
    const std::size_t size = m.size();
    ASSERT_EQ(size, mirrored_storage::rounded_size(min_bytes, granule));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.data()) % page, 0u);
    EXPECT_TRUE(mapped_twice(m));
    std::byte* const first = m.data();
    std::byte* const second = m.data() + size;
    // A new memfd reads zero, through both copies.
    for (std::size_t i = 0; i < size; i += 509) ASSERT_EQ(first[i], std::byte{0}) << i;
    EXPECT_EQ(second[size - 1], std::byte{0});

    std::set<std::size_t> spots{0, 1, size - 1};
    for (std::size_t b = page; b < size; b += page) spots.insert({b - 1, b});
    std::uint8_t v = 1;
    for (std::size_t i : spots) {
      first[i] = std::byte{v};
      ASSERT_EQ(second[i], std::byte{v}) << "written at first[" << i << "]";
      ++v;
      second[i] = std::byte{v};
      ASSERT_EQ(first[i], std::byte{v}) << "written at second[" << i << "]";
      ++v;
    }
    for (std::size_t i = 0; i < size; ++i) first[i] = static_cast<std::byte>(mix(i));
    for (std::size_t i = 0; i < size; ++i) ASSERT_EQ(second[i], static_cast<std::byte>(mix(i))) << i;
    std::memset(second, 0x5A, size);
    for (std::size_t i = 0; i < size; ++i) ASSERT_EQ(first[i], std::byte{0x5A}) << i;
    // A copy across the seam is one contiguous write: its tail lands at the start.
    std::memset(first + size - 3, 0x11, 6);
    EXPECT_EQ(first[size - 1], std::byte{0x11});
    EXPECT_EQ(first[0], std::byte{0x11});
    EXPECT_EQ(first[2], std::byte{0x11});
    EXPECT_EQ(first[3], std::byte{0x5A});
  }
}

// The least multiple of both the page and the granule that holds min_bytes.
TEST(MirroredStorage, RoundedSize) {
  using ms = mirrored_storage;
  EXPECT_EQ(ms::rounded_size(1), page);
  EXPECT_EQ(ms::rounded_size(page - 1), page);
  EXPECT_EQ(ms::rounded_size(page), page);
  EXPECT_EQ(ms::rounded_size(page + 1), 2 * page);
  EXPECT_EQ(ms::rounded_size(7 * page), 7 * page);
  EXPECT_EQ(ms::rounded_size(7 * page + 1, 1), 8 * page);
  for (std::size_t granule : {std::size_t{2}, std::size_t{8}, page / 2, page}) EXPECT_EQ(ms::rounded_size(1, granule), page);
  EXPECT_EQ(ms::rounded_size(1, 2 * page), 2 * page);
  EXPECT_EQ(ms::rounded_size(2 * page + 1, 2 * page), 4 * page);
  // An element size that does not divide the page: the lcm, so no element straddles the seam.
  for (std::size_t granule : {std::size_t{3}, std::size_t{12}, std::size_t{24}, std::size_t{1000}, page + 8}) {
    SCOPED_TRACE("granule " + std::to_string(granule));
    const std::size_t unit = std::lcm(page, granule);
    EXPECT_EQ(ms::rounded_size(1, granule), unit);
    EXPECT_EQ(ms::rounded_size(unit, granule), unit);
    EXPECT_EQ(ms::rounded_size(unit + 1, granule), 2 * unit);
    EXPECT_EQ(ms::rounded_size(1, granule) % granule, 0u);
  }
  if (page == 4096) {
    EXPECT_EQ(ms::rounded_size(1, 12), 12288u);  // 3 pages: 1024 elements of 12 bytes
    EXPECT_EQ(ms::rounded_size(12289, 12), 24576u);
  }
  // Close to the ceiling: the largest unit multiple that fits it with a unit to spare.
  const std::size_t high = (size_limit - page) / page * page;
  EXPECT_EQ(ms::rounded_size(high), high);
  EXPECT_EQ(ms::rounded_size(high - page + 1), high);
}

// 0 bytes or a granule of 0: std::invalid_argument; a size past the ceiling: std::length_error
// naming the ceiling and the request.
TEST(MirroredStorage, RoundedSizeErrorsNameTheLimit) {
  using ms = mirrored_storage;
  EXPECT_TRUE(throws_naming<std::invalid_argument>([] { (void)ms::rounded_size(0); }, {"0 bytes"}));
  EXPECT_TRUE(throws_naming<std::invalid_argument>([] { (void)ms::rounded_size(0, 8); }, {"0 bytes"}));
  EXPECT_TRUE(throws_naming<std::invalid_argument>([] { (void)ms::rounded_size(page, 0); }, {"element size of 0"}));
  const std::string limit = std::to_string(size_limit);
  for (std::size_t n : {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::size_t>::max() - page,
                        size_limit + 1, size_limit, size_limit - page / 2}) {
    SCOPED_TRACE("rounded_size(" + std::to_string(n) + ")");
    EXPECT_TRUE(throws_naming<std::length_error>([n] { (void)ms::rounded_size(n); }, {std::to_string(n), limit}));
  }
  // A granule that can never fit: its least common multiple with the page exceeds the ceiling.
  EXPECT_TRUE(throws_naming<std::length_error>([] { (void)ms::rounded_size(1, size_limit + 1); }, {limit}));
}

// Two corners of rounded_size(): (a) an element size whose least common multiple with the page
// overflows must throw std::length_error (computing it with std::lcm would wrap, and return a
// size that is not a multiple of the element); (b) a request within one page of the ceiling
// whose rounded size is still within it must be granted (L = SIZE_MAX / 4).
TEST(MirroredStorage, RoundedSizeAtTheExtremes) {
  const std::size_t odd = (std::size_t{1} << 52) + 1;
  try {
    const std::size_t r = mirrored_storage::rounded_size(1, odd);
    EXPECT_EQ(r % odd, 0u) << "rounded_size(1, 2^52 + 1) returned " << r;
  } catch (const std::length_error&) {
  }
  const std::size_t top = size_limit / page * page;
  try {
    EXPECT_EQ(mirrored_storage::rounded_size(top), top);
  } catch (const std::length_error& e) {
    ADD_FAILURE() << "rounded_size(" << top << ") threw: " << e.what();
  }
}

// The constructor throws what rounded_size() throws, before mapping anything.
TEST(MirroredStorage, ConstructorRejectsBadSizesMappingNothing) {
  const footprint before = footprint::now();
  EXPECT_TRUE(throws_naming<std::invalid_argument>([] { mirrored_storage m(0); }, {"0 bytes"}));
  EXPECT_TRUE(throws_naming<std::invalid_argument>([] { mirrored_storage m(page, 0); }, {"element size of 0"}));
  EXPECT_TRUE(throws_naming<std::length_error>([] { mirrored_storage m(std::numeric_limits<std::size_t>::max()); },
                                               {std::to_string(size_limit)}));
  EXPECT_TRUE(nothing_left(before));
}

// Move construction and assignment hand the one mapping over; the moved-from storage is empty
// and its destruction unmaps nothing; assignment unmaps the target's old mapping.
TEST(MirroredStorage, MovesTransferOwnership) {
  const footprint before = footprint::now();
  {
    mirrored_storage a(3 * page);
    std::byte* const at = a.data();
    const std::size_t size = a.size();
    at[0] = std::byte{42};
    mirrored_storage b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b.data(), at);
    EXPECT_EQ(b.size(), size);
    EXPECT_EQ(b.data()[size], std::byte{42});
    { mirrored_storage gone(std::move(a)); }  // an empty one: destroying it unmaps nothing
    EXPECT_TRUE(mapped_twice(b));
    EXPECT_EQ(footprint::now().mirrors, before.mirrors + 2);

    mirrored_storage c(page);
    std::byte* const old = c.data();
    const std::size_t old_size = c.size();
    c = std::move(b);  // c's own mapping goes
    const std::size_t old_mapped = mapped_pages(old, 2 * old_size);
    EXPECT_TRUE(unmapped(old, old_size, old_mapped));
    EXPECT_FALSE(b);
    EXPECT_EQ(c.data(), at);
    EXPECT_EQ(c.size(), size);
    EXPECT_TRUE(mapped_twice(c));
    EXPECT_EQ(footprint::now().mirrors, before.mirrors + 2);

    mirrored_storage& alias = c;
    c = std::move(alias);  // self-assignment keeps the mapping
    EXPECT_EQ(c.data(), at);
    EXPECT_TRUE(mapped_twice(c));
    c = mirrored_storage();  // assigning an empty one unmaps
    const std::size_t mapped = mapped_pages(at, 2 * size);
    EXPECT_TRUE(unmapped(at, size, mapped));
    EXPECT_FALSE(c);
  }
  EXPECT_TRUE(nothing_left(before));
}

// The destructor unmaps both copies: the range is unmapped right after (mincore) and no memfd
// mapping or descriptor is left, for storages of many sizes.
TEST(MirroredStorage, DestructorUnmapsEverything) {
  const footprint before = footprint::now();
  for (std::size_t pages = 1; pages <= 40; pages += 3) {
    std::byte* at = nullptr;
    std::size_t size = 0;
    {
      mirrored_storage m(pages * page - 1);
      at = m.data();
      size = m.size();
      ASSERT_EQ(size, pages * page);
      ASSERT_EQ(mapped_pages(at, 2 * size), 2 * pages);
      ASSERT_TRUE(mapped_twice(m));
      ASSERT_EQ(footprint::now().mirrors, before.mirrors + 2);
      at[size - 1] = std::byte{1};  // touched, so there is memory to free
    }
    const std::size_t mapped = mapped_pages(at, 2 * size);
    ASSERT_TRUE(unmapped(at, size, mapped)) << pages << " pages";
  }
  // Many at once, destroyed in another order than made.
  {
    std::vector<mirrored_storage> many;
    for (int i = 0; i < 64; ++i) many.emplace_back(page * static_cast<std::size_t>(1 + i % 4));
    EXPECT_EQ(footprint::now().mirrors, before.mirrors + 2 * many.size());
    for (std::size_t i = 0; i < many.size(); i += 2) many[i] = mirrored_storage();
    EXPECT_EQ(footprint::now().mirrors, before.mirrors + many.size());
  }
  EXPECT_TRUE(nothing_left(before));
}

// A size the address space can never hold: the reservation fails, mapping_error (a
// std::system_error with ENOMEM) names that step, and nothing is left.
TEST(MirroredStorage, AbsurdSizeThrowsMappingErrorNamingTheStep) {
  const footprint before = footprint::now();
  const std::size_t absurd = std::size_t{1} << 60;  // within the ceiling, twice the x86-64 address space
  ASSERT_EQ(mirrored_storage::rounded_size(absurd), absurd);
  try {
    mirrored_storage m(absurd);
    ADD_FAILURE() << "mapped " << m.size() << " bytes twice";
  } catch (const std::system_error& e) {
    EXPECT_NE(dynamic_cast<const mapping_error*>(&e), nullptr);
    const std::string what = e.what();
    EXPECT_NE(what.find("reserving " + std::to_string(2 * absurd) + " bytes of address space"), std::string::npos) << what;
    EXPECT_EQ(e.code(), std::error_code(ENOMEM, std::generic_category())) << what;
  }
  EXPECT_TRUE(nothing_left(before));
}

// In a child, each limit makes its own step fail: the address space (the reservation), open
// files (memfd_create), file size (sizing the memfd). Each throws mapping_error naming the step
// with the system's errno, and leaves no mapping and no descriptor. The storage, and the rings
// that build one.
constexpr std::size_t limited_size = std::size_t{128} << 20;  // a leak would show in the address space

TEST(MirroredStorage, SystemLimitsThrowMappingErrorNamingTheStepLeavingNothing) {
  constexpr std::size_t size = limited_size;
  for (const limit_case& lc : limit_cases) {
    SCOPED_TRACE(lc.name);
    const int storage = in_child([&] { return refused_under(lc, size, [] { mirrored_storage m(limited_size); }); });
    EXPECT_EQ(storage, ok) << "mirrored_storage: " << describe(storage);
    const int spsc = in_child([&] {
      return refused_under(lc, size, [] { sluice::spsc_ring<std::uint64_t> r(sluice::mirrored, limited_size / 8); });
    });
    EXPECT_EQ(spsc, ok) << "spsc_ring: " << describe(spsc);
    const int records = in_child([&] {
      return refused_under(lc, size, [] { sluice::mpsc_record_ring r(sluice::mirrored, limited_size); });
    });
    EXPECT_EQ(records, ok) << "mpsc_record_ring: " << describe(records);
  }
}

// In a child at the kernel's limit on the number of mappings, with one free slot, then two:
// the reservation succeeds but mapping the first copy (which splits it) or the second fails.
// Each failure must unmap the reservation and the copy already mapped: the number of mappings
// and the address space are what they were. With enough room the same construction succeeds.
TEST(MirroredStorage, MapCountLimitFailsAfterTheReservationLeavingNothing) {
  if (sanitized) GTEST_SKIP() << "the sanitizers' allocators map memory as they go, and fail at the limit themselves";
  std::size_t max_map_count = 0;
  std::ifstream("/proc/sys/vm/max_map_count") >> max_map_count;
  if (max_map_count == 0 || max_map_count > (std::size_t{1} << 20)) GTEST_SKIP() << "vm.max_map_count is " << max_map_count;
  constexpr std::size_t size = std::size_t{16} << 20;
  // Status: a bit per step seen failing (1: reserving, 2: the first copy, 4: the second), or
  // one of child_status.
  const int status = in_child([&]() -> int {
    // Warm the runtime up: the exception, its message and the look at the maps must not need a
    // new mapping later.
    try {
      mirrored_storage m(std::size_t{1} << 60);
    } catch (const mapping_error&) {
    }
    (void)footprint::now();
    // Fill the map count: single pages alternately PROT_READ and PROT_NONE never merge.
    const std::size_t pages = 2 * max_map_count + 16;
    auto* region = static_cast<char*>(
        ::mmap(nullptr, pages * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (region == MAP_FAILED) return setup_failed;
    std::size_t i = 1;
    while (i + 1 < pages && ::mprotect(region + i * page, page, PROT_READ) == 0) i += 2;
    if (i + 1 >= pages || errno != ENOMEM) return setup_failed;
    int seen = 0;
    for (int room = 0; room < 16; ++room) {
      const footprint before = footprint::now();
      try {
        mirrored_storage m(size);
        return seen;
      } catch (const mapping_error& e) {
        const std::string what = e.what();
        if (what.find("reserving") != std::string::npos) seen |= 1;
        else if (what.find("mapping the first copy") != std::string::npos) seen |= 2;
        else if (what.find("mapping the second copy") != std::string::npos) seen |= 4;
        else return step_not_named;
      }
      const footprint after = footprint::now();
      if (after.mappings != before.mappings || after.mirrors != before.mirrors || after.bytes != before.bytes)
        return mapping_left;
      if (after.fds != before.fds) return fd_left;
      i -= 2;  // unmap one PROT_READ page: one mapping fewer
      if (::munmap(region + i * page, page) != 0) return setup_failed;
    }
    return never_succeeded;
  });
  ASSERT_LT(status, 8) << describe(status);
  std::printf("[   info   ] steps refused at the map count limit:%s%s%s\n", status & 1 ? " reserving" : "",
              status & 2 ? " first-copy" : "", status & 4 ? " second-copy" : "");
  EXPECT_NE(status & 6, 0) << "no copy failed after a successful reservation: the cleanup path went untested";
}

// ============================================================================ elements

// An element of Bytes bytes whose every word derives from its sequence number: an element from
// the wrong place, a stale one or a torn one fails is().
template <std::size_t Bytes>
struct item {
  static_assert(Bytes % 4 == 0);
  std::uint32_t word[Bytes / 4];

  static item of(std::uint64_t seq) noexcept {
    const std::uint64_t h = mix(seq);
    item x;
    for (std::size_t k = 0; k < Bytes / 4; ++k)
      x.word[k] = static_cast<std::uint32_t>(h >> (k % 2 * 32)) ^ static_cast<std::uint32_t>(k * 0x9E3779B9u);
    return x;
  }
  bool is(std::uint64_t seq) const noexcept {
    const item want = of(seq);
    return std::memcmp(word, want.word, Bytes) == 0;
  }
};
static_assert(sizeof(item<12>) == 12 && sizeof(item<4096>) == 4096);

// A ring of `item<Bytes>` over mirrored storage of at least `Request` elements, and the capacity
// that must give with 4 KiB pages.
template <std::size_t Bytes, std::size_t Request, std::size_t CapacityWith4K>
struct spsc_config {
  using value_type = item<Bytes>;
  using ring = sluice::spsc_ring<value_type>;
  static constexpr std::size_t bytes = Bytes, request = Request, capacity_4k = CapacityWith4K;
};

// Drives an spsc_ring over mirrored storage from one thread and knows where its cursors stand.
template <class Config>
class spsc_driver {
 public:
  using T = typename Config::value_type;
  using ring_type = typename Config::ring;

  spsc_driver() : ring(sluice::mirrored, Config::request), cap(ring.capacity()) {
    auto g = ring.try_reserve(1);  // a new ring's first grant starts at the start of the storage
    base = g.data();
    g.discard();
  }

  // Moves the cursors of the (empty) ring forward to storage index `target`, through the copying
  // calls, checking what comes back.
  void walk_to(std::size_t target) {
    const std::size_t d = (target + cap - at) % cap;
    if (d == 0) return;
    std::vector<T> v(d);
    for (std::size_t i = 0; i < d; ++i) v[i] = T::of(seq + i);
    ASSERT_EQ(ring.write_some(v), d);
    std::fill(v.begin(), v.end(), T{});
    ASSERT_EQ(ring.read_some(v), d);
    for (std::size_t i = 0; i < d; ++i) ASSERT_TRUE(v[i].is(seq + i)) << i;
    seq += d;
    at = target;
    ASSERT_EQ(ring.size_approx(), 0u);
  }

  // Element `i` of a run that starts at storage index `from`, read through the first copy.
  const T& in_first_copy(std::size_t from, std::size_t i) const { return base[(from + i) % cap]; }

  // Writes `n` fresh elements into `g` and commits `k` of them; returns the first's sequence.
  template <class Grant>
  std::uint64_t fill(Grant& g, std::size_t k) {
    const std::uint64_t first = seq;
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = T::of(seq + i);
    g.commit(k);
    seq += k;
    at = (at + k) % cap;
    return first;
  }

  ring_type ring;
  const std::size_t cap;
  T* base = nullptr;
  std::size_t at = 0;      // storage index of both cursors (the ring is empty between steps)
  std::uint64_t seq = 0;   // the next element's sequence number
};

// Lengths to try at offset `off`: all of them on small rings, else the ones around the seam.
std::vector<std::size_t> lengths(std::size_t cap, std::size_t off) {
  std::set<std::size_t> s;
  if (cap <= 16) {
    for (std::size_t n = 1; n <= cap; ++n) s.insert(n);
  } else {
    for (std::size_t n : {std::size_t{1}, std::size_t{2}, cap / 2, cap - off - 1, cap - off, cap - off + 1, cap})
      if (n >= 1 && n <= cap) s.insert(n);
  }
  return {s.begin(), s.end()};
}

template <class Config>
class MirroredSpscRing : public ::testing::Test {};

using spsc_configs =
    ::testing::Types<spsc_config<8, 1, 512>, spsc_config<12, 1, 1024>, spsc_config<256, 1, 16>, spsc_config<1024, 3, 4>,
                     spsc_config<4096, 1, 1>, spsc_config<4096, 3, 3>>;
struct spsc_names {
  template <class C>
  static std::string GetName(int) {
    return "item" + std::to_string(C::bytes) + "_request" + std::to_string(C::request);
  }
};
TYPED_TEST_SUITE(MirroredSpscRing, spsc_configs, spsc_names);

// capacity(): the request rounded up to whole pages and whole elements; mirrored() tells.
TYPED_TEST(MirroredSpscRing, CapacityAndMirroredAsDocumented) {
  using T = typename TypeParam::value_type;
  typename TypeParam::ring r(sluice::mirrored, TypeParam::request);
  EXPECT_TRUE(r.mirrored());
  EXPECT_EQ(r.capacity(), mirrored_storage::rounded_size(TypeParam::request * sizeof(T), sizeof(T)) / sizeof(T));
  EXPECT_GE(r.capacity(), TypeParam::request);
  EXPECT_EQ(r.capacity() * sizeof(T) % page, 0u);
  if (page == 4096) {
    EXPECT_EQ(r.capacity(), TypeParam::capacity_4k);
  }
  EXPECT_EQ(r.size_approx(), 0u);
  // The other constructors are not mirrored.
  typename TypeParam::ring owned(TypeParam::capacity_4k);
  EXPECT_FALSE(owned.mirrored());
  std::vector<T> store(3);
  typename TypeParam::ring caller{std::span<T>(store)};
  EXPECT_FALSE(caller.mirrored());
}

// At every storage offset, a grant of every length (on larger rings, of the lengths around the
// seam) is one span from data() == storage + offset, however far past the end of the first copy
// it runs; try_read() returns all of it in one span at the same place; what ran past the end is
// in the first copy's start. Twice over, so the cursors go lap after lap.
TYPED_TEST(MirroredSpscRing, SeamGrantIsOneSpanAtEveryOffset) {
  spsc_driver<TypeParam> d;
  std::size_t across = 0;
  for (int lap = 0; lap < 2; ++lap) {
    for (std::size_t off = 0; off < d.cap; ++off) {
      for (std::size_t n : lengths(d.cap, off)) {
        SCOPED_TRACE("offset " + std::to_string(off) + " length " + std::to_string(n));
        ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
        auto g = d.ring.try_reserve(n);
        ASSERT_EQ(g.size(), n);
        ASSERT_EQ(g.data(), d.base + off);
        ASSERT_EQ(g.end(), g.data() + n);
        const std::uint64_t first = d.fill(g, n);
        EXPECT_EQ(d.ring.size_approx(), n);
        auto r = d.ring.try_read();
        ASSERT_EQ(r.size(), n);
        ASSERT_EQ(r.data(), d.base + off);
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_TRUE(r[i].is(first + i)) << "element " << i << " read through the grant";
          ASSERT_TRUE(d.in_first_copy(off, i).is(first + i)) << "element " << i << " read through the first copy";
        }
        r.release();
        EXPECT_EQ(d.ring.size_approx(), 0u);
        if (off + n > d.cap) ++across;
      }
    }
  }
  if (d.cap > 1) {
    EXPECT_GT(across, 0u);
  }
}

// An empty ring grants its whole capacity wherever the cursors stand, as an exact grant, an
// up-to grant and a split grant (whose second part is empty).
TYPED_TEST(MirroredSpscRing, EmptyRingGrantsItsCapacityAtEveryOffset) {
  spsc_driver<TypeParam> d;
  for (std::size_t off = 0; off < d.cap; ++off) {
    SCOPED_TRACE("offset " + std::to_string(off));
    ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
    {
      auto g = d.ring.try_reserve(d.cap);
      ASSERT_EQ(g.size(), d.cap);
      ASSERT_EQ(g.data(), d.base + off);
      g.discard();
    }
    {
      auto g = d.ring.try_reserve_up_to(d.cap + 5);
      ASSERT_EQ(g.size(), d.cap);
      ASSERT_EQ(g.data(), d.base + off);
      g.discard();
    }
    auto s = d.ring.try_reserve_split(d.cap);
    ASSERT_EQ(s.size(), d.cap);
    ASSERT_EQ(s.first().size(), d.cap);
    ASSERT_EQ(s.first().data(), d.base + off);
    ASSERT_TRUE(s.second().empty());
    for (std::size_t i = 0; i < d.cap; ++i) s.first()[i] = TypeParam::value_type::of(d.seq + i);
    s.commit();
    auto r = d.ring.try_read();
    ASSERT_EQ(r.size(), d.cap);
    for (std::size_t i = 0; i < d.cap; ++i) ASSERT_TRUE(r[i].is(d.seq + i)) << i;
    r.release();
    d.seq += d.cap;
  }
}

// With k elements in the ring, try_reserve(n) succeeds for every n <= capacity - k, contiguous
// right behind them (across the seam or not), and fails for capacity - k + 1; try_reserve_up_to
// reports the whole free space as one run.
TYPED_TEST(MirroredSpscRing, ReserveSucceedsWheneverEnoughIsFree) {
  spsc_driver<TypeParam> d;
  const std::size_t step = std::max<std::size_t>(1, d.cap / 32);
  for (std::size_t off = 0; off < d.cap; off += step) {
    for (std::size_t k : std::set<std::size_t>{0, 1, d.cap / 3, d.cap - 1, d.cap}) {
      SCOPED_TRACE("offset " + std::to_string(off) + " holding " + std::to_string(k));
      ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
      std::uint64_t held = d.seq;
      if (k != 0) {
        auto g = d.ring.try_reserve(k);
        ASSERT_EQ(g.size(), k);
        held = d.fill(g, k);
      }
      const std::size_t free = d.cap - k;
      const std::size_t behind = (off + k) % d.cap;
      if (free != 0) {
        auto g = d.ring.try_reserve(free);
        ASSERT_EQ(g.size(), free);
        ASSERT_EQ(g.data(), d.base + behind);
        g.discard();
        auto u = d.ring.try_reserve_up_to(d.cap);
        ASSERT_EQ(u.size(), free);
        ASSERT_EQ(u.data(), d.base + behind);
        u.discard();
      }
      if (free < d.cap) {
        EXPECT_TRUE(d.ring.try_reserve(free + 1).empty());
        EXPECT_TRUE(d.ring.try_reserve_split(free + 1).empty());
      }
      if (free == 0) {
        EXPECT_TRUE(d.ring.try_reserve_up_to(1).empty());
      }
      // Drain what was held, in one read.
      auto r = d.ring.try_read();
      ASSERT_EQ(r.size(), k);
      for (std::size_t i = 0; i < k; ++i) ASSERT_TRUE(r[i].is(held + i)) << i;
      r.release();
    }
  }
}

// Several commits, crossing the seam between them or inside one, come back from one try_read()
// as one span (and from try_read_split() as first() alone); a partial release leaves the rest
// for the next try_read(), again in one span.
TYPED_TEST(MirroredSpscRing, TryReadReturnsEverythingCommittedInOneGrant) {
  spsc_driver<TypeParam> d;
  const std::size_t commits = std::min<std::size_t>(3, d.cap);
  std::mt19937_64 rng(7);
  for (std::size_t off = 0; off < d.cap; ++off) {
    SCOPED_TRACE("offset " + std::to_string(off));
    ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
    const std::uint64_t first = d.seq;
    std::size_t total = 0;
    for (std::size_t c = 0; c < commits; ++c) {  // at least one element each, at most the ring
      const std::size_t n = 1 + rng() % (d.cap - total - (commits - 1 - c));
      auto g = d.ring.try_reserve(n);
      ASSERT_EQ(g.size(), n);
      d.fill(g, n);
      total += n;
    }
    {
      auto s = d.ring.try_read_split();
      ASSERT_EQ(s.size(), total);
      ASSERT_EQ(s.first().size(), total);
      ASSERT_EQ(s.first().data(), d.base + off);
      ASSERT_TRUE(s.second().empty());
    }  // dropped: a peek
    auto r = d.ring.try_read();
    ASSERT_EQ(r.size(), total);
    ASSERT_EQ(r.data(), d.base + off);
    for (std::size_t i = 0; i < total; ++i) ASSERT_TRUE(r[i].is(first + i)) << i;
    const std::size_t k = rng() % total;
    r.release(k);
    auto rest = d.ring.try_read();
    ASSERT_EQ(rest.size(), total - k);
    if (k != total) {
      ASSERT_EQ(rest.data(), d.base + (off + k) % d.cap);
    }
    for (std::size_t i = 0; i < total - k; ++i) ASSERT_TRUE(rest[i].is(first + k + i)) << i;
    rest.release();
  }
}

// Split grants never split: at every offset try_reserve_split(n) and try_read_split() give
// everything in first(), second() empty, and a partial commit and release work through them.
TYPED_TEST(MirroredSpscRing, SplitGrantsHaveAnEmptySecond) {
  spsc_driver<TypeParam> d;
  for (std::size_t off = 0; off < d.cap; ++off) {
    for (std::size_t n : lengths(d.cap, off)) {
      SCOPED_TRACE("offset " + std::to_string(off) + " length " + std::to_string(n));
      ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
      auto s = d.ring.try_reserve_split(n);
      ASSERT_EQ(s.size(), n);
      ASSERT_EQ(s.first().size(), n);
      ASSERT_EQ(s.first().data(), d.base + off);
      ASSERT_TRUE(s.second().empty());
      const std::size_t k = n == 1 ? 1 : n - 1;
      for (std::size_t i = 0; i < n; ++i) s.first()[i] = TypeParam::value_type::of(d.seq + i);
      s.commit(k);
      auto r = d.ring.try_read_split();
      ASSERT_EQ(r.size(), k);
      ASSERT_EQ(r.first().size(), k);
      ASSERT_EQ(r.first().data(), d.base + off);
      ASSERT_TRUE(r.second().empty());
      for (std::size_t i = 0; i < k; ++i) ASSERT_TRUE(r.first()[i].is(d.seq + i)) << i;
      r.release();
      d.seq += k;
      d.at = (off + k) % d.cap;
    }
  }
}

// write_some and read_some copy across the seam in one piece, try_push and try_pop step across
// it, at every offset; a full ring refuses one more.
TYPED_TEST(MirroredSpscRing, CopyingCallsCrossTheSeam) {
  using T = typename TypeParam::value_type;
  spsc_driver<TypeParam> d;
  for (std::size_t off = 0; off < d.cap; ++off) {
    SCOPED_TRACE("offset " + std::to_string(off));
    ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
    std::vector<T> in(d.cap + 1);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = T::of(d.seq + i);
    ASSERT_EQ(d.ring.write_some(in), d.cap);  // one more than fits
    for (std::size_t i = 0; i < d.cap; ++i) ASSERT_TRUE(d.in_first_copy(off, i).is(d.seq + i)) << i;
    EXPECT_FALSE(d.ring.try_push(in[0]));
    std::vector<T> out(d.cap + 1);
    ASSERT_EQ(d.ring.read_some(out), d.cap);
    for (std::size_t i = 0; i < d.cap; ++i) ASSERT_TRUE(out[i].is(d.seq + i)) << i;
    d.seq += d.cap;
    // One at a time, all the way round.
    for (std::size_t i = 0; i < d.cap; ++i) ASSERT_TRUE(d.ring.try_push(T::of(d.seq + i))) << i;
    EXPECT_FALSE(d.ring.try_push(in[0]));
    for (std::size_t i = 0; i < d.cap; ++i) {
      const std::optional<T> x = d.ring.try_pop();
      ASSERT_TRUE(x.has_value()) << i;
      ASSERT_TRUE(x->is(d.seq + i)) << i;
    }
    EXPECT_FALSE(d.ring.try_pop().has_value());
    d.seq += d.cap;
  }
}

// Construction errors: 0 (std::invalid_argument), a byte size past the ceiling
// (std::length_error naming it), a size the address space refuses (mapping_error). Nothing is
// left mapped after any of them.
TEST(MirroredSpscRingErrors, ConstructionErrorsLeaveNothingMapped) {
  const footprint before = footprint::now();
  EXPECT_THROW((sluice::spsc_ring<std::uint64_t>(sluice::mirrored, 0)), std::invalid_argument);
  EXPECT_THROW((sluice::spsc_ring<item<12>>(sluice::mirrored, 0)), std::invalid_argument);
  EXPECT_TRUE(throws_naming<std::length_error>(
      [] { sluice::spsc_ring<std::uint64_t> r(sluice::mirrored, std::numeric_limits<std::size_t>::max() / 8); },
      {std::to_string(size_limit)}));
  EXPECT_THROW((sluice::spsc_ring<std::uint64_t>(sluice::mirrored, std::numeric_limits<std::size_t>::max())), std::length_error);
  EXPECT_TRUE(throws_naming<mapping_error>(
      [] { sluice::spsc_ring<std::uint64_t> r(sluice::mirrored, std::size_t{1} << 57); }, {"reserving"}));
  EXPECT_TRUE(nothing_left(before));
  {
    sluice::spsc_ring<std::uint64_t> r(sluice::mirrored, 1);
    EXPECT_EQ(footprint::now().mirrors, before.mirrors + 2);
  }
  EXPECT_TRUE(nothing_left(before));  // the ring's destructor unmaps its storage
}

// ============================================================================ record rings

std::byte pattern(std::uint64_t seq, std::size_t i) noexcept {
  return static_cast<std::byte>(mix(seq * 0x10001 + i / 8) >> (i % 8 * 8));
}

template <class Ring>
class MirroredRecordRing : public ::testing::Test {};
using record_rings = ::testing::Types<sluice::spsc_record_ring, sluice::mpsc_record_ring>;
struct record_names {
  template <class R>
  static std::string GetName(int) {
    return std::is_same_v<R, sluice::spsc_record_ring> ? "spsc" : "mpsc";
  }
};
TYPED_TEST_SUITE(MirroredRecordRing, record_rings, record_names);

// Drives a record ring over mirrored storage from one thread and knows where its cursors stand.
template <class Ring>
class record_driver {
 public:
  explicit record_driver(std::size_t min_capacity) : ring(sluice::mirrored, min_capacity), cap(ring.capacity()) {
    // A new ring's first record has its header at the start of the storage. Withdrawn, and
    // stepped over by the next read, it leaves both cursors at 8.
    auto g = ring.try_reserve(0);
    base = g.data() - 8;
    g.discard();
    auto b = ring.try_read();
    EXPECT_FALSE(b);
    at = 8;
  }

  // Moves the cursors of the (empty) ring to storage index `target` with one record.
  void walk_to(std::size_t target) {
    const std::size_t d = (target + cap - at) % cap;
    if (d == 0) return;
    auto g = ring.try_reserve(d - 8);
    ASSERT_TRUE(g);
    ASSERT_EQ(g.data(), base + at + 8);
    g.commit();
    auto b = ring.try_read();
    ASSERT_EQ(b.size(), 1u);
    b.release();
    at = target;
    ASSERT_EQ(ring.size_approx(), 0u);
  }

  // Payload byte i of a record whose header is at `header`, read through the first copy.
  std::byte in_first_copy(std::size_t header, std::size_t i) const { return base[(header + 8 + i) % cap]; }

  Ring ring;
  const std::size_t cap;
  std::byte* base = nullptr;
  std::size_t at = 0;  // storage index of both cursors (the ring is empty between steps)
};

// capacity(): rounded up to whole pages; max_record_size() is capacity() - 8; mirrored() tells.
TYPED_TEST(MirroredRecordRing, CapacityAndMaxRecordAsDocumented) {
  for (std::size_t request : {std::size_t{32}, std::size_t{4000}, page, page + 8, 3 * page - 16, 3 * page}) {
    SCOPED_TRACE("request " + std::to_string(request));
    TypeParam r(sluice::mirrored, request);
    EXPECT_TRUE(r.mirrored());
    EXPECT_EQ(r.capacity(), mirrored_storage::rounded_size(request, 8));
    EXPECT_GE(r.capacity(), request);
    EXPECT_EQ(r.capacity() % page, 0u);
    EXPECT_EQ(r.max_record_size(), r.capacity() - 8);
    EXPECT_EQ(r.size_approx(), 0u);
    EXPECT_EQ(r.in_flight(), 0u);
    EXPECT_THROW((void)r.try_reserve(r.max_record_size() + 1), std::length_error);
  }
  TypeParam owned(page);
  EXPECT_FALSE(owned.mirrored());
  alignas(8) std::byte store[64];
  TypeParam caller{std::span<std::byte>(store)};
  EXPECT_FALSE(caller.mirrored());
}

// A request of n bytes gives at least n bytes, also when n is not a multiple of 8: the request
// is rounded up to pages, never first down to a multiple of 8 as owned storage is.
TYPED_TEST(MirroredRecordRing, CapacityIsAtLeastTheRequest) {
  for (std::size_t request : {page + 1, page + 4, page + 7, 2 * page + 3}) {
    TypeParam r(sluice::mirrored, request);
    EXPECT_GE(r.capacity(), request) << "request " << request;
  }
}

// Below 32 bytes: std::invalid_argument; above max_capacity: std::length_error naming it;
// max_capacity itself maps. Nothing is left mapped by the failures.
TYPED_TEST(MirroredRecordRing, ConstructionErrorsLeaveNothingMapped) {
  const footprint before = footprint::now();
  for (std::size_t n : {std::size_t{0}, std::size_t{8}, std::size_t{31}})
    EXPECT_THROW(TypeParam(sluice::mirrored, n), std::invalid_argument) << n;
  const std::size_t max = TypeParam::max_capacity;
  for (std::size_t n : {max + 1, max + page, std::numeric_limits<std::size_t>::max()}) {
    EXPECT_TRUE(throws_naming<std::length_error>([n] { TypeParam r(sluice::mirrored, n); },
                                                 {"max_capacity", std::to_string(max)}))
        << n;
  }
  EXPECT_TRUE(nothing_left(before));
  {
    TypeParam r(sluice::mirrored, max - page + 8);  // rounds up to max_capacity; never touched
    EXPECT_EQ(r.capacity(), max);
    EXPECT_EQ(r.max_record_size(), max - 8);
  }
  EXPECT_TRUE(nothing_left(before));
}

// On an empty ring, a record of max_record_size() = capacity() - 8 bytes succeeds with its header
// at every 8-byte offset: its payload is one span from the header on, running past the end of
// the first copy (except at offset 0) and on into the first copy's start; it fills the ring (one
// more byte is refused), comes back intact as one record, and leaves zeroed free space.
TYPED_TEST(MirroredRecordRing, MaxRecordAtEvery8ByteOffset) {
  record_driver<TypeParam> d(page);
  const std::size_t max = d.ring.max_record_size();
  ASSERT_EQ(max, d.cap - 8);
  for (std::size_t off = 0; off < d.cap; off += 8) {
    SCOPED_TRACE("offset " + std::to_string(off));
    ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
    auto g = d.ring.try_reserve(max);
    ASSERT_TRUE(g);
    ASSERT_EQ(g.data(), d.base + off + 8);
    ASSERT_EQ(g.size(), max);
    for (std::size_t i = 0; i < max; ++i) g.data()[i] = pattern(off, i);
    g.commit();
    EXPECT_EQ(d.ring.size_approx(), d.cap);
    EXPECT_FALSE(d.ring.try_reserve(0)) << "a full ring granted a record";
    auto b = d.ring.try_read();
    ASSERT_EQ(b.size(), 1u);
    const std::span<const std::byte> rec = *b.begin();
    ASSERT_EQ(rec.data(), d.base + off + 8);
    ASSERT_EQ(rec.size(), max);
    for (std::size_t i = 0; i < max; ++i) {
      ASSERT_EQ(rec[i], pattern(off, i)) << "byte " << i;
      ASSERT_EQ(d.in_first_copy(off, i), pattern(off, i)) << "byte " << i << " through the first copy";
    }
    b.release();
    EXPECT_EQ(d.ring.size_approx(), 0u);
    for (std::size_t i = 0; i < d.cap; ++i) ASSERT_EQ(d.base[i], std::byte{0}) << "free byte " << i;
    // The footprint is the whole ring: the cursors are back at `off`.
  }
}

// Records of sizes 0..300, lap after lap, up to three held at once and finished in random
// order (committed, shortened by commit(k), or withdrawn); batches released whole or in part.
// Every record is delivered in reservation order, in one span where it was granted, intact
// (also read through the first copy); headers stand at every 8-byte offset and many records
// run past the end of the first copy.
TYPED_TEST(MirroredRecordRing, RecordsCrossTheSeamLapAfterLap) {
  record_driver<TypeParam> d(page);
  enum class state { pending, committed, withdrawn };
  struct entry {
    std::uint64_t seq;
    std::size_t header, length;
    state st;
  };
  std::deque<entry> reserved;  // in reservation order, not yet released
  std::vector<std::pair<typename TypeParam::grant, std::uint64_t>> held;
  std::mt19937_64 rng(0x5eab);
  std::vector<bool> header_seen(d.cap / 8);
  std::size_t tail = d.at, across = 0, delivered = 0;
  std::uint64_t seq = 0;

  auto finish_one = [&] {
    const std::size_t i = rng() % held.size();
    auto [g, s] = std::move(held[i]);
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    entry& e = *std::find_if(reserved.begin(), reserved.end(), [s = s](const entry& x) { return x.seq == s; });
    const unsigned how = rng() % 8;
    if (how == 0) {
      g.discard();
      e.st = state::withdrawn;
      return;
    }
    if (how == 1) e.length = rng() % (e.length + 1);
    g.commit(e.length);
    e.st = state::committed;
  };
  // Reads what the model says is ready (the committed records before the first pending one) and
  // releases all of it, or the first k records.
  auto read = [&] {
    std::vector<const entry*> ready;
    std::size_t scanned = 0;  // entries up to the first pending one
    for (const entry& e : reserved) {
      if (e.st == state::pending) break;
      ++scanned;
      if (e.st == state::committed) ready.push_back(&e);
    }
    auto b = d.ring.try_read();
    ASSERT_EQ(b.size(), ready.size());
    std::size_t i = 0;
    for (const std::span<const std::byte> rec : b) {
      const entry& e = *ready[i++];
      ASSERT_EQ(rec.data(), d.base + e.header + 8) << "record " << e.seq;
      ASSERT_EQ(rec.size(), e.length) << "record " << e.seq;
      for (std::size_t j = 0; j < e.length; ++j) {
        ASSERT_EQ(rec[j], pattern(e.seq, j)) << "record " << e.seq << " byte " << j;
        ASSERT_EQ(d.in_first_copy(e.header, j), pattern(e.seq, j)) << "record " << e.seq << " byte " << j;
      }
    }
    std::size_t k = ready.size();
    if (!ready.empty() && rng() % 3 == 0) k = rng() % (ready.size() + 1);
    if (k == ready.size()) {
      b.release();  // also frees the withdrawn ones after the last record (or alone)
    } else {
      b.release(k);
      scanned = 0;
      for (std::size_t records = 0; records < k; ++scanned)
        if (reserved[scanned].st == state::committed) ++records;
    }
    delivered += k;
    reserved.erase(reserved.begin(), reserved.begin() + static_cast<std::ptrdiff_t>(scanned));
  };

  while (seq < 6000) {
    const unsigned what = rng() % 8;
    if (what < 5 && held.size() < 3) {
      const std::size_t n = (seq * 37) % 301;
      auto g = d.ring.try_reserve(n);
      if (!g) {  // full: make room
        if (held.empty()) {
          ASSERT_NO_FATAL_FAILURE(read());
        } else {
          finish_one();
        }
        continue;
      }
      ASSERT_EQ(g.data(), d.base + tail + 8) << "record " << seq;
      ASSERT_EQ(g.size(), n);
      for (std::size_t j = 0; j < n; ++j) g.data()[j] = pattern(seq, j);
      reserved.push_back({seq, tail, n, state::pending});
      header_seen[tail / 8] = true;
      if (tail + 8 + n > d.cap) ++across;
      tail = (tail + 8 + (n + 7) / 8 * 8) % d.cap;
      held.emplace_back(std::move(g), seq++);
    } else if (what < 7 && !held.empty()) {
      finish_one();
    } else {
      ASSERT_NO_FATAL_FAILURE(read());
    }
  }
  while (!held.empty()) finish_one();
  for (int i = 0; i < 4 && !reserved.empty(); ++i) ASSERT_NO_FATAL_FAILURE(read());
  EXPECT_TRUE(reserved.empty());
  EXPECT_EQ(d.ring.size_approx(), 0u);
  EXPECT_EQ(d.ring.in_flight(), 0u);
  for (std::size_t i = 0; i < header_seen.size(); ++i) EXPECT_TRUE(header_seen[i]) << "no header at offset " << i * 8;
  EXPECT_GT(across, 100u) << "records whose payload ran past the end of the first copy";
  EXPECT_GT(delivered, 3000u);
}

// A full ring of records whose sequence crosses the seam: one try_read() returns them all.
TYPED_TEST(MirroredRecordRing, TryReadReturnsEverythingCommitted) {
  record_driver<TypeParam> d(page);
  for (std::size_t off : {std::size_t{0}, std::size_t{8}, d.cap / 2, d.cap - 8}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    ASSERT_NO_FATAL_FAILURE(d.walk_to(off));
    std::vector<std::size_t> lengths;
    std::size_t used = 0;
    for (std::size_t n = 0;; n = (n + 13) % 100) {
      auto g = d.ring.try_reserve(n);
      if (!g) break;
      for (std::size_t j = 0; j < n; ++j) g.data()[j] = pattern(lengths.size(), j);
      g.commit();
      lengths.push_back(n);
      used += 8 + (n + 7) / 8 * 8;
    }
    ASSERT_EQ(d.ring.size_approx(), used);
    ASSERT_GT(used, d.cap - 112);
    auto b = d.ring.try_read();
    ASSERT_EQ(b.size(), lengths.size());
    std::size_t i = 0;
    for (const std::span<const std::byte> rec : b) {
      ASSERT_EQ(rec.size(), lengths[i]);
      for (std::size_t j = 0; j < rec.size(); ++j) ASSERT_EQ(rec[j], pattern(i, j)) << "record " << i << " byte " << j;
      ++i;
    }
    b.release();
    d.at = (off + used) % d.cap;
    EXPECT_EQ(d.ring.size_approx(), 0u);
  }
}

// Three producer threads and the consumer on an mpsc ring over one page: records of 24..1500
// bytes, each naming (producer, sequence, length) and filled from them. The consumer checks
// every byte and the per-producer order; many records run past the end of the first copy. A
// deadline turns a hang into a failure; nothing about time is asserted.
TEST(MirroredMpscRecordRing, SeveralProducersAcrossTheSeam) {
  const std::uint64_t seed = sluice_test::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set SLUICE_STRESS_SEED to reuse)");
  record_driver<sluice::mpsc_record_ring> d(page);
  auto& ring = d.ring;
  constexpr unsigned producers = 3;
  constexpr std::uint64_t per_producer = 20000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  auto length_of = [seed](std::uint64_t id, std::uint64_t s) {
    return 24 + static_cast<std::size_t>(mix(seed ^ (id << 40) ^ s) % 1477);
  };
  auto byte_of = [](std::uint64_t id, std::uint64_t s, std::size_t i) { return pattern((id << 40) ^ s, i); };
  std::atomic<bool> stop{false};
  std::vector<std::string> errors(producers + 1);
  std::uint64_t across = 0;
  {
    std::vector<std::jthread> threads;
    for (std::uint64_t id = 0; id < producers; ++id)
      threads.emplace_back([&, id] {
        for (std::uint64_t s = 0; s < per_producer && !stop.load(std::memory_order_relaxed);) {
          const std::uint64_t n = length_of(id, s);
          auto g = ring.try_reserve(n);
          if (!g) {
            if (std::chrono::steady_clock::now() > deadline) {
              errors[id] = "producer " + std::to_string(id) + ": deadline passed";
              stop.store(true, std::memory_order_relaxed);
            }
            std::this_thread::yield();
            continue;
          }
          std::memcpy(g.data(), &id, 8);
          std::memcpy(g.data() + 8, &s, 8);
          std::memcpy(g.data() + 16, &n, 8);
          for (std::size_t i = 24; i < n; ++i) g.data()[i] = byte_of(id, s, i);
          g.commit();
          ++s;
        }
      });
    std::vector<std::uint64_t> next(producers, 0);
    std::uint64_t received = 0;
    std::string& err = errors[producers];
    // Checks one record; an error message, empty if it is the next one of its producer, intact.
    auto check = [&](std::span<const std::byte> rec) -> std::string {
      std::uint64_t id, s, n;
      std::memcpy(&id, rec.data(), 8);
      std::memcpy(&s, rec.data() + 8, 8);
      std::memcpy(&n, rec.data() + 16, 8);
      const std::string who = "record " + std::to_string(received) + " (producer " + std::to_string(id) + ", seq " +
                              std::to_string(s) + ", " + std::to_string(rec.size()) + " bytes)";
      if (id >= producers || s != next[id]) return who + ": out of order";
      if (n != rec.size() || n != length_of(id, s)) return who + ": wrong length";
      for (std::size_t i = 24; i < n; ++i)
        if (rec[i] != byte_of(id, s, i)) return who + ": byte " + std::to_string(i) + " corrupt";
      ++next[id];
      return {};
    };
    while (received < producers * per_producer && err.empty() && !stop.load(std::memory_order_relaxed)) {
      auto b = ring.try_read();
      if (!b) {
        if (std::chrono::steady_clock::now() > deadline)
          err = "consumer: deadline passed after " + std::to_string(received) + " records";
        std::this_thread::yield();
        continue;
      }
      for (const std::span<const std::byte> rec : b) {
        err = check(rec);
        if (!err.empty()) break;
        if (rec.data() + rec.size() > d.base + d.cap) ++across;
        ++received;
      }
      b.release();
    }
    if (!err.empty()) stop.store(true, std::memory_order_relaxed);
  }  // joined
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(ring.size_approx(), 0u);
  EXPECT_EQ(ring.in_flight(), 0u);
  EXPECT_EQ(ring.statistics().committed, producers * per_producer);
  EXPECT_GT(across, 0u) << "no record ran past the end of the first copy";
}

}  // namespace
