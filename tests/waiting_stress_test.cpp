// Stress for the blocking calls: no lost wake-ups, water marks that never deadlock, and close()
// waking everyone. See include/sluice/detail/wait.hpp for the protocol under test.
//
// What is proved, and how
// -----------------------
// - No lost wake-up, in both directions. A ring of capacity 1 moves SLUICE_STRESS_CHUNKS items
//   one at a time (10^6 by default): every item is one blocking reservation (the producer
//   waits for room) and one blocking read (the consumer waits for data). Every wait is a timed
//   call bounded by `bound` (10 s); the other side never stalls for more than microseconds, so
//   a call that returns at its bound slept through a wake-up and fails the test instead of
//   hanging it. (The timed calls are the untimed ones with a deadline: same code path, same
//   futex word.) statistics().wakeups, per direction through test_access, proves that both
//   sides really slept hundreds of thousands of times; refused == 0 that no reservation timed out.
// - Making each side sleep, and racing its way into the futex: each side dawdles at random
//   (seeded: sleeps, spins of a few microseconds, yields), in phases where the producer, then
//   the consumer, then both are slow; and just before each commit or release it sometimes
//   spins 0..6 us, so that its progress lands anywhere in the other side's spin, announcement,
//   fence and futex entry, where lost wake-ups hide.
// - Nothing masks a lost wake-up: a consumer whose wake-up is lost is normally rescued soon
//   after by the producer's next commit, or by the nudge the producer sends when it falls
//   asleep for room, and the bound would never be reached. So in half of the hand-offs
//   (lockstep phases) the producer, after committing, waits off the ring until the consumer
//   says it has received the item: the commit is then the only thing that can wake the consumer.
//   A producer asleep for room has no rescue: the consumer never nudges it.
// - The same through capacities 3 and 7 with random chunk sizes (wrapped grants, skipped tails,
//   prefix commits and releases), and with water marks on both sides: the consumer reads with a
//   random min_ready, the producer reserves with reserve_up_to's min_free. A water mark that
//   let both sides sleep on each other shows up as a wait reaching its bound.
// - Record rings: three producers of an mpsc_record_ring of 256 bytes, and the one producer of
//   an spsc_record_ring (with water marks, and in lockstep), block for room constantly; the
//   consumer reads with random water marks. Every record carries (producer, sequence, length,
//   checksum) and some reservations are withdrawn: each record arrives exactly once, in
//   per-producer order, intact, and nothing withdrawn is delivered. A water mark that a commit
//   of the head record fails to give way (MpscWaterMarkGivesWayWhenTheHeadRecordCompletes)
//   shows up as a read reaching its bound.
// - close() under load: rounds in which producers and the consumer sit in the untimed
//   reserve()/read() (a watchdog aborts the process rather than let a lost wake-up hang ctest)
//   and a third thread closes the ring at a random moment. Every thread must return, and
//   reservations after close() return empty at once. Every commit, including commits of grants
//   obtained before close(), is delivered exactly once: the consumer drains until read() returns
//   empty, the main thread drains what was committed after that, and per-producer counts and
//   sequences are compared. In the rounds where one side holds off until close(), the other is
//   asleep in the ring, and close() must be what wakes it (checked through statistics()).
// - The fence mode: tests/CMakeLists.txt runs this executable twice, the second time with
//   SLUICE_NO_MEMBARRIER=1 (and without the Mirrored tests); FenceMode checks (and prints) that
//   the rings pair membarrier with compiler barriers in the first run and use full fences on
//   both sides in the second.
// - Over mirrored storage (the Mirrored tests): every scenario above, on rings built with
//   sluice::mirrored, where every grant and read is one span and may run past the end of the
//   storage into its second mapping, and the waits use the mirrored free-space arithmetic (no
//   skipped tail). spsc_ring items are then a page each, so that the rings keep capacities 1, 3,
//   7 and 16 (the capacity-1 hand-off moves a quarter as many items); record rings are one page,
//   with records of up to its capacity - 8 bytes (most reservations wait for room), half as many
//   of them (under ThreadSanitizer, half of that again). The head-record water-mark case runs
//   with its second record across the seam and untimed calls under the watchdog.
//
// SLUICE_STRESS_CHUNKS sets the counts (the capacity-1 test moves that many items; the others a
// fraction of it). SLUICE_STRESS_SEED fixes the seed (printed on failure) to replay a run's
// random choices; the interleavings themselves are not reproducible.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "random_seed.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#ifndef SLUICE_STRESS_CHUNKS
#define SLUICE_STRESS_CHUNKS 1000000
#endif

// The rings' private parts this file looks at (only spsc_ring befriends test_access).
namespace sluice::detail {
struct test_access {
  template <class T, class W>
  static bool asymmetric(const spsc_ring<T, W>& r) {
    return r.ctl_->consumer_wait.asymmetric() && r.ctl_->producer_wait.asymmetric();
  }
  // Wake system calls issued to a sleeping consumer (by the producer, or by close()).
  template <class T, class W>
  static std::uint64_t consumer_wakeups(const spsc_ring<T, W>& r) {
    return r.ctl_->consumer_wait.wakeups();
  }
  // Wake system calls issued to a producer asleep for room (by the consumer, or by close()).
  template <class T, class W>
  static std::uint64_t producer_wakeups(const spsc_ring<T, W>& r) {
    return r.ctl_->producer_wait.wakeups();
  }
};
}  // namespace sluice::detail

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using ta = sluice::detail::test_access;

// Nothing is scaled down under ThreadSanitizer: the waits dominate, not the instrumented code,
// and the tsan build runs the whole file in about the time the debug build takes.
constexpr std::uint64_t chunks = SLUICE_STRESS_CHUNKS;
constexpr std::uint64_t at_least(std::uint64_t n, std::uint64_t floor) { return std::max(n, floor); }

// The Mirrored tests are the exception: their page-sized items and records of up to 4 KiB make
// the instrumented copying and checking count, so ThreadSanitizer builds run half as many.
#if defined(__SANITIZE_THREAD__)
#define SLUICE_WST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLUICE_WST_TSAN 1
#endif
#endif
#if defined(SLUICE_WST_TSAN)
constexpr std::uint64_t mirrored_chunks = chunks / 2;
#else
constexpr std::uint64_t mirrored_chunks = chunks;
#endif

// Every blocking call in the hand-off tests is a timed one with this bound. The other side
// never stalls for more than microseconds, so a call that reaches it slept through a wake-up.
constexpr auto bound = 10s;
// The close() rounds use untimed calls: a watchdog aborts if no round ends for this long.
constexpr auto watchdog_limit = 30s;

// ------------------------------------------------------------------------------------ helpers

using sluice_test::mix;
using sluice_test::test_seed;

bool membarrier_disabled_by_env() {
  const char* off = std::getenv("SLUICE_NO_MEMBARRIER");
  return off && *off && *off != '0';  // lib/wait.cpp's rule
}

const char* fence_mode() {
  return sluice::detail::enable_asymmetric_fences() ? "asymmetric fences (membarrier)" : "full fences on both sides";
}

std::string ms(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(d.count()) / 1e6);
  return buf;
}

// spsc_ring items: the sequence number in the low 40 bits, a hash of it in the high 24, so a
// lost, duplicated, reordered or torn item is caught and named.
constexpr unsigned seq_bits = 40;
constexpr std::uint64_t seq_mask = (std::uint64_t{1} << seq_bits) - 1;
constexpr std::uint64_t item_of(std::uint64_t seq) noexcept { return seq | (mix(seq) << seq_bits); }

std::string item_error(std::uint64_t got, std::uint64_t expected_seq) {
  const std::uint64_t seq = got & seq_mask;
  return "expected item " + std::to_string(expected_seq) + ", got " +
         (got == item_of(seq) ? "item " + std::to_string(seq) : "a corrupt item");
}

// A page-sized item: with 4 KiB pages, a mirrored ring of n of them has capacity n, so the
// hand-off tests keep their small capacities over mirrored storage. Every word carries the
// item, so a torn one (words of two items) is caught.
struct page_item {
  std::uint64_t word[512];
};
static_assert(sizeof(page_item) == 4096);

template <class Item>
Item make_item(std::uint64_t seq) noexcept;
template <>
std::uint64_t make_item<std::uint64_t>(std::uint64_t seq) noexcept {
  return item_of(seq);
}
template <>
page_item make_item<page_item>(std::uint64_t seq) noexcept {
  page_item p;
  const std::uint64_t x = item_of(seq);
  for (std::size_t k = 0; k < 512; ++k) p.word[k] = x ^ (k << 52);
  return p;
}
bool is_item(std::uint64_t got, std::uint64_t seq) noexcept { return got == item_of(seq); }
bool is_item(const page_item& got, std::uint64_t seq) noexcept {
  const std::uint64_t x = item_of(seq);
  for (std::size_t k = 0; k < 512; ++k)
    if (got.word[k] != (x ^ (k << 52))) return false;
  return true;
}
std::string item_error(const page_item& got, std::uint64_t expected_seq) {
  return item_error(got.word[0], expected_seq) + (is_item(got, got.word[0] & seq_mask) ? "" : " (a torn page item)");
}

enum class storage { plain, mirrored };

// A ring over mirrored storage, or built the plain way (on the heap: rings do not move).
template <class Ring, class... Args>
std::unique_ptr<Ring> make_ring(storage kind, Args... args) {
  if (kind == storage::mirrored) return std::make_unique<Ring>(sluice::mirrored, args...);
  return std::make_unique<Ring>(args...);
}

// The mirrored hand-off tests need 4 KiB pages for their page-sized items to keep the
// capacities they are written for.
bool page_items_fit() { return sluice::mirrored_storage::page_size() == sizeof(page_item); }

// Fails the process if a test makes no progress for `limit`: the untimed calls of the close()
// rounds would otherwise hang ctest on a lost wake-up. kick() after each unit of progress.
class watchdog {
 public:
  watchdog(std::string what, std::chrono::seconds limit) : what_(std::move(what)), limit_(limit) {
    thread_ = std::thread([this] { run(); });
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void kick() noexcept { progress_.fetch_add(1, std::memory_order_relaxed); }  // a counter only

 private:
  void run() {
    std::unique_lock lock(mutex_);
    std::uint64_t seen = progress_.load(std::memory_order_relaxed);
    while (!cv_.wait_for(lock, limit_, [this] { return done_; })) {
      const std::uint64_t now = progress_.load(std::memory_order_relaxed);
      if (now == seen) {
        std::fprintf(stderr, "\nwatchdog: %s made no progress for %lld s (a lost wake-up?); aborting\n",
                     what_.c_str(), static_cast<long long>(limit_.count()));
        std::fflush(stderr);
        std::abort();
      }
      seen = now;
    }
  }

  std::string what_;
  std::chrono::seconds limit_;
  std::atomic<std::uint64_t> progress_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

inline void spin(std::uint64_t iterations) {
  for (std::uint64_t i = 0; i < iterations; ++i) sluice::detail::cpu_relax();
}

// Makes one side slow at random so that the other side falls asleep, and moves its progress
// across the other side's way into the futex, where lost wake-ups hide.
//
// dawdle(at), before a reservation (producer) or while holding a read grant (consumer):
// phases of 4096 hand-offs in which the producer is the slow side, then the consumer, then
// both. A slow side, about one call in ten, sleeps (the other side surely reaches the futex),
// spins up to ~12 us, or yields.
//
// jitter(), just before a commit or a release: one time in four a spin of 0..255 pauses
// (0..~6 us at ~23 ns a pause), so the commit or release lands at a random point of the other
// side's spin (64 polls), announcement, fence and futex entry, rather than always after it.
enum class role { producer, consumer };
class dawdler {
 public:
  dawdler(std::uint64_t seed, role r) : rng_(seed), role_(r) {}
  void dawdle(std::uint64_t at) {
    const unsigned phase = static_cast<unsigned>((at >> 12) % 3);
    const bool slow = phase == 2 || ((phase == 0) == (role_ == role::producer));
    const std::uint64_t r = rng_() % 1024;
    if (!slow) {
      if (r < 4) std::this_thread::yield();
      return;
    }
    if (r < 6)
      std::this_thread::sleep_for(std::chrono::microseconds(1 + rng_() % 30));
    else if (r < 70)
      spin(rng_() % 512);
    else if (r < 90)
      std::this_thread::yield();
  }
  void jitter() {
    const std::uint64_t r = rng_();
    if ((r & 3) == 0) spin((r >> 8) % 256);
  }

 private:
  std::mt19937_64 rng_;
  role role_;
};

// How one side's blocking calls went.
struct side_log {
  std::string error;        // empty if all was well
  std::uint64_t calls = 0;  // blocking calls that succeeded
  std::chrono::nanoseconds longest{0};
  // Times a blocking call; true (and records the failure) if it ran into its bound.
  bool timed_out(steady::time_point start, const char* what) {
    const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - start);
    longest = std::max(longest, took);
    if (took < bound) return false;
    error = std::string(what) + " returned after " + ms(took) + ", at its bound: a lost wake-up";
    return true;
  }
};

// Lockstep phases. A lost wake-up of a consumer is normally rescued soon after: by the
// producer's next commit, or by the nudge a producer sends when it falls asleep for room. So
// in blocks of 2048 hand-offs out of two, after each commit the producer waits, off the ring,
// until the consumer says it has received everything: then the commit is the only thing that
// can wake a sleeping consumer, and a lost wake-up leaves both waiting until the bound. (A
// producer asleep for room has no such rescue: the consumer never nudges it.)
constexpr bool lockstep_phase(std::uint64_t at) noexcept { return (at >> 11) & 1; }

// The consumer's count of received items (or records), polled by the producer. Relaxed: only
// the value matters, and a release/acquire pair here would hand ThreadSanitizer a
// happens-before edge that the ring must provide by itself.
class acknowledgment {
 public:
  void publish(std::uint64_t received) noexcept { received_.store(received, std::memory_order_relaxed); }

  // Waits until `count` were received. Returns an error message: empty on success, "closed"
  // if the ring was closed meanwhile (the other side failed).
  template <class Ring>
  std::string wait_for(std::uint64_t count, const Ring& ring) const {
    const auto start = steady::now();
    for (std::uint32_t i = 0; received_.load(std::memory_order_relaxed) < count; ++i) {
      if (i < 64) {
        sluice::detail::cpu_relax();
        continue;
      }
      if ((i & 15) == 0) {
        if (ring.closed()) return "closed";
        if (steady::now() - start >= bound)
          return "committed " + std::to_string(count) + " but the consumer still had only " +
                 std::to_string(received_.load(std::memory_order_relaxed)) + " after " + ms(bound) +
                 ": the commit's wake-up was lost";
      }
      std::this_thread::yield();
    }
    return {};
  }

 private:
  std::atomic<std::uint64_t> received_{0};
};

// -------------------------------------------------------------- spsc_ring<uint64_t> hand-offs

enum class spsc_mode {
  one_at_a_time,  // reserve(1) and read(): capacity 1
  random_chunks,  // exact reservations of 1..capacity items; read(); prefix commits and releases
  water_marks,    // also reserve_up_to(n, min_free) and read(min_ready); no lockstep phases
};

struct spsc_report {
  std::uint64_t received = 0;
  std::uint64_t producer_calls = 0, consumer_calls = 0;
  std::uint64_t wakeups = 0, consumer_wakeups = 0, producer_wakeups = 0;
};

template <class Ring>
void spsc_produce(Ring& ring, std::uint64_t items, spsc_mode mode, std::uint64_t seed, const acknowledgment& ack,
                  side_log& log) {
  using Item = typename Ring::value_type;
  std::mt19937_64 rng(mix(seed ^ 0x1111));
  dawdler slow(mix(seed ^ 0x2222), role::producer);
  const std::size_t cap = ring.capacity();
  std::uint64_t next = 0;
  auto fail = [&](const std::string& e) {
    log.error = "producer at item " + std::to_string(next) + ": " + e;
    ring.close();  // wakes the consumer: it stops instead of waiting out its bound
  };
  while (next < items) {
    slow.dawdle(next);
    const std::size_t n =
        mode == spsc_mode::one_at_a_time ? 1 : static_cast<std::size_t>(std::min<std::uint64_t>(1 + rng() % cap, items - next));
    const bool up_to = mode == spsc_mode::water_marks && rng() % 2 == 0;
    const std::size_t min_free = 1 + rng() % n;
    const auto start = steady::now();
    auto g = up_to ? ring.try_reserve_up_to_for(n, bound, min_free) : ring.try_reserve_for(n, bound);
    if (log.timed_out(start, up_to ? "try_reserve_up_to_for" : "try_reserve_for")) return fail(log.error);
    if (!g) {
      if (ring.closed()) return;  // the consumer failed
      return fail("a blocking reservation returned an empty grant before its bound on an open ring");
    }
    if (up_to ? (g.size() < min_free || g.size() > n) : g.size() != n)
      return fail("a grant of " + std::to_string(g.size()) + " for n = " + std::to_string(n) +
                  (up_to ? ", min_free = " + std::to_string(min_free) : std::string()));
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = make_item<Item>(next + i);
    const std::size_t k = (mode != spsc_mode::one_at_a_time && rng() % 4 == 0) ? 1 + rng() % g.size() : g.size();
    const bool lockstep = mode != spsc_mode::water_marks && lockstep_phase(next);
    slow.jitter();
    g.commit(k);
    next += k;
    ++log.calls;
    if (lockstep) {
      const std::string e = ack.wait_for(next, ring);
      if (e == "closed") return;  // the consumer failed
      if (!e.empty()) return fail(e);
    }
  }
}

template <class Ring>
std::uint64_t spsc_consume(Ring& ring, std::uint64_t items, spsc_mode mode, std::uint64_t seed, acknowledgment& ack,
                           side_log& log, watchdog& dog) {
  std::mt19937_64 rng(mix(seed ^ 0x3333));
  dawdler slow(mix(seed ^ 0x4444), role::consumer);
  const std::size_t cap = ring.capacity();
  std::uint64_t next = 0;
  auto fail = [&](const std::string& e) {
    log.error = "consumer at item " + std::to_string(next) + ": " + e;
    ring.close();  // wakes the producer
    return next;
  };
  while (next < items) {
    if ((log.calls & 1023) == 0) dog.kick();
    // A water mark of at most what is still to come: the producer will commit that much unless
    // it gets stuck for room first, and then the read returns early.
    const std::size_t min_ready =
        mode == spsc_mode::water_marks ? 1 + static_cast<std::size_t>(rng() % std::min<std::uint64_t>(cap, items - next)) : 1;
    const auto start = steady::now();
    auto g = ring.try_read_for(bound, min_ready);
    if (log.timed_out(start, "try_read_for")) return fail(log.error);
    if (!g) {
      if (ring.closed()) return next;  // the producer failed
      return fail("a blocking read returned an empty grant before its bound on an open ring");
    }
    if (mode == spsc_mode::one_at_a_time && g.size() != 1) return fail("a read of capacity 1 returned " + std::to_string(g.size()));
    const std::size_t k = (mode != spsc_mode::one_at_a_time && rng() % 4 == 0) ? 1 + rng() % g.size() : g.size();
    for (std::size_t i = 0; i < k; ++i, ++next)
      if (!is_item(g[i], next)) return fail(item_error(g[i], next));
    ack.publish(next);
    slow.dawdle(next);  // holding the grant: the producer falls asleep for room
    slow.jitter();
    g.release(k);
    ++log.calls;
  }
  return next;
}

template <class Item = std::uint64_t>
spsc_report run_spsc(std::size_t capacity, std::uint64_t items, spsc_mode mode, storage kind = storage::plain) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set SLUICE_STRESS_SEED to reuse)");
  const auto made = make_ring<sluice::spsc_ring<Item>>(kind, capacity);
  auto& ring = *made;
  EXPECT_EQ(ring.capacity(), capacity);
  EXPECT_EQ(ring.mirrored(), kind == storage::mirrored);
  watchdog dog("spsc_ring hand-offs", watchdog_limit);
  acknowledgment ack;
  side_log producer_log, consumer_log;
  spsc_report rep;
  const auto start = steady::now();
  {
    std::jthread producer([&] { spsc_produce(ring, items, mode, seed, ack, producer_log); });
    rep.received = spsc_consume(ring, items, mode, seed, ack, consumer_log, dog);
  }  // joined
  const auto took = steady::now() - start;
  if (!producer_log.error.empty() || !consumer_log.error.empty()) {
    ADD_FAILURE() << producer_log.error << (producer_log.error.empty() ? "" : "\n") << consumer_log.error;
    return rep;
  }
  EXPECT_EQ(rep.received, items);
  EXPECT_FALSE(ring.closed());
  const sluice::ring_statistics s = ring.statistics();
  EXPECT_EQ(s.committed, items);
  EXPECT_EQ(s.released, items);
  EXPECT_EQ(s.refused, 0u) << "a timed reservation ran out of time";
  rep.producer_calls = producer_log.calls;
  rep.consumer_calls = consumer_log.calls;
  rep.wakeups = s.wakeups;
  rep.consumer_wakeups = ta::consumer_wakeups(ring);
  rep.producer_wakeups = ta::producer_wakeups(ring);
  EXPECT_EQ(rep.wakeups, rep.consumer_wakeups + rep.producer_wakeups);
  std::printf("[   info   ] %s, capacity %zu%s: %llu items, %llu blocking reservations, %llu blocking reads in %s;\n"
              "[   info   ]   wake-ups: %llu of the consumer, %llu of the producer; longest wait %s / %s\n",
              fence_mode(), capacity, kind == storage::mirrored ? " (mirrored)" : "", static_cast<unsigned long long>(items),
              static_cast<unsigned long long>(rep.producer_calls), static_cast<unsigned long long>(rep.consumer_calls),
              ms(took).c_str(), static_cast<unsigned long long>(rep.consumer_wakeups),
              static_cast<unsigned long long>(rep.producer_wakeups), ms(producer_log.longest).c_str(),
              ms(consumer_log.longest).c_str());
  ::testing::Test::RecordProperty("wakeups", std::to_string(rep.wakeups));
  return rep;
}

// Both directions really slept: each side must have been woken from the futex at least once
// per thousand hand-offs (in practice several times more often).
void expect_real_sleeps(const spsc_report& r, std::uint64_t handoffs) {
  const std::uint64_t floor = std::max<std::uint64_t>(10, handoffs / 1000);
  EXPECT_GE(r.consumer_wakeups, floor) << "the consumer hardly ever slept: the test proves little";
  EXPECT_GE(r.producer_wakeups, floor) << "the producer hardly ever slept: the test proves little";
}

TEST(waiting_stress, CapacityOneOneItemAtATime) {
  const std::uint64_t items = at_least(chunks, 20000);
  const spsc_report r = run_spsc(1, items, spsc_mode::one_at_a_time);
  EXPECT_EQ(r.producer_calls, items);  // one blocking hand-off per item, each way
  EXPECT_EQ(r.consumer_calls, items);
  expect_real_sleeps(r, items);
}

TEST(waiting_stress, CapacityThreeRandomChunks) {
  const spsc_report r = run_spsc(3, at_least(chunks / 4, 10000), spsc_mode::random_chunks);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

TEST(waiting_stress, CapacitySevenRandomChunks) {
  const spsc_report r = run_spsc(7, at_least(chunks / 4, 10000), spsc_mode::random_chunks);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

TEST(waiting_stress, WaterMarksBothSides) {
  const spsc_report r = run_spsc(16, at_least(chunks / 2, 10000), spsc_mode::water_marks);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

TEST(waiting_stress, MirroredCapacityOneOneItemAtATime) {
  if (!page_items_fit()) GTEST_SKIP() << "needs 4 KiB pages";
  const std::uint64_t items = at_least(mirrored_chunks / 4, 20000);
  const spsc_report r = run_spsc<page_item>(1, items, spsc_mode::one_at_a_time, storage::mirrored);
  EXPECT_EQ(r.producer_calls, items);
  EXPECT_EQ(r.consumer_calls, items);
  expect_real_sleeps(r, items);
}

TEST(waiting_stress, MirroredCapacityThreeRandomChunks) {
  if (!page_items_fit()) GTEST_SKIP() << "needs 4 KiB pages";
  const spsc_report r = run_spsc<page_item>(3, at_least(mirrored_chunks / 4, 10000), spsc_mode::random_chunks, storage::mirrored);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

TEST(waiting_stress, MirroredCapacitySevenRandomChunks) {
  if (!page_items_fit()) GTEST_SKIP() << "needs 4 KiB pages";
  const spsc_report r = run_spsc<page_item>(7, at_least(mirrored_chunks / 4, 10000), spsc_mode::random_chunks, storage::mirrored);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

TEST(waiting_stress, MirroredWaterMarksBothSides) {
  if (!page_items_fit()) GTEST_SKIP() << "needs 4 KiB pages";
  const spsc_report r = run_spsc<page_item>(16, at_least(mirrored_chunks / 2, 10000), spsc_mode::water_marks, storage::mirrored);
  expect_real_sleeps(r, std::min(r.producer_calls, r.consumer_calls));
}

// ------------------------------------------------------------------------------ record rings

// Record layout, length L >= meta_size:
//   [0..4) producer id   [4..8) L   [8..16) sequence   [16..24) checksum   [24..L) body
constexpr std::size_t meta_size = 24;

std::uint64_t record_key(unsigned id, std::uint64_t seq) noexcept { return mix((std::uint64_t{id} << 56) ^ seq); }

std::uint64_t body_word(std::uint64_t key, std::size_t i) noexcept { return mix(key + i); }

std::uint64_t checksum(unsigned id, std::uint64_t seq, std::size_t length, const std::byte* body, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ mix(record_key(id, seq) ^ length);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(body[i])) * 0x100000001b3ull;
  return h;
}

void write_record(std::span<std::byte> out, unsigned id, std::uint64_t seq) {
  std::byte* p = out.data();
  const std::size_t length = out.size();
  const std::uint64_t key = record_key(id, seq);
  for (std::size_t i = meta_size; i < length; i += 8) {
    const std::uint64_t w = body_word(key, i);
    std::memcpy(p + i, &w, std::min<std::size_t>(8, length - i));
  }
  const auto id32 = static_cast<std::uint32_t>(id);
  const auto len32 = static_cast<std::uint32_t>(length);
  const std::uint64_t sum = checksum(id, seq, length, p + meta_size, length - meta_size);
  std::memcpy(p, &id32, 4);
  std::memcpy(p + 4, &len32, 4);
  std::memcpy(p + 8, &seq, 8);
  std::memcpy(p + 16, &sum, 8);
}

// The producer's plan for record (id, seq): its length, and whether it is withdrawn.
struct plan {
  std::size_t length;
  bool discard;
};
plan plan_of(std::uint64_t seed, unsigned id, std::uint64_t seq, std::size_t max_length) {
  const std::uint64_t h = mix(seed ^ record_key(id, seq));
  return {meta_size + static_cast<std::size_t>((h >> 8) % (max_length - meta_size + 1)), h % 32 == 0};
}

// Checks every record against the next one its producer must have committed.
class verifier {
 public:
  verifier(std::uint64_t seed, unsigned producers, std::size_t max_length)
      : seed_(seed), max_length_(max_length), next_(producers, 0) {}

  // `limit`: records each producer makes (for the "after its last record" check); 0 for none.
  bool accept(std::span<const std::byte> rec, std::uint64_t limit) {
    if (rec.size() < meta_size) return fail("a record of " + std::to_string(rec.size()) + " bytes");
    std::uint32_t id, len32;
    std::uint64_t seq, sum;
    std::memcpy(&id, rec.data(), 4);
    std::memcpy(&len32, rec.data() + 4, 4);
    std::memcpy(&seq, rec.data() + 8, 8);
    std::memcpy(&sum, rec.data() + 16, 8);
    if (id >= next_.size()) return fail("a record names producer " + std::to_string(id));
    std::uint64_t s = next_[id];
    while ((limit == 0 || s < limit) && plan_of(seed_, id, s, max_length_).discard) ++s;  // withdrawn: never delivered
    const std::string who = "producer " + std::to_string(id) + " seq " + std::to_string(s);
    if (limit != 0 && s >= limit) return fail("producer " + std::to_string(id) + " delivered a record after its last");
    if (seq != s) {
      const char* why = plan_of(seed_, id, seq, max_length_).discard ? " (a withdrawn record was delivered)"
                        : seq < s                                     ? " (duplicated or reordered)"
                                                                      : " (a committed record was lost)";
      return fail(who + " expected, got seq " + std::to_string(seq) + why);
    }
    if (len32 != rec.size() || rec.size() != plan_of(seed_, id, s, max_length_).length)
      return fail(who + ": length " + std::to_string(rec.size()) + ", header says " + std::to_string(len32));
    if (checksum(id, seq, rec.size(), rec.data() + meta_size, rec.size() - meta_size) != sum)
      return fail(who + ": checksum mismatch");
    next_[id] = s + 1;
    ++received_;
    return true;
  }

  std::uint64_t received() const noexcept { return received_; }
  std::uint64_t next(unsigned id) const { return next_[id]; }
  const std::string& error() const noexcept { return error_; }

 private:
  bool fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }
  std::uint64_t seed_;
  std::size_t max_length_;
  std::vector<std::uint64_t> next_;  // per producer: the seq after the last one received
  std::uint64_t received_ = 0;
  std::string error_;
};

// Makes the records of producer `id` in sequence order. With `lockstep`, after each commit it
// waits until the consumer has received all of its records (see lockstep_phase: a single
// producer's commit is then the only thing that can wake the consumer).
template <class Ring>
void records_produce(Ring& ring, unsigned id, std::uint64_t per_producer, std::uint64_t seed, std::size_t max_length,
                     const acknowledgment* lockstep, side_log& log) {
  dawdler slow(mix(seed ^ 0x5555 ^ id), role::producer);
  std::uint64_t committed = 0;
  for (std::uint64_t seq = 0; seq < per_producer; ++seq) {
    auto fail = [&](const std::string& e) {
      log.error = "producer " + std::to_string(id) + " at seq " + std::to_string(seq) + ": " + e;
      ring.close();
    };
    slow.dawdle(seq);
    const plan p = plan_of(seed, id, seq, max_length);
    const auto start = steady::now();
    auto g = ring.try_reserve_for(p.length, bound);
    if (log.timed_out(start, "try_reserve_for")) return fail(log.error);
    if (!g) {
      if (ring.closed()) return;  // somebody failed
      return fail("a blocking reservation returned an empty grant before its bound on an open ring");
    }
    if (g.size() != p.length) return fail("a grant of " + std::to_string(g.size()) + " bytes for " + std::to_string(p.length));
    ++log.calls;
    if (p.discard) {
      std::memset(g.data(), 0xA5, g.size());  // must never be seen
      slow.jitter();
      g.discard();
      continue;
    }
    write_record(g.span(), id, seq);
    slow.jitter();
    g.commit();
    ++committed;
    if (lockstep && lockstep_phase(seq)) {
      const std::string e = lockstep->wait_for(committed, ring);
      if (e == "closed") return;  // the consumer failed
      if (!e.empty()) return fail(e);
    }
  }
}

// Reads until `expected` records arrived, with random water marks when `water_marks(v)` allows
// one, releasing all or a prefix of each batch after dawdling with it.
template <class Ring, class WaterMarks>
void records_consume(Ring& ring, verifier& v, std::uint64_t expected, std::uint64_t per_producer, std::uint64_t seed,
                     acknowledgment& ack, side_log& log, watchdog& dog, WaterMarks water_marks) {
  std::mt19937_64 rng(mix(seed ^ 0x6666));
  dawdler slow(mix(seed ^ 0x7777), role::consumer);
  auto fail = [&](const std::string& e) {
    log.error = "consumer after " + std::to_string(v.received()) + " records: " + e;
    ring.close();
  };
  while (v.received() < expected) {
    if ((log.calls & 1023) == 0) dog.kick();
    // A water mark of at most what is still to come (each record spans at least 32 bytes).
    std::size_t min_bytes = 1;
    if (rng() % 2 == 0 && water_marks(v))
      min_bytes = 1 + static_cast<std::size_t>(rng() % std::min<std::uint64_t>(ring.capacity(), 32 * (expected - v.received())));
    const auto start = steady::now();
    auto b = ring.try_read_for(bound, min_bytes);
    if (log.timed_out(start, "try_read_for")) return fail(log.error + " (min_bytes " + std::to_string(min_bytes) + ")");
    if (!b) {
      if (ring.closed()) return;  // a producer failed
      return fail("a blocking read returned an empty batch before its bound on an open ring");
    }
    const std::size_t k = rng() % 4 == 0 ? 1 + rng() % b.size() : b.size();
    std::size_t i = 0;
    for (auto rec : b) {
      if (i++ == k) break;
      if (!v.accept(rec, per_producer)) return fail(v.error());
    }
    ack.publish(v.received());
    slow.dawdle(v.received());  // holding the batch: producers fall asleep for room
    slow.jitter();
    b.release(k);
    ++log.calls;
  }
}

enum class record_mode {
  water_marks,  // the consumer reads with random water marks
  lockstep,     // one producer; lockstep phases; the consumer reads with min_bytes = 1
};

template <class Ring>
void run_records(std::size_t capacity, unsigned producers, std::uint64_t per_producer, record_mode mode,
                 storage kind = storage::plain) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set SLUICE_STRESS_SEED to reuse)");
  const auto made = make_ring<Ring>(kind, capacity);
  Ring& ring = *made;
  ASSERT_EQ(ring.mirrored(), kind == storage::mirrored);
  const std::size_t max_length = ring.max_record_size();
  ASSERT_GE(max_length, meta_size);
  std::uint64_t expected = 0;
  for (unsigned id = 0; id < producers; ++id)
    for (std::uint64_t s = 0; s < per_producer; ++s) expected += plan_of(seed, id, s, max_length).discard ? 0 : 1;
  watchdog dog("record ring hand-offs", watchdog_limit);
  verifier v(seed, producers, max_length);
  acknowledgment ack;
  std::vector<side_log> producer_logs(producers);
  side_log consumer_log;
  // Water marks all the way to the end of the stream, with any number of producers: each mark
  // is at most what is still to come, and a commit that completes the head record while a
  // producer is stuck for room wakes the consumer whatever its mark
  // (MpscWaterMarkGivesWayWhenTheHeadRecordCompletes).
  auto water_marks = [&](const verifier&) { return mode != record_mode::lockstep; };
  const acknowledgment* lockstep = mode == record_mode::lockstep ? &ack : nullptr;
  const auto start = steady::now();
  {
    std::vector<std::jthread> threads;
    for (unsigned id = 0; id < producers; ++id)
      threads.emplace_back(
          [&, id] { records_produce(ring, id, per_producer, seed, max_length, lockstep, producer_logs[id]); });
    records_consume(ring, v, expected, per_producer, seed, ack, consumer_log, dog, water_marks);
  }  // joined
  const auto took = steady::now() - start;
  std::uint64_t producer_calls = 0;
  std::chrono::nanoseconds longest{0};
  std::string errors;
  for (const auto& log : producer_logs) {
    if (!log.error.empty()) errors += log.error + "\n";
    producer_calls += log.calls;
    longest = std::max(longest, log.longest);
  }
  errors += consumer_log.error;
  ASSERT_EQ(errors, "");
  EXPECT_EQ(v.received(), expected);
  {
    auto b = ring.try_read();
    EXPECT_FALSE(b) << b.size() << " records left over";
  }
  const sluice::ring_statistics s = ring.statistics();
  EXPECT_EQ(s.committed, expected);
  EXPECT_EQ(s.released, expected);
  EXPECT_EQ(s.committed + s.discarded, producers * per_producer);
  EXPECT_EQ(s.refused, 0u) << "a timed reservation ran out of time";
  EXPECT_EQ(ring.size_approx(), 0u);
  EXPECT_GE(s.wakeups, std::max<std::uint64_t>(10, consumer_log.calls / 1000)) << "hardly anybody slept: the test proves little";
  std::printf("[   info   ] %s, %zu bytes, %u producer(s): %llu records (%llu reservations, %llu blocking reads) in %s;\n"
              "[   info   ]   %llu wake-ups; longest wait %s (producers) / %s (consumer)\n",
              fence_mode(), ring.capacity(), producers, static_cast<unsigned long long>(expected),
              static_cast<unsigned long long>(producer_calls), static_cast<unsigned long long>(consumer_log.calls),
              ms(took).c_str(), static_cast<unsigned long long>(s.wakeups), ms(longest).c_str(),
              ms(consumer_log.longest).c_str());
  ::testing::Test::RecordProperty("wakeups", std::to_string(s.wakeups));
}

TEST(waiting_stress, MpscRecordRingThreeProducers) {
  run_records<sluice::mpsc_record_ring>(256, 3, at_least(chunks / 16, 5000), record_mode::water_marks);
}

TEST(waiting_stress, SpscRecordRingWaterMarks) {
  run_records<sluice::spsc_record_ring>(256, 1, at_least(chunks / 8, 10000), record_mode::water_marks);
}

TEST(waiting_stress, SpscRecordRingLockstep) {
  run_records<sluice::spsc_record_ring>(256, 1, at_least(chunks / 8, 10000), record_mode::lockstep);
}

// One page each: records of 24 to 4088 bytes, so most reservations wait for room, and a good
// part of the records run past the end of the storage.
TEST(waiting_stress, MirroredMpscRecordRingThreeProducers) {
  run_records<sluice::mpsc_record_ring>(4096, 3, at_least(mirrored_chunks / 32, 5000), record_mode::water_marks, storage::mirrored);
}

TEST(waiting_stress, MirroredSpscRecordRingWaterMarks) {
  run_records<sluice::spsc_record_ring>(4096, 1, at_least(mirrored_chunks / 16, 10000), record_mode::water_marks, storage::mirrored);
}

TEST(waiting_stress, MirroredSpscRecordRingLockstep) {
  run_records<sluice::spsc_record_ring>(4096, 1, at_least(mirrored_chunks / 16, 10000), record_mode::lockstep, storage::mirrored);
}

// -------------------------------------------------------------------------- close() under load

// How the threads of a round behave until close():
enum class variant {
  free_running,       // all run; close() lands anywhere
  consumer_holds_off,  // the consumer reads only after close(): producers are asleep for room
  producers_hold_off,  // producers reserve only after close(): the consumer is asleep for data
  count
};

struct close_tally {
  std::uint64_t rounds = 0, delivered = 0;
  std::uint64_t hold_off_rounds = 0, woken_by_close = 0;  // woken: close() issued a wake-up
};

// Waits until the ring is closed (polling: the thread must not be woken by the ring itself).
template <class Ring>
void wait_closed(const Ring& ring) {
  while (!ring.closed()) std::this_thread::sleep_for(20us);
}

// The closer: sleeps, closes, and counts whether close() woke a sleeper (in the hold-off
// variants nobody else issues wake-ups, so the statistic moves only through close()).
template <class Ring>
void close_after(Ring& ring, std::chrono::microseconds delay, variant var, close_tally& tally) {
  std::this_thread::sleep_for(delay);
  const std::uint64_t before = ring.statistics().wakeups;
  ring.close();
  if (var == variant::free_running) return;
  ++tally.hold_off_rounds;
  if (ring.statistics().wakeups != before) ++tally.woken_by_close;
}

// One round on a record ring. Returns an error message, empty on success.
// Over mirrored storage every capacity rounds up to a page or more.
template <class Ring>
std::string close_round_records(std::uint64_t seed, unsigned producers, close_tally& tally, storage kind = storage::plain) {
  std::mt19937_64 rng(seed);
  static constexpr std::size_t capacities[] = {64, 128, 256, 1024};
  static constexpr std::size_t mirrored_capacities[] = {4096, 4096, 8192, 12288};
  const std::size_t pick = static_cast<std::size_t>(rng() % 4);
  const auto made = make_ring<Ring>(kind, kind == storage::mirrored ? mirrored_capacities[pick] : capacities[pick]);
  Ring& ring = *made;
  const std::size_t max_length = std::min<std::size_t>(ring.max_record_size(), 200);
  const auto var = static_cast<variant>(rng() % static_cast<unsigned>(variant::count));
  const auto delay = std::chrono::microseconds(var == variant::free_running ? rng() % 2000 : 300 + rng() % 700);
  std::vector<std::uint64_t> committed(producers, 0);
  std::vector<std::string> errors(producers + 1);
  verifier v(seed, producers, max_length);
  {
    std::vector<std::jthread> threads;
    for (unsigned id = 0; id < producers; ++id)
      threads.emplace_back([&, id] {
        std::mt19937_64 prng(mix(seed ^ id));
        if (var == variant::producers_hold_off) wait_closed(ring);
        std::uint64_t seq = 0;
        for (;;) {
          if (prng() % 32 == 0) spin(prng() % 512);
          const plan p = plan_of(seed, id, seq, max_length);
          auto g = ring.reserve(p.length);  // untimed: only a wake-up or close() ends it
          if (!g) {
            if (!ring.closed()) errors[id] = "reserve() returned an empty grant on an open ring";
            break;
          }
          if (g.size() != p.length) {
            errors[id] = "a grant of the wrong size";
            break;
          }
          write_record(g.span(), id, seq);
          if (prng() % 64 == 0)  // hold the grant: close() may come before the commit
            std::this_thread::sleep_for(std::chrono::microseconds(prng() % 300));
          if (p.discard) {
            g.discard();
          } else {
            g.commit();
            ++committed[id];
          }
          ++seq;
        }
        // Closed: every reservation returns empty at once.
        const auto start = steady::now();
        auto g = ring.reserve(8);
        auto g2 = ring.try_reserve_for(8, 10s);
        if ((g || g2 || steady::now() - start > 1s) && errors[id].empty())
          errors[id] = "a reservation after close() did not return an empty grant at once";
      });
    threads.emplace_back([&] {  // the consumer
      std::mt19937_64 crng(mix(seed ^ 0xc0));
      if (var == variant::consumer_holds_off) wait_closed(ring);
      for (;;) {
        const std::size_t min_bytes = crng() % 2 ? 1 : 1 + crng() % ring.capacity();
        auto b = ring.read(min_bytes);  // untimed
        if (!b) {
          if (!ring.closed()) errors[producers] = "read() returned an empty batch on an open ring";
          break;
        }
        for (auto rec : b)
          if (!v.accept(rec, 0)) break;
        if (!v.error().empty()) break;
        b.release();
      }
    });
    close_after(ring, delay, var, tally);
  }  // joined
  for (const auto& e : errors)
    if (!e.empty()) return e;
  if (!v.error().empty()) return v.error();
  // Grants obtained before close() and committed after the consumer's last read: drain them.
  for (auto b = ring.try_read(); b; b = ring.try_read()) {
    for (auto rec : b)
      if (!v.accept(rec, 0)) return v.error();
    b.release();
  }
  std::uint64_t total = 0;
  for (unsigned id = 0; id < producers; ++id) {
    total += committed[id];
    // Every record the producer committed was received (the verifier saw them in order).
    std::uint64_t n = 0;
    for (std::uint64_t s = 0; s < v.next(id); ++s) n += plan_of(seed, id, s, max_length).discard ? 0 : 1;
    if (n != committed[id])
      return "producer " + std::to_string(id) + " committed " + std::to_string(committed[id]) + " records, " +
             std::to_string(n) + " delivered";
  }
  if (v.received() != total) return "committed " + std::to_string(total) + ", received " + std::to_string(v.received());
  const sluice::ring_statistics s = ring.statistics();
  if (s.committed != total || s.released != total) return "statistics disagree with the producers' counts";
  tally.delivered += total;
  ++tally.rounds;
  return {};
}

// One round on an spsc_ring<Item>: exact and up-to reservations, reads with water marks.
template <class Item = std::uint64_t>
std::string close_round_spsc(std::uint64_t seed, close_tally& tally, storage kind = storage::plain) {
  std::mt19937_64 rng(seed);
  const auto made = make_ring<sluice::spsc_ring<Item>>(kind, static_cast<std::size_t>(1 + rng() % 16));
  auto& ring = *made;
  const std::size_t cap = ring.capacity();
  const auto var = static_cast<variant>(rng() % static_cast<unsigned>(variant::count));
  const auto delay = std::chrono::microseconds(var == variant::free_running ? rng() % 2000 : 300 + rng() % 700);
  std::uint64_t committed = 0, received = 0;
  std::string producer_error, consumer_error;
  {
    std::jthread producer([&] {
      std::mt19937_64 prng(mix(seed ^ 1));
      if (var == variant::producers_hold_off) wait_closed(ring);
      for (;;) {
        if (prng() % 32 == 0) spin(prng() % 512);
        const std::size_t n = 1 + prng() % cap;
        auto g = prng() % 2 ? ring.reserve(n) : ring.reserve_up_to(n, 1 + prng() % n);  // untimed
        if (!g) {
          if (!ring.closed()) producer_error = "a reservation returned an empty grant on an open ring";
          break;
        }
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = make_item<Item>(committed + i);
        if (prng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(prng() % 300));
        const std::size_t k = 1 + prng() % g.size();
        g.commit(k);
        committed += k;
      }
      const auto start = steady::now();
      auto g = ring.reserve(1);
      auto g2 = ring.reserve_up_to(cap);
      if ((g || g2 || steady::now() - start > 1s) && producer_error.empty())
        producer_error = "a reservation after close() did not return an empty grant at once";
    });
    std::jthread consumer([&] {
      std::mt19937_64 crng(mix(seed ^ 2));
      if (var == variant::consumer_holds_off) wait_closed(ring);
      for (;;) {
        auto g = ring.read(1 + crng() % cap);  // untimed
        if (!g) {
          if (!ring.closed()) consumer_error = "read() returned an empty grant on an open ring";
          break;
        }
        for (std::size_t i = 0; i < g.size(); ++i, ++received)
          if (!is_item(g[i], received)) {
            consumer_error = item_error(g[i], received);
            return;
          }
        g.release();
      }
    });
    close_after(ring, delay, var, tally);
  }  // joined
  if (!producer_error.empty()) return producer_error;
  if (!consumer_error.empty()) return consumer_error;
  for (auto g = ring.try_read(); g; g = ring.try_read()) {  // committed after the consumer's last read
    for (std::size_t i = 0; i < g.size(); ++i, ++received)
      if (!is_item(g[i], received)) return item_error(g[i], received);
    g.release();
  }
  if (received != committed) return "committed " + std::to_string(committed) + " items, received " + std::to_string(received);
  const sluice::ring_statistics s = ring.statistics();
  if (s.committed != committed || s.released != committed) return "statistics disagree with the producer's count";
  tally.delivered += committed;
  ++tally.rounds;
  return {};
}

template <class Round>
void run_close_rounds(const char* what, std::uint64_t rounds, Round round) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set SLUICE_STRESS_SEED to reuse)");
  watchdog dog(std::string("close() rounds on ") + what, watchdog_limit);
  close_tally tally;
  const auto start = steady::now();
  for (std::uint64_t r = 0; r < rounds; ++r) {
    const std::string e = round(mix(seed + r), tally);
    ASSERT_EQ(e, "") << "round " << r << " (round seed " << mix(seed + r) << ")";
    dog.kick();
  }
  std::printf("[   info   ] %s, %s: %llu rounds in %s, %llu delivered, close() woke a sleeper in %llu of %llu hold-off rounds\n",
              fence_mode(), what, static_cast<unsigned long long>(tally.rounds), ms(steady::now() - start).c_str(),
              static_cast<unsigned long long>(tally.delivered), static_cast<unsigned long long>(tally.woken_by_close),
              static_cast<unsigned long long>(tally.hold_off_rounds));
  // Proof that the rounds closed rings with threads asleep in them, not only idle ones.
  EXPECT_GT(tally.woken_by_close, tally.hold_off_rounds / 4);
}

constexpr std::uint64_t close_rounds = 600;

TEST(waiting_stress, CloseWakesEveryoneSpscRing) {
  run_close_rounds("spsc_ring", close_rounds, [](std::uint64_t seed, close_tally& t) { return close_round_spsc(seed, t); });
}

TEST(waiting_stress, CloseWakesEveryoneSpscRecordRing) {
  run_close_rounds("spsc_record_ring", close_rounds, [](std::uint64_t seed, close_tally& t) {
    return close_round_records<sluice::spsc_record_ring>(seed, 1, t);
  });
}

TEST(waiting_stress, CloseWakesEveryoneMpscRecordRing) {
  run_close_rounds("mpsc_record_ring", close_rounds, [](std::uint64_t seed, close_tally& t) {
    return close_round_records<sluice::mpsc_record_ring>(seed, 1 + static_cast<unsigned>(seed % 3) + 1, t);
  });
}

TEST(waiting_stress, MirroredCloseWakesEveryoneSpscRing) {
  if (!page_items_fit()) GTEST_SKIP() << "needs 4 KiB pages";
  run_close_rounds("mirrored spsc_ring", close_rounds, [](std::uint64_t seed, close_tally& t) {
    return close_round_spsc<page_item>(seed, t, storage::mirrored);
  });
}

TEST(waiting_stress, MirroredCloseWakesEveryoneSpscRecordRing) {
  run_close_rounds("mirrored spsc_record_ring", close_rounds, [](std::uint64_t seed, close_tally& t) {
    return close_round_records<sluice::spsc_record_ring>(seed, 1, t, storage::mirrored);
  });
}

TEST(waiting_stress, MirroredCloseWakesEveryoneMpscRecordRing) {
  run_close_rounds("mirrored mpsc_record_ring", close_rounds, [](std::uint64_t seed, close_tally& t) {
    return close_round_records<sluice::mpsc_record_ring>(seed, 1 + static_cast<unsigned>(seed % 3) + 1, t, storage::mirrored);
  });
}

// ------------------------------------------------------------- water mark and in-flight head

// read(min_bytes) returns what is ready once a producer is stuck for room, even when the record
// at the head was still in flight when that producer fell asleep:
//   1. producer A reserves the record at the head and is still writing it; B commits a record
//      behind it (144 of 256 bytes used);
//   2. the consumer calls read(256): nothing is ready (the head is in flight), it sleeps
//      wanting 256 bytes;
//   3. producer C needs 128 bytes, finds 112 free, and sleeps; its nudge wakes the consumer,
//      which still finds nothing ready and sleeps again;
//   4. A commits: two records are ready and a producer is stuck, so the commit must wake the
//      consumer although 144 bytes are short of its water mark. Otherwise consumer and C sleep
//      on each other (with untimed calls, for ever).
// The spsc rings cannot get here: their lone producer never sleeps with another reservation in
// flight.
TEST(waiting_stress, MpscWaterMarkGivesWayWhenTheHeadRecordCompletes) {
  sluice::mpsc_record_ring ring(256);
  auto a = ring.try_reserve(16);  // producer A (this thread): footprint 24, at the head, in flight
  ASSERT_TRUE(a);
  {
    auto b = ring.try_reserve(112);  // producer B: footprint 120, committed behind A
    ASSERT_TRUE(b);
    b.commit();
  }
  std::chrono::nanoseconds read_took{0}, reserve_took{0};
  std::size_t records = 0;
  bool c_got_room = false;
  {
    std::jthread consumer([&] {
      const auto start = steady::now();
      auto batch = ring.try_read_for(5s, 256);
      read_took = steady::now() - start;
      records = batch.size();
      batch.release();
    });
    std::this_thread::sleep_for(200ms);  // the consumer sleeps: nothing is ready
    std::jthread producer_c([&] {
      const auto start = steady::now();
      auto c = ring.try_reserve_for(120, 5s);  // footprint 128, 112 free: sleeps
      reserve_took = steady::now() - start;
      c_got_room = static_cast<bool>(c);
      if (c) c.commit();
    });
    std::this_thread::sleep_for(200ms);  // C sleeps for room
    a.commit();  // two records ready (144 bytes), a producer stuck: the consumer must return now
  }  // joined
  std::printf("[   info   ] read(256) returned %zu records after %s; C's reservation %s after %s\n", records,
              ms(read_took).c_str(), c_got_room ? "succeeded" : "failed", ms(reserve_took).c_str());
  EXPECT_EQ(records, 2u);
  EXPECT_LT(read_took, 1s) << "the consumer slept on its water mark while a producer was stuck for room";
  EXPECT_TRUE(c_got_room);
  EXPECT_LT(reserve_took, 1s);
}

// The same over mirrored storage of one page, with B's record running past the end of the
// storage (the cursors start at 2048), and untimed calls: if the commit of A's record does not
// wake the consumer, consumer and C sleep on each other and the watchdog fails the test. Nothing
// about time is asserted; the sleeps only let each thread get to its futex.
TEST(waiting_stress, MirroredMpscWaterMarkGivesWayWhenTheHeadRecordCompletes) {
  sluice::mpsc_record_ring ring(sluice::mirrored, 4096);
  const std::size_t cap = ring.capacity();
  ASSERT_EQ(cap, 4096u);
  watchdog dog("the mirrored head-record water mark", watchdog_limit);
  {
    auto g = ring.try_reserve(2040);  // footprint 2048: the cursors move to 2048
    ASSERT_TRUE(g);
    g.commit();
    auto b = ring.try_read();
    ASSERT_EQ(b.size(), 1u);
    b.release();
  }
  auto a = ring.try_reserve(16);  // producer A (this thread): footprint 24, at the head, in flight
  ASSERT_TRUE(a);
  std::memset(a.data(), 0xAA, 16);
  const std::size_t b_size = cap - 24 - 112 - 8;  // leaves 112 bytes free
  const std::byte* b_data = nullptr;
  {
    auto b = ring.try_reserve(b_size);  // producer B: committed behind A, across the seam
    ASSERT_TRUE(b);
    b_data = b.data();
    for (std::size_t i = 0; i < b_size; ++i) b.data()[i] = static_cast<std::byte>(mix(i));
    b.commit();
  }
  ASSERT_GT(b_data + b_size, a.data() - 2048 - 8 + cap) << "B's record should run past the end of the storage";
  std::size_t records = 0;
  bool b_intact = false, c_got_room = false;
  {
    std::jthread consumer([&] {
      auto batch = ring.read(cap);  // untimed: only the commit of A (or a producer stuck) can end it
      records = batch.size();
      std::size_t i = 0;
      for (const std::span<const std::byte> rec : batch) {
        if (i++ == 1) {
          b_intact = rec.data() == b_data && rec.size() == b_size;
          for (std::size_t j = 0; b_intact && j < b_size; ++j) b_intact = rec[j] == static_cast<std::byte>(mix(j));
        }
      }
      batch.release();
    });
    std::this_thread::sleep_for(200ms);  // the consumer sleeps: nothing is ready
    std::jthread producer_c([&] {
      auto c = ring.reserve(120);  // footprint 128, 112 free: sleeps, untimed
      c_got_room = static_cast<bool>(c);
      if (c) c.commit();
    });
    std::this_thread::sleep_for(200ms);  // C sleeps for room
    a.commit();  // two records ready, 3984 of 4096 bytes, a producer stuck: the consumer must return
  }  // joined
  EXPECT_EQ(records, 2u);
  EXPECT_TRUE(b_intact) << "the record across the seam did not arrive intact";
  EXPECT_TRUE(c_got_room);
  auto c = ring.try_read();
  EXPECT_EQ(c.size(), 1u);
  c.release();
  EXPECT_EQ(ring.size_approx(), 0u);
}

// ---------------------------------------------------------------------------------- fence mode

// tests/CMakeLists.txt registers this executable twice; the second run sets
// SLUICE_NO_MEMBARRIER=1. This test shows which protocol the other tests of the run exercised.
TEST(waiting_stress, FenceMode) {
  const char* env = std::getenv("SLUICE_NO_MEMBARRIER");
  const bool asymmetric = sluice::detail::enable_asymmetric_fences();
  std::printf("[   info   ] SLUICE_NO_MEMBARRIER=%s: the rings use %s\n", env ? env : "(unset)", fence_mode());
  ::testing::Test::RecordProperty("fence_mode", fence_mode());
  sluice::spsc_ring<std::uint64_t> ring(1);
  EXPECT_EQ(ta::asymmetric(ring), asymmetric) << "a ring disagrees with the process-wide decision";
  if (membarrier_disabled_by_env()) {
    EXPECT_FALSE(asymmetric) << "SLUICE_NO_MEMBARRIER is set, yet the rings pair membarrier with compiler barriers";
  } else {
#if defined(__linux__)
    const long supported = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    const bool kernel_has_it = supported >= 0 && (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                               (supported & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
    EXPECT_EQ(asymmetric, kernel_has_it) << "membarrier query returned " << supported;
#else
    EXPECT_FALSE(asymmetric);
#endif
  }
}

}  // namespace
