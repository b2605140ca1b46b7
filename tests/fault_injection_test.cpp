// The system calls behind mirrored storage and shared rings, made to fail one at a time.
//
// This executable is linked with -Wl,--wrap for each call below (tests/CMakeLists.txt), so the
// library's calls reach the wrappers here, which pass them through, count them, and fail the
// one a test arms with the errno it names. For every way of building a ring that maps memory,
// a first run counts its calls; then each call in turn fails, and the test checks what a
// demanding caller relies on:
// - the constructor throws mapping_error with that errno, naming the segment or the storage;
// - nothing leaks: every byte the library mapped is unmapped (the wrappers keep the ledger),
//   every descriptor it opened is closed, and a failed create leaves no name behind;
// - nothing is half done: the same construction then succeeds, and a ring opened after a
//   failed open still hands data to its peer.
// And the process-liveness check a consumer uses to take over a dead peer's role: without /proc
// (fopen and access fail) it falls back on kill(pid, 0); with /proc, it reads stat lines served
// by the fopen wrapper, malformed ones included. Last, remove_shared() when shm_unlink fails.
#include <sluice/mirrored_storage.hpp>
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include "child_exit.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace {

enum class call { shm_open, shm_unlink, ftruncate, fstat, mmap, memfd_create, fopen, access, count };
constexpr std::array<const char*, static_cast<std::size_t>(call::count)> call_names = {
    "shm_open", "shm_unlink", "ftruncate", "fstat", "mmap", "memfd_create", "fopen", "access"};

// The tests run on one thread; the library calls these only from the constructing thread.
struct fault_plan {
  std::array<int, static_cast<std::size_t>(call::count)> calls{};  // since the last reset()
  call armed = call::count;  // fails once, at its nth call since reset()
  int nth = 0;
  int error = 0;
  unsigned always = 0;         // bit per call: every call fails (ENOENT)
  const char* proc_stat = nullptr;  // if set, what every /proc/<pid>/stat opened reads
  long long mapped_bytes = 0;  // mapped through mmap (not MAP_FIXED) and not yet unmapped

  void reset() {
    calls.fill(0);
    armed = call::count;
    always = 0;
    proc_stat = nullptr;
  }
  void arm(call c, int ordinal, int err) {
    reset();
    armed = c;
    nth = ordinal;
    error = err;
  }
  void fail_always(std::initializer_list<call> cs) {
    reset();
    for (call c : cs) always |= 1u << static_cast<unsigned>(c);
  }
  // Counts a call of `c`; true (errno set) if it is one to fail.
  bool fails(call c) {
    const int n = ++calls[static_cast<std::size_t>(c)];
    if (always & (1u << static_cast<unsigned>(c))) {
      errno = ENOENT;
      return true;
    }
    if (c != armed || n != nth) return false;
    errno = error;
    return true;
  }
  int count(call c) const { return calls[static_cast<std::size_t>(c)]; }
};
fault_plan plan;

}  // namespace

extern "C" {
int __real_shm_open(const char* name, int flags, mode_t mode);
int __real_shm_unlink(const char* name);
int __real_ftruncate(int fd, off_t length);
int __real_fstat(int fd, struct stat* st);
void* __real_mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset);
int __real_munmap(void* addr, std::size_t length);
int __real_memfd_create(const char* name, unsigned flags);
std::FILE* __real_fopen(const char* path, const char* mode);
int __real_access(const char* path, int mode);

int __wrap_shm_open(const char* name, int flags, mode_t mode) {
  return plan.fails(call::shm_open) ? -1 : __real_shm_open(name, flags, mode);
}
int __wrap_shm_unlink(const char* name) { return plan.fails(call::shm_unlink) ? -1 : __real_shm_unlink(name); }
int __wrap_ftruncate(int fd, off_t length) { return plan.fails(call::ftruncate) ? -1 : __real_ftruncate(fd, length); }
int __wrap_fstat(int fd, struct stat* st) { return plan.fails(call::fstat) ? -1 : __real_fstat(fd, st); }
void* __wrap_mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) {
  if (plan.fails(call::mmap)) return MAP_FAILED;
  void* p = __real_mmap(addr, length, prot, flags, fd, offset);
  // A MAP_FIXED mapping replaces pages of a range mapped before: no new bytes.
  if (p != MAP_FAILED && !(flags & MAP_FIXED)) plan.mapped_bytes += static_cast<long long>(length);
  return p;
}
int __wrap_munmap(void* addr, std::size_t length) {
  const int r = __real_munmap(addr, length);
  if (r == 0) plan.mapped_bytes -= static_cast<long long>(length);
  return r;
}
int __wrap_memfd_create(const char* name, unsigned flags) {
  return plan.fails(call::memfd_create) ? -1 : __real_memfd_create(name, flags);
}
std::FILE* __wrap_fopen(const char* path, const char* mode) {
  if (plan.fails(call::fopen)) return nullptr;
  const std::string_view p(path);
  if (plan.proc_stat && p.starts_with("/proc/") && p.ends_with("/stat"))
    return ::fmemopen(const_cast<char*>(plan.proc_stat), std::strlen(plan.proc_stat), "r");
  return __real_fopen(path, mode);
}
int __wrap_access(const char* path, int mode) { return plan.fails(call::access) ? -1 : __real_access(path, mode); }
}

namespace {

using namespace std::chrono_literals;

// The errno each call fails with: one it can really return.
int error_of(call c) {
  switch (c) {
    case call::shm_open: return EMFILE;
    case call::memfd_create: return ENFILE;
    case call::ftruncate: return EFBIG;
    case call::fstat: return EIO;
    case call::mmap: return ENOMEM;
    default: return EACCES;
  }
}

int open_descriptors() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::string unique_name(const char* what) {
  static int serial = 0;
  return "/sluice-fault-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(++serial);
}

bool name_exists(const std::string& name) { return __real_access(("/dev/shm" + name).c_str(), F_OK) == 0; }

// The calls whose failure a construction must report (shm_unlink runs only on the way out of a
// failure, fopen and access only to ask whether a process lives: both have their own tests).
constexpr call reported[] = {call::shm_open, call::ftruncate, call::fstat, call::mmap, call::memfd_create};

// Runs `build` once to count its calls, then once per call with that call failing; `check`
// runs after each failure. `words`: what every message must name.
void fail_each_call(const std::function<void()>& build, const std::string& words,
                    const std::function<void()>& check = [] {}) {
  const long long mapped = plan.mapped_bytes;
  const int fds = open_descriptors();
  plan.reset();
  build();  // counting
  const fault_plan counted = plan;
  ASSERT_EQ(plan.mapped_bytes, mapped) << "a ring that was built and destroyed left bytes mapped";
  int failures = 0;
  for (call c : reported) {
    for (int k = 1; k <= counted.count(c); ++k) {
      SCOPED_TRACE(std::string(call_names[static_cast<std::size_t>(c)]) + " #" + std::to_string(k));
      plan.arm(c, k, error_of(c));
      try {
        build();
        ADD_FAILURE() << "the construction succeeded although the call failed";
      } catch (const sluice::mapping_error& e) {
        EXPECT_EQ(e.code(), std::error_code(error_of(c), std::generic_category())) << e.what();
        EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        ++failures;
      }
      plan.reset();
      EXPECT_EQ(plan.mapped_bytes, mapped) << "bytes left mapped after the failure";
      EXPECT_EQ(open_descriptors(), fds) << "a descriptor left open after the failure";
      check();
      build();  // nothing half done stands in the way
    }
  }
  EXPECT_GT(failures, 1) << "no call to fail: is the executable linked with --wrap?";
}

sluice::shared_options with(sluice::role r, bool mirrored) {
  sluice::shared_options o;
  o.role = r;
  o.mirrored = mirrored;
  return o;
}

TEST(FaultInjection, MirroredStorage) {
  fail_each_call([] { sluice::mirrored_storage s(3 * sluice::mirrored_storage::page_size()); },
                 "sluice: mirrored storage");
}

TEST(FaultInjection, InProcessMirroredRings) {
  fail_each_call([] { sluice::spsc_ring<std::uint64_t> r(sluice::mirrored, 1000); }, "mirrored storage");
  fail_each_call([] { sluice::mpsc_record_ring r(sluice::mirrored, 1 << 14); }, "mirrored storage");
}

template <class Ring>
void create_each_failing(bool mirrored) {
  SCOPED_TRACE(mirrored ? "mirrored" : "plain");
  const std::string name = unique_name("create");
  fail_each_call(
      [&] {
        { Ring r(sluice::create_shared, name, 1 << 14, with(sluice::role::consumer, mirrored)); }
        ASSERT_TRUE(sluice::remove_shared(name));
      },
      name, [&] { EXPECT_FALSE(name_exists(name)) << "a failed create left its name behind"; });
}

TEST(FaultInjection, CreatingASharedRing) {
  for (bool mirrored : {false, true}) {
    create_each_failing<sluice::spsc_ring<std::uint64_t>>(mirrored);
    create_each_failing<sluice::spsc_record_ring>(mirrored);
    create_each_failing<sluice::mpsc_record_ring>(mirrored);
  }
}

// Opening fails at each call; the creator's segment is untouched, and the producer that opens
// it afterwards hands a record to the consumer.
template <class Ring>
void open_each_failing(bool mirrored) {
  SCOPED_TRACE(mirrored ? "mirrored" : "plain");
  const std::string name = unique_name("open");
  Ring consumer(sluice::create_shared, name, 1 << 14, with(sluice::role::consumer, mirrored));
  std::uint64_t sent = 0;
  fail_each_call(
      [&] {
        Ring producer(sluice::open_shared, name, with(sluice::role::producer, false));
        if constexpr (std::is_same_v<Ring, sluice::spsc_ring<std::uint64_t>>) {
          ASSERT_TRUE(producer.try_push(++sent));
          ASSERT_EQ(consumer.try_pop(), sent);
        } else {
          ++sent;
          auto g = producer.try_reserve(sizeof sent);
          ASSERT_TRUE(g);
          std::memcpy(g.data(), &sent, sizeof sent);
          g.commit();
          auto batch = consumer.try_read();
          ASSERT_EQ(batch.size(), 1u);
          std::uint64_t got = 0;
          std::memcpy(&got, (*batch.begin()).data(), sizeof got);
          EXPECT_EQ(got, sent);
          batch.release();
        }
      },
      name, [&] { EXPECT_TRUE(name_exists(name)) << "a failed open removed the creator's name"; });
  ASSERT_TRUE(sluice::remove_shared(name));
}

TEST(FaultInjection, OpeningASharedRing) {
  for (bool mirrored : {false, true}) {
    open_each_failing<sluice::spsc_ring<std::uint64_t>>(mirrored);
    open_each_failing<sluice::spsc_record_ring>(mirrored);
    open_each_failing<sluice::mpsc_record_ring>(mirrored);
  }
}

TEST(FaultInjection, RemoveSharedReportsAFailedUnlink) {
  const std::string name = unique_name("remove");
  { sluice::spsc_record_ring r(sluice::create_shared, name, 1 << 12); }
  plan.arm(call::shm_unlink, 1, EACCES);
  try {
    (void)sluice::remove_shared(name);
    ADD_FAILURE() << "remove_shared() hid a failed shm_unlink";
  } catch (const sluice::mapping_error& e) {
    EXPECT_EQ(e.code(), std::error_code(EACCES, std::generic_category()));
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shm_unlink"), std::string::npos) << e.what();
  }
  plan.reset();
  EXPECT_TRUE(name_exists(name));
  EXPECT_TRUE(sluice::remove_shared(name));
  EXPECT_FALSE(sluice::remove_shared(name)) << "no such name: false, not an error";
}

// Without /proc (fopen of /proc/<pid>/stat fails, and so does access("/proc/self/stat")) a
// process is alive if kill(pid, 0) finds it. With /proc mounted but the pid's entry missing,
// the process is gone.
TEST(FaultInjection, ProcessLivenessWithoutProc) {
  using sluice::detail::process_alive;
  using sluice::detail::this_process;
  const std::uint64_t me = this_process();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) sluice_test::exit_child(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: its pid names nobody
  const std::uint64_t gone = static_cast<std::uint32_t>(child);

  plan.fail_always({call::fopen});
  EXPECT_FALSE(process_alive(me)) << "/proc is mounted (access succeeds) but has no entry: gone";
  plan.fail_always({call::fopen, call::access});
  EXPECT_TRUE(process_alive(me)) << "no /proc: kill(pid, 0) finds this process";
  EXPECT_FALSE(process_alive(gone)) << "no /proc: kill(pid, 0) finds no process of a reaped pid";
  EXPECT_GT(plan.count(call::access), 0);
  plan.reset();
  EXPECT_TRUE(process_alive(me));
  EXPECT_FALSE(process_alive(gone));
}

// A process's liveness is read from /proc/<pid>/stat: "pid (comm) state ppid ..." with its
// start time in field 22. Served lines that a real kernel could write (a command name with
// parentheses and spaces, a zombie, a dead task) and ones it could not (no ')', fields
// missing) are read as documented, never past the text.
TEST(FaultInjection, ProcessStatLinesAreParsedStrictly) {
  using sluice::detail::process_alive;
  const auto pid = static_cast<std::uint32_t>(::getpid());
  const std::uint64_t started_at_77 = (std::uint64_t{77} << 32) | pid;
  auto line = [](const std::string& comm, char state, std::uint64_t start) {
    std::string s = "4242 (" + comm + ") " + state;
    for (int field = 4; field <= 52; ++field) s += " " + std::to_string(field == 22 ? start : 1000 + field);
    return s + "\n";
  };
  struct served {
    std::string text;
    bool alive;  // for a holder started at 77
    const char* why;
  };
  const served cases[] = {
      {line("sluice", 'S', 77), true, "a sleeping process started at 77"},
      {line("sluice", 'R', 78), false, "another process now has the pid (started at 78)"},
      {line("a) (b) S 1 2", 'S', 77), true, "the state follows the last ')'"},
      {line("sluice", 'Z', 77), false, "a zombie"},
      {line("sluice", 'X', 77), false, "a dead task"},
      {"4242 (sluice S 1 2 3\n", false, "no ')': not a stat line (and /proc exists: gone)"},
      {"4242 (sluice)S 1 2 3\n", false, "no space after ')'"},
      {"4242 (sluice) S 1 2 3\n", false, "no field 22: start time 0, not 77"},
      {"", false, "an empty file"},
  };
  for (const served& c : cases) {
    plan.reset();
    plan.proc_stat = c.text.c_str();
    EXPECT_EQ(process_alive(started_at_77), c.alive) << c.why << ": " << c.text;
  }
  plan.reset();
  plan.proc_stat = "4242 (sluice) S 1 2 3\n";
  EXPECT_TRUE(process_alive(pid)) << "a holder started at 0 matches a line without field 22";
  plan.reset();
}

}  // namespace
