// Sleeping until the other side of a ring makes progress, and waking it only when it sleeps.
//
// The problem
// -----------
// A side that finds no data (or no room) may sleep on a futex. The other side must then wake it
// after its next commit (or release), but issuing a wake-up on every commit would put a system
// call on the fast path. So the sleeper announces itself (`sleepers_`, one counter per side)
// and the side that makes progress wakes it only if it sees the announcement. That is Dekker's
// pattern: the sleeper stores "I sleep" then loads the cursor; the other side stores the cursor
// then loads "who sleeps". Without a full fence between the store and the load on *both* sides
// each may miss the other's store (store buffering, allowed even on x86), and the wake-up is
// lost. A full fence on every commit and release is what halves a ring's single-item rate.
//
// The choice: an asymmetric fence
// -------------------------------
// The sleeper is about to enter the kernel anyway, so it pays for both sides: after announcing
// itself it issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full memory
// barrier on every CPU currently running a thread of this process (threads not running pass a
// full barrier when they are switched back in). The side that makes progress then needs only a
// compiler barrier between its cursor store and its plain load of `sleepers_` (light_fence()).
// Why that suffices: the barrier forced into the fast thread falls somewhere in its program.
// If it falls before that thread's load of `sleepers_`, the load comes after the sleeper's
// announcement was made globally visible, so it sees it and wakes the sleeper. If it falls
// after the load, the cursor store before it is drained to memory before membarrier returns,
// so the sleeper's re-check of the cursor sees it and it does not sleep. Either way nothing is
// lost. This is the pairing folly's asymmetric barriers and liburcu's membarrier flavour use.
//
// Where membarrier is missing (old kernels, seccomp filters, non-Linux, or the environment
// variable SLUICE_NO_MEMBARRIER set), enable_asymmetric_fences() returns false and the ring
// falls back to a full fence on both sides: correct, only slower. Each ring decides once, at
// construction, so its two sides always agree; the decision lives in each wait_slot's sleeper
// word, so the fast path is the same single load and branch in both modes. Rings that never wait can opt out entirely with
// the `no_waiting` policy (wait_policy.hpp); the benchmark races the two.
//
// The protocol
// ------------
// Sleeper (a side whose condition does not hold), in wait_until_ready():
//   1. spin briefly re-checking the condition;
//   2. e = epoch_ (seq_cst); lower `want_` to its own need (seq_cst CAS); ++sleepers_ (seq_cst);
//   3. heavy_fence(); re-check the condition; if it holds, leave;
//   4. futex-wait on epoch_ while it still equals e (the kernel re-reads it atomically);
//   5. --sleepers_; re-check; repeat from 2 if it still does not hold.
// Notifier (the other side, after its cursor store), in notify_after(): light_fence(); if
// sleepers_ != 0 (a relaxed load; in full-fence mode, where the mode bit makes it non-zero
// always, a full fence and a second look first), compute the amount now
// available to the sleeper; if it reaches `want_`, swap `want_` back to "none", bump epoch_ and
// futex-wake everyone. Waking everyone is right: sleepers are few (one consumer, or producers
// of an mpsc ring), and each re-checks its own condition and sleeps again with its own need.
// Snapshotting epoch_ before publishing the need in step 2 closes the last gap: a notifier that
// resets `want_` after the sleeper lowered it bumps epoch_ after the snapshot (all seq_cst), so
// the futex-wait returns at once.
//
// Hysteresis: `want_` is an amount (elements or bytes ready, or free), so a consumer waiting for
// 64 KiB is not woken for every small record. A water mark must never let both sides sleep on
// each other: a producer about to sleep, or refused for room, "nudges" a sleeping consumer
// (nudges_), and a consumer whose water mark is not met still returns what is there if a
// producer is asleep or has nudged it.
#pragma once

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

namespace sluice::detail {

// ---- lib/wait.cpp: the platform layer (in a model-checked build, <sluice_model/atomic.hpp>
// defines these over Relacy: its system-wide fence stands for membarrier, its futex model for
// the futex)

#if !defined(SLUICE_MODEL_CHECK)

// Registers this process for expedited membarrier, once. True if heavy_fence() may then pair
// with light_fence()'s compiler barrier; false means both sides must use full fences.
bool enable_asymmetric_fences() noexcept;
// The same for rings shared between processes: registers for the global expedited membarrier,
// which reaches the threads of every process so registered. False if unavailable (or
// SLUICE_NO_MEMBARRIER is set).
bool enable_global_fences() noexcept;
// The sleeper's side of the pairing: a full fence, plus membarrier when `asymmetric` (the
// global command when `process_shared`).
void heavy_fence(bool asymmetric, bool process_shared) noexcept;
// Sleeps while `word` holds `expected`, at most `timeout_ns` (forever if negative). Returns on
// a wake-up, a timeout, a signal or a spurious wake: callers re-check their condition.
// `process_shared`: the word is in memory shared between processes (a non-private futex).
void futex_wait(detail::atomic<std::uint32_t>& word, std::uint32_t expected, std::int64_t timeout_ns,
                bool process_shared) noexcept;
// Wakes every thread sleeping in futex_wait() on `word`.
void futex_wake_all(detail::atomic<std::uint32_t>& word, bool process_shared) noexcept;
// System calls sluice has issued in this process (futex and membarrier), for tests.
std::uint64_t kernel_calls() noexcept;
#endif

// The progress side's half of the pairing with heavy_fence() (see above), between its store of
// `stored` and its load of `loaded` (a sleeper count), when membarrier is registered: only the
// compiler must keep the two in program order. The empty asm claims to read `stored` (so the
// store is emitted before it) and to write `loaded` (so the load is emitted after it), and
// nothing else, so the ring's private state stays in registers. A full compiler barrier
// (atomic_signal_fence) also does, at the cost of a store-forwarding round trip per call for
// whatever the caller holds in registers.
template <class Stored, class Loaded>
inline void light_fence(const Stored& stored, Loaded& loaded) noexcept {
  asm volatile("" : "+m"(loaded) : "m"(stored));
}
// The same where no fixed object stands for the store (a record's header, somewhere in the
// storage): the full compiler barrier. A memory operand for such a store costs more than the
// barrier: gcc then keeps the caller's grant in memory instead of registers.
template <class Loaded>
inline void light_fence(Loaded&) noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

// ---- deadlines

struct no_deadline {
  static constexpr bool timed = false;
  static constexpr std::int64_t remaining_ns() noexcept { return -1; }
};

// Any clock: the remaining time is re-read from Clock after every wake-up, so a clock that jumps
// is honoured when the sleep ends (as std::condition_variable does for clocks it cannot wait on).
// Computed in floating point first: a far deadline in a coarse unit (sys_seconds::max()) does
// not fit in nanoseconds, and converting it would overflow.
template <class Clock, class Duration>
struct deadline_at {
  static constexpr bool timed = true;
  std::chrono::time_point<Clock, Duration> when;
  std::int64_t remaining_ns() const {
    using fp_ns = std::chrono::duration<double, std::nano>;
    const double left = fp_ns(when.time_since_epoch()).count() - fp_ns(Clock::now().time_since_epoch()).count();
    if (left <= 0) return 0;
    // About 146 years: "for ever" as far as one futex sleep goes (the loop re-reads the clock).
    constexpr double far = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 2);
    return left >= far ? static_cast<std::int64_t>(far) : static_cast<std::int64_t>(std::ceil(left));
  }
};

// A deadline `d` from now on the steady clock, saturated for durations too long to represent
// (seconds::max() and the like) instead of overflowing.
template <class Rep, class Period>
deadline_at<std::chrono::steady_clock, std::chrono::steady_clock::duration> deadline_after(
    const std::chrono::duration<Rep, Period>& d) {
  using std::chrono::steady_clock;
  const auto now = steady_clock::now();
  if (d <= d.zero()) return {now};
  using fp_ns = std::chrono::duration<double, std::nano>;
  if (fp_ns(d).count() >= fp_ns(steady_clock::time_point::max() - now).count()) return {steady_clock::time_point::max()};
  return {now + std::chrono::ceil<steady_clock::duration>(d)};
}

// ---- one side's sleeping place

// The sleepers of one side of a ring. Its own 128-byte line: the other side loads `sleepers_`
// on every commit or release, and that line changes only when somebody goes to sleep.
//
// `sleepers_` also carries the slot's mode, decided once at construction: its top bit is set
// when membarrier is unavailable and both sides must use full fences, the next one when the
// ring is shared between processes (non-private futexes, the global membarrier). So the
// progress side's fast path is one load and one branch in every mode: a non-zero word sends it
// to the slow path, which in full-fence mode fences and looks again. (In a shared segment a
// peer could flip these bits: that can delay a wake-up until a timeout, never touch memory.)
class alignas(cache_line) wait_slot {
 public:
  static constexpr std::uint64_t no_want = std::numeric_limits<std::uint64_t>::max();

  // `asymmetric`: the sleeper issues membarrier and the progress side only light_fence();
  // false: full fences on both sides.
  // `process_shared`: the slot lives in memory shared between processes.
  explicit wait_slot(bool asymmetric, bool process_shared = false) noexcept
      : sleepers_((asymmetric ? 0 : full_fences) | (process_shared ? shared_mode : 0)) {}

  // Whether this slot pairs membarrier with compiler barriers. Relaxed: the bit never changes
  // after construction.
  bool asymmetric() const noexcept { return (sleepers_.load(std::memory_order_relaxed) & full_fences) == 0; }
  bool process_shared() const noexcept { return (sleepers_.load(std::memory_order_relaxed) & shared_mode) != 0; }

  // Called by the progress side right after its store of `stored` (a cursor; none for a
  // header: see light_fence()) that may satisfy a sleeper: wakes it through wake() (the caller's measure of what is available,
  // which calls wake_if_wanted() or nudge()) if somebody sleeps. No system call, no fence and
  // one plain load while nobody sleeps (with membarrier).
  template <class Wake, class... Stored>
  void notify_after(Wake&& wake, const Stored&... stored) noexcept {
    light_fence(stored..., sleepers_);  // pairs with the sleeper's heavy_fence()
    // Relaxed, as is has_sleepers(): what the sleeper stored before its increment (its `want_`)
    // reaches the loads of the slow path through the fences, not through these loads. With
    // membarrier, the barrier forced into this thread either precedes them (they see everything
    // the sleeper stored before its heavy_fence()) or follows our cursor store (the sleeper sees
    // the cursor and does not sleep). With full fences (where this first load always sees the
    // mode bit), our seq_cst fence and the sleeper's pair: either has_sleepers() after our fence
    // sees the increment, and the seq_cst load of `want_` in wake_if_wanted() then sees the
    // sleeper's seq_cst update of `want_` made before it, or the sleeper's re-check after its
    // fence sees our cursor. (The model-checked suites run both modes: tests/model.)
    if (sleepers_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
      // Full-fence mode: the load above may have passed our store; fence and look again. (A
      // shared ring's mode bit brings it here on every call: one more load, then out.)
      if (!asymmetric()) detail::thread_fence(std::memory_order_seq_cst);  // pairs with heavy_fence()
      if (has_sleepers()) wake();
    }
  }

  // Somebody sleeps here (or is between announcing itself and leaving). Relaxed, as in
  // notify_after(): what orders it is the fence pairing there (the sleeper's heavy fence with
  // the notifier's fence or, with membarrier, its compiler barrier), or for a waiting consumer
  // that looks for a stuck producer, its own heavy fence; the refusal path's look
  // (note_refused()) is best effort by design.
  bool has_sleepers() const noexcept { return (sleepers_.load(std::memory_order_relaxed) & ~mode_bits) != 0; }

  // Slow path: the sleepers may proceed once `available` reaches the lowest want.
  void wake_if_wanted(std::uint64_t available) noexcept {
    std::uint64_t want = want_.load(std::memory_order_seq_cst);  // see the essay, step 2
    while (available >= want) {
      // Only one notifier takes a given want; a failure reloads it (another notifier reset it to
      // no_want, or a new sleeper lowered it) and the loop decides again.
      if (want_.compare_exchange_weak(want, no_want, std::memory_order_seq_cst)) {
        wake_all();
        return;
      }
    }
  }

  // Slow path: the other side is stuck (refused for room, or about to sleep). Wakes sleepers
  // whatever they want; they return what is there instead of waiting for their water mark.
  void nudge() noexcept {
    nudges_.fetch_add(1, std::memory_order_seq_cst);  // read by the sleeper's condition
    want_.store(no_want, std::memory_order_seq_cst);
    wake_all();
  }

  // Bumps the epoch (so a sleeper between its snapshot and its futex-wait does not sleep) and
  // wakes whoever sleeps. The seq_cst load of sleepers_ after the seq_cst bump pairs with the
  // sleeper's seq_cst increment before its own futex-wait: if we read 0 here, the kernel's read
  // of epoch_ in that futex-wait (after the increment) sees the bump.
  void wake_all() noexcept {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if ((sleepers_.load(std::memory_order_seq_cst) & ~mode_bits) == 0) return;
    // Relaxed: a statistic; the futex call orders nothing it needs.
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    futex_wake_all(epoch_, process_shared());
  }

  std::uint32_t nudges() const noexcept { return nudges_.load(std::memory_order_seq_cst); }

  // For a process taking over the only side that sleeps here, from a predecessor that died:
  // forgets the dead sleepers it left announced (so the progress side stops waking nobody) and
  // their water mark. Only when no thread of the live side can be asleep here (the one that
  // sleeps here is this process, attaching). Relaxed: the attaching thread's own later
  // announcements are seq_cst, and a notifier that still sees the old count only wakes
  // nobody once more.
  void reset_sleepers() noexcept {
    sleepers_.store(sleepers_.load(std::memory_order_relaxed) & mode_bits, std::memory_order_relaxed);
    want_.store(no_want, std::memory_order_relaxed);
    holding_out_.store(0, std::memory_order_relaxed);
  }

  // A consumer waiting for a water mark above the minimum says so, so that a refused
  // non-blocking producer nudges it (it may have something ready, short of its mark); a
  // consumer that waits for anything at all has nothing ready while it sleeps, and a nudge would
  // only cost a wake-up. Relaxed: a hint for the refusal path, which is best effort by design
  // (the essay above); a producer about to sleep nudges regardless.
  void set_holding_out(bool holding) noexcept { holding_out_.store(holding ? 1 : 0, std::memory_order_relaxed); }
  bool holding_out() const noexcept { return holding_out_.load(std::memory_order_relaxed) != 0; }
  std::uint64_t wakeups() const noexcept { return wakeups_.load(std::memory_order_relaxed); }

  // Blocks until ready() holds or the deadline passes; returns ready()'s last answer. `want` is
  // the amount the caller needs (what the notifier compares with). before_sleep() runs after the
  // announcement and before the re-check (a producer nudges the consumer there).
  template <class Ready, class Deadline, class BeforeSleep>
  bool wait_until_ready(std::uint64_t want, Ready&& ready, const Deadline& deadline, BeforeSleep&& before_sleep) {
    if (ready()) return true;
    for (int i = 0; i < spin_iterations; ++i) {
      if constexpr (Deadline::timed) {
        if (deadline.remaining_ns() == 0) return ready();
      }
      cpu_relax();
      if (ready()) return true;
    }
    for (;;) {
      const std::int64_t left = deadline.remaining_ns();
      if (left == 0) return ready();
      const std::uint32_t epoch = epoch_.load(std::memory_order_seq_cst);  // step 2, first
      lower_want(want);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      heavy_fence(asymmetric(), process_shared());  // pairs with the notifier's light_fence() in notify_after()
      bool done;
      try {
        before_sleep();
        done = ready();
      } catch (...) {  // ready() may throw (a corrupt shared ring): leave before it propagates
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        throw;
      }
      if (!done) futex_wait(epoch_, epoch, left, process_shared());
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      if (done || ready()) return true;
    }
  }

 private:
  // About a microsecond of polling before the first system call: a hand-off that is already
  // under way completes without sleeping.
  // (One under the model checker: the spin changes no outcome, only multiplies interleavings.)
  static constexpr int spin_iterations = model_checked ? 1 : 64;

  void lower_want(std::uint64_t want) noexcept {
    std::uint64_t current = want_.load(std::memory_order_seq_cst);
    while (want < current && !want_.compare_exchange_weak(current, want, std::memory_order_seq_cst)) {
    }
  }

  // The mode bits of sleepers_ (see the class comment); the rest counts sleepers.
  static constexpr std::uint32_t full_fences = 1u << 31;
  static constexpr std::uint32_t shared_mode = 1u << 30;
  static constexpr std::uint32_t mode_bits = full_fences | shared_mode;

  detail::atomic<std::uint32_t> sleepers_;     // threads between announcing and leaving, | full_fences
  detail::atomic<std::uint32_t> epoch_{0};     // the futex word: bumped by every wake
  detail::atomic<std::uint32_t> nudges_{0};    // bumped when the other side is stuck
  detail::atomic<std::uint32_t> holding_out_{0};  // a sleeper waits for a water mark above 1 (a word: see closed)
  detail::atomic<std::uint64_t> want_{no_want};  // the lowest amount a sleeper needs
  detail::atomic<std::uint64_t> wakeups_{0};   // statistic: wake system calls issued
};

// A consumer's water-mark announcement (wait_slot::set_holding_out) for the length of one
// wait, withdrawn however the wait ends (a corrupt shared ring throws out of it).
class holding_out_while {
 public:
  holding_out_while(wait_slot& slot, bool holding) noexcept : slot_(slot) { slot_.set_holding_out(holding); }
  ~holding_out_while() { slot_.set_holding_out(false); }
  holding_out_while(const holding_out_while&) = delete;
  holding_out_while& operator=(const holding_out_while&) = delete;

 private:
  wait_slot& slot_;
};

}  // namespace sluice::detail
