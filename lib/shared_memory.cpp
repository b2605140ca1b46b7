// Named shared-memory segments for rings shared between processes (detail/segment.hpp).
//
// Why POSIX shm_open rather than a memfd passed over a Unix socket: the processes of a pipeline
// (an audio capture and an encoder, a packet capture and an analyser) start and restart
// independently, and a consumer that crashed must be able to attach again by name, with no
// broker process alive to hand it a descriptor. A name in /dev/shm is that rendezvous, and it
// can be listed and removed with ordinary tools. The descriptor is only needed while mapping.
#include <sluice/detail/errors.hpp>
#include <sluice/detail/segment.hpp>
#include <sluice/mirrored_storage.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#if defined(__linux__)
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace sluice {
namespace detail {
namespace {

// The name in quotes, with a byte that is not printable ASCII (a '\0' would end what()) as \xNN.
std::string quoted(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
      continue;
    }
    constexpr char hex[] = "0123456789abcdef";
    const auto byte = static_cast<unsigned char>(c);
    out += {'\\', 'x', hex[byte >> 4], hex[byte & 15]};
  }
  return out + '"';
}

void check_name(std::string_view name) {
  if (name.size() < 2 || name.size() > 255 || name[0] != '/' || name.find('/', 1) != std::string_view::npos ||
      name.find('\0') != std::string_view::npos)
    throw std::invalid_argument(concat({"sluice: shared segment name ", quoted(name),
                                        " must be '/' followed by 1 to 254 characters, none of them '/'"}));
}

[[noreturn]] void system_failed(int error, std::string_view name, std::string_view step) {
  throw mapping_error(error, concat({"sluice: shared segment ", quoted(name), ": ", step}));
}

[[noreturn]] void refuse(std::string_view name, std::string_view why) {
  throw attach_error(concat({"sluice: shared segment ", quoted(name), ": ", why}));
}

std::uint64_t round_up(std::uint64_t n, std::uint64_t unit) { return (n + unit - 1) / unit * unit; }

}  // namespace

std::uint64_t header_check(const segment_header& h) noexcept {
  const std::uint64_t words[] = {h.magic,    std::uint64_t{h.version} << 32 | h.kind,
                                 std::uint64_t{h.element_size} << 32 | h.flags,
                                 h.capacity, h.data_bytes, h.control_offset, h.control_size,
                                 h.data_offset, h.segment_size};
  std::uint64_t x = 0x736c756963650000ull;
  for (std::uint64_t w : words) {
    x ^= w;
    x *= 0x100000001b3ull;
    x ^= x >> 29;
  }
  return x;
}

namespace {

#if defined(__linux__)
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// Maps the front (header, table, control) and the data of `fd`; on failure unmaps what it
// mapped and throws.
void map_parts(int fd, std::string_view name, std::uint64_t data_offset, std::uint64_t data_bytes, bool mirrored,
               std::byte*& front, std::byte*& data) {
  void* f = ::mmap(nullptr, data_offset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (f == MAP_FAILED) system_failed(errno, name, "mapping its header and control block");
  front = static_cast<std::byte*>(f);
  try {
    if (mirrored) {
      data = map_mirrored(fd, static_cast<long long>(data_offset), data_bytes,
                          concat({"sluice: shared segment ", quoted(name)}));
    } else {
      void* d = ::mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(data_offset));
      if (d == MAP_FAILED) system_failed(errno, name, concat({"mapping its ", data_bytes, " bytes of data"}));
      data = static_cast<std::byte*>(d);
    }
  } catch (...) {
    ::munmap(front, data_offset);
    front = nullptr;
    throw;
  }
}
#endif

}  // namespace

const char* kind_name(ring_kind kind) noexcept {
  switch (kind) {
    case ring_kind::spsc_ring: return "spsc_ring";
    case ring_kind::spsc_record_ring: return "spsc_record_ring";
    case ring_kind::mpsc_record_ring: return "mpsc_record_ring";
  }
  return nullptr;
}

std::string segment::describe(std::string_view what) const {
  if (name_.empty()) return concat({"sluice: ring: ", what});  // an in-process ring
  return concat({"sluice: shared ", kind_name(layout_.kind), " ", quoted(name_), ": ", what});
}

#if defined(__linux__)

segment segment::create(std::string_view name, const segment_layout& layout, unsigned permissions) {
  check_name(name);
  const std::uint64_t page = mirrored_storage::page_size();
  const std::uint64_t data_offset = round_up(control_offset + layout.control_size, page);
  const std::uint64_t size = data_offset + round_up(layout.data_bytes, page);
  const std::string n(name);
  fd_guard fd{::shm_open(n.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, static_cast<mode_t>(permissions))};
  if (fd.fd < 0) system_failed(errno, name, errno == EEXIST ? "already exists (remove_shared() removes it)" : "shm_open");
  segment s;
  s.name_ = n;
  s.published_ = false;  // from here on, a throw removes the name again (the destructor)
  if (::ftruncate(fd.fd, static_cast<off_t>(size)) != 0) {
    const int error = errno;
    ::shm_unlink(n.c_str());
    system_failed(error, name, concat({"sizing it to ", size, " bytes"}));
  }
  try {
    map_parts(fd.fd, name, data_offset, layout.data_bytes, layout.mirrored, s.front_, s.data_);
  } catch (...) {
    ::shm_unlink(n.c_str());
    throw;
  }
  s.front_size_ = data_offset;
  s.layout_ = layout;
  struct stat st {};
  // The file's identity tells this process's ring objects on one segment apart (claim_slot()).
  if (::fstat(fd.fd, &st) != 0) system_failed(errno, name, "fstat");  // ~segment() removes the name
  s.file_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  // A new file reads as zeros: the process table is empty. The header, last its ready flag.
  auto* h = new (s.front_) segment_header{};
  h->magic = segment_magic;
  h->version = layout_version;
  h->kind = static_cast<std::uint32_t>(layout.kind);
  h->element_size = layout.element_size;
  h->flags = (layout.mirrored ? flag_mirrored : 0) | (layout.asymmetric ? flag_asymmetric : 0) |
             (layout.waitable ? flag_waitable : 0);
  h->capacity = layout.capacity;
  h->data_bytes = layout.data_bytes;
  h->control_offset = control_offset;
  h->control_size = layout.control_size;
  h->data_offset = data_offset;
  h->segment_size = size;
  h->check = header_check(*h);
  new (s.front_ + header_size) process_table{};
  return s;
}

void segment::publish() noexcept {
  // Release pairs with the opener's acquire: the header, the table and the control block the
  // creator constructed are visible to whoever sees ready == 1.
  reinterpret_cast<segment_header*>(front_)->ready.store(1, std::memory_order_release);
  published_ = true;
}

segment segment::open(std::string_view name, const segment_layout& expected, std::chrono::milliseconds wait) {
  check_name(name);
  const std::string n(name);
  fd_guard fd{::shm_open(n.c_str(), O_RDWR | O_CLOEXEC, 0)};
  if (fd.fd < 0) system_failed(errno, name, errno == ENOENT ? "does not exist" : "shm_open");

  // Wait for the creator to size the file and publish the header.
  const auto give_up = std::chrono::steady_clock::now() + wait;
  segment_header h{};
  struct stat st {};
  for (;;) {
    if (::fstat(fd.fd, &st) != 0) system_failed(errno, name, "fstat");
    if (static_cast<std::uint64_t>(st.st_size) >= header_size) {
      void* p = ::mmap(nullptr, header_size, PROT_READ, MAP_SHARED, fd.fd, 0);
      if (p == MAP_FAILED) system_failed(errno, name, "mapping its header");
      const auto* live = static_cast<const segment_header*>(p);
      // Acquire pairs with publish(): the fields copied below are the creator's.
      const bool ready = live->ready.load(std::memory_order_acquire) == 1;
      if (ready) std::memcpy(static_cast<void*>(&h), live, offsetof(segment_header, ready));
      ::munmap(p, header_size);
      if (ready) break;
    }
    if (std::chrono::steady_clock::now() >= give_up)
      refuse(name, static_cast<std::uint64_t>(st.st_size) < header_size
                       ? concat({"is too short to hold a ring (", st.st_size, " bytes); not a sluice ring?"})
                       : "was never published by its creator (not a sluice ring, or its creator died laying it out)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  // Every field, before anything else is mapped.
  const std::uint64_t page = mirrored_storage::page_size();
  if (h.magic != segment_magic) refuse(name, "is not a sluice ring (bad magic number)");
  if (h.version != layout_version)
    refuse(name, concat({"has layout version ", h.version, "; this library reads version ", layout_version}));
  if (h.check != header_check(h)) refuse(name, "has a corrupt header (its check word does not match)");
  const auto kind = static_cast<ring_kind>(h.kind);
  if (kind != expected.kind)
    refuse(name, kind_name(kind) ? concat({"holds a ", kind_name(kind), ", not a ", kind_name(expected.kind)})
                                 : concat({"holds a ring of unknown kind ", h.kind, ", not a ", kind_name(expected.kind)}));
  if (h.element_size != expected.element_size)
    refuse(name, concat({"holds elements of ", h.element_size, " bytes, not ", expected.element_size}));
  if (h.control_size != expected.control_size || h.control_offset != control_offset)
    refuse(name, concat({"has a control block of ", h.control_size, " bytes at ", h.control_offset, ", not ",
                         expected.control_size, " at ", control_offset,
                         " (built by an incompatible version of sluice)"}));
  if ((h.flags & ~(flag_mirrored | flag_asymmetric | flag_waitable)) != 0) refuse(name, "has unknown flags set");
  if (((h.flags & flag_waitable) != 0) != expected.waitable)
    refuse(name, concat({"was made with the ", (h.flags & flag_waitable) ? "waitable" : "no_waiting",
                         " policy, this ring has the ", expected.waitable ? "waitable" : "no_waiting",
                         " one (a no_waiting process would never wake a sleeper)"}));
  const bool mirrored = (h.flags & flag_mirrored) != 0;
  if (h.capacity == 0 || h.element_size == 0 || h.capacity > (std::uint64_t{1} << 48) / h.element_size)
    refuse(name, concat({"has an impossible capacity (", h.capacity, ")"}));
  const std::uint64_t bytes = h.capacity * h.element_size;
  if (h.data_bytes != bytes || (mirrored && bytes % page != 0))
    refuse(name, concat({"has ", h.data_bytes, " bytes of data for ", h.capacity, " elements of ", h.element_size}));
  if (h.data_offset != round_up(control_offset + h.control_size, page))
    refuse(name, concat({"has its data at an unexpected offset (", h.data_offset, ")"}));
  const std::uint64_t parts = h.data_offset + round_up(h.data_bytes, page);
  if (h.segment_size != parts)
    refuse(name, concat({"has a header whose segment size (", h.segment_size, " bytes) is not the sum of its parts (",
                         parts, ")"}));
  if (static_cast<std::uint64_t>(st.st_size) != h.segment_size)
    refuse(name, concat({"is ", st.st_size, " bytes long, its header says ", h.segment_size}));

  segment s;
  s.name_ = n;
  map_parts(fd.fd, name, h.data_offset, h.data_bytes, mirrored, s.front_, s.data_);
  s.front_size_ = h.data_offset;
  s.layout_ = {kind,     h.element_size, h.capacity, h.data_bytes, h.control_size, mirrored,
               (h.flags & flag_asymmetric) != 0, (h.flags & flag_waitable) != 0};
  s.file_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  return s;
}

segment::~segment() {
  if (front_ && !published_) ::shm_unlink(name_.c_str());
  if (data_) {
    if (layout_.mirrored)
      unmap_mirrored(data_, layout_.data_bytes);
    else
      ::munmap(data_, layout_.data_bytes);
  }
  if (front_) ::munmap(front_, front_size_);
}

namespace {

// The start time (clock ticks after boot) in /proc/<pid>/stat, and whether the process is a
// zombie; false if there is no such process.
bool read_stat(std::uint32_t pid, std::uint64_t& start, bool& zombie) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  std::FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[1024];
  const std::size_t got = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[got] = '\0';
  // "pid (comm) S ppid ...": fields after the last ')' (comm may hold parentheses); the state
  // is field 3, the start time field 22.
  const char* at = std::strrchr(buf, ')');
  if (!at || at[1] != ' ') return false;
  zombie = at[2] == 'Z' || at[2] == 'X';
  at += 2;
  for (int field = 3; field < 22 && at; ++field) {
    at = std::strchr(at, ' ');
    if (at) ++at;
  }
  start = at ? std::strtoull(at, nullptr, 10) : 0;
  return true;
}

}  // namespace

std::uint64_t this_process() noexcept {
  // Cached per pid: a forked child computes its own.
  static std::atomic<std::uint64_t> cached{0};  // relaxed: any thread computes the same value
  const auto pid = static_cast<std::uint32_t>(::getpid());
  std::uint64_t me = cached.load(std::memory_order_relaxed);
  if (pid_of(me) != pid) {
    std::uint64_t start = 0;
    bool zombie = false;
    (void)read_stat(pid, start, zombie);
    me = (start << 32) | pid;
    cached.store(me, std::memory_order_relaxed);
  }
  return me;
}

bool process_alive(std::uint64_t holder) noexcept {
  const std::uint32_t pid = pid_of(holder);
  if (pid == 0) return false;
  std::uint64_t start = 0;
  bool zombie = false;
  if (read_stat(pid, start, zombie)) return !zombie && static_cast<std::uint32_t>(start) == (holder >> 32);
  // No /proc entry: gone (or /proc is not mounted; then ask the kernel about the pid alone).
  if (::access("/proc/self/stat", F_OK) == 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

#else

segment segment::create(std::string_view name, const segment_layout&, unsigned) {
  system_failed(ENOSYS, name, "shared rings need Linux");
}
segment segment::open(std::string_view name, const segment_layout&, std::chrono::milliseconds) {
  system_failed(ENOSYS, name, "shared rings need Linux");
}
void segment::publish() noexcept {}
segment::~segment() = default;
std::uint64_t this_process() noexcept { return 1; }
bool process_alive(std::uint64_t) noexcept { return true; }

#endif

namespace {

// The slots this process's ring objects hold: (pid, device, inode, offset in the segment).
// The pid keeps a forked child from counting its parent's objects as its own.
using slot_key = std::tuple<std::uint32_t, std::uint64_t, std::uint64_t, std::uint64_t>;
#if !defined(SLUICE_MODEL_CHECK)
std::mutex held_mutex;
using held_set = std::set<slot_key>;
#else
bool held_inside = false;  // held_guard's flag
// Relacy serves operator new from the heap of the running execution and drops that heap when
// an execution fails; the set outlives executions, so here its nodes come from malloc itself
// (parenthesised: <relacy/relacy.hpp> makes malloc and free macros of its own heap too).
template <class T>
struct process_heap {
  using value_type = T;
  process_heap() = default;
  template <class U>
  process_heap(const process_heap<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (void* p = (std::malloc)(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, std::size_t) noexcept { (std::free)(p); }
  friend bool operator==(const process_heap&, const process_heap&) noexcept { return true; }
};
using held_set = std::set<slot_key, std::less<slot_key>, process_heap<slot_key>>;
#endif

// Holds held_mutex. The model-checked build runs a test's threads as fibers of one thread, and
// a real mutex held across one of the scheduler's switch points would deadlock them all: there
// the guard is a flag that a fiber finding it set yields on, to the one holding it.
class held_guard {
 public:
#if defined(SLUICE_MODEL_CHECK)
  held_guard() {
    // The fibers switch only at the model's own operations: the test and the set are one step.
    while (held_inside) rl::yield(1, RL_INFO);
    held_inside = true;
  }
  ~held_guard() { held_inside = false; }
#else
  held_guard() { held_mutex.lock(); }
  ~held_guard() { held_mutex.unlock(); }
#endif
  held_guard(const held_guard&) = delete;
  held_guard& operator=(const held_guard&) = delete;
};

held_set& held_slots() {
  static held_set held;
  return held;
}

slot_key key_of(const std::pair<std::uint64_t, std::uint64_t>& file, const std::byte* front, const process_slot& slot) {
  return {pid_of(this_process()), file.first, file.second,
          static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(&slot) - front)};
}

}  // namespace

bool claim_slot(const segment& seg, process_slot& slot, bool take_dead) noexcept {
  const std::uint64_t me = this_process();
  const held_guard lock;
  const slot_key key = key_of(seg.file_, seg.front_, slot);
  if (held_slots().count(key)) return false;  // another ring object of this process
  // Noted first, so that no failure is left to undo once the slot is ours.
  try {
    held_slots().insert(key);
  } catch (...) {  // out of memory: take nothing
    return false;
  }
  // Relaxed: only a guess at what the swap below expects.
  std::uint64_t held = slot.holder.load(std::memory_order_relaxed);
  for (;;) {
    // Ours already: a ring object of this process that ended without releasing it.
    const bool free = held == 0 || held == me || (take_dead && !process_alive(held));
    if (!free) {
      held_slots().erase(key);
      return false;
    }
    // Acquire pairs with the previous holder's release (release_slot()): what it left in the
    // slot and the ring is visible to us. (A holder that died released nothing; and we have
    // done nothing yet that a later holder would need to see.) Relaxed on failure: we look
    // again and swap again.
    if (slot.holder.compare_exchange_weak(held, me, std::memory_order_acquire, std::memory_order_relaxed)) break;
  }
  return true;
}

void release_slot(const segment& seg, process_slot& slot) noexcept {
  std::uint64_t me = this_process();
  // Both under the lock: a ring object of this process claiming the slot meanwhile must find
  // it either still ours (refused) or free, never our pid on a slot nobody holds (which it
  // would take as left by a crash, unordered with what we did, and then lose to our swap).
  const held_guard lock;
  held_slots().erase(key_of(seg.file_, seg.front_, slot));
  // Release pairs with the next holder's claim: everything we did is visible to it.
  slot.holder.compare_exchange_strong(me, 0, std::memory_order_release, std::memory_order_relaxed);
}

void forget_slot(const segment& seg, process_slot& slot) noexcept {
  const held_guard lock;
  held_slots().erase(key_of(seg.file_, seg.front_, slot));
}

#if defined(SLUICE_MODEL_CHECK)
void forget_all_slots_for_model() noexcept {
  held_slots().clear();
  held_inside = false;
}
#endif

}  // namespace detail

bool remove_shared(std::string_view name) {
  detail::check_name(name);
#if defined(__linux__)
  const std::string n(name);
  if (::shm_unlink(n.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  detail::system_failed(errno, name, "shm_unlink");
#else
  return false;
#endif
}

}  // namespace sluice
