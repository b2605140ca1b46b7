// sluice::spsc_ring<T>: a lock-free single-producer/single-consumer ring that hands out
// contiguous regions of its storage as views.
//
// The algorithm
// -------------
// Two 64-bit cursors only grow: `write_` counts elements the producer has published, `read_`
// counts elements the consumer has given back. `write_ - read_` is what the consumer may still
// read (plus, see below, at most one skipped tail), so all `capacity()` slots are usable and any
// capacity >= 1 works, not only powers of two. Each side also tracks its storage index beside
// its cursor (`widx_`, `ridx_`), so cursors may wrap past 2^64 and no modulo runs on any path.
//
// A write grant is contiguous. When the free run at the end of the storage is too short but the
// start of the storage has room, the grant wraps to index 0 and the tail it leaves behind is
// *skipped* (the bip-buffer trick): on commit the producer stores the storage index where the
// skip starts in `skip_index_` (never 0: a skip starts inside a lap) and advances `write_` past
// tail and data together. The consumer, on reaching that index, jumps to the next lap instead of
// reading the tail, and clears `skip_index_` back to 0 ("none").
//
// At most one skip is pending at a time: to wrap again the producer needs the slot right after
// the previous lap boundary, which the consumer frees only after it has passed (and cleared) the
// previous skip. And the consumer is always in the lap of the pending skip: the producer wraps
// only when the consumer stands within one capacity behind the skip's position, so within that
// lap the index names exactly one position. Storage indexes, unlike positions, never alias, so
// this stays exact however far the 64-bit cursors run.
//
// An empty ring grants any n <= capacity() wherever its cursors stand: when the ring is empty
// (seen with a fresh load of `read_`) the whole storage is free, so a grant may wrap to index 0
// even if the skipped tail plus the data exceed the capacity. Until the consumer passes that
// skip, `write_ - read_` may exceed capacity(); every free-space computation treats that as
// "no room", which is exactly right: the only free slots then are the ones the skip covers.
//
// Ordering
// --------
// Producer: writes elements, then `write_.store(release)`. Consumer: `write_.load(acquire)`,
// then reads elements; so every element read was fully written. Symmetrically the consumer
// finishes reading, then `read_.store(release)`; the producer's `read_.load(acquire)` orders its
// later writes into those slots after the reads. `skip_index_` is set (relaxed) before the
// release of `write_` that covers it and loaded (relaxed) after the acquire of `write_`; the
// consumer clears it (relaxed) before the release of `read_` that passes the skip, and the
// producer sets it again only after acquiring that `read_`.
//
// Each side keeps a private copy of the other side's cursor and reloads it only when the copy
// says "not enough": `try_push`, `try_pop` and `try_reserve` stay off the other side's cache line
// in the common case. `try_read` and `try_reserve_up_to` always report everything that is there.
//
// Progress: every call is wait-free (no loops, no locks, no system call) once the ring is
// constructed, and no successful call allocates (a throwing one builds its message).
#pragma once

#include <sluice/detail/config.hpp>
#include <sluice/detail/errors.hpp>

#include <algorithm>
#include <atomic>
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
/// itself synchronises). Observers may be called from any thread. The ring must outlive its
/// grants.
template <class T = std::byte>
class spsc_ring {
  static_assert(std::is_trivially_copyable_v<T>, "spsc_ring<T> needs a trivially copyable T");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>, "spsc_ring<T> needs an unqualified T");

 public:
  using value_type = T;
  using size_type = std::size_t;

  class write_grant;
  class read_grant;
  class split_write_grant;
  class split_read_grant;

  /// Owns heap storage for `capacity` elements, aligned to 128 bytes (or alignof(T) if larger).
  /// Throws std::invalid_argument if capacity is 0 and std::length_error if capacity * sizeof(T)
  /// does not fit in a size_t; both before allocating.
  explicit spsc_ring(size_type capacity) : capacity_(checked_capacity(capacity)) {
    void* raw = ::operator new(capacity_ * sizeof(T), storage_alignment);
    std::memset(raw, 0, capacity_ * sizeof(T));
    data_ = static_cast<T*>(raw);
    owned_ = true;
  }

  /// Uses the caller's storage (which must outlive the ring); allocates nothing.
  /// Throws std::invalid_argument if the span is empty.
  explicit spsc_ring(std::span<T> storage)
      : data_(storage.data()), capacity_(storage.empty() ? checked_capacity(0) : storage.size()) {}

  spsc_ring(const spsc_ring&) = delete;
  spsc_ring& operator=(const spsc_ring&) = delete;

  ~spsc_ring() {
    if (owned_) ::operator delete(static_cast<void*>(data_), storage_alignment);
  }

  /// Number of elements the ring holds when full. Any thread.
  [[nodiscard]] size_type capacity() const noexcept { return capacity_; }

  /// Elements committed and not yet released, clamped to [0, capacity()]. Any thread.
  /// Stale by nature: from the producer it may over-count (the consumer may have released
  /// more since), from the consumer it may under-count (the producer may have committed more).
  /// A tail skipped by a wrapped grant counts as occupied until the consumer passes it.
  [[nodiscard]] size_type size_approx() const noexcept {
    // Acquire pairs with the consumer's release of read_, which it made after acquiring a
    // write_ >= that value: so the write_ loaded next is never behind the read_ loaded here.
    const std::uint64_t r = read_.load(std::memory_order_acquire);
    // Relaxed: needs no pair of its own; the acquire above already makes it at least r.
    const std::uint64_t w = write_.load(std::memory_order_relaxed);
    return static_cast<size_type>(std::min<std::uint64_t>(w - r, capacity_));
  }

  // ---------------------------------------------------------------- producer

  /// Producer. A grant of exactly `n` contiguous elements, or an empty grant if that much
  /// contiguous space is not free now. Wraps to the start of the storage when the end is too
  /// short (the skipped tail is never shown to the consumer). An empty ring grants any
  /// n <= capacity(). n == 0 returns an empty grant.
  /// Throws std::length_error if n > capacity(), std::logic_error if a write grant is outstanding.
  [[nodiscard]] write_grant try_reserve(size_type n) {
    enter_write();
    if (n > capacity_) detail::throw_too_large("a reservation", n, "the ring's capacity", capacity_);
    if (n == 0) return {};
    const size_type tail = capacity_ - widx_;
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

  /// Producer. A grant of the longest contiguous free run, at most `n` elements (n may exceed
  /// capacity()), or an empty grant if nothing is free now or n == 0. Never reports less than is
  /// free at the time of the call. Throws std::logic_error if a write grant is outstanding.
  [[nodiscard]] write_grant try_reserve_up_to(size_type n) {
    enter_write();
    if (n == 0) return {};
    run_choice c = choose_run(n);
    if (c.size < n && c.size < capacity_) {
      refresh_read();
      c = choose_run(n);
    }
    if (c.size == 0) return {};
    return c.skip ? open_write(0, c.size, c.skip) : open_write(widx_, c.size, 0);
  }

  /// Producer. Exactly `n` free elements as up to two regions (the second starts at index 0),
  /// for scatter/gather writers (readv, recvmmsg) that accept a split; empty if fewer than n are
  /// free now or n == 0. Throws as try_reserve().
  [[nodiscard]] split_write_grant try_reserve_split(size_type n) {
    enter_write();
    if (n > capacity_) detail::throw_too_large("a reservation", n, "the ring's capacity", capacity_);
    if (n == 0 || !(fits(n) || (refresh_read(), fits(n)))) return {};
    write_open_ = true;
    const size_type first = std::min(n, capacity_ - widx_);
    return split_write_grant(this, std::span<T>(data_ + widx_, first), std::span<T>(data_, n - first));
  }

  /// Producer. Copies as many elements of `src` as are free now (across the wrap point) and
  /// publishes them; returns the count. Throws std::logic_error if a write grant is outstanding.
  size_type write_some(std::span<const T> src) {
    enter_write();
    size_type n = std::min(src.size(), free_slots());
    if (n < src.size()) {
      refresh_read();
      n = std::min(src.size(), free_slots());
    }
    if (n == 0) return 0;
    const size_type first = std::min(n, capacity_ - widx_);
    std::memcpy(data_ + widx_, src.data(), first * sizeof(T));  // n != 0: src.data() is valid
    if (n != first) std::memcpy(data_, src.data() + first, (n - first) * sizeof(T));
    publish_write(n);
    return n;
  }

  /// Producer. Appends one element; false if the ring is full now.
  /// Throws std::logic_error if a write grant is outstanding.
  bool try_push(const T& value) {
    enter_write();
    if (w_ - cached_read_ >= capacity_) {
      refresh_read();
      if (w_ - cached_read_ >= capacity_) return false;
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
    const regions r = readable_regions();
    if (r.first == 0) return {};
    read_open_ = true;
    return read_grant(this, std::span<const T>(data_ + ridx_, r.first));
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
    if (ridx_ == cached_skip_index_) jump_skip();
    std::optional<T> value(data_[ridx_]);
    ++r_;
    if (++ridx_ == capacity_) ridx_ = 0;
    // Release pairs with the producer's acquire in refresh_read(): our read of the slot happens
    // before it may overwrite it.
    read_.store(r_, std::memory_order_release);
    return value;
  }

 private:
  friend struct detail::test_access;

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

  static size_type checked_capacity(size_type capacity) {
    if (capacity == 0) detail::throw_bad_capacity("a ring's capacity must be at least 1 element");
    if (capacity > std::numeric_limits<size_type>::max() / sizeof(T))
      detail::throw_too_large("a capacity", capacity, "the largest representable ring",
                              std::numeric_limits<size_type>::max() / sizeof(T));
    return capacity;
  }

  // --- producer internals (producer thread only)

  void enter_write() const {
    if (write_open_) detail::throw_grant_outstanding("write");
  }

  // Acquire pairs with the consumer's release stores of read_: its reads of freed slots happen
  // before our writes into them.
  void refresh_read() noexcept { cached_read_ = read_.load(std::memory_order_acquire); }

  // Would `span` more elements (data plus any skipped tail) fit, judged by the cached read_?
  // `w_ - cached_read_` may exceed capacity_ after an empty-ring wrap; then nothing fits.
  bool fits(size_type span) const noexcept { return w_ + span - cached_read_ <= capacity_; }

  size_type free_slots() const noexcept {
    const std::uint64_t used = w_ - cached_read_;
    return used >= capacity_ ? 0 : static_cast<size_type>(capacity_ - used);
  }

  // Longest contiguous free run, capped at n, judged by the cached read_.
  run_choice choose_run(size_type n) const noexcept {
    const size_type tail = capacity_ - widx_;
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
    // Release pairs with the consumer's acquire in refresh_write(): the elements (and skip_index_)
    // written before this store are visible to it once it sees the new cursor.
    write_.store(w_, std::memory_order_release);
  }

  void commit_write(size_type skip, size_type k) noexcept {
    write_open_ = false;
    if (k == 0) return;  // publishes nothing, skips nothing
    if (skip != 0) {
      // Relaxed: ordered before the consumer's view by the release of write_ in publish_write(),
      // and after the consumer's clearing of the previous skip by the acquire of read_ that
      // showed it passed (refresh_read()).
      skip_index_.store(widx_, std::memory_order_relaxed);
      w_ += skip;
      widx_ = 0;
    }
    publish_write(k);
  }

  void abandon_write() noexcept { write_open_ = false; }

  // --- consumer internals (consumer thread only)

  void enter_read() const {
    if (read_open_) detail::throw_grant_outstanding("read");
  }

  void refresh_write() noexcept {
    // Acquire pairs with the producer's release in publish_write().
    cached_write_ = write_.load(std::memory_order_acquire);
    // Relaxed: set before that release. A newer value than the one it covered names a skip at or
    // beyond cached_write_ (in the lap the read position is in), so it never matches a readable
    // position: see readable_regions().
    const size_type skip = skip_index_.load(std::memory_order_relaxed);
    cached_skip_index_ = skip == 0 ? no_skip : skip;
  }

  // The read position stands on a skipped tail: go to the start of the next lap. The caller
  // then releases read_, freeing the tail for the producer.
  void jump_skip() noexcept {
    r_ += capacity_ - ridx_;
    ridx_ = 0;
    clear_skip();
  }

  // We have passed the pending skip. Relaxed: the release of read_ that follows orders it before
  // the producer's next skip_index_ store, which needs a read_ beyond this skip first.
  void clear_skip() noexcept {
    cached_skip_index_ = no_skip;
    skip_index_.store(0, std::memory_order_relaxed);
  }

  // Everything committed now, as (first, second) runs, after jumping over a skip at the read
  // position. Reloads write_ every time: a read never reports less than is there.
  regions readable_regions() noexcept {
    refresh_write();
    if (r_ == cached_write_) return {0, 0, 0};
    // A pending skip lies in the read position's lap, at or after it. A newer one (set after the
    // write_ we loaded) lies at or beyond cached_write_ > r_, so neither test below can match it.
    if (ridx_ == cached_skip_index_) {
      jump_skip();
      // Release pairs with refresh_read(): the producer may reuse the skipped tail.
      read_.store(r_, std::memory_order_release);
    }
    const std::uint64_t avail = cached_write_ - r_;
    size_type first = static_cast<size_type>(std::min<std::uint64_t>(avail, capacity_ - ridx_));
    size_type gap = 0;
    if (cached_skip_index_ > ridx_ && cached_skip_index_ - ridx_ < first) {  // a skip ahead
      first = cached_skip_index_ - ridx_;
      gap = capacity_ - cached_skip_index_;
    }
    return {first, static_cast<size_type>(avail - first - gap), gap};
  }

  // Frees `first` elements from ridx_ and then `second` from index 0 (after `gap` skipped).
  void release_read(size_type first, size_type second, size_type gap) noexcept {
    read_open_ = false;
    if (first + second == 0) return;
    if (second == 0) {
      r_ += first;
      ridx_ += first;
      if (ridx_ == capacity_) ridx_ = 0;
    } else {
      r_ += first + gap + second;
      ridx_ = second;
      if (gap != 0) clear_skip();  // passed it (with no gap there was none to pass)
    }
    // Release pairs with refresh_read(): our reads of these slots happen before the producer
    // overwrites them.
    read_.store(r_, std::memory_order_release);
  }

  void abandon_read() noexcept { read_open_ = false; }

  // --- shared cursors. Each on its own line: written by one side, read by the other.

  // Elements the consumer has given back. Written by the consumer, read by the producer.
  alignas(detail::cache_line) std::atomic<std::uint64_t> read_{0};

  // Elements (and skipped tails) the producer has published. Written by the producer, read by
  // the consumer.
  alignas(detail::cache_line) std::atomic<std::uint64_t> write_{0};
  // Storage index where the pending skipped tail starts, in [1, capacity_), or 0 for none. Set by
  // the producer when it commits a wrapped grant, cleared by the consumer when it passes the
  // skip; never both at once (see the essay). Shares write_'s line: it changes once a lap at most.
  std::atomic<size_type> skip_index_{0};

  // --- producer-private: written and read only by the producer.
  alignas(detail::cache_line) std::uint64_t w_ = 0;  // == write_ (our own copy, no atomic load)
  size_type widx_ = 0;                               // storage index of w_, in [0, capacity_)
  std::uint64_t cached_read_ = 0;                    // <= read_: a possibly stale copy
  bool write_open_ = false;                          // a write grant is outstanding

  // --- consumer-private: written and read only by the consumer.
  alignas(detail::cache_line) std::uint64_t r_ = 0;  // == read_
  size_type ridx_ = 0;                               // storage index of r_, in [0, capacity_)
  std::uint64_t cached_write_ = 0;                   // <= write_: a possibly stale copy
  size_type cached_skip_index_ = no_skip;            // skip_index_ as of it; no_skip for none
  bool read_open_ = false;                           // a read grant is outstanding

  // --- constant after construction, read by both.
  alignas(detail::cache_line) T* data_ = nullptr;
  size_type capacity_;
  bool owned_ = false;
};

// ==================================================================== grants

/// A producer's view of exactly size() contiguous free elements. Move-only. commit(k) publishes
/// its first k elements; destroying it without commit publishes nothing. Contextually false
/// when empty (the reservation could not be satisfied now).
template <class T>
class [[nodiscard]] spsc_ring<T>::write_grant {
 public:
  write_grant() noexcept = default;
  write_grant(write_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), span_(std::exchange(other.span_, {})),
        skip_(other.skip_) {}
  write_grant& operator=(write_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      span_ = std::exchange(other.span_, {});
      skip_ = other.skip_;
    }
    return *this;
  }
  ~write_grant() { drop(); }

  [[nodiscard]] std::span<T> span() const noexcept { return span_; }
  [[nodiscard]] T* data() const noexcept { return span_.data(); }
  [[nodiscard]] size_type size() const noexcept { return span_.size(); }
  [[nodiscard]] bool empty() const noexcept { return span_.empty(); }
  explicit operator bool() const noexcept { return !span_.empty(); }
  T* begin() const noexcept { return span_.data(); }
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
template <class T>
class [[nodiscard]] spsc_ring<T>::read_grant {
 public:
  read_grant() noexcept = default;
  read_grant(read_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), span_(std::exchange(other.span_, {})) {}
  read_grant& operator=(read_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      span_ = std::exchange(other.span_, {});
    }
    return *this;
  }
  ~read_grant() { drop(); }

  [[nodiscard]] std::span<const T> span() const noexcept { return span_; }
  [[nodiscard]] const T* data() const noexcept { return span_.data(); }
  [[nodiscard]] size_type size() const noexcept { return span_.size(); }
  [[nodiscard]] bool empty() const noexcept { return span_.empty(); }
  explicit operator bool() const noexcept { return !span_.empty(); }
  const T* begin() const noexcept { return span_.data(); }
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
template <class T>
class [[nodiscard]] spsc_ring<T>::split_write_grant {
 public:
  split_write_grant() noexcept = default;
  split_write_grant(split_write_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), first_(std::exchange(other.first_, {})),
        second_(std::exchange(other.second_, {})) {}
  split_write_grant& operator=(split_write_grant&& other) noexcept {
    if (this != &other) {
      drop();
      ring_ = std::exchange(other.ring_, nullptr);
      first_ = std::exchange(other.first_, {});
      second_ = std::exchange(other.second_, {});
    }
    return *this;
  }
  ~split_write_grant() { drop(); }

  [[nodiscard]] std::span<T> first() const noexcept { return first_; }
  [[nodiscard]] std::span<T> second() const noexcept { return second_; }
  [[nodiscard]] size_type size() const noexcept { return first_.size() + second_.size(); }
  [[nodiscard]] bool empty() const noexcept { return first_.empty(); }
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
template <class T>
class [[nodiscard]] spsc_ring<T>::split_read_grant {
 public:
  split_read_grant() noexcept = default;
  split_read_grant(split_read_grant&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)), first_(std::exchange(other.first_, {})),
        second_(std::exchange(other.second_, {})), gap_(other.gap_) {}
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
  ~split_read_grant() { drop(); }

  [[nodiscard]] std::span<const T> first() const noexcept { return first_; }
  [[nodiscard]] std::span<const T> second() const noexcept { return second_; }
  [[nodiscard]] size_type size() const noexcept { return first_.size() + second_.size(); }
  [[nodiscard]] bool empty() const noexcept { return first_.empty(); }
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
