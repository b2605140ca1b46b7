// sluice::spsc_record_ring and sluice::mpsc_record_ring: framed, variable-length records from
// one or many producer threads to one consumer thread, reserved and read in place.
//
// The layout
// ----------
// The storage is a byte ring of capacity() bytes, a multiple of 8. Every record starts at an
// 8-byte boundary with an 8-byte header, followed by its payload, padded to the next multiple
// of 8; the header and the padded payload are the record's *footprint*. A header is one 64-bit
// word:
//
//   bits  0..31  payload length in bytes (as committed)
//   bits 32..61  footprint in 8-byte words (>= 1: a header is never 0 once written)
//   bit  62      PAD: not a record; the tail of the storage skipped by a record that wrapped
//   bit  63      DISCARD: a withdrawn reservation; the consumer steps over it
//
// A word of 0 means "not written yet". Records never straddle the end of the storage: when the
// tail is too short, the reservation takes the tail as well and marks it PAD, and the record
// goes to the start. A record of at most max_record_size() bytes (half the capacity rounded up
// to 8 bytes, less its header) therefore always fits in an empty ring, wherever the cursors
// stand: either the tail holds it, or the tail is shorter than that and the start holds it.
//
// The algorithm
// -------------
// Two cursors: `tail` (reserved up to here) and `head` (released up to here). Each is packed
// as (lap << 32 | index), so advancing is an add and a compare and no modulo runs anywhere.
// A producer claims a footprint by advancing `tail`: with a compare-and-swap in
// mpsc_record_ring (lock-free: a CAS fails only when another producer moved `tail`, or
// spuriously, and the retry never waits on anyone), a plain store in
// spsc_record_ring. It then owns those bytes: it writes the PAD header (if any) at once, and the
// record's header only at commit() or discard(). So a record is published by its own header, in
// any order, and the consumer walks headers from `head`: it stops at the first 0 word, a
// reservation whose header is not written yet. That record holds back everything behind it
// (and only that: records reserved before it are readable).
//
// Because readiness is "the header word is not 0", released bytes must read 0 again before a
// producer can reclaim them: the consumer zeroes what it releases, then publishes `head`.
//
// Ordering
// --------
// - Producer writes the payload, then stores the header with release; the consumer loads each
//   header with acquire before it reads the payload. PAD headers are stored with release too:
//   the consumer zeroes them on release, and that write must come after the producer's.
// - Consumer zeroes released bytes, then stores `head` with release; a producer loads `head`
//   with acquire before it claims those bytes, so it sees them zeroed and its own stores land
//   after the consumer's reads. Producers of an mpsc_record_ring in one process measure room
//   against `head_seen`, a copy of `head` on their own cache line, and load `head` only when
//   the copy says a record does not fit (as spsc_record_ring's producer keeps its copy in a
//   member); whoever loads a newer `head` stores it there with release, and the next
//   reservation's acquire of the copy carries the consumer's release on.
// - `tail` is only ever compared and swapped among producers: relaxed. It publishes nothing;
//   headers do.
//
// Waiting
// -------
// With the default `waitable` policy, reserve()/read() and their timed forms sleep on a futex.
// A producer, after storing a header (commit or discard), issues a compiler barrier and loads
// the consumer's sleeper count; the consumer does the same after publishing `head`. Only when
// somebody sleeps does the other side measure what it needs (bytes between `head` and `tail`
// for the consumer, free bytes for producers) and wake it. detail/wait.hpp argues why the
// fast path needs no fence. `close()` sets a flag every reservation checks first.
#pragma once

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/detail/errors.hpp>
#include <sluice/detail/wait.hpp>
#include <sluice/detail/segment.hpp>
#include <sluice/mirrored_storage.hpp>
#include <sluice/shared_memory.hpp>
#include <sluice/statistics.hpp>
#include <sluice/wait_policy.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

/// Producer policy: exactly one producer thread.
struct single_producer {
  /// False: the one producer claims space with plain stores (wait-free).
  static constexpr bool multi = false;
};
/// Producer policy: any number of producer threads, concurrently.
struct multi_producer {
  /// True: producers claim space with a compare-and-swap (lock-free).
  static constexpr bool multi = true;
};

/// Records from producers of `Policy` to one consumer thread. Use the names below.
///
/// Thread rules: producer functions (reservations, and the grants) from the producer thread
/// (spsc) or any threads (mpsc); consumer functions (reads, and the batch) from the one
/// consumer thread; observers and close() from any thread. The ring must outlive its grants
/// and batches. `Wait` is `waitable` (blocking and timed calls) or `no_waiting`.
template <class Policy, class Wait = waitable>
class basic_record_ring {
 public:
  /// Byte counts, record counts and indices.
  using size_type = std::size_t;

  class grant;
  class batch;

  /// Payloads start at this alignment (relative to the storage, itself at least this aligned).
  static constexpr size_type record_alignment = 8;
  /// Bytes of framing in front of every record.
  static constexpr size_type header_size = 8;
  /// Smallest capacity in bytes.
  static constexpr size_type min_capacity = 32;
  /// Largest capacity in bytes (2 GiB).
  static constexpr size_type max_capacity = size_type{1} << 31;

  /// Owns zeroed heap storage of `capacity` bytes rounded down to a multiple of 8, aligned to
  /// 128 bytes. Throws std::invalid_argument below min_capacity and std::length_error above
  /// max_capacity, before allocating.
  explicit basic_record_ring(size_type capacity)
      : capacity_(checked_capacity(capacity)), end_(capacity_), max_record_(plain_max_record(capacity_)) {
    void* raw = ::operator new(capacity_, std::align_val_t{detail::cache_line});
    std::memset(raw, 0, capacity_);
    data_ = static_cast<std::byte*>(raw);
    owned_ = true;
  }

  /// Uses the caller's storage, which must outlive the ring, start at an 8-byte boundary and hold
  /// zeros (the ring zeroes it here); its size is rounded down to a multiple of 8. Allocates
  /// nothing. Throws std::invalid_argument for a misaligned start or as the other constructor.
  explicit basic_record_ring(std::span<std::byte> storage)
      : data_(storage.data()), capacity_(checked_capacity(storage.size())), end_(capacity_),
        max_record_(plain_max_record(capacity_)) {
    if (reinterpret_cast<std::uintptr_t>(data_) % record_alignment != 0)
      detail::throw_bad_capacity("a record ring's storage must start at an 8-byte boundary");
    std::memset(data_, 0, capacity_);
  }

  /// Builds the ring over its own mirrored_storage of at least `min_capacity` bytes, rounded up
  /// to whole pages (capacity() tells; at most max_capacity). A record may then cross the end of
  /// the storage and still be one contiguous span: no tail is ever skipped, and
  /// max_record_size() is capacity() - 8. Throws as the first constructor, and mapping_error if
  /// the system cannot map it (nothing stays mapped).
  basic_record_ring(mirrored_t, size_type min_capacity)
      : capacity_(checked_capacity(min_capacity)),
        mirror_(checked_capacity(mirrored_storage::rounded_size(min_capacity, record_alignment))) {
    data_ = mirror_.data();
    capacity_ = mirror_.size();
    end_ = 2 * capacity_;
    max_record_ = capacity_ - header_size;
  }

  /// Creates the shared-memory segment `name` ("/" and a name, as for shm_open; it must not
  /// exist yet) holding a ring of `capacity` bytes (rounded down to a multiple of 8, or up to
  /// whole pages with options.mirrored), and attaches to it in options.role. Other processes
  /// attach with the open_shared constructor: one consumer, and one producer process
  /// (spsc_record_ring) or up to 64 (mpsc_record_ring), each with any number of threads. The
  /// segment outlives every process until remove_shared(name). Throws as the first constructor,
  /// mapping_error if the system refuses, std::invalid_argument for a malformed name. See
  /// docs/shared_memory.md.
  basic_record_ring(create_shared_t, std::string_view name, size_type capacity, const shared_options& options = {})
      : capacity_(checked_capacity(capacity)) {
    const bool asymmetric = use_asymmetric_shared();
    size_type bytes = capacity_;
    if (options.mirrored) bytes = checked_capacity(mirrored_storage::rounded_size(capacity, record_alignment));
    segment_ = detail::segment::create(name, {kind, 1, bytes, bytes, sizeof(control), options.mirrored, asymmetric, Wait::enabled},
                                       options.permissions);
    ctl_ = new (segment_.control()) control(asymmetric, true);
    attach(options.role);
    segment_.publish();
  }

  /// Attaches to the shared ring `name`, made by the create_shared constructor in any process,
  /// in options.role; the capacity and storage are the segment's. A consumer role held by a
  /// live process is refused (and so is a second producer of an spsc_record_ring); a role left
  /// by a dead process is taken over, continuing from the shared cursors. Throws attach_error
  /// (another kind of ring, a corrupt header, the role is taken, no producer slot free),
  /// corrupt_ring (shared cursors no correct peer can have written; no role is taken) or
  /// mapping_error; nothing stays mapped then.
  basic_record_ring(open_shared_t, std::string_view name, const shared_options& options = {}) : capacity_(min_capacity) {
    segment_ = detail::segment::open(name, {kind, 1, 0, 0, sizeof(control), false, false, Wait::enabled}, options.attach_timeout);
    const detail::segment_layout& layout = segment_.layout();
    if (layout.capacity < min_capacity || layout.capacity > max_capacity || layout.capacity % record_alignment != 0)
      throw attach_error(segment_.describe(
          detail::concat({"has a capacity of ", layout.capacity, " bytes, which no record ring has"})));
    if (layout.asymmetric && !detail::enable_global_fences())
      throw attach_error(segment_.describe(
          "its creator pairs membarrier (global expedited) with compiler barriers, and this process cannot "
          "register for it (SLUICE_NO_MEMBARRIER, or a seccomp filter)"));
    ctl_ = std::launder(static_cast<control*>(segment_.control()));
    attach(options.role);
  }

  /// Not copyable: the ring is shared by reference between its producers and its consumer.
  basic_record_ring(const basic_record_ring&) = delete;
  /// Not copyable.
  basic_record_ring& operator=(const basic_record_ring&) = delete;

  /// Frees the heap storage or unmaps the mirrored storage the ring owns (caller's storage is
  /// left alone). In a shared ring, gives up this process's role and unmaps the segment; the
  /// segment and its name stay until remove_shared(). No grant or batch may be outstanding.
  ~basic_record_ring() {
    if (owned_) ::operator delete(static_cast<void*>(data_), std::align_val_t{detail::cache_line});
    if (role_slot_) detail::release_slot(segment_, *role_slot_);
  }

  /// Usable bytes: the constructor's size rounded down to a multiple of 8 (over mirrored
  /// storage: rounded up to whole pages). Any thread.
  [[nodiscard]] size_type capacity() const noexcept { return capacity_; }

  /// True if the ring is built over mirrored storage (records never skip a tail). Any thread.
  [[nodiscard]] bool mirrored() const noexcept { return end_ != capacity_; }

  /// True if the ring lives in a shared-memory segment. Any thread.
  [[nodiscard]] bool shared() const noexcept { return ctl_ != &own_; }

  /// The largest payload try_reserve() accepts: half the capacity rounded up to a multiple of 8,
  /// less the 8-byte header, i.e. (capacity() + 8) / 16 * 8 - 8; at least capacity() / 4. For a
  /// capacity of 4096 that is 2040. Any thread.
  ///
  /// Why: a footprint F fits an empty ring at index i either before the end (F <= capacity - i)
  /// or, skipping the tail, at the start (F <= i). The worst i is the 8-byte boundary nearest
  /// the middle, where the larger side is half the capacity rounded up to 8 bytes.
  ///
  /// Over mirrored storage no record ever skips a tail, and the limit is capacity() - 8.
  [[nodiscard]] size_type max_record_size() const noexcept { return max_record_; }

  /// Bytes reserved and not yet released (headers, padding and skipped tails included), in
  /// [0, capacity()]. Stale by nature: producers may have reserved more, the consumer released
  /// more. Any thread.
  [[nodiscard]] size_type size_approx() const noexcept {
    // Acquire pairs with the consumer's release of head, made after it acquired headers that
    // producers wrote after claiming them: the tail loaded next is at or beyond this head.
    const std::uint64_t h = ctl_->head.load(std::memory_order_acquire);
    const std::uint64_t t = ctl_->tail.load(std::memory_order_relaxed);
    return static_cast<size_type>(std::min<std::uint64_t>(distance(h, t), capacity_));
  }

  /// Reservations made and not yet committed or discarded, at the time of the call. While one
  /// is in flight, the records reserved after it wait behind it. Any thread. In a shared ring,
  /// a recover() that reclaimed one run of zeros holding several dead producers' claims counts
  /// it once, and this count then stays high by the others: it never reads low.
  [[nodiscard]] size_type in_flight() const noexcept {
    // The finished count, the reservations, the finished count again: if nothing finished in
    // between, the difference is exact at the moment reserved_ was read. Otherwise (an observer
    // preempted between its loads while producers ran on would count every reservation made
    // meanwhile) look again; after a few tries, report the last difference, which errs towards
    // "more in flight" and is never below 0 (every finished reservation is counted reserved).
    std::uint64_t in_flight = 0;
    for (int attempt = 0; attempt < 8; ++attempt) {
      // Reclaimed ones count as finished (see recover(); a reclaimed run of several dead
      // reservations counts once, so in_flight() may over-count after one).
      const std::uint64_t finished = finished_count() + ctl_->lost.load(std::memory_order_relaxed);
      // Acquire pairs with the release bumps of reserved_ in claim(): the second look at the
      // finished count sees every reservation a producer finished before one counted here, so
      // when the two looks agree, the difference counts at most one reservation per producer
      // more than are outstanding.
      const std::uint64_t reserved = ctl_->reserved.load(std::memory_order_acquire);
      in_flight = reserved > finished ? reserved - finished : 0;
      if (finished_count() == finished) break;
    }
    return static_cast<size_type>(in_flight);
  }
  /// Closes the ring. Any thread, concurrently with producers and the consumer, any number of
  /// times. From then on every reservation (non-blocking, timed or blocking) returns an empty
  /// grant at once and never throws; grants obtained before may still commit. Reads go on
  /// returning what was committed, then empty batches. Every sleeper on either side wakes, a
  /// blocking read included, even while reservations are in flight: records committed behind
  /// one (or by a grant obtained before close()) are returned by a later read once it finishes.
  /// A consumer that must see every record waits until in_flight() is 0, then reads until a
  /// read is empty.
  void close() noexcept {
    // Seq_cst: pairs with the seq_cst loads in the waiters' conditions (see wait_slot::wake_all).
    ctl_->closed.store(1, std::memory_order_seq_cst);
    ctl_->consumer_wait.wake_all();
    ctl_->producer_wait.wake_all();
  }

  /// True once close() was called. Any thread.
  [[nodiscard]] bool closed() const noexcept {
    // Acquire pairs with the store in close(): what the closing thread did before is visible.
    return ctl_->closed.load(std::memory_order_acquire) != 0;
  }

  /// The ring's counters (see ring_statistics): records committed, discarded and released,
  /// reservations refused for room, the most bytes the consumer found ready at once, wake-ups.
  /// Any thread.
  [[nodiscard]] ring_statistics statistics() const noexcept {
    ring_statistics s;
    // Relaxed: independent counters; nothing is read through them.
    s.committed = ctl_->committed.load(std::memory_order_relaxed);
    s.discarded = ctl_->discarded.load(std::memory_order_relaxed);
    s.refused = ctl_->refused.load(std::memory_order_relaxed);
    s.released = ctl_->released.load(std::memory_order_relaxed);
    s.high_water = ctl_->high_water.load(std::memory_order_relaxed);
    s.lost = ctl_->lost.load(std::memory_order_relaxed);
    s.wakeups = ctl_->consumer_wait.wakeups() + ctl_->producer_wait.wakeups();
    return s;
  }

  // ---------------------------------------------------------------- producers

  /// Producer. A grant of exactly `n` contiguous payload bytes (aligned to 8), or an empty grant
  /// if the space is not free now (counted in statistics().refused) or the ring is closed. An
  /// empty ring grants any n <= max_record_size(). A producer may hold several grants and commit
  /// them in any order; the consumer sees records in the order they were reserved. Lock-free in
  /// mpsc_record_ring, wait-free in spsc_record_ring.
  /// Throws std::length_error if n > max_record_size() (not once the ring is closed).
  [[nodiscard]] grant try_reserve(size_type n) {
    if (is_closed()) return {};
    check_record(n);
    grant g = claim(n);
    if (!g) note_refused();
    return g;
  }

  /// Producer. As try_reserve(n), but waits until the record fits or the ring is closed (then
  /// it returns an empty grant). Needs the `waitable` policy.
  [[nodiscard]] grant reserve(size_type n)
    requires(Wait::enabled)  // parenthesised, as every such clause here: Doxygen parses it then
  {
    return wait_reserve(n, detail::no_deadline{});
  }

  /// Producer. As reserve(n), but gives up after `timeout`: an empty grant then (counted as
  /// refused).
  template <class Rep, class Period>
  [[nodiscard]] grant try_reserve_for(size_type n, const std::chrono::duration<Rep, Period>& timeout)
    requires(Wait::enabled)
  {
    return wait_reserve(n, detail::deadline_after(timeout));
  }

  /// Producer. As reserve(n), but gives up at `deadline` (any clock): an empty grant then.
  template <class Clock, class Duration>
  [[nodiscard]] grant try_reserve_until(size_type n, const std::chrono::time_point<Clock, Duration>& deadline)
    requires(Wait::enabled)
  {
    return wait_reserve(n, detail::deadline_at<Clock, Duration>{deadline});
  }

  // ---------------------------------------------------------------- consumer

  /// Consumer of a shared ring (returns 0 in-process). Reclaims the reservations that hold up
  /// the head of the ring: at once those whose producer process has died (or whose producer
  /// slot passed to another process), and, if `stalled_after` is given, any that has held up
  /// the head that long since recover() first saw it there (a hung producer: if it resumes,
  /// its commit() returns false, but what it writes meanwhile may land in space given to later
  /// records, so stop it for good first). Each reclaimed reservation is skipped, never
  /// delivered, and counted in statistics().lost; the records behind it become readable.
  /// Returns how many it reclaimed. It reads /proc to tell whether processes live: call it when
  /// a timed read comes back empty, not on every read. Throws as try_read().
  size_type recover(std::chrono::nanoseconds stalled_after = std::chrono::nanoseconds::max()) {
    enter_read();
    if (!role_slot_) return 0;
    size_type reclaimed = 0;
    // Each pass reclaims a run of at least 8 bytes, or finds that a producer committed
    // meanwhile: a correct ring ends within capacity_ / 8 passes and a few retries. The bound
    // keeps a peer that rewrites headers under our feet from holding us here (call again).
    for (size_type pass = 0; pass < capacity_ / record_alignment + 64; ++pass) {
      const scan_result r = scan();
      if (r.scanned >= capacity_) break;
      const size_type idx = head_index_ + r.scanned >= capacity_ ? head_index_ + r.scanned - capacity_
                                                                 : head_index_ + r.scanned;
      const std::uint64_t pos = advance(private_head_, r.scanned);
      // Seq_cst: a producer raises its claiming count (seq_cst), then claims tail (seq_cst).
      // Seeing tail beyond pos, the loads of the counts below see the raise of whoever claimed
      // pos, or (through its release of the count) the busy header it wrote: a zero header
      // with no live claimer left is a dead process's.
      const std::uint64_t reserved = distance(pos, ctl_->tail.load(std::memory_order_seq_cst));
      if (reserved == 0 || reserved > capacity_ - r.scanned) break;  // nothing reserved there
      // The header scan() stopped at, as it acquired it: a busy one's release by its producer
      // happens before we replace it and, later, zero it, and so does all that producer stored
      // before it, the generation and holder of its slot that owner_gone() reads included.
      std::uint64_t h = r.stopped_at;
      std::uint64_t replacement;
      bool piece_of_wrap = false;
      if (h & busy_flag) {
        const size_type footprint = checked_footprint(h, idx, capacity_ - r.scanned);
        if (footprint == 0) throw_corrupt(detail::concat({"the busy header at byte ", idx, " is malformed"}));
        if (!owner_gone(h) && !stalled(pos, stalled_after)) break;
        replacement = make_header(0, footprint) | discard_flag;
      } else {  // zero: not written yet
        if (live_claimer()) break;  // it writes its header any moment now
        // Look again. A producer whose count we saw drop released it after storing its busy
        // header, and our seq_cst load of the count acquired that: coherence alone then shows
        // us the header here, so relaxed suffices (a header we find sends us round again).
        if (header_at(idx).load(std::memory_order_relaxed) != 0) continue;
        const size_type run = zero_run(idx, std::min<size_type>(static_cast<size_type>(reserved),
                                                                end_ == capacity_ ? capacity_ - idx : reserved));
        if (run == 0) break;
        const bool to_the_end = end_ == capacity_ && idx + run == capacity_;
        replacement = to_the_end ? pad_header(run) : make_header(0, run) | discard_flag;
        // A run to the end of plain storage with more reserved after it is, as far as anyone
        // can tell, the unwritten padding of a claim that goes on at 0: one reservation in two
        // pieces, counted once, with the piece at 0 (if that piece is another reservation,
        // this one goes uncounted: in_flight() then errs high, never low).
        piece_of_wrap = to_the_end && reserved > run;
      }
      // Replaces the header only if its producer did not finish meanwhile: its CAS and ours,
      // read-modify-writes of one word, decide who owns it. Release pairs with the acquire of
      // the scan that consumes what we store: ours, or a successor's if we die before freeing
      // these bytes, whose zeroing of the word must come after our write. No acquire: we
      // acquired `h` in scan() (a zero one orders nothing), and a failed CAS reads nothing.
      if (!header_at(idx).compare_exchange_strong(h, replacement, std::memory_order_release, std::memory_order_relaxed))
        continue;  // committed or discarded meanwhile: look again (the scan acquires afresh)
      if (piece_of_wrap) continue;
      count_lost();
      ++reclaimed;
    }
    return reclaimed;
  }

  /// Consumer. A batch of every record committed in reservation order up to the first one still
  /// in flight, or an empty batch (contextually false) if none is ready. Records stay in place:
  /// each is a std::span<const std::byte> into the ring. At most one batch at a time: throws
  /// std::logic_error while one is outstanding.
  [[nodiscard]] batch try_read() {
    enter_read();
    return read_now();
  }

  /// Consumer. Waits until the ready records span at least `min_bytes` of ring space (the water
  /// mark, counting headers, padding and skipped tails: a record of n bytes spans 8 plus n
  /// rounded up to 8; a sleeping consumer is not woken for less), then returns try_read().
  /// Returns early with what is ready (at least one record) if a producer is stuck for room, so
  /// a water mark never deadlocks the two sides; once the ring is closed, returns what is left,
  /// then empty batches. Throws std::length_error if min_bytes > capacity(), std::logic_error
  /// if a batch is outstanding.
  [[nodiscard]] batch read(size_type min_bytes = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_bytes, detail::no_deadline{});
  }

  /// Consumer. As read(min_bytes), but waits at most `timeout`; then it returns what is ready
  /// (possibly less than min_bytes), or an empty batch if nothing is.
  template <class Rep, class Period>
  [[nodiscard]] batch try_read_for(const std::chrono::duration<Rep, Period>& timeout, size_type min_bytes = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_bytes, detail::deadline_after(timeout));
  }

  /// Consumer. As try_read_for(), with a deadline on any clock.
  template <class Clock, class Duration>
  [[nodiscard]] batch try_read_until(const std::chrono::time_point<Clock, Duration>& deadline,
                                     size_type min_bytes = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_bytes, detail::deadline_at<Clock, Duration>{deadline});
  }

 private:
  friend struct detail::test_access;

  // Everything the producers and the consumer share: the cursors, the statistics, the sleepers
  // and the closed flag. It lives in the ring (own_), or in a shared-memory segment between
  // processes.
  struct control {
    explicit control(bool asymmetric, bool process_shared = false) noexcept
        : consumer_wait(asymmetric, process_shared), producer_wait(asymmetric, process_shared) {}

    // Released up to here. Written by the consumer, read by producers.
    alignas(detail::cache_line) detail::atomic<std::uint64_t> head{0};
    // Reserved up to here. Written by producers (CAS in mpsc), read by producers and observers.
    alignas(detail::cache_line) detail::atomic<std::uint64_t> tail{0};
    // The newest head some producer has loaded (mpsc, in one process): a reservation measures
    // its room against this copy on the producers' own line, and reads head, which the consumer
    // writes on every release, only when the copy says the record does not fit. Never ahead of
    // head (it only ever holds loaded values of it, and head only grows), so a stale copy errs
    // towards "full", and the producer then looks at head itself.
    detail::atomic<std::uint64_t> head_seen{0};
    // Statistics written by producers, beside tail: a producer touches them right after claiming
    // tail's line. In flight = reserved - committed - discarded.
    detail::atomic<std::uint64_t> reserved{0};
    detail::atomic<std::uint64_t> committed{0};
    detail::atomic<std::uint64_t> discarded{0};
    detail::atomic<std::uint64_t> refused{0};
    // Statistics written by the consumer only, on a line producers never read.
    alignas(detail::cache_line) detail::atomic<std::uint64_t> released{0};
    detail::atomic<std::uint64_t> high_water{0};
    detail::atomic<std::uint64_t> lost{0};  // reservations of dead or stalled producers reclaimed
    // Shared rings: the head the consumer is about to publish, stored before it zeroes the bytes
    // it releases, so that a successor of a consumer that died meanwhile completes the release.
    detail::atomic<std::uint64_t> releasing{0};

    // Sleepers of each side, each on its own line.
    detail::wait_slot consumer_wait;  // the consumer, waiting for records
    detail::wait_slot producer_wait;  // producers, waiting for room

    // Set to 1 once by close(); read by every reservation. A word, not a bool: any value a peer
    // writes into shared memory must be one the type can hold (non-zero reads as closed).
    alignas(detail::cache_line) detail::atomic<std::uint32_t> closed{0};
  };

  static bool use_asymmetric() noexcept {
    if constexpr (Wait::enabled) return Wait::asymmetric_fences && detail::enable_asymmetric_fences();
    return false;
  }
  static bool use_asymmetric_shared() noexcept {
    if constexpr (Wait::enabled) return Wait::asymmetric_fences && detail::enable_global_fences();
    return false;
  }
  static constexpr detail::ring_kind kind = Policy::multi ? detail::ring_kind::mpsc_record_ring : detail::ring_kind::spsc_record_ring;

  // Owner tags in busy headers: producer slot (6 bits), its generation (10), lap (16).
  static constexpr unsigned tag_slot_shift = 26;
  static constexpr unsigned tag_generation_shift = 16;
  static constexpr std::uint32_t tag_generation_mask = 0x3ff;

  // Takes `r` in a shared ring and sets this process's side up from the shared state: a new
  // process, or the successor of one that died.
  void attach(role r) {
    const detail::segment_layout& layout = segment_.layout();
    data_ = segment_.data();
    capacity_ = static_cast<size_type>(layout.capacity);
    end_ = layout.mirrored ? 2 * capacity_ : capacity_;
    max_record_ = layout.mirrored ? capacity_ - header_size : plain_max_record(capacity_);
    detail::process_table& table = segment_.processes();
    // Relaxed: only the producer side stores tail; acquire pairs with the releases of head.
    // Checked before taking a role, so that a refusal leaves no slot held.
    const std::uint64_t head = ctl_->head.load(std::memory_order_acquire);
    const std::uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
    check_cursor(head, "the release cursor");
    check_cursor(tail, "the reservation cursor");
    if (r == role::consumer) {
      if (!detail::claim_slot(segment_, table.consumer, true))
        throw attach_error(segment_.describe(detail::concat(
            {"its consumer role is held by process ",
             detail::pid_of(table.consumer.holder.load(std::memory_order_relaxed)), ", which is alive"})));
      role_slot_ = &table.consumer;
      role_ = attached_as::consumer;
      private_head_ = head;
      head_index_ = index_of(head);
      // A predecessor that died while zeroing what it released: finish the release (the
      // records in it were released, so they are not delivered again). Relaxed: written only
      // by the consumer side, and the predecessor is gone. A correct predecessor released only
      // what was reserved, never more than the capacity: a `releasing` past tail (or past a
      // corrupt tail's capacity) is garbage, and honouring it would destroy records unread.
      const std::uint64_t releasing = ctl_->releasing.load(std::memory_order_relaxed);
      if (releasing != head && index_of(releasing) < capacity_ && index_of(releasing) % record_alignment == 0 &&
          distance(head, releasing) <= std::min<std::uint64_t>(distance(head, tail), capacity_))
        release_bytes(static_cast<size_type>(distance(head, releasing)), 0);
      ctl_->consumer_wait.reset_sleepers();  // a dead predecessor's, if any
      return;
    }
    const unsigned slots = Policy::multi ? detail::max_producer_processes : 1;
    unsigned slot = 0;
    while (slot < slots && !detail::claim_slot(segment_, table.producers[slot], true)) ++slot;
    if (slot == slots)
      throw attach_error(segment_.describe(Policy::multi ? "all 64 producer slots are held by live processes"
                                                         : "its producer role is held by a live process"));
    detail::process_slot& mine = table.producers[slot];
    // A new generation: busy headers of a dead predecessor in this slot now read as dead.
    // Relaxed: a consumer reads it only for a busy header tagged with it, and our seq_cst claim
    // of the tail that header sits behind (which recover() synchronizes with) follows this store.
    const std::uint32_t generation = mine.generation.fetch_add(1, std::memory_order_relaxed) + 1;
    mine.claiming.store(0, std::memory_order_relaxed);  // a dead predecessor's claims are its own
    owner_tag_ = (slot << tag_slot_shift) | ((generation & tag_generation_mask) << tag_generation_shift);
    role_slot_ = &mine;
    role_ = attached_as::producer;
    batch_open_ = true;  // this process never consumes (see enter_read())
    if constexpr (!Policy::multi) {
      private_tail_ = tail;  // the predecessor (if any) is gone: nobody else moves it
      cached_head_ = head;
      ctl_->producer_wait.reset_sleepers();  // a dead predecessor's, if any
    }
    // Several producer processes share producer_wait: a dead one's announcement stays, and
    // costs the consumer a futex wake on each release until a live producer sleeps and leaves.
  }

  // --- recovery (consumer, shared rings)

  // The producer that wrote busy header `h` has died, or its slot has passed to a newer
  // process (its generation moved on).
  bool owner_gone(std::uint64_t h) const noexcept {
    const auto tag = static_cast<std::uint32_t>(h);
    // Any 32-bit tag names a slot of the table, whoever wrote it.
    static_assert((~std::uint32_t{0} >> tag_slot_shift) < detail::max_producer_processes);
    const unsigned slot = tag >> tag_slot_shift;
    const detail::process_slot& owner = segment_.processes().producers[slot];
    // Relaxed: the generation a busy header names was stored before its owner's claim of tail,
    // which recover() synchronized with; a newer one only makes the header read as gone sooner.
    if ((owner.generation.load(std::memory_order_relaxed) & tag_generation_mask) !=
        ((tag >> tag_generation_shift) & tag_generation_mask))
      return true;
    // Relaxed: a hint; a stale holder errs towards "alive" (recover()'s load of tail made the
    // owner's claim of the slot visible, as its generation).
    return !detail::process_alive(owner.holder.load(std::memory_order_relaxed));
  }

  // Some live producer process is between claiming space and writing its busy header.
  bool live_claimer() const noexcept {
    for (const detail::process_slot& slot : segment_.processes().producers) {
      // Seq_cst: see recover().
      if (slot.claiming.load(std::memory_order_seq_cst) != 0 &&
          detail::process_alive(slot.holder.load(std::memory_order_relaxed)))  // relaxed: as in owner_gone()
        return true;
    }
    return false;
  }

  // The stall at cursor `pos` has lasted `limit` since recover() first saw it there.
  bool stalled(std::uint64_t pos, std::chrono::nanoseconds limit) {
    if (limit == std::chrono::nanoseconds::max()) return false;
    const auto now = std::chrono::steady_clock::now();
    if (pos != stall_pos_) {
      stall_pos_ = pos;
      stall_since_ = now;
    }
    return now - stall_since_ >= limit;
  }

  // Bytes of zero words from `idx` on, at most `limit`: the extent of reservations whose
  // producers died before writing a header (they write nothing else before it).
  size_type zero_run(size_type idx, size_type limit) const noexcept {
    size_type run = 0;
    // Relaxed: no live producer writes here (recover() checked), and what the dead ones wrote
    // is all visible: their stores were drained when their threads stopped.
    while (run < limit && header_at(idx + run >= capacity_ ? idx + run - capacity_ : idx + run)
                                  .load(std::memory_order_relaxed) == 0)
      run += record_alignment;
    return run;
  }

  void count_lost() noexcept {
    // One writer (the consumer): a load and a store. Relaxed: a statistic.
    ctl_->lost.store(ctl_->lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Relaxed: coherence alone makes a close() that happened before this call visible, and
  // nothing is read through the flag.
  bool is_closed() const noexcept { return ctl_->closed.load(std::memory_order_relaxed) != 0; }

  // Reservations committed or discarded. Acquire pairs with the release increments in finish():
  // a reserved_ loaded after this counts every reservation finished here (its producer bumped
  // reserved_ before it finished it).
  std::uint64_t finished_count() const noexcept {
    return ctl_->committed.load(std::memory_order_acquire) + ctl_->discarded.load(std::memory_order_acquire);
  }

  // (A consumer process of a shared ring is refused in claim().)
  void check_record(size_type n) const {
    if (n > max_record_size()) detail::throw_too_large("a record", n, "max_record_size()", max_record_size());
  }

  // batch_open_ also stays set for good in a process attached to a shared ring as a producer.
  void enter_read() const {
    if (batch_open_) [[unlikely]] {
      if (role_ == attached_as::producer) detail::throw_wrong_role("consume", "producer");
      detail::throw_batch_outstanding();
    }
  }

  // A reservation found no room: count it, and nudge a consumer asleep on a water mark with
  // something ready (it then returns that). No fence: a consumer that announces itself just
  // after we looked is nudged by the next refusal or by a producer about to sleep.
  void note_refused() noexcept {
    if constexpr (Policy::multi) {
      ctl_->refused.fetch_add(1, std::memory_order_relaxed);  // a statistic
    } else {
      // One writer: a load and a store. Relaxed: a statistic.
      ctl_->refused.store(ctl_->refused.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    if constexpr (Wait::enabled) {
      if (ctl_->consumer_wait.has_sleepers() && ctl_->consumer_wait.holding_out()) [[unlikely]] ctl_->consumer_wait.nudge();
    }
  }

  // About to sleep for room: a consumer asleep on a water mark must not wait for us.
  void nudge_consumer() noexcept {
    if (ctl_->consumer_wait.has_sleepers()) ctl_->consumer_wait.nudge();
  }

  // Free bytes a record of n payload bytes needs at the current tail (its footprint, plus the
  // tail it would skip). Exact for one producer; for many, the tail may move on, and a sleeper
  // woken too early or too late re-checks (an empty ring always has room: see max_record_size).
  size_type free_needed_for(size_type n) const noexcept {
    const size_type footprint = header_size + round_up(n);
    // Relaxed: an estimate for the water mark only.
    const std::uint64_t t = Policy::multi ? ctl_->tail.load(std::memory_order_relaxed) : private_tail_;
    return padding_for(t, footprint) + footprint;
  }

  template <class Deadline>
  grant wait_reserve(size_type n, const Deadline& deadline) {
    if (is_closed()) return {};
    check_record(n);
    grant g;
    const bool ok = ctl_->producer_wait.wait_until_ready(
        free_needed_for(n), [&] { return is_closed() || (g = claim(n)); }, deadline,
        [&] { nudge_consumer(); });
    if (!ok && !g) note_refused();  // timed out
    return g;
  }

  template <class Deadline>
  batch wait_read(size_type min_bytes, const Deadline& deadline) {
    enter_read();
    if (min_bytes > capacity_) detail::throw_too_large("a water mark", min_bytes, "the ring's capacity", capacity_);
    const size_type enough = std::max<size_type>(1, min_bytes);
    const std::uint32_t nudged = ctl_->consumer_wait.nudges();
    const detail::holding_out_while holding(ctl_->consumer_wait, enough > 1);
    (void)ctl_->consumer_wait.wait_until_ready(
        enough,
        [&] {
          // Seq_cst: pairs with close()'s store (see wait_slot::wake_all).
          if (ctl_->closed.load(std::memory_order_seq_cst) != 0) return true;
          const scan_result r = scan();
          if (r.records == 0) {
            // Only skipped tails and withdrawn reservations: free them now, a producer may be
            // waiting for exactly that space.
            if (r.scanned != 0) release_bytes(r.scanned, 0);
            return false;
          }
          // Short of the water mark, still go if a producer is stuck: asleep (a load after our
          // heavy fence; it loads our sleeper count after its own) or refused since we began.
          return r.scanned >= enough || ctl_->producer_wait.has_sleepers() || ctl_->consumer_wait.nudges() != nudged;
        },
        deadline, [] {});
    return read_now();
  }

  // try_reserve(n) after the checks, without the accounting of refusals. In a shared ring the
  // claim is bracketed by this process's `claiming` count and ends with a busy header that
  // gives the reservation's extent and owner (docs/shared_memory.md, "What survives which crash").
  grant claim(size_type n) {
    if (role_slot_) [[unlikely]] {
      if (role_ == attached_as::consumer) detail::throw_wrong_role("produce", "consumer");
      // Seq_cst: ordered before our claim of tail, as recover() reads them (see there).
      role_slot_->claiming.fetch_add(1, std::memory_order_seq_cst);
      struct done_claiming {
        detail::atomic<std::uint32_t>& count;
        // Release pairs with recover()'s load: the busy header claim_space() wrote is visible
        // to a consumer that sees the count drop. (Also when claim_space() throws.)
        ~done_claiming() { count.fetch_sub(1, std::memory_order_release); }
      } guard{role_slot_->claiming};
      return claim_space<true>(n);
    }
    return claim_space<false>(n);
  }

  // `Shared`: the ring is in a shared segment (role_slot_ is set).
  template <bool Shared>
  grant claim_space(size_type n) {
    const size_type footprint = header_size + round_up(n);
    std::uint64_t t;
    size_type pad;
    if constexpr (Policy::multi) {
      // Acquire pairs with the consumer's release of head: the bytes it freed are zeroed and
      // read before we write. Loaded before tail, so the tail we load is never behind it.
      // In one process, head_seen stands for head (see control): its acquire pairs with the
      // release that stored it below, after that producer's acquire of head, so the consumer's
      // zeroing happens before our writes all the same. A shared ring reads head itself: a
      // peer's copy would be one more word to distrust.
      std::uint64_t h = Shared ? ctl_->head.load(std::memory_order_acquire)
                               : ctl_->head_seen.load(std::memory_order_acquire);
      t = ctl_->tail.load(std::memory_order_relaxed);  // only compared and swapped among producers
      for (;;) {
        if constexpr (Shared) check_cursor(t, "the reservation cursor");  // in-process: only we write it
        pad = padding_for(t, footprint);
        if (distance(h, t) + pad + footprint > capacity_) {
          // Full as far as we know: look at head itself, and give up if nothing moved.
          const std::uint64_t h2 = ctl_->head.load(std::memory_order_acquire);  // as above
          const std::uint64_t t2 = ctl_->tail.load(std::memory_order_relaxed);  // after head, as above
          if (h2 == h && t2 == t) return {};
          // Release pairs with the acquire of head_seen above, in the next reservation of any
          // producer. A racing producer may store an older head after ours: harmless, see control.
          if (!Shared && h2 != h) ctl_->head_seen.store(h2, std::memory_order_release);
          h = h2;
          t = t2;
          continue;
        }
        // Relaxed: tail publishes nothing (headers do); the CAS only divides the bytes among
        // producers. On failure (another producer moved tail, or a spurious failure of the weak
        // form) t holds the fresh value and we retry; h stays an older head, which errs towards
        // "full", never towards overlap.
        if (claim_tail<Shared>(t, advance(t, pad + footprint))) break;
      }
      // Release pairs with the acquire in in_flight(): its second look at the finished counts
      // then sees this producer's earlier reservations finished.
      ctl_->reserved.fetch_add(1, std::memory_order_release);
    } else {
      t = private_tail_;
      pad = padding_for(t, footprint);
      if (distance(cached_head_, t) + pad + footprint > capacity_) {
        cached_head_ = ctl_->head.load(std::memory_order_acquire);  // pairs as in the multi case
        if (distance(cached_head_, t) + pad + footprint > capacity_) return {};
      }
      private_tail_ = advance(t, pad + footprint);
      if constexpr (Shared)
        ctl_->tail.store(private_tail_, std::memory_order_seq_cst);  // as claim_tail()
      else
        ctl_->tail.store(private_tail_, std::memory_order_relaxed);  // observers only; headers publish
      // One writer: a load and a store, no read-modify-write needed. Release: as in the
      // multi-producer case.
      ctl_->reserved.store(ctl_->reserved.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    size_type at = index_of(t);
    if (pad != 0) {
      // Release pairs with the consumer's acquire of this header in try_read(): the consumer
      // frees (and zeroes) the padding once it sees it, so our store must happen before that.
      header_at(at).store(pad_header(pad), std::memory_order_release);
      at = 0;
    }
    std::uint64_t busy = 0;
    if constexpr (Shared) {
      // The extent and owner, for a consumer that must reclaim it if we die. Release pairs
      // with the consumer's acquire in recover(): this store happens before it replaces the
      // header and zeroes it.
      const std::uint32_t lap = lap_of(t) + (pad != 0 ? 1 : 0);
      busy = busy_flag | (std::uint64_t{footprint / 8} << 32) | owner_tag_ | (lap & 0xffffu);
      header_at(at).store(busy, std::memory_order_release);
    }
    return grant(this, at, n, footprint, busy);
  }

  // Claims tail from `t` to `next` (mpsc); false with t reloaded if another producer moved it.
  // Relaxed in-process: tail publishes nothing (headers do); the CAS only divides the bytes
  // among producers. Seq_cst in a shared ring: recover() must see, through tail, that the
  // claiming count of its owner rose before it (see there). On failure (another producer moved
  // tail, or a spurious failure of the weak form) t holds the fresh value; the caller's head
  // stays an older one, which errs towards "full", never towards overlap.
  template <bool Shared>
  bool claim_tail(std::uint64_t& t, std::uint64_t next) noexcept {
    if constexpr (Shared)
      return ctl_->tail.compare_exchange_weak(t, next, std::memory_order_seq_cst, std::memory_order_relaxed);
    return ctl_->tail.compare_exchange_weak(t, next, std::memory_order_relaxed, std::memory_order_relaxed);
  }

  // A cursor read from the control block: in a shared ring a peer wrote it, and an index
  // outside the storage or off the 8-byte grid would lead us out of it.
  void check_cursor(std::uint64_t p, const char* what) const {
    if (index_of(p) >= capacity_ || index_of(p) % record_alignment != 0) [[unlikely]]
      throw_corrupt(detail::concat({what, " points at byte ", index_of(p)}));
  }

  [[noreturn]] void throw_corrupt(std::string_view what) const {
    throw corrupt_ring(
        segment_.describe(detail::concat({what, ", which no correct peer can write (capacity ", capacity_,
                                          " bytes)"})));
  }

  // The footprint of header `h` at storage index `at`, if a correct producer (or recover())
  // can have written it there with `room` bytes scanned from `at` on; 0 otherwise.
  size_type checked_footprint(std::uint64_t h, size_type at, size_type room) const noexcept {
    const size_type footprint = footprint_of(h);
    if (footprint == 0 || footprint > room) return 0;
    const bool plain = end_ == capacity_;
    if (plain && at + footprint > capacity_) return 0;  // only mirrored storage runs past the end
    if (h & pad_flag) {
      // Padding: plain storage only, exactly to the end, and nothing else.
      if (!plain || at + footprint != capacity_ || (h & (discard_flag | busy_flag))) return 0;
    } else if (!(h & (discard_flag | busy_flag)) && length_of(h) > footprint - header_size) {
      return 0;
    }
    return footprint;
  }

  struct scan_result {
    size_type records;  // ready records from the head
    size_type scanned;  // bytes they span, with skipped tails and withdrawn ones among and after
    std::uint64_t stopped_at;  // the header after them, as acquired: 0, or busy (shared rings)
  };

  // Walks the ready headers from the head, up to the first one not written yet.
  // Headers are checked only in a shared ring: in one process, only this library writes them.
  scan_result scan() { return role_slot_ ? scan_headers<true>() : scan_headers<false>(); }

  template <bool Checked>
  scan_result scan_headers() {
    size_type idx = head_index_;
    size_type scanned = 0, records = 0;
    std::uint64_t stopped_at = 0;
    while (scanned < capacity_) {
      // Acquire pairs with the producer's release of this header (finish(), the PAD store in
      // try_reserve(), or a shared ring's busy header): the payload is visible, and the
      // producer's stores happen before we zero (or, recover(), replace) these bytes.
      const std::uint64_t h = header_at(idx).load(std::memory_order_acquire);
      // Not written yet (in flight, or nothing reserved here), or busy: in flight in a shared ring.
      if (h == 0 || (Checked && (h & busy_flag))) {
        stopped_at = h;
        break;
      }
      size_type bytes = footprint_of(h);
      if constexpr (Checked) {
        bytes = checked_footprint(h, idx, capacity_ - scanned);
        if (bytes == 0) [[unlikely]]
          throw_corrupt(detail::concat({"the record header at byte ", idx, " describes ", footprint_of(h), " bytes"}));
      }
      scanned += bytes;
      idx += bytes;
      if (idx >= capacity_) idx -= capacity_;  // over mirrored storage a record may cross the seam
      if (is_record(h)) ++records;
    }
    // The most the consumer ever found ready (a statistic; one writer: load and store).
    if (scanned > ctl_->high_water.load(std::memory_order_relaxed)) ctl_->high_water.store(scanned, std::memory_order_relaxed);
    return {records, scanned, stopped_at};
  }

  batch read_now() {
    const scan_result r = scan();
    if (r.records == 0) {
      // Only skipped tails and withdrawn reservations: free them now so they never hold space.
      if (r.scanned != 0) release_bytes(r.scanned, 0);
      return {};
    }
    batch_open_ = true;
    return batch(this, head_index_, r.records, r.scanned);
  }

  static constexpr std::uint64_t busy_flag = std::uint64_t{1} << 61;
  static constexpr std::uint64_t pad_flag = std::uint64_t{1} << 62;
  static constexpr std::uint64_t discard_flag = std::uint64_t{1} << 63;

  static size_type checked_capacity(size_type bytes) {
    if (bytes < min_capacity) detail::throw_bad_capacity("a record ring's capacity must be at least 32 bytes");
    if (bytes > max_capacity)
      detail::throw_too_large("a record ring's capacity", bytes, "max_capacity", max_capacity);
    return bytes / record_alignment * record_alignment;
  }

  // See max_record_size().
  static constexpr size_type plain_max_record(size_type capacity) noexcept {
    return (capacity + record_alignment) / 16 * 8 - header_size;
  }

  static constexpr size_type round_up(size_type n) noexcept {
    return (n + record_alignment - 1) / record_alignment * record_alignment;
  }
  static constexpr std::uint64_t make_header(size_type length, size_type footprint) noexcept {
    return std::uint64_t{length} | (std::uint64_t{footprint / 8} << 32);
  }
  static constexpr std::uint64_t pad_header(size_type footprint) noexcept {
    return make_header(0, footprint) | pad_flag;
  }
  static constexpr size_type length_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }
  static constexpr size_type footprint_of(std::uint64_t h) noexcept {
    return static_cast<size_type>((h >> 32) & 0x1fffffffu) * 8;
  }
  static constexpr bool is_record(std::uint64_t h) noexcept { return (h & (pad_flag | discard_flag)) == 0; }

  // Packed cursors: lap in the high 32 bits, storage index in the low 32.
  static constexpr size_type index_of(std::uint64_t p) noexcept { return static_cast<std::uint32_t>(p); }
  static constexpr std::uint32_t lap_of(std::uint64_t p) noexcept { return static_cast<std::uint32_t>(p >> 32); }
  // p advanced by `bytes` <= capacity_, across the end of the storage if need be.
  std::uint64_t advance(std::uint64_t p, size_type bytes) const noexcept {
    const size_type room = capacity_ - index_of(p);
    if (bytes < room) return p + bytes;
    return (std::uint64_t{lap_of(p) + 1u} << 32) | (bytes - room);
  }
  // Bytes from h to t, for h <= t. A stale h (a producer's old copy of head) may lie laps
  // behind t; the result then exceeds capacity_, which reads as "full, look again".
  std::uint64_t distance(std::uint64_t h, std::uint64_t t) const noexcept {
    const std::uint64_t laps = static_cast<std::uint32_t>(lap_of(t) - lap_of(h));
    return laps * capacity_ + index_of(t) - index_of(h);
  }
  // Bytes of tail a footprint must skip at cursor p: 0 if it fits before the end.
  // Over mirrored storage a footprint never needs to skip: the room runs on into the mirror.
  size_type padding_for(std::uint64_t p, size_type footprint) const noexcept {
    const size_type room = end_ - index_of(p);
    return footprint <= room ? 0 : room;
  }

  detail::atomic_ref<std::uint64_t> header_at(size_type index) const noexcept {
    return detail::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + index));
  }

  // --- called by grants (any producer thread)
  // Publishes `header` at `at`. In a shared ring the busy header `busy` is replaced only if it
  // is still there: the consumer may have reclaimed the reservation (recover()); then nothing
  // is published and the result is false.
  bool finish(size_type at, std::uint64_t header, std::uint64_t busy) noexcept {
    if (busy == 0) {
      // Release pairs with the consumer's acquire of this header in try_read(): the payload we
      // wrote is visible to it.
      header_at(at).store(header, std::memory_order_release);
    } else if (!header_at(at).compare_exchange_strong(busy, header, std::memory_order_release,
                                                      std::memory_order_relaxed)) {
      return false;  // reclaimed: the space is the consumer's (relaxed: we read nothing of it)
    }
    detail::atomic<std::uint64_t>& count = (header & discard_flag) ? ctl_->discarded : ctl_->committed;
    if constexpr (Policy::multi) {
      // Release pairs with the acquire in finished_count(): an in_flight() that counts this
      // finish also sees this reservation's reserved_ bump, so another producer's reservation
      // in flight is never cancelled out by it. (On x86 release costs nothing over relaxed.)
      count.fetch_add(1, std::memory_order_release);
    } else {
      // One writer (the producer thread): a load and a store suffice. Relaxed load: our own.
      // Release, as above: the producer may hold several grants and finish them out of order,
      // so this finish must not cancel out an earlier reservation still in flight.
      count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    if constexpr (Wait::enabled) {
      // Pairs with the consumer's heavy_fence() in wait_until_ready(): see detail/wait.hpp.
      ctl_->consumer_wait.notify_after([this] { wake_consumer(); });  // a header: see light_fence()
    }
    return true;
  }

  // The consumer sleeps: wake it if the bytes reserved past the head (an upper bound of what is
  // ready) reach its water mark. Relaxed loads: head does not move while the consumer sleeps
  // (the fences of notify_after() order us after its last store; an older head would only
  // overstate what is ready), and tail is at least our own reservation; a commit that makes
  // more ready makes its own check. If a producer sleeps for
  // room, the water mark is void: this commit may have made the records behind an in-flight one
  // readable, and the consumer must take them or the two sides sleep on each other.
  [[gnu::noinline]] void wake_consumer() noexcept {
    if (ctl_->producer_wait.has_sleepers()) return ctl_->consumer_wait.nudge();
    ctl_->consumer_wait.wake_if_wanted(
        distance(ctl_->head.load(std::memory_order_relaxed), ctl_->tail.load(std::memory_order_relaxed)));
  }

  // --- consumer internals
  // Zeroes `bytes` (spanning `records` records) from the head, so producers find "not written"
  // there again, and publishes it.
  void release_bytes(size_type bytes, size_type records) noexcept {
    const std::uint64_t new_head = advance(private_head_, bytes);
    // Shared rings: a successor of a consumer that dies while zeroing completes the release.
    // Relaxed: read only by a consumer attaching after this one is gone.
    if (role_slot_) ctl_->releasing.store(new_head, std::memory_order_relaxed);
    const size_type first = std::min(bytes, end_ - head_index_);
    detail::zero_storage(data_ + head_index_, first);
    if (bytes != first) detail::zero_storage(data_, bytes - first);
    head_index_ += bytes;
    if (head_index_ >= capacity_) head_index_ -= capacity_;
    private_head_ = new_head;
    // Release pairs with the producers' acquire of head: the zeroes and our reads of these bytes
    // happen before they claim them.
    ctl_->head.store(private_head_, std::memory_order_release);
    // One writer: a load and a store. Relaxed: a statistic.
    ctl_->released.store(ctl_->released.load(std::memory_order_relaxed) + records, std::memory_order_relaxed);
    if constexpr (Wait::enabled) {
      // Pairs with the producers' heavy_fence() in wait_until_ready(): see detail/wait.hpp.
      // The full compiler barrier, as in finish(), not the one naming head: naming it made gcc
      // keep a producer's grant in memory wherever the two sides' calls meet in one function
      // (146 instructions per 16-byte record written and read in one thread, against 120 now
      // and 116 without waiting support; bench/instructions.sh).
      ctl_->producer_wait.notify_after([this] { wake_producers(); });
    }
  }

  // Producers sleep: wake them if the free bytes reach the smallest need. Relaxed load of tail:
  // the fences of notify_after() order it after the sleepers' reservations; an older tail, or
  // one that moved on since, only makes the estimate generous, and a woken producer re-checks.
  [[gnu::noinline]] void wake_producers() noexcept {
    const std::uint64_t used = distance(private_head_, ctl_->tail.load(std::memory_order_relaxed));
    ctl_->producer_wait.wake_if_wanted(used >= capacity_ ? 0 : capacity_ - used);
  }

  void close_batch() noexcept { batch_open_ = false; }
  void release_batch(size_type bytes, size_type records) noexcept {
    batch_open_ = false;
    if (bytes != 0) release_bytes(bytes, records);
  }

  // --- single producer's private state (unused in mpsc)
  alignas(detail::cache_line) std::uint64_t private_tail_ = 0;  // == tail
  std::uint64_t cached_head_ = 0;                               // <= head: possibly stale copy

  // --- consumer-private
  alignas(detail::cache_line) std::uint64_t private_head_ = 0;  // == head
  size_type head_index_ = 0;                                    // index_of(private_head_)
  bool batch_open_ = false;

  // --- constant after construction
  alignas(detail::cache_line) control* ctl_ = &own_;  // own_, or a control block in shared memory
  std::byte* data_ = nullptr;
  size_type capacity_;
  // One past the last index a contiguous view may reach: capacity_, or 2 * capacity_ over
  // mirrored storage (where index i + capacity_ is index i again).
  size_type end_ = 0;
  size_type max_record_ = 0;  // max_record_size()
  bool owned_ = false;
  mirrored_storage mirror_;  // the mapping, when the ring is built over mirrored storage

  // --- a shared ring: the segment, this process's role and its slot there
  detail::segment segment_;
  enum class attached_as : std::uint8_t { both, producer, consumer } role_ = attached_as::both;
  detail::process_slot* role_slot_ = nullptr;
  std::uint32_t owner_tag_ = 0;       // producers: slot and generation, in every busy header
  std::uint64_t stall_pos_ = ~std::uint64_t{0};  // consumer: the stall recover() is timing
  std::chrono::steady_clock::time_point stall_since_{};

  // --- the shared part of an in-process ring
  control own_{use_asymmetric()};
};

/// One record being written: exactly size() payload bytes, 8-byte aligned. Move-only.
/// commit() publishes it, commit(k) its first k bytes; discard(), or destruction without commit,
/// withdraws it (the consumer never sees it). Contextually false when empty.
template <class Policy, class Wait>
class [[nodiscard]] basic_record_ring<Policy, Wait>::grant {
 public:
  /// An empty grant.
  grant() noexcept = default;
  /// Takes over `other`'s reservation; `other` is left empty.
  grant(grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), at_(other.at_), size_(other.size_),
        footprint_(other.footprint_), busy_(other.busy_) {}
  /// Withdraws this grant's reservation, as discard(), then takes over `other`'s; `other` is
  /// left empty.
  grant& operator=(grant&& other) noexcept {
    if (this != &other) {
      discard();
      ring_ = std::exchange(other.ring_, nullptr);
      at_ = other.at_;
      size_ = other.size_;
      footprint_ = other.footprint_;
      busy_ = other.busy_;
    }
    return *this;
  }
  /// Withdraws the reservation if it was neither committed nor discarded, as discard().
  ~grant() { discard(); }

  /// The payload bytes, to be written in place; empty for an empty grant.
  [[nodiscard]] std::span<std::byte> span() const noexcept { return {data(), size()}; }
  /// The first payload byte, 8-byte aligned; null for an empty grant.
  [[nodiscard]] std::byte* data() const noexcept {
    return ring_ ? ring_->data_ + at_ + header_size : nullptr;
  }
  /// Payload bytes reserved; 0 for an empty grant.
  [[nodiscard]] size_type size() const noexcept { return ring_ ? size_ : 0; }
  /// True if the grant holds no reservation: the reservation was refused, or the grant was
  /// committed, discarded or moved from. A zero-length reservation is not empty.
  [[nodiscard]] bool empty() const noexcept { return ring_ == nullptr; }
  /// True while the grant holds a reservation (a zero-length one included).
  explicit operator bool() const noexcept { return ring_ != nullptr; }

  /// Publishes the first k payload bytes as the record and ends the grant. Returns true; false
  /// only in a shared ring whose consumer reclaimed the reservation meanwhile (recover(), after
  /// its timeout): then nothing is published. Throws std::out_of_range if k > size(); the
  /// grant is unchanged then.
  bool commit(size_type k) {
    if (k > size()) detail::throw_beyond_grant("commit", k, size());
    if (!ring_) return false;
    return std::exchange(ring_, nullptr)->finish(at_, make_header(k, footprint_), busy_);
  }
  /// Publishes the whole record and ends the grant; returns as commit(k).
  bool commit() { return commit(size()); }
  /// Withdraws the reservation: the consumer never sees it. Same as destroying the grant.
  void discard() noexcept {
    if (ring_) (void)std::exchange(ring_, nullptr)->finish(at_, make_header(0, footprint_) | discard_flag, busy_);
  }

 private:
  friend class basic_record_ring;
  grant(basic_record_ring* ring, size_type at, size_type size, size_type footprint, std::uint64_t busy) noexcept
      : ring_(ring), at_(at), size_(size), footprint_(footprint), busy_(busy) {}

  basic_record_ring* ring_ = nullptr;
  size_type at_ = 0;         // storage index of the header
  size_type size_ = 0;       // payload bytes reserved
  size_type footprint_ = 0;  // header + padded payload
  std::uint64_t busy_ = 0;   // shared rings: the busy header the reservation wrote; 0 in-process
};

/// The records ready for the consumer, in order, each a std::span<const std::byte> into the
/// ring. Iterate it as often as needed; release() frees all, release(k) the first k records;
/// dropping it frees nothing. Move-only. Contextually false when empty.
template <class Policy, class Wait>
class [[nodiscard]] basic_record_ring<Policy, Wait>::batch {
 public:
  /// A forward iterator over the batch's records, each a std::span<const std::byte> of its
  /// payload; padding and withdrawn reservations are stepped over. Valid while its batch holds
  /// the records (until release(), and while the ring lives). Consumer thread.
  class iterator {
   public:
    /// A forward iterator: a batch can be iterated as often as needed.
    using iterator_category = std::forward_iterator_tag;
    /// A record's payload, in place in the ring.
    using value_type = std::span<const std::byte>;
    /// Distance between two iterators of one batch, in records.
    using difference_type = std::ptrdiff_t;
    /// None: there is no operator->, records are returned by value.
    using pointer = void;
    /// operator* returns the span itself, by value.
    using reference = value_type;

    /// The end iterator: equal to end() of every batch.
    iterator() noexcept = default;
    /// The current record's payload: exactly the bytes committed. In a shared ring whose
    /// header was rewritten since try_read() (only a faulty peer does that), an empty span.
    value_type operator*() const noexcept {
      if (room_ == unchecked) return {ring_->data_ + at_ + header_size, length_of(header_)};
      // Re-checked: in a shared ring a hostile producer could rewrite a header after try_read().
      // The view and the step past it come from the same load, so views never overlap.
      const size_type footprint = ring_->checked_footprint(header_, at_, room_);
      if (footprint == 0) return {};
      return {ring_->data_ + at_ + header_size, std::min(length_of(header_), footprint - header_size)};
    }
    /// Moves to the next record of the batch (or to the end).
    iterator& operator++() noexcept {
      --left_;
      if (left_ != 0) step();
      return *this;
    }
    /// Moves to the next record; returns the iterator as it was before.
    iterator operator++(int) noexcept {
      iterator before = *this;
      ++*this;
      return before;
    }
    /// True if both have as many records left before the end of their batch; compare only
    /// iterators of one batch, or with end().
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.left_ == b.left_; }

   private:
    friend class batch;
    // `room`: the bytes try_read() scanned from `at` on, or `unchecked` (an in-process ring,
    // whose headers only this library writes).
    iterator(const basic_record_ring* ring, size_type at, size_type left, size_type room) noexcept
        : ring_(ring), at_(at), left_(left), room_(room) {
      if (left_ != 0) skip_non_records();
    }
    void step() noexcept {
      if (advance_past(header_)) skip_non_records();
    }
    // Loads the header at each position once. Relaxed: try_read() acquired every header of the
    // batch already, in this thread.
    void skip_non_records() noexcept {
      while (left_ != 0 && !is_record(header_ = ring_->header_at(at_).load(std::memory_order_relaxed)))
        advance_past(header_);
    }
    // Moves past the header h at at_. In a shared ring every step is checked against the bytes
    // try_read() scanned, so a header rewritten since (only a hostile peer does that) ends the
    // iteration instead of leading it out of the batch.
    bool advance_past(std::uint64_t h) noexcept {
      size_type footprint = footprint_of(h);
      if (room_ != unchecked) {
        footprint = ring_->checked_footprint(h, at_, room_);
        if (footprint == 0 || footprint == room_) {
          left_ = 0;
          return false;
        }
        room_ -= footprint;
      }
      at_ += footprint;
      if (at_ >= ring_->capacity_) at_ -= ring_->capacity_;  // mirrored: may cross the seam
      return true;
    }
    static constexpr size_type unchecked = ~size_type{0};

    const basic_record_ring* ring_ = nullptr;
    size_type at_ = 0;
    size_type left_ = 0;  // records from this one to the end of the batch
    size_type room_ = 0;  // bytes scanned from at_ on, or unchecked
    std::uint64_t header_ = 0;  // the header at at_, as loaded once
  };

  /// An empty batch.
  batch() noexcept = default;
  /// Takes over `other`'s records; `other` is left empty.
  batch(batch&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), start_(other.start_),
        records_(std::exchange(other.records_, 0)), scanned_(other.scanned_) {}
  /// Drops this batch's records (freeing nothing), then takes over `other`'s; `other` is left
  /// empty.
  batch& operator=(batch&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      start_ = other.start_;
      records_ = std::exchange(other.records_, 0);
      scanned_ = other.scanned_;
    }
    return *this;
  }
  /// Ends the batch without freeing anything: unreleased records are read again by the next
  /// try_read().
  ~batch() { drop(); }

  /// The first record.
  iterator begin() const noexcept {
    return iterator(ring_, start_, records_, ring_ && ring_->role_slot_ ? scanned_ : iterator::unchecked);
  }
  /// One past the last record.
  iterator end() const noexcept { return iterator(); }
  /// Number of records.
  [[nodiscard]] size_type size() const noexcept { return records_; }
  /// True if the batch holds no records: none was ready, or the batch was released, dropped
  /// or moved from.
  [[nodiscard]] bool empty() const noexcept { return records_ == 0; }
  /// True while the batch holds records: !empty().
  explicit operator bool() const noexcept { return records_ != 0; }

  /// Frees every record of the batch (and any withdrawn reservations or skipped tails among and
  /// after them) and ends the batch.
  void release() {
    if (ring_) std::exchange(ring_, nullptr)->release_batch(scanned_, records_);
    records_ = 0;
  }
  /// Frees the first k records and ends the batch; the rest are read again by the next try_read().
  /// Throws std::out_of_range if k > size(); the batch is unchanged then.
  void release(size_type k) {
    if (k > records_) detail::throw_beyond_grant("release", k, records_, "the batch's record count");
    if (k == records_) return release();
    if (ring_) {
      // Bytes up to the end of the k-th record.
      size_type bytes = 0;
      if (k != 0) {
        iterator it(ring_, start_, records_, scanned_);  // checked: counts the bytes it passes
        for (size_type i = 1; i < k; ++i) ++it;
        // Relaxed: try_read() acquired this header already, in this thread.
        const size_type footprint =
            ring_->checked_footprint(ring_->header_at(it.at_).load(std::memory_order_relaxed), it.at_, it.room_);
        bytes = scanned_ - it.room_ + footprint;
      }
      std::exchange(ring_, nullptr)->release_batch(bytes, k);
    }
    records_ = 0;
  }

 private:
  friend class basic_record_ring;
  batch(basic_record_ring* ring, size_type start, size_type records, size_type scanned) noexcept
      : ring_(ring), start_(start), records_(records), scanned_(scanned) {}
  void drop() noexcept {
    if (ring_) std::exchange(ring_, nullptr)->close_batch();
    records_ = 0;
  }

  basic_record_ring* ring_ = nullptr;
  size_type start_ = 0;      // storage index of the head when read
  size_type records_ = 0;
  size_type scanned_ = 0;    // bytes from start_ through the last record and what follows it
};

/// Records from one producer thread to one consumer thread.
using spsc_record_ring = basic_record_ring<single_producer>;
/// Records from any number of producer threads to one consumer thread.
using mpsc_record_ring = basic_record_ring<multi_producer>;

}  // namespace sluice
