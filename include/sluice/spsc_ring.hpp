// sluice::spsc_ring<T>: a lock-free single-producer/single-consumer ring that hands out
// contiguous regions of its storage as views.
//
// The algorithm
// -------------
// Two 64-bit cursors only grow: `write` counts elements the producer has published, `read`
// counts elements the consumer has given back. `write - read` is what the consumer may still
// read (plus, see below, at most one skipped tail), so all `capacity()` slots are usable and any
// capacity >= 1 works, not only powers of two. Each side also tracks its storage index beside
// its cursor (`widx_`, `ridx_`), so cursors may wrap past 2^64 and no modulo runs on any path.
//
// A write grant is contiguous. When the free run at the end of the storage is too short but the
// start of the storage has room, the grant wraps to index 0 and the tail it leaves behind is
// *skipped* (the bip-buffer trick): on commit the producer stores the storage index where the
// skip starts in `skip_index` (never 0: a skip starts inside a lap) and advances `write` past
// tail and data together. The consumer, on reaching that index, jumps to the next lap instead of
// reading the tail, and clears `skip_index` back to 0 ("none").
//
// At most one skip is pending at a time: to wrap again the producer needs the slot right after
// the previous lap boundary, which the consumer frees only after it has passed (and cleared) the
// previous skip. And the consumer is always in the lap of the pending skip: the producer wraps
// only when the consumer stands within one capacity behind the skip's position, so within that
// lap the index names exactly one position. Storage indexes, unlike positions, never alias, so
// this stays exact however far the 64-bit cursors run.
//
// An empty ring grants any n <= capacity() wherever its cursors stand: when the ring is empty
// (seen with a fresh load of `read`) the whole storage is free, so a grant may wrap to index 0
// even if the skipped tail plus the data exceed the capacity. Until the consumer passes that
// skip, `write - read` may exceed capacity(); every free-space computation treats that as
// "no room", which is exactly right: the only free slots then are the ones the skip covers.
//
// Ordering
// --------
// Producer: writes elements, then `write.store(release)`. Consumer: `write.load(acquire)`,
// then reads elements; so every element read was fully written. Symmetrically the consumer
// finishes reading, then `read.store(release)`; the producer's `read.load(acquire)` orders its
// later writes into those slots after the reads. `skip_index` is set (relaxed) before the
// release of `write` that covers it and loaded (relaxed) after the acquire of `write`; the
// consumer clears it (relaxed) before the release of `read` that passes the skip, and the
// producer sets it again only after acquiring that `read`.
//
// Each side keeps a private copy of the other side's cursor and reloads it only when the copy
// says "not enough": `try_push`, `try_pop` and `try_reserve` stay off the other side's cache line
// in the common case. `try_read` and `try_reserve_up_to` always report everything that is there.
//
// Progress: every non-blocking call is wait-free (no loops, no locks, no system call) once the
// ring is constructed, and no successful call allocates (a throwing one builds its message).
//
// Waiting
// -------
// With the default `waitable` policy, reserve()/read() and their timed forms sleep on a futex
// until the other side makes progress. After each store of its cursor a side issues a compiler
// barrier and loads the other side's sleeper count (one plain load from a line that changes
// only when somebody goes to sleep); only if somebody sleeps does it compute what the sleeper
// needs and wake it. Why that needs no fence on the fast path is argued in detail/wait.hpp.
// `close()` sets a flag every reservation checks first, and wakes both sides.
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
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

namespace sluice {

/// A lock-free ring between exactly one producer thread and one consumer thread that hands out
/// contiguous regions of its storage as `std::span` views: reserve, write in place, commit;
/// read in place, release. `T` must be trivially copyable.
///
/// Thread rules: "producer" functions may be called only by the producer thread and "consumer"
/// functions only by the consumer thread (the roles may move between threads if the hand-over
/// itself synchronises). Observers and close() may be called from any thread. The ring must
/// outlive its grants.
///
/// `Wait` is `waitable` (blocking and timed calls) or `no_waiting` (non-blocking calls only,
/// and commits and releases never look for sleepers); see <sluice/wait_policy.hpp>.
template <class T = std::byte, class Wait = waitable>
class spsc_ring {
  static_assert(std::is_trivially_copyable_v<T>, "spsc_ring<T> needs a trivially copyable T");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>, "spsc_ring<T> needs an unqualified T");

 public:
  /// The element type.
  using value_type = T;
  /// Element counts and indices.
  using size_type = std::size_t;

  class write_grant;
  class read_grant;
  class split_write_grant;
  class split_read_grant;

  /// Owns heap storage for `capacity` elements, aligned to 128 bytes (or alignof(T) if larger).
  /// Throws std::invalid_argument if capacity is 0 and std::length_error if capacity * sizeof(T)
  /// does not fit in a size_t; both before allocating.
  explicit spsc_ring(size_type capacity) : capacity_(checked_capacity(capacity)), end_(capacity_) {
    void* raw = ::operator new(capacity_ * sizeof(T), storage_alignment);
    std::memset(raw, 0, capacity_ * sizeof(T));
    data_ = static_cast<T*>(raw);
    owned_ = true;
  }

  /// Uses the caller's storage (which must outlive the ring); allocates nothing.
  /// Throws std::invalid_argument if the span is empty.
  explicit spsc_ring(std::span<T> storage)
      : data_(storage.data()), capacity_(storage.empty() ? checked_capacity(0) : storage.size()), end_(capacity_) {}

  /// Builds the ring over its own mirrored_storage of at least `min_capacity` elements. The
  /// capacity is rounded up to the least count whose bytes fill whole pages (with 4 KiB pages:
  /// a multiple of 1024 floats, 512 doubles, or 4096 * 3 bytes of 12-byte elements); capacity()
  /// tells. Every grant of up to capacity() elements is then contiguous wherever the cursors
  /// stand (no skipped tail), and try_read() returns everything committed in one span. Throws
  /// std::invalid_argument for 0, std::length_error if the size overflows, mapping_error if the
  /// system cannot map it (nothing stays mapped).
  spsc_ring(mirrored_t, size_type min_capacity)
      : capacity_(checked_capacity(min_capacity)),
        mirror_(capacity_ * sizeof(T), sizeof(T)) {
    data_ = reinterpret_cast<T*>(mirror_.data());
    capacity_ = mirror_.size() / sizeof(T);
    end_ = 2 * capacity_;
  }

  /// Creates the shared-memory segment `name` ("/" and a name, as for shm_open; it must not
  /// exist yet) holding a ring of `capacity` elements (rounded up to whole pages with
  /// options.mirrored), and attaches to it in options.role. Other processes attach with the
  /// open_shared constructor; the segment outlives every process until remove_shared(name).
  /// Throws as the first constructor, mapping_error if the system refuses,
  /// std::invalid_argument for a malformed name. See docs/shared_memory.md.
  spsc_ring(create_shared_t, std::string_view name, size_type capacity, const shared_options& options = {})
      : capacity_(checked_capacity(capacity)) {
    const bool asymmetric = use_asymmetric_shared();
    std::uint64_t bytes = std::uint64_t{capacity_} * sizeof(T);
    if (options.mirrored) bytes = mirrored_storage::rounded_size(bytes, sizeof(T));
    segment_ = detail::segment::create(name,
                                       {detail::ring_kind::spsc_ring, sizeof(T), bytes / sizeof(T), bytes,
                                        sizeof(control), options.mirrored, asymmetric, Wait::enabled},
                                       options.permissions);
    ctl_ = new (segment_.control()) control(asymmetric, true);
    capacity_ = static_cast<size_type>(segment_.layout().capacity);
    attach(options.role);
    segment_.publish();
  }

  /// Attaches to the shared ring `name`, made by the create_shared constructor in any process,
  /// in options.role: the capacity, element size and storage are the segment's. A role held by
  /// a live process is refused; one left by a dead process is taken over, continuing from the
  /// shared cursors (see docs/shared_memory.md for what survives which crash). Throws
  /// attach_error (not an spsc_ring of this T, a corrupt header, the role is taken) or
  /// mapping_error; nothing stays mapped then.
  spsc_ring(open_shared_t, std::string_view name, const shared_options& options = {}) : capacity_(1) {
    segment_ = detail::segment::open(name, {detail::ring_kind::spsc_ring, sizeof(T), 0, 0, sizeof(control), false, false, Wait::enabled},
                                     options.attach_timeout);
    if (segment_.layout().asymmetric && !detail::enable_global_fences())
      throw attach_error(segment_.describe(
          "its creator pairs membarrier (global expedited) with compiler barriers, and this process cannot "
          "register for it (SLUICE_NO_MEMBARRIER, or a seccomp filter)"));
    ctl_ = std::launder(static_cast<control*>(segment_.control()));
    capacity_ = static_cast<size_type>(segment_.layout().capacity);
    attach(options.role);
  }

  /// Not copyable: the ring is shared by reference between its two sides.
  spsc_ring(const spsc_ring&) = delete;
  /// Not copyable.
  spsc_ring& operator=(const spsc_ring&) = delete;

  /// Frees the heap storage or unmaps the mirrored storage the ring owns (caller's storage is
  /// left alone). In a shared ring, gives up this process's role and unmaps the segment; the
  /// segment and its name stay until remove_shared(). No grant may be outstanding.
  ~spsc_ring() {
    if (owned_) ::operator delete(static_cast<void*>(data_), storage_alignment);
    if (role_slot_) detail::release_slot(segment_, *role_slot_);
  }

  /// Number of elements the ring holds when full. Any thread.
  [[nodiscard]] size_type capacity() const noexcept { return capacity_; }

  /// True if the ring is built over mirrored storage (every view contiguous). Any thread.
  [[nodiscard]] bool mirrored() const noexcept { return end_ != capacity_; }

  /// True if the ring lives in a shared-memory segment. Any thread.
  [[nodiscard]] bool shared() const noexcept { return ctl_ != &own_; }

  /// Elements committed and not yet released, clamped to [0, capacity()]. Any thread.
  /// Stale by nature: from the producer it may over-count (the consumer may have released
  /// more since), from the consumer it may under-count (the producer may have committed more).
  /// A tail skipped by a wrapped grant counts as occupied until the consumer passes it.
  [[nodiscard]] size_type size_approx() const noexcept {
    // Acquire pairs with the consumer's release of read, which it made after acquiring a
    // write >= that value: so the write loaded next is never behind the read loaded here.
    const std::uint64_t r = ctl_->read.load(std::memory_order_acquire);
    // Relaxed: needs no pair of its own; the acquire above already makes it at least r.
    const std::uint64_t w = ctl_->write.load(std::memory_order_relaxed);
    return static_cast<size_type>(std::min<std::uint64_t>(w - r, capacity_));
  }

  /// Closes the ring. Any thread, concurrently with both sides, any number of times. From then
  /// on every reservation (non-blocking, timed or blocking) returns an empty grant (try_push
  /// false, write_some 0) at once and never throws; grants obtained before may still commit.
  /// Reads go on returning what was committed, then empty. Every sleeper on either side wakes.
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

  /// The ring's counters (see ring_statistics): exact per field, read without disturbing either
  /// side's hot path. Units: elements. Any thread.
  [[nodiscard]] ring_statistics statistics() const noexcept {
    ring_statistics s;
    // Relaxed: independent counters, each written by one side; nothing is read through them.
    s.committed = ctl_->committed.load(std::memory_order_relaxed);
    s.refused = ctl_->refused.load(std::memory_order_relaxed);
    s.released = ctl_->released.load(std::memory_order_relaxed);
    s.high_water = ctl_->high_water.load(std::memory_order_relaxed);
    s.wakeups = ctl_->consumer_wait.wakeups() + ctl_->producer_wait.wakeups();
    return s;
  }

  // ---------------------------------------------------------------- producer

  /// Producer. A grant of exactly `n` contiguous elements, or an empty grant if that much
  /// contiguous space is not free now (counted in statistics().refused) or the ring is closed.
  /// Wraps to the start of the storage when the end is too short (the skipped tail is never
  /// shown to the consumer). An empty ring grants any n <= capacity(). n == 0 returns an empty
  /// grant. Throws std::length_error if n > capacity(), std::logic_error if a write grant is
  /// outstanding (neither once the ring is closed).
  [[nodiscard]] write_grant try_reserve(size_type n) {
    if (is_closed()) return {};
    check_reserve(n);
    if (n == 0) return {};
    write_grant g = reserve_exact(n);
    if (!g) note_refused();
    return g;
  }

  /// Producer. As try_reserve(n), but waits until the grant can be made or the ring is closed
  /// (then it returns an empty grant). Needs the `waitable` policy.
  [[nodiscard]] write_grant reserve(size_type n)
    requires(Wait::enabled)  // parenthesised, as every such clause here: Doxygen parses it then
  {
    return wait_reserve(n, detail::no_deadline{});
  }

  /// Producer. As reserve(n), but gives up after `timeout`: an empty grant then (counted as
  /// refused).
  template <class Rep, class Period>
  [[nodiscard]] write_grant try_reserve_for(size_type n, const std::chrono::duration<Rep, Period>& timeout)
    requires(Wait::enabled)
  {
    return wait_reserve(n, detail::deadline_after(timeout));
  }

  /// Producer. As reserve(n), but gives up at `deadline` (any clock): an empty grant then.
  template <class Clock, class Duration>
  [[nodiscard]] write_grant try_reserve_until(size_type n, const std::chrono::time_point<Clock, Duration>& deadline)
    requires(Wait::enabled)
  {
    return wait_reserve(n, detail::deadline_at<Clock, Duration>{deadline});
  }

  /// Producer. A grant of the longest contiguous free run, at most `n` elements (n may exceed
  /// capacity()), or an empty grant if nothing is free now, n == 0 or the ring is closed. Never
  /// reports less than is free at the time of the call. Throws std::logic_error if a write
  /// grant is outstanding (not once the ring is closed).
  [[nodiscard]] write_grant try_reserve_up_to(size_type n) {
    if (is_closed()) return {};
    enter_write();
    if (n == 0) return {};
    write_grant g = reserve_run(n);
    if (!g) note_refused();
    return g;
  }

  /// Producer. As try_reserve_up_to(n), but waits until a contiguous run of at least
  /// min(n, min_free) elements is free (the water mark: a sleeping producer is not woken for
  /// less) or the ring is closed. Throws std::length_error if min_free > capacity().
  [[nodiscard]] write_grant reserve_up_to(size_type n, size_type min_free = 1)
    requires(Wait::enabled)
  {
    return wait_reserve_up_to(n, min_free, detail::no_deadline{});
  }

  /// Producer. As reserve_up_to(), but gives up after `timeout`: then it returns the longest
  /// free run if there is one (possibly shorter than min_free), else an empty grant.
  template <class Rep, class Period>
  [[nodiscard]] write_grant try_reserve_up_to_for(size_type n, const std::chrono::duration<Rep, Period>& timeout,
                                                  size_type min_free = 1)
    requires(Wait::enabled)
  {
    return wait_reserve_up_to(n, min_free, detail::deadline_after(timeout));
  }

  /// Producer. As try_reserve_up_to_for(), with a deadline on any clock.
  template <class Clock, class Duration>
  [[nodiscard]] write_grant try_reserve_up_to_until(size_type n,
                                                    const std::chrono::time_point<Clock, Duration>& deadline,
                                                    size_type min_free = 1)
    requires(Wait::enabled)
  {
    return wait_reserve_up_to(n, min_free, detail::deadline_at<Clock, Duration>{deadline});
  }

  /// Producer. Exactly `n` free elements as up to two regions (the second starts at index 0),
  /// for scatter/gather writers (readv, recvmmsg) that accept a split; empty if fewer than n are
  /// free now, n == 0 or the ring is closed. Throws as try_reserve().
  [[nodiscard]] split_write_grant try_reserve_split(size_type n) {
    if (is_closed()) return {};
    check_reserve(n);
    if (n == 0) return {};
    if (!(fits(n) || (refresh_read(), fits(n)))) {
      note_refused();
      return {};
    }
    write_open_ = true;
    const size_type first = std::min(n, end_ - widx_);
    return split_write_grant(this, std::span<T>(data_ + widx_, first), std::span<T>(data_, n - first));
  }

  /// Producer. Copies as many elements of `src` as are free now (across the wrap point) and
  /// publishes them; returns the count (0 once the ring is closed; a non-empty `src` of which
  /// nothing fits counts as refused). Throws std::logic_error if a write grant is outstanding.
  size_type write_some(std::span<const T> src) {
    if (is_closed()) return 0;
    enter_write();
    size_type n = std::min(src.size(), free_slots());
    if (n < src.size()) {
      refresh_read();
      n = std::min(src.size(), free_slots());
    }
    if (n == 0) {
      if (!src.empty()) note_refused();
      return 0;
    }
    const size_type first = std::min(n, end_ - widx_);
    std::memcpy(data_ + widx_, src.data(), first * sizeof(T));  // n != 0: src.data() is valid
    if (n != first) std::memcpy(data_, src.data() + first, (n - first) * sizeof(T));
    publish_write(n);
    return n;
  }

  /// Producer. Appends one element; false if the ring is full now (counted as refused) or
  /// closed. Throws std::logic_error if a write grant is outstanding (not once closed).
  bool try_push(const T& value) {
    if (is_closed()) return false;
    enter_write();
    if (w_ - cached_read_ >= capacity_) {
      refresh_read();
      if (w_ - cached_read_ >= capacity_) {
        note_refused();
        return false;
      }
    }
    data_[widx_] = value;
    publish_write(1);
    return true;
  }

  // ---------------------------------------------------------------- consumer

  /// Consumer. A grant over every committed element that is contiguous from the read position
  /// (up to the end of the storage or a skipped tail), or an empty grant if nothing is
  /// committed. Dropping the grant without release() frees nothing, so it doubles as a peek.
  /// Throws std::logic_error if a read grant is outstanding.
  [[nodiscard]] read_grant try_read() {
    enter_read();
    return read_contiguous();
  }

  /// Consumer. Waits until at least `min_ready` elements are committed (the water mark: a
  /// sleeping consumer is not woken for less), then returns try_read(), which may be shorter
  /// when the data wraps. Returns early with what is there (at least one element) if the
  /// producer is stuck for room, so a water mark never deadlocks the two sides; and once the
  /// ring is closed, returns what is left, then empty grants. Throws std::length_error if
  /// min_ready > capacity(), std::logic_error if a read grant is outstanding.
  [[nodiscard]] read_grant read(size_type min_ready = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_ready, detail::no_deadline{});
  }

  /// Consumer. As read(min_ready), but waits at most `timeout`; then it returns what is
  /// committed (possibly fewer than min_ready), or an empty grant if nothing is.
  template <class Rep, class Period>
  [[nodiscard]] read_grant try_read_for(const std::chrono::duration<Rep, Period>& timeout, size_type min_ready = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_ready, detail::deadline_after(timeout));
  }

  /// Consumer. As try_read_for(), with a deadline on any clock.
  template <class Clock, class Duration>
  [[nodiscard]] read_grant try_read_until(const std::chrono::time_point<Clock, Duration>& deadline,
                                          size_type min_ready = 1)
    requires(Wait::enabled)
  {
    return wait_read(min_ready, detail::deadline_at<Clock, Duration>{deadline});
  }

  /// Consumer. Everything committed, as up to two regions (the second starts at index 0), for
  /// gather readers (writev, sendmmsg). Empty if nothing is committed.
  /// Throws std::logic_error if a read grant is outstanding.
  [[nodiscard]] split_read_grant try_read_split() {
    enter_read();
    const regions r = readable_regions();
    if (r.first == 0) return {};
    read_open_ = true;
    return split_read_grant(this, std::span<const T>(data_ + ridx_, r.first),
                            std::span<const T>(data_, r.second), r.gap);
  }

  /// Consumer. Copies up to dst.size() committed elements into `dst` (across the wrap point),
  /// releases them and returns the count. Throws std::logic_error if a read grant is outstanding.
  size_type read_some(std::span<T> dst) {
    enter_read();
    const regions r = readable_regions();
    const size_type first = std::min(dst.size(), r.first);
    const size_type second = std::min(dst.size() - first, r.second);
    // memcpy needs valid pointers even for 0 bytes, and an empty span's data() may be null.
    if (first != 0) std::memcpy(dst.data(), data_ + ridx_, first * sizeof(T));
    if (second != 0) std::memcpy(dst.data() + first, data_, second * sizeof(T));
    release_read(first, second, r.gap);
    return first + second;
  }

  /// Consumer. Removes and returns the oldest element, or nullopt if nothing is committed.
  /// Throws std::logic_error if a read grant is outstanding.
  std::optional<T> try_pop() {
    enter_read();
    if (r_ == cached_write_) {
      refresh_write();
      if (r_ == cached_write_) return std::nullopt;
    }
    if (ridx_ == cached_skip_index_) pass_skip();
    std::optional<T> value(data_[ridx_]);
    ++r_;
    if (++ridx_ == capacity_) ridx_ = 0;
    publish_read(1);
    return value;
  }

 private:
  friend struct detail::test_access;

  // Everything both sides touch: the cursors, the statistics, the sleepers and the closed flag.
  // It lives in the ring (own_), or in a shared-memory segment between processes. Each line is
  // written by one side only, but for the sleepers' (see detail/wait.hpp) and the last. A side's
  // statistics share its cursor's line: a commit or release dirties one line, and the other
  // side, which loads the cursor anyway, never reads them on its hot path.
  struct control {
    explicit control(bool asymmetric, bool process_shared = false) noexcept
        : consumer_wait(asymmetric, process_shared), producer_wait(asymmetric, process_shared) {}

    // Elements the consumer has given back. Written by the consumer, read by the producer.
    alignas(detail::cache_line) detail::atomic<std::uint64_t> read{0};
    detail::atomic<std::uint64_t> released{0};    // statistics, by the consumer
    detail::atomic<std::uint64_t> high_water{0};
    // The read position the consumer publishes after passing a skip, stored just before (see
    // clear_skip()). Written by the consumer; read only by a consumer attaching.
    detail::atomic<std::uint64_t> passing{0};

    // Elements (and skipped tails) the producer has published. Written by the producer, read by
    // the consumer.
    alignas(detail::cache_line) detail::atomic<std::uint64_t> write{0};
    // Storage index where the pending skipped tail starts, in [1, capacity_), or 0 for none. Set
    // by the producer when it commits a wrapped grant, cleared by the consumer when it passes the
    // skip; never both at once (see the essay). Shares write's line: it changes once a lap at
    // most.
    detail::atomic<std::uint64_t> skip_index{0};
    detail::atomic<std::uint64_t> committed{0};  // statistics, by the producer
    detail::atomic<std::uint64_t> refused{0};

    // Sleepers of each side, each on its own line.
    detail::wait_slot consumer_wait;  // the consumer, waiting for data
    detail::wait_slot producer_wait;  // the producer, waiting for room

    // Set to 1 once by close(); read by every reservation. A word, not a bool: any value a peer
    // writes into shared memory must be one the type can hold (non-zero reads as closed).
    alignas(detail::cache_line) detail::atomic<std::uint32_t> closed{0};
  };

  // "No pending skip" in the consumer's cache: a value no storage index equals.
  static constexpr size_type no_skip = std::numeric_limits<size_type>::max();

  struct run_choice {
    size_type size;  // elements granted
    size_type skip;  // tail skipped before them (0: no wrap)
  };
  struct regions {
    size_type first;   // readable from ridx_
    size_type second;  // readable from index 0 after `first` (and after `gap`)
    size_type gap;     // skipped tail between them (0 if `first` ends at the storage end)
  };

  static constexpr std::align_val_t storage_alignment{std::max(alignof(T), detail::cache_line)};

  static bool use_asymmetric() noexcept {
    if constexpr (Wait::enabled) return Wait::asymmetric_fences && detail::enable_asymmetric_fences();
    return false;
  }
  static bool use_asymmetric_shared() noexcept {
    if constexpr (Wait::enabled) return Wait::asymmetric_fences && detail::enable_global_fences();
    return false;
  }

  [[noreturn]] void throw_corrupt(std::string_view what) const {
    throw corrupt_ring(
        segment_.describe(detail::concat({what, ", beyond what a correct peer can publish (capacity ",
                                          capacity_, ")"})));
  }

  // Takes `r` in a shared ring and sets this process's side up from the shared cursors: a new
  // process, or the successor of one that died. Cursors start at 0 in a shared ring, so a
  // storage index is its position modulo the capacity (for 2^64 elements).
  void attach(role r) {
    data_ = reinterpret_cast<T*>(segment_.data());
    end_ = segment_.layout().mirrored ? 2 * capacity_ : capacity_;
    detail::process_table& table = segment_.processes();
    detail::process_slot& slot = r == role::consumer ? table.consumer : table.producers[0];
    if (!detail::claim_slot(segment_, slot, true))
      throw attach_error(segment_.describe(detail::concat({"its ", r == role::consumer ? "consumer" : "producer",
                                                            " role is held by process ",
                                                            detail::pid_of(slot.holder.load(std::memory_order_relaxed)),
                                                            ", which is alive"})));
    role_slot_ = &slot;
    // Our own side's cursor: a predecessor in this role that gave it back did so in
    // release_slot(), whose release claim_slot() acquired; for one that died, see below.
    if (r == role::producer) {
      // Acquire pairs with the consumer's releases of read, as in refresh_read(): the slots it
      // gave back are read before we write them again.
      const std::uint64_t read = ctl_->read.load(std::memory_order_acquire);
      // Relaxed: we read nothing a dead predecessor stored through it; the skip it may have
      // left is checked below, against the acquired read.
      const std::uint64_t write = ctl_->write.load(std::memory_order_relaxed);
      role_ = attached_as::producer;
      read_open_ = true;  // this process never consumes (see enter_read())
      w_ = write;
      widx_ = static_cast<size_type>(w_ % capacity_);
      cached_read_ = read;
      // A predecessor that died between storing a skip and publishing the wrapped grant left
      // a skip at its (and now our) position: unpublished, so no consumer honours it yet, but it
      // would when we publish data there. A published pending skip at this index means the ring
      // is full (the consumer stands on it, a lap behind us); an unpublished one never does.
      // Relaxed: only this side stores a non-zero skip_index.
      if (ctl_->skip_index.load(std::memory_order_relaxed) == widx_ && w_ - read < capacity_)
        ctl_->skip_index.store(0, std::memory_order_relaxed);
      ctl_->producer_wait.reset_sleepers();  // a dead predecessor's, if any
    } else {
      role_ = attached_as::consumer;
      write_open_ = true;  // this process never produces (see enter_write())
      // Acquire pairs with a dead predecessor's last release of read (publish_read()): a
      // release that passed a skip cleared skip_index (and `passing`) first, and we must not
      // find that skip pending again.
      r_ = ctl_->read.load(std::memory_order_acquire);
      // A predecessor that died after passing a skip but before publishing read: complete it.
      // Relaxed: written by the consumer side only, and the predecessor is gone.
      const std::uint64_t passing = ctl_->passing.load(std::memory_order_relaxed);
      if (passing - r_ - 1 < 2 * std::uint64_t{capacity_}) {  // ahead of read, by at most a pass
        r_ = passing;
        ctl_->skip_index.store(0, std::memory_order_relaxed);  // clear_skip()'s second store
        ctl_->read.store(r_, std::memory_order_release);  // as publish_read()
      }
      ctl_->consumer_wait.reset_sleepers();  // a dead predecessor's, if any
      ridx_ = static_cast<size_type>(r_ % capacity_);
      cached_write_ = r_;
    }
  }

  static size_type checked_capacity(size_type capacity) {
    if (capacity == 0) detail::throw_bad_capacity("a ring's capacity must be at least 1 element");
    if (capacity > std::numeric_limits<size_type>::max() / sizeof(T))
      detail::throw_too_large("a capacity", capacity, "the largest representable ring",
                              std::numeric_limits<size_type>::max() / sizeof(T));
    return capacity;
  }

  // Relaxed: coherence alone makes a close() that happened before this call visible, and
  // nothing is read through the flag.
  bool is_closed() const noexcept { return ctl_->closed.load(std::memory_order_relaxed) != 0; }

  // --- producer internals (producer thread only)

  // write_open_ also stays set for good in a process attached to a shared ring as its consumer.
  void enter_write() const {
    if (write_open_) [[unlikely]] {
      if (role_ == attached_as::consumer) detail::throw_wrong_role("produce", "consumer");
      detail::throw_grant_outstanding("write");
    }
  }

  void check_reserve(size_type n) const {
    enter_write();
    if (n > capacity_) detail::throw_too_large("a reservation", n, "the ring's capacity", capacity_);
  }

  // A reservation found no room: count it, and nudge a consumer asleep on a water mark with
  // something ready (it returns that, so the two sides never wait on each other). No fence: a
  // consumer that announces itself just after we looked is nudged by our next refusal or sleep.
  void note_refused() noexcept {
    // One writer (this thread): a load and a store, no read-modify-write. Relaxed: a statistic.
    ctl_->refused.store(ctl_->refused.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if constexpr (Wait::enabled) {
      if (ctl_->consumer_wait.has_sleepers() && ctl_->consumer_wait.holding_out()) [[unlikely]] ctl_->consumer_wait.nudge();
    }
  }

  // try_reserve(n) for 0 < n <= capacity_, without the checks and the accounting.
  write_grant reserve_exact(size_type n) {
    const size_type tail = end_ - widx_;  // over mirrored storage, more than any grant
    if (n <= tail) {
      if (fits(n) || (refresh_read(), fits(n))) return open_write(widx_, n, 0);
      return {};
    }
    // Wrap: the data goes to index 0 and the tail is skipped.
    if (fits(tail + n)) return open_write(0, n, tail);
    refresh_read();
    if (fits(tail + n) || w_ == cached_read_) return open_write(0, n, tail);
    return {};
  }

  // try_reserve_up_to(n) for n > 0, without the checks and the accounting.
  write_grant reserve_run(size_type n) {
    run_choice c = choose_run(n);
    if (c.size < n && c.size < capacity_) {
      refresh_read();
      c = choose_run(n);
    }
    if (c.size == 0) return {};
    return c.skip ? open_write(0, c.size, c.skip) : open_write(widx_, c.size, 0);
  }

  // Free elements a grant of `n` contiguous ones needs, as the consumer's notifier measures
  // them (capacity_ - fill): n before the end of the storage, or the tail plus n at the start;
  // if that exceeds the capacity, only an empty ring will do.
  size_type free_needed_for(size_type n) const noexcept {
    const size_type tail = end_ - widx_;  // over mirrored storage, more than any grant
    return n <= tail ? n : std::min(capacity_, tail + n);
  }

  template <class Deadline>
  write_grant wait_reserve(size_type n, const Deadline& deadline) {
    if (is_closed()) return {};
    check_reserve(n);
    if (n == 0) return {};
    write_grant g;
    const bool ok = ctl_->producer_wait.wait_until_ready(
        free_needed_for(n), [&] { return is_closed() || (g = reserve_exact(n)); }, deadline,
        [&] { nudge_consumer(); });
    if (!ok && !g) note_refused();  // timed out
    return g;
  }

  template <class Deadline>
  write_grant wait_reserve_up_to(size_type n, size_type min_free, const Deadline& deadline) {
    if (is_closed()) return {};
    enter_write();
    if (min_free > capacity_) detail::throw_too_large("a water mark", min_free, "the ring's capacity", capacity_);
    if (n == 0) return {};
    const size_type enough = std::max<size_type>(1, std::min(n, min_free));
    write_grant g;
    const bool ok = ctl_->producer_wait.wait_until_ready(
        free_needed_for(enough),
        [&] {
          if (is_closed()) return true;
          g = reserve_run(n);
          if (g.size() >= enough) return true;
          g.discard();  // too short for the water mark: withdraw it (publishes nothing)
          return false;
        },
        deadline, [&] { nudge_consumer(); });
    if (!ok && !is_closed()) g = reserve_run(n);  // timed out: the longest run there is
    if (!g && !is_closed()) note_refused();
    return g;
  }

  // About to sleep for room: a consumer asleep on a water mark must not wait for us.
  void nudge_consumer() noexcept {
    if (ctl_->consumer_wait.has_sleepers()) ctl_->consumer_wait.nudge();
  }

  // Acquire pairs with the consumer's release stores of read: its reads of freed slots happen
  // before our writes into them.
  void refresh_read() noexcept { cached_read_ = ctl_->read.load(std::memory_order_acquire); }

  // Would `span` more elements (data plus any skipped tail) fit, judged by the cached read?
  // `w_ - cached_read_` may exceed capacity_ after an empty-ring wrap; then nothing fits.
  bool fits(size_type span) const noexcept { return w_ + span - cached_read_ <= capacity_; }

  size_type free_slots() const noexcept {
    const std::uint64_t used = w_ - cached_read_;
    return used >= capacity_ ? 0 : static_cast<size_type>(capacity_ - used);
  }

  // Longest contiguous free run, capped at n, judged by the cached read.
  run_choice choose_run(size_type n) const noexcept {
    const size_type tail = end_ - widx_;  // over mirrored storage, more than any grant
    const size_type free = free_slots();
    const size_type at_end = std::min(tail, free);
    // From index 0: everything if the ring is empty, else what is left after the tail.
    const size_type at_start = (w_ == cached_read_) ? capacity_ : (free > tail ? free - tail : 0);
    const size_type want = std::min(n, std::max(at_end, at_start));
    if (at_end >= want) return {want, 0};
    return {want, tail};
  }

  write_grant open_write(size_type index, size_type n, size_type skip) noexcept {
    write_open_ = true;
    return write_grant(this, std::span<T>(data_ + index, n), skip);
  }

  // Advances the producer's cursor by k elements written at widx_ (wrapping) and publishes them.
  void publish_write(size_type k) noexcept {
    w_ += k;
    widx_ += k;
    if (widx_ >= capacity_) widx_ -= capacity_;
    // A local copy of ctl_: the compiler treats every atomic operation as touching all memory
    // it cannot see is private, so it would reload the member after each store below.
    control& c = *ctl_;
    // Release pairs with the consumer's acquire in refresh_write(): the elements (and skip_index)
    // written before this store are visible to it once it sees the new cursor.
    c.write.store(w_, std::memory_order_release);
    // One writer: a load and a store. Relaxed: a statistic, on our own line.
    c.committed.store(c.committed.load(std::memory_order_relaxed) + k, std::memory_order_relaxed);
    if constexpr (Wait::enabled) {
      // Pairs with the consumer's heavy_fence() in wait_until_ready(): see detail/wait.hpp.
      c.consumer_wait.notify_after([this] { wake_consumer(); }, c.write);
    }
  }

  // The consumer sleeps: wake it if what is committed reaches its water mark. Relaxed load of
  // read: the fences of notify_after() order it after the consumer's last store of read before
  // it slept (detail/wait.hpp); an older value would only overstate what is ready, waking the
  // consumer early to re-check.
  [[gnu::noinline]] void wake_consumer() noexcept {
    ctl_->consumer_wait.wake_if_wanted(w_ - ctl_->read.load(std::memory_order_relaxed));
  }

  void commit_write(size_type skip, size_type k) noexcept {
    write_open_ = false;
    if (k == 0) return;  // publishes nothing, skips nothing
    if (skip != 0) {
      // Relaxed: ordered before the consumer's view by the release of write in publish_write(),
      // and after the consumer's clearing of the previous skip by the acquire of read that
      // showed it passed (refresh_read()).
      ctl_->skip_index.store(widx_, std::memory_order_relaxed);
      w_ += skip;
      widx_ = 0;
    }
    publish_write(k);
  }

  void abandon_write() noexcept { write_open_ = false; }

  // --- consumer internals (consumer thread only)

  // read_open_ also stays set for good in a process attached to a shared ring as its producer.
  void enter_read() const {
    if (read_open_) [[unlikely]] {
      if (role_ == attached_as::producer) detail::throw_wrong_role("consume", "producer");
      detail::throw_grant_outstanding("read");
    }
  }

  read_grant read_contiguous() {
    const regions r = readable_regions();
    if (r.first == 0) return {};
    read_open_ = true;
    return read_grant(this, std::span<const T>(data_ + ridx_, r.first));
  }

  template <class Deadline>
  read_grant wait_read(size_type min_ready, const Deadline& deadline) {
    enter_read();
    if (min_ready > capacity_) detail::throw_too_large("a water mark", min_ready, "the ring's capacity", capacity_);
    const std::uint64_t enough = std::max<size_type>(1, min_ready);
    const std::uint32_t nudged = ctl_->consumer_wait.nudges();
    const detail::holding_out_while holding(ctl_->consumer_wait, enough > 1);
    (void)ctl_->consumer_wait.wait_until_ready(
        enough,
        [&] {
          // Seq_cst: pairs with close()'s store (see wait_slot::wake_all).
          if (ctl_->closed.load(std::memory_order_seq_cst) != 0) return true;
          refresh_write();
          std::uint64_t ready = cached_write_ - r_;
          // A skipped tail covered by what we loaded is not data (as in readable_regions()).
          if (cached_skip_index_ >= ridx_ && cached_skip_index_ - ridx_ < ready) ready -= capacity_ - cached_skip_index_;
          // Short of the water mark, still go if the producer is stuck: asleep (a load after our
          // heavy fence; it loads our sleeper count after its own) or refused since we began.
          return ready >= enough ||
                 (ready != 0 && (ctl_->producer_wait.has_sleepers() || ctl_->consumer_wait.nudges() != nudged));
        },
        deadline, [] {});
    return read_contiguous();
  }

  void refresh_write() {
    // Acquire pairs with the producer's release in publish_write().
    cached_write_ = ctl_->write.load(std::memory_order_acquire);
    // The most the consumer ever found waiting (a statistic; one writer: load and store).
    const std::uint64_t fill = std::min<std::uint64_t>(cached_write_ - r_, capacity_);
    if (fill > ctl_->high_water.load(std::memory_order_relaxed)) ctl_->high_water.store(fill, std::memory_order_relaxed);
    // Relaxed: set before that release. A newer value than the one it covered names a skip at or
    // beyond cached_write_ (in the lap the read position is in), so it never matches a readable
    // position: see readable_regions().
    const std::uint64_t skip = ctl_->skip_index.load(std::memory_order_relaxed);
    // A correct producer skips a tail inside the storage, and never over mirrored storage. Only
    // a corrupt or hostile peer of a shared ring fails this.
    if (skip != 0 && (skip >= capacity_ || end_ != capacity_)) [[unlikely]]
      throw_corrupt(detail::concat({"the producer's skipped tail starts at index ", skip}));
    cached_skip_index_ = skip == 0 ? no_skip : static_cast<size_type>(skip);
  }

  // The read position stands on a skipped tail that cached_write_ covers: go to the start of
  // the next lap. The caller then releases read, freeing the tail for the producer. A correct
  // producer publishes a skip with at least one element after it (commit_write()); checked
  // first, so that a corrupt peer's cursors make us publish nothing.
  void pass_skip() {
    if (cached_write_ - r_ <= capacity_ - ridx_) [[unlikely]]
      throw_corrupt(detail::concat({"the producer's cursor ends inside its own skipped tail, ", cached_write_ - r_,
                                   " elements ahead of the consumer's"}));
    jump_skip();
  }
  void jump_skip() noexcept {
    r_ += capacity_ - ridx_;
    ridx_ = 0;
    clear_skip();
  }

  // We have passed the pending skip (r_ already counts it). Relaxed: the release of read that
  // follows orders it before the producer's next skip_index store, which needs a read beyond
  // this skip first. `passing` records the read position about to be published first, so that a
  // consumer process that dies between the two stores is succeeded by one that completes the
  // release (attach()) instead of reading the skipped tail as data.
  void clear_skip() noexcept {
    cached_skip_index_ = no_skip;
    ctl_->passing.store(r_, std::memory_order_relaxed);
    ctl_->skip_index.store(0, std::memory_order_relaxed);
  }

  // Everything committed now, as (first, second) runs, after jumping over a skip at the read
  // position. Reloads write every time: a read never reports less than is there.
  regions readable_regions() {
    refresh_write();
    if (r_ == cached_write_) return {0, 0, 0};
    // A pending skip lies in the read position's lap, at or after it. A newer one (set after the
    // write we loaded) lies at or beyond cached_write_ > r_, so neither test below can match it.
    if (ridx_ == cached_skip_index_) {
      pass_skip();
      publish_read(0);  // the producer may reuse the skipped tail
    }
    const std::uint64_t avail = cached_write_ - r_;
    size_type first = static_cast<size_type>(std::min<std::uint64_t>(avail, end_ - ridx_));
    size_type gap = 0;
    if (cached_skip_index_ > ridx_ && cached_skip_index_ - ridx_ < first) {  // a skip ahead
      first = cached_skip_index_ - ridx_;
      gap = capacity_ - cached_skip_index_;
    }
    const std::uint64_t second = avail - first - gap;
    // What a correct producer can publish: data from index 0 never reaches the read position,
    // and no view exceeds the capacity. Only a corrupt or hostile peer of a shared ring fails
    // this; the check keeps every view inside the storage and free of overlap.
    if (second > ridx_ || first + second > capacity_) [[unlikely]]
      throw_corrupt(detail::concat({"the producer's cursor is ", avail, " elements ahead of the consumer's"}));
    return {first, static_cast<size_type>(second), gap};
  }

  // Frees `first` elements from ridx_ and then `second` from index 0 (after `gap` skipped).
  void release_read(size_type first, size_type second, size_type gap) noexcept {
    read_open_ = false;
    if (first + second == 0) return;
    if (second == 0) {
      r_ += first;
      ridx_ += first;
      if (ridx_ >= capacity_) ridx_ -= capacity_;  // over mirrored storage, first may cross the seam
    } else {
      r_ += first + gap + second;
      ridx_ = second;
      if (gap != 0) clear_skip();  // passed it (with no gap there was none to pass)
    }
    publish_read(first + second);
  }

  // Publishes r_, counts `released` elements freed by it, and wakes a producer asleep for room
  // if it now has enough.
  void publish_read(size_type released) noexcept {
    control& c = *ctl_;  // a local copy, as in publish_write()
    // Release pairs with the producer's acquire in refresh_read(): our reads of the freed slots
    // happen before it overwrites them.
    c.read.store(r_, std::memory_order_release);
    // One writer: a load and a store. Relaxed: a statistic, on our own line.
    if (released != 0) c.released.store(c.released.load(std::memory_order_relaxed) + released, std::memory_order_relaxed);
    if constexpr (Wait::enabled) {
      // Pairs with the producer's heavy_fence() in wait_until_ready(): see detail/wait.hpp.
      c.producer_wait.notify_after([this] { wake_producer(); }, c.read);
    }
  }

  // The producer sleeps: wake it if the free space reaches its need. Relaxed load of write: the
  // fences of notify_after() order it after the producer's last store of write before it slept;
  // an older value would only overstate the free space, waking the producer early to re-check.
  [[gnu::noinline]] void wake_producer() noexcept {
    const std::uint64_t used = ctl_->write.load(std::memory_order_relaxed) - r_;
    ctl_->producer_wait.wake_if_wanted(used >= capacity_ ? 0 : capacity_ - used);
  }

  void abandon_read() noexcept { read_open_ = false; }

  // --- producer-private: written and read only by the producer.
  alignas(detail::cache_line) std::uint64_t w_ = 0;  // == write (our own copy, no atomic load)
  size_type widx_ = 0;                               // storage index of w_, in [0, capacity_)
  std::uint64_t cached_read_ = 0;                    // <= read: a possibly stale copy
  bool write_open_ = false;                          // a write grant is outstanding

  // --- consumer-private: written and read only by the consumer.
  alignas(detail::cache_line) std::uint64_t r_ = 0;  // == read
  size_type ridx_ = 0;                               // storage index of r_, in [0, capacity_)
  std::uint64_t cached_write_ = 0;                   // <= write: a possibly stale copy
  size_type cached_skip_index_ = no_skip;            // skip_index as of it; no_skip for none
  bool read_open_ = false;                           // a read grant is outstanding

  // --- constant after construction, read by both.
  alignas(detail::cache_line) control* ctl_ = &own_;  // own_, or a control block in shared memory
  T* data_ = nullptr;
  size_type capacity_;
  // One past the last index a contiguous view may reach: capacity_, or 2 * capacity_ over
  // mirrored storage (where index i + capacity_ is index i again).
  size_type end_ = 0;
  bool owned_ = false;
  mirrored_storage mirror_;  // the mapping, when the ring is built over mirrored storage

  // --- a shared ring's segment, and the role this process holds in it
  detail::segment segment_;
  enum class attached_as : std::uint8_t { both, producer, consumer } role_ = attached_as::both;
  detail::process_slot* role_slot_ = nullptr;

  // --- the shared part of an in-process ring
  control own_{use_asymmetric()};
};

// ==================================================================== grants

/// A producer's view of exactly size() contiguous free elements. Move-only. commit(k) publishes
/// its first k elements; destroying it without commit publishes nothing. Contextually false
/// when empty (the reservation could not be satisfied now).
template <class T, class Wait>
class [[nodiscard]] spsc_ring<T, Wait>::write_grant {
 public:
  /// An empty grant.
  write_grant() noexcept = default;
  /// Takes over `other`'s reservation; `other` is left empty.
  write_grant(write_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), span_(std::exchange(other.span_, {})),
        skip_(other.skip_) {}
  /// Withdraws this grant's reservation (publishing nothing), then takes over `other`'s;
  /// `other` is left empty.
  write_grant& operator=(write_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      span_ = std::exchange(other.span_, {});
      skip_ = other.skip_;
    }
    return *this;
  }
  /// Withdraws the reservation if it was not committed: publishes nothing.
  ~write_grant() { drop(); }

  /// The granted elements, to be written in place; empty for an empty grant.
  [[nodiscard]] std::span<T> span() const noexcept { return span_; }
  /// The first granted element (span().data()).
  [[nodiscard]] T* data() const noexcept { return span_.data(); }
  /// Number of granted elements; 0 for an empty grant.
  [[nodiscard]] size_type size() const noexcept { return span_.size(); }
  /// True if the grant holds no elements (the reservation could not be satisfied, or the grant
  /// was committed, withdrawn or moved from).
  [[nodiscard]] bool empty() const noexcept { return span_.empty(); }
  /// True while the grant holds elements: !empty().
  explicit operator bool() const noexcept { return !span_.empty(); }
  /// The first granted element, for range-for.
  T* begin() const noexcept { return span_.data(); }
  /// One past the last granted element.
  T* end() const noexcept { return span_.data() + span_.size(); }
  /// Unchecked, as std::span's.
  T& operator[](size_type i) const noexcept { return span_[i]; }

  /// Publishes the first k elements and ends the grant (k == 0 publishes nothing).
  /// Throws std::out_of_range if k > size(); the grant is unchanged then.
  void commit(size_type k) {
    if (k > span_.size()) detail::throw_beyond_grant("commit", k, span_.size());
    if (ring_) std::exchange(ring_, nullptr)->commit_write(skip_, k);
    span_ = {};
  }
  /// Publishes every element and ends the grant.
  void commit() { commit(span_.size()); }
  /// Withdraws the grant: publishes nothing. Same as destroying it.
  void discard() noexcept { drop(); }

 private:
  friend class spsc_ring;
  write_grant(spsc_ring* ring, std::span<T> span, size_type skip) noexcept
      : ring_(ring), span_(span), skip_(skip) {}
  void drop() noexcept {
    if (ring_) std::exchange(ring_, nullptr)->abandon_write();
    span_ = {};
  }

  spsc_ring* ring_ = nullptr;
  std::span<T> span_;
  size_type skip_ = 0;  // tail skipped before span_ (the grant wrapped), or 0
};

/// A consumer's view of contiguous committed elements. Move-only. release(k) frees the first k;
/// destroying it without release frees nothing (a peek). Contextually false when empty.
template <class T, class Wait>
class [[nodiscard]] spsc_ring<T, Wait>::read_grant {
 public:
  /// An empty grant.
  read_grant() noexcept = default;
  /// Takes over `other`'s view; `other` is left empty.
  read_grant(read_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), span_(std::exchange(other.span_, {})) {}
  /// Drops this grant's view (freeing nothing), then takes over `other`'s; `other` is left
  /// empty.
  read_grant& operator=(read_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      span_ = std::exchange(other.span_, {});
    }
    return *this;
  }
  /// Ends the grant without freeing anything: the elements are read again by the next read.
  ~read_grant() { drop(); }

  /// The committed elements, read in place; empty for an empty grant.
  [[nodiscard]] std::span<const T> span() const noexcept { return span_; }
  /// The first element (span().data()).
  [[nodiscard]] const T* data() const noexcept { return span_.data(); }
  /// Number of elements in view; 0 for an empty grant.
  [[nodiscard]] size_type size() const noexcept { return span_.size(); }
  /// True if the grant holds no elements (nothing was committed, or the grant was released,
  /// dropped or moved from).
  [[nodiscard]] bool empty() const noexcept { return span_.empty(); }
  /// True while the grant holds elements: !empty().
  explicit operator bool() const noexcept { return !span_.empty(); }
  /// The first element, for range-for.
  const T* begin() const noexcept { return span_.data(); }
  /// One past the last element.
  const T* end() const noexcept { return span_.data() + span_.size(); }
  /// Unchecked, as std::span's.
  const T& operator[](size_type i) const noexcept { return span_[i]; }

  /// Frees the first k elements and ends the grant (k == 0 frees nothing).
  /// Throws std::out_of_range if k > size(); the grant is unchanged then.
  void release(size_type k) {
    if (k > span_.size()) detail::throw_beyond_grant("release", k, span_.size());
    if (ring_) std::exchange(ring_, nullptr)->release_read(k, 0, 0);
    span_ = {};
  }
  /// Frees every element and ends the grant.
  void release() { release(span_.size()); }

 private:
  friend class spsc_ring;
  read_grant(spsc_ring* ring, std::span<const T> span) noexcept : ring_(ring), span_(span) {}
  void drop() noexcept {
    if (ring_) std::exchange(ring_, nullptr)->abandon_read();
    span_ = {};
  }

  spsc_ring* ring_ = nullptr;
  std::span<const T> span_;
};

/// A producer's view of exactly size() free elements as two regions: first() at the write
/// position, then second() from the start of the storage (empty when no wrap is needed).
/// commit(k) publishes the first k elements of first() followed by second(). Move-only.
template <class T, class Wait>
class [[nodiscard]] spsc_ring<T, Wait>::split_write_grant {
 public:
  /// An empty grant.
  split_write_grant() noexcept = default;
  /// Takes over `other`'s reservation; `other` is left empty.
  split_write_grant(split_write_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), first_(std::exchange(other.first_, {})),
        second_(std::exchange(other.second_, {})) {}
  /// Withdraws this grant's reservation (publishing nothing), then takes over `other`'s;
  /// `other` is left empty.
  split_write_grant& operator=(split_write_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      first_ = std::exchange(other.first_, {});
      second_ = std::exchange(other.second_, {});
    }
    return *this;
  }
  /// Withdraws the reservation if it was not committed: publishes nothing.
  ~split_write_grant() { drop(); }

  /// The region at the write position, never empty in a non-empty grant.
  [[nodiscard]] std::span<T> first() const noexcept { return first_; }
  /// The region from the start of the storage that follows first(); empty when no wrap is
  /// needed.
  [[nodiscard]] std::span<T> second() const noexcept { return second_; }
  /// Elements in both regions together; 0 for an empty grant.
  [[nodiscard]] size_type size() const noexcept { return first_.size() + second_.size(); }
  /// True if the grant holds no elements (the reservation could not be satisfied, or the grant
  /// was committed, withdrawn or moved from).
  [[nodiscard]] bool empty() const noexcept { return first_.empty(); }
  /// True while the grant holds elements: !empty().
  explicit operator bool() const noexcept { return !first_.empty(); }

  /// Publishes the first k elements (first() then second()) and ends the grant.
  /// Throws std::out_of_range if k > size(); the grant is unchanged then.
  void commit(size_type k) {
    if (k > size()) detail::throw_beyond_grant("commit", k, size());
    if (ring_) {
      spsc_ring* ring = std::exchange(ring_, nullptr);
      ring->write_open_ = false;
      if (k != 0) ring->publish_write(k);
    }
    first_ = second_ = {};
  }
  /// Publishes every element of both regions and ends the grant.
  void commit() { commit(size()); }
  /// Withdraws the grant: publishes nothing. Same as destroying it.
  void discard() noexcept { drop(); }

 private:
  friend class spsc_ring;
  split_write_grant(spsc_ring* ring, std::span<T> first, std::span<T> second) noexcept
      : ring_(ring), first_(first), second_(second) {}
  void drop() noexcept {
    if (ring_) std::exchange(ring_, nullptr)->abandon_write();
    first_ = second_ = {};
  }

  spsc_ring* ring_ = nullptr;
  std::span<T> first_, second_;
};

/// A consumer's view of everything committed as two regions: first() at the read position, then
/// second() from the start of the storage (empty when the data does not wrap). release(k) frees
/// the first k elements in that order. Move-only; dropping it frees nothing.
template <class T, class Wait>
class [[nodiscard]] spsc_ring<T, Wait>::split_read_grant {
 public:
  /// An empty grant.
  split_read_grant() noexcept = default;
  /// Takes over `other`'s view; `other` is left empty.
  split_read_grant(split_read_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), first_(std::exchange(other.first_, {})),
        second_(std::exchange(other.second_, {})), gap_(other.gap_) {}
  /// Drops this grant's view (freeing nothing), then takes over `other`'s; `other` is left
  /// empty.
  split_read_grant& operator=(split_read_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      first_ = std::exchange(other.first_, {});
      second_ = std::exchange(other.second_, {});
      gap_ = other.gap_;
    }
    return *this;
  }
  /// Ends the grant without freeing anything: the elements are read again by the next read.
  ~split_read_grant() { drop(); }

  /// The region at the read position, never empty in a non-empty grant.
  [[nodiscard]] std::span<const T> first() const noexcept { return first_; }
  /// The committed elements from the start of the storage that follow first(); empty when the
  /// data does not wrap.
  [[nodiscard]] std::span<const T> second() const noexcept { return second_; }
  /// Elements in both regions together; 0 for an empty grant.
  [[nodiscard]] size_type size() const noexcept { return first_.size() + second_.size(); }
  /// True if the grant holds no elements (nothing was committed, or the grant was released,
  /// dropped or moved from).
  [[nodiscard]] bool empty() const noexcept { return first_.empty(); }
  /// True while the grant holds elements: !empty().
  explicit operator bool() const noexcept { return !first_.empty(); }

  /// Frees the first k elements (first() then second()) and ends the grant.
  /// Throws std::out_of_range if k > size(); the grant is unchanged then.
  void release(size_type k) {
    if (k > size()) detail::throw_beyond_grant("release", k, size());
    if (ring_) {
      const size_type in_first = std::min(k, first_.size());
      std::exchange(ring_, nullptr)->release_read(in_first, k - in_first, gap_);
    }
    first_ = second_ = {};
  }
  /// Frees every element of both regions and ends the grant.
  void release() { release(size()); }

 private:
  friend class spsc_ring;
  split_read_grant(spsc_ring* ring, std::span<const T> first, std::span<const T> second,
                   size_type gap) noexcept
      : ring_(ring), first_(first), second_(second), gap_(gap) {}
  void drop() noexcept {
    if (ring_) std::exchange(ring_, nullptr)->abandon_read();
    first_ = second_ = {};
  }

  spsc_ring* ring_ = nullptr;
  std::span<const T> first_, second_;
  size_type gap_ = 0;  // skipped tail between first_ and second_
};

}  // namespace sluice
