// A named shared-memory segment laid out for one ring: a header that describes it, a table of
// the processes attached to it, the ring's control block and its data.
//
//   offset 0                 segment_header (256 bytes): magic, layout version, ring kind,
//                            element size, capacity, flags, the offsets below, a check word
//   offset 256               process_table: the consumer's slot, then one per producer
//   control_offset (2048)    the ring's control struct (cursors, statistics, sleepers)
//   data_offset (page)       the data: capacity * element size bytes (whole pages if mirrored)
//
// Offsets, never pointers: every process maps the segment where its system likes. The creator
// fills everything in, then stores `ready` with release; an opener acquires `ready`, copies the
// header and validates every field against the file's real size before it maps the rest, and
// never reads the header again. What it reads from the control block and the data later is
// validated at each use by the ring (a peer may be hostile or corrupt).
#pragma once

#include <sluice/detail/atomic.hpp>
#include <sluice/shared_memory.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::detail {

enum class ring_kind : std::uint32_t { spsc_ring = 1, spsc_record_ring = 2, mpsc_record_ring = 3 };

// "spsc_ring" and so on; nullptr for a value no ring_kind names (read from a foreign header).
const char* kind_name(ring_kind kind) noexcept;

// What a ring asks of a segment it creates, or expects of one it opens.
struct segment_layout {
  ring_kind kind;
  std::uint32_t element_size;
  std::uint64_t capacity;      // elements (bytes for the record rings); opening: from the header
  std::uint64_t data_bytes;    // capacity * element_size (opening: from the header)
  std::uint64_t control_size;  // sizeof the ring's control struct
  bool mirrored;               // opening: from the header
  bool asymmetric;             // the sleepers use membarrier (opening: from the header)
  bool waitable;               // the ring's wait policy: a no_waiting process never wakes a sleeper
};

// A process attached in a role. Its words are detail::atomic (std::atomic in every build but the
// model-checked one, where recovery and takeover run as threads over one mapping and the
// scheduler must see these words too). `holder` 0: free; else the holder's pid in the low 32 bits
// and the low 32 bits of its start time (clock ticks after boot) in the high ones, so that a
// pid reused by another process does not read as the holder.
struct process_slot {
  atomic<std::uint64_t> holder{0};
  // Producers: reservations this process has claimed whose extent is not yet visible in the
  // storage (see record_ring.hpp, claim()). The consumer reads it only to decide
  // whether a stall at the head can be a dead process's.
  atomic<std::uint32_t> claiming{0};
  // Bumped by each process that takes the slot over, so that what a dead holder left behind
  // (reservations tagged with the slot and its generation) reads as dead, whoever holds the
  // slot now.
  atomic<std::uint32_t> generation{0};
};
static_assert(atomic<std::uint32_t>::is_always_lock_free && atomic<std::uint64_t>::is_always_lock_free,
              "shared rings need lock-free 32- and 64-bit atomics");

inline constexpr unsigned max_producer_processes = 64;

struct process_table {
  process_slot consumer;
  process_slot producers[max_producer_processes];
};

inline constexpr std::uint64_t segment_magic = 0x31474e49'52434c53ull;  // "SLCRING1", little-endian
inline constexpr std::uint32_t layout_version = 2;
inline constexpr std::uint64_t header_size = 256;
// (The model checker's atomics are larger than a machine word: its table needs more room.)
inline constexpr std::uint64_t control_offset =
    model_checked ? (header_size + sizeof(process_table) + 4095) / 4096 * 4096 : 2048;
static_assert(header_size + sizeof(process_table) <= control_offset);

struct segment_header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t kind;
  std::uint32_t element_size;
  std::uint32_t flags;  // flag_mirrored | flag_asymmetric
  std::uint64_t capacity;
  std::uint64_t data_bytes;
  std::uint64_t control_offset;
  std::uint64_t control_size;
  std::uint64_t data_offset;
  std::uint64_t segment_size;
  std::uint64_t check;  // header_check() of the fields above
  std::atomic<std::uint32_t> ready;
};
static_assert(sizeof(segment_header) <= header_size);
inline constexpr std::uint32_t flag_mirrored = 1;
inline constexpr std::uint32_t flag_asymmetric = 2;
inline constexpr std::uint32_t flag_waitable = 4;

// A cheap hash of the header's constant fields (everything before `check`): catches a header
// torn or overwritten by accident. A hostile writer can forge it; the opener validates every
// field anyway.
std::uint64_t header_check(const segment_header& h) noexcept;

// One process's mapping of a segment. Move-only; unmaps on destruction.
class segment {
 public:
  segment() noexcept = default;
  segment(segment&& other) noexcept { swap(other); }
  segment& operator=(segment&& other) noexcept {
    segment(std::move(other)).swap(*this);
    return *this;
  }
  ~segment();

  // Creates `name` (which must not exist) for `layout` and maps it; the caller constructs the
  // control block, then calls publish(). If the segment is destroyed unpublished, the name is
  // removed again. Throws mapping_error (the system refused), std::invalid_argument (a bad name).
  static segment create(std::string_view name, const segment_layout& layout, unsigned permissions);

  // Opens `name`, waits up to `wait` for it to be published, validates its header against
  // `expected` (kind, element size, control size) and maps it. The layout it found (capacity,
  // mirrored, fences) is in layout(). Throws attach_error or mapping_error.
  static segment open(std::string_view name, const segment_layout& expected, std::chrono::milliseconds wait);

  // The creator's last step: everything is laid out.
  void publish() noexcept;

  const segment_layout& layout() const noexcept { return layout_; }
  const std::string& name() const noexcept { return name_; }
  void* control() const noexcept { return front_ + control_offset; }
  std::byte* data() const noexcept { return data_; }
  process_table& processes() const noexcept {
    return *reinterpret_cast<process_table*>(front_ + header_size);
  }

  // Names the segment in an error message.
  std::string describe(std::string_view what) const;

 private:
  void swap(segment& other) noexcept {
    std::swap(name_, other.name_);
    std::swap(layout_, other.layout_);
    std::swap(front_, other.front_);
    std::swap(front_size_, other.front_size_);
    std::swap(data_, other.data_);
    std::swap(published_, other.published_);
    std::swap(file_, other.file_);
  }

  std::string name_;
  segment_layout layout_{};
  std::byte* front_ = nullptr;  // header, process table, control block
  std::size_t front_size_ = 0;
  std::byte* data_ = nullptr;   // the data (twice, back to back, if mirrored)
  bool published_ = true;       // false between create() and publish()
  std::pair<std::uint64_t, std::uint64_t> file_{};  // device and inode: the segment's identity

  friend bool claim_slot(const segment&, process_slot&, bool) noexcept;
  friend void release_slot(const segment&, process_slot&) noexcept;
  friend void forget_slot(const segment&, process_slot&) noexcept;
};

// This process as stored in a process slot's holder word (never 0).
std::uint64_t this_process() noexcept;
// The pid in a holder word.
constexpr std::uint32_t pid_of(std::uint64_t holder) noexcept { return static_cast<std::uint32_t>(holder); }
// False if `holder` names no process: its pid is gone, a zombie (dead, not yet reaped), or
// now another process (started at another time). A holder in another pid namespace reads as
// gone, or as whichever process has its pid here: keep a ring's processes in one namespace.
bool process_alive(std::uint64_t holder) noexcept;

// Takes `slot` of `seg` for this ring object: free, or held by a process that is gone (when
// `take_dead`), or left by an object of this process that did not release it. Returns false if
// a live process, or another ring object of this process, holds it.
bool claim_slot(const segment& seg, process_slot& slot, bool take_dead) noexcept;
// Gives `slot` back (the ring object is destroyed).
void release_slot(const segment& seg, process_slot& slot) noexcept;
// Forgets, in this process, that a ring object holds `slot`, leaving the slot as a crash would:
// held by this process's pid. (Tests use it to let a successor in the same process take over.)
void forget_slot(const segment& seg, process_slot& slot) noexcept;
#if defined(SLUICE_MODEL_CHECK)
// Forgets every slot this process's ring objects hold, and any half-taken lock of the set: a
// failed model execution stops wherever it failed, without its ring objects' destructors, and
// the next simulation must not find what it left.
void forget_all_slots_for_model() noexcept;
#endif

}  // namespace sluice::detail
