// Waiting, closing and statistics for all three rings: sluice::spsc_ring<T>,
// sluice::spsc_record_ring and sluice::mpsc_record_ring (<sluice/spsc_ring.hpp>,
// <sluice/record_ring.hpp>, <sluice/detail/wait.hpp>). Covered: every blocking and timed call
// returning at once when its condition holds, waking as soon as the other thread provides it,
// and timing out (steady and system clocks, zero and negative durations); water marks, and the
// rule that they never deadlock the two sides; close() waking every sleeper, draining what was
// committed and refusing every later reservation; exact statistics; no system call on the
// non-blocking paths; misuse errors; the no_waiting policy. Both record rings run every shared
// test (TYPED_TEST).
//
// No test asserts how fast anything happened, only what it returned (and, for timeouts, that at
// least the requested time passed). Every wait that must end is bounded: timed calls get kLong,
// and a watchdog closes the ring after kLong, which ends every blocking call and fails the test
// instead of hanging it. A test that needs the other thread asleep waits until kernel_calls()
// shows that it went to sleep.
#include <sluice/detail/wait.hpp>
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <initializer_list>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using sluice::mpsc_record_ring;
using sluice::spsc_record_ring;
using sluice::spsc_ring;
using steady = std::chrono::steady_clock;
using sys = std::chrono::system_clock;
using u32 = std::uint32_t;
using ring32 = spsc_ring<u32>;

// Bounds every wait that must end; reached only when something is broken.
constexpr auto kLong = 10s;
// Timeouts that are meant to expire.
constexpr auto kShort = 50ms;
// How long a test watches a waiting thread to see that it stays put.
constexpr auto kLinger = 100ms;

std::uint64_t kernel_calls() { return sluice::detail::kernel_calls(); }

// ============================================================================ compile-time
// The waiting calls exist exactly with the `waitable` policy (a requires-expression is false
// when the member's constraint fails), and record rings have no up-to reservations.
template <class R>
concept has_read = requires(R& r) { r.read(); };
template <class R>
concept has_read_for = requires(R& r) { r.try_read_for(1ms); };
template <class R>
concept has_read_until = requires(R& r) { r.try_read_until(steady::now()); };
template <class R>
concept has_reserve = requires(R& r) { r.reserve(1); };
template <class R>
concept has_reserve_for = requires(R& r) { r.try_reserve_for(1, 1ms); };
template <class R>
concept has_reserve_until = requires(R& r) { r.try_reserve_until(1, sys::now()); };
template <class R>
concept has_reserve_up_to = requires(R& r) { r.reserve_up_to(1); };
template <class R>
concept has_reserve_up_to_for = requires(R& r) { r.try_reserve_up_to_for(1, 1ms); };
template <class R>
concept has_reserve_up_to_until = requires(R& r) { r.try_reserve_up_to_until(1, steady::now()); };
// What no_waiting keeps: the non-blocking calls, close() and the statistics.
template <class R>
concept has_the_rest = requires(R& r, const R& c) {
  r.try_read();
  r.try_reserve(1);
  r.close();
  { c.closed() } -> std::same_as<bool>;
  { c.statistics() } -> std::same_as<sluice::ring_statistics>;
};

template <class R>
constexpr bool waits_for_data = has_read<R> && has_read_for<R> && has_read_until<R>;
template <class R>
constexpr bool waits_for_room = has_reserve<R> && has_reserve_for<R> && has_reserve_until<R>;
template <class R>
constexpr bool waits_for_a_run = has_reserve_up_to<R> && has_reserve_up_to_for<R> && has_reserve_up_to_until<R>;
template <class R>
constexpr bool waits_for_any_run = has_reserve_up_to<R> || has_reserve_up_to_for<R> || has_reserve_up_to_until<R>;
template <class R>
constexpr bool waits_at_all = has_read<R> || has_read_for<R> || has_read_until<R> || has_reserve<R> ||
                              has_reserve_for<R> || has_reserve_until<R> || has_reserve_up_to<R> ||
                              has_reserve_up_to_for<R> || has_reserve_up_to_until<R>;

using quiet32 = spsc_ring<u32, sluice::no_waiting>;
using quiet_spsc_records = sluice::basic_record_ring<sluice::single_producer, sluice::no_waiting>;
using quiet_mpsc_records = sluice::basic_record_ring<sluice::multi_producer, sluice::no_waiting>;

static_assert(waits_for_data<ring32> && waits_for_room<ring32> && waits_for_a_run<ring32>);
static_assert(waits_for_data<spsc_record_ring> && waits_for_room<spsc_record_ring>);
static_assert(waits_for_data<mpsc_record_ring> && waits_for_room<mpsc_record_ring>);
static_assert(!waits_for_any_run<spsc_record_ring> && !waits_for_any_run<mpsc_record_ring>);
static_assert(!waits_at_all<quiet32> && has_the_rest<quiet32>);
static_assert(!waits_at_all<quiet_spsc_records> && has_the_rest<quiet_spsc_records>);
static_assert(!waits_at_all<quiet_mpsc_records> && has_the_rest<quiet_mpsc_records>);
static_assert(has_the_rest<ring32> && has_the_rest<spsc_record_ring> && has_the_rest<mpsc_record_ring>);

// ============================================================================ threads

// Runs f on its own thread; get() waits for it and hands its result (and the ring roles it
// played) back to the caller.
template <class F>
auto start(F f) {
  return std::async(std::launch::async, std::move(f));
}

template <class T>
bool returned(const std::future<T>& f) {
  return f.wait_for(0s) == std::future_status::ready;
}

// Polls `done` until it holds or kLong passes; returns its last answer.
template <class Pred>
bool eventually(Pred done) {
  const auto give_up = steady::now() + kLong;
  while (!done()) {
    if (steady::now() >= give_up) return done();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// System calls one trip to sleep makes, both counted after the sleeper announced itself:
// membarrier (when the asymmetric fences are on), then the futex wait.
std::uint64_t calls_per_sleep() { return sluice::detail::enable_asymmetric_fences() ? 2 : 1; }

// Succeeds once a thread went to sleep on a ring since kernel_calls() read `before` (the caller
// makes sure only one thread can), after a grace period so it is inside its futex wait.
::testing::AssertionResult asleep_since(std::uint64_t before) {
  if (!eventually([&] { return kernel_calls() >= before + calls_per_sleep(); }))
    return ::testing::AssertionFailure() << "no thread went to sleep within " << kLong.count() << " s";
  std::this_thread::sleep_for(10ms);
  return ::testing::AssertionSuccess();
}

// Closes `ring` if it is still alive kLong after construction, so a wake-up that never comes
// ends every blocking call on it (fired() then fails the test) instead of hanging. Declare it
// before the threads it guards: it must outlive them.
template <class Ring>
class watchdog {
 public:
  explicit watchdog(Ring& ring)
      : thread_([this, &ring] {
          std::unique_lock lock(mutex_);
          if (!stop_.wait_for(lock, kLong, [this] { return done_; })) {
            fired_ = true;
            ring.close();
          }
        }) {}
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    stop_.notify_all();
    thread_.join();
  }
  bool fired() const { return fired_.load(); }

 private:
  std::mutex mutex_;
  std::condition_variable stop_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;  // last: starts once the members above exist
};

// ============================================================================ spsc_ring helpers

std::vector<u32> seq(u32 first, u32 n) {
  std::vector<u32> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

template <class Grant>
std::vector<u32> values(const Grant& g) {
  return {g.begin(), g.end()};
}

// Writes first, first + 1, ... into every element of a write grant and commits all of them.
template <class Grant>
void fill_commit(Grant& g, u32 first) {
  for (u32& x : g) x = first++;
  g.commit();
}

template <class Ring>
void push(Ring& r, u32 first, u32 n) {
  for (u32 i = 0; i < n; ++i) ASSERT_TRUE(r.try_push(first + i)) << "element " << first + i;
}

// Everything readable now, in order, released.
template <class Ring>
std::vector<u32> drain(Ring& r) {
  std::vector<u32> out;
  while (auto g = r.try_read()) {
    out.insert(out.end(), g.begin(), g.end());
    g.release();
  }
  return out;
}

// ============================================================================ record helpers

using payload = std::vector<std::byte>;

// The payload of the record with sequence number `seq`: a record read from the wrong place or
// a stale copy does not match.
payload bytes_of(std::uint64_t seq, std::size_t len) {
  payload p(len);
  for (std::size_t i = 0; i < len; ++i)
    p[i] = static_cast<std::byte>(((seq * 0x9E3779B97F4A7C15ull + i * 0x2545F4914F6CDD1Dull) >> 56) ^ i);
  return p;
}

// Writes record `seq` into a grant (all of it) and commits it.
template <class Grant>
void write_commit(Grant& g, std::uint64_t seq) {
  const payload p = bytes_of(seq, g.size());
  std::copy(p.begin(), p.end(), g.data());
  g.commit();
}

template <class Ring>
void put(Ring& r, std::uint64_t seq, std::size_t len) {
  auto g = r.try_reserve(len);
  ASSERT_TRUE(g) << "record " << seq << " of " << len << " bytes";
  write_commit(g, seq);
}

template <class Batch>
std::vector<payload> records_of(const Batch& b) {
  std::vector<payload> out;
  for (std::span<const std::byte> rec : b) out.emplace_back(rec.begin(), rec.end());
  return out;
}

// The payloads of records (seq, length), in order.
std::vector<payload> expected(std::initializer_list<std::pair<std::uint64_t, std::size_t>> recs) {
  std::vector<payload> out;
  for (const auto& [s, len] : recs) out.push_back(bytes_of(s, len));
  return out;
}

// Every record readable now, in order, released.
template <class Ring>
std::vector<payload> drain_records(Ring& r) {
  std::vector<payload> out;
  while (auto b = r.try_read()) {
    for (payload& p : records_of(b)) out.push_back(std::move(p));
    b.release();
  }
  return out;
}

// The record rings of the typed tests: 128 bytes, so records of up to 56 bytes (64 of ring
// space each); a record of n bytes spans 8 + n rounded up to 8.
constexpr std::size_t kCap = 128;
constexpr std::size_t kMax = 56;
constexpr std::size_t span_of(std::size_t n) { return 8 + (n + 7) / 8 * 8; }

// ============================================================================ error helpers

// f() throws std::length_error whose message names the request and, in parentheses, the limit.
template <class F>
::testing::AssertionResult throws_length_error(F f, std::size_t request, std::size_t limit) {
  try {
    f();
  } catch (const std::length_error& e) {
    const std::string what = e.what();
    if (what.find(" " + std::to_string(request) + " ") == std::string::npos ||
        what.find("(" + std::to_string(limit) + ")") == std::string::npos)
      return ::testing::AssertionFailure() << "the message does not name " << request << " and (" << limit
                                           << "): " << what;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  }
  return ::testing::AssertionFailure() << "nothing thrown";
}

// f() throws std::logic_error (not one of its length/range subclasses) about an outstanding
// grant or batch.
template <class F>
::testing::AssertionResult throws_outstanding(F f) {
  try {
    f();
  } catch (const std::length_error& e) {
    return ::testing::AssertionFailure() << "length_error: " << e.what();
  } catch (const std::out_of_range& e) {
    return ::testing::AssertionFailure() << "out_of_range: " << e.what();
  } catch (const std::logic_error& e) {
    if (std::string(e.what()).find("outstanding") == std::string::npos)
      return ::testing::AssertionFailure() << "unexpected message: " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something else: " << e.what();
  }
  return ::testing::AssertionFailure() << "nothing thrown";
}

// ============================================================================ the waiting calls
// Each ring's waiting calls as a list, so a test can run every form: the untimed one and the
// timed ones with a generous bound (kLong, from now on the steady and on the system clock).

template <class Ring>
using read_t = decltype(std::declval<Ring&>().try_read());
template <class Ring>
using reserve_t = decltype(std::declval<Ring&>().try_reserve(std::size_t{1}));

template <class Ring>
struct read_call {
  std::string name;
  std::function<read_t<Ring>(Ring&, std::size_t)> call;  // (ring, water mark)
};

template <class Ring>
std::vector<read_call<Ring>> waiting_reads() {
  return {
      {"read", [](Ring& r, std::size_t min) { return r.read(min); }},
      {"try_read_for", [](Ring& r, std::size_t min) { return r.try_read_for(kLong, min); }},
      {"try_read_until(steady_clock)",
       [](Ring& r, std::size_t min) { return r.try_read_until(steady::now() + kLong, min); }},
      {"try_read_until(system_clock)",
       [](Ring& r, std::size_t min) { return r.try_read_until(sys::now() + kLong, min); }},
  };
}

template <class Ring>
struct reserve_call {
  std::string name;
  std::function<reserve_t<Ring>(Ring&, std::size_t)> call;  // (ring, n)
};

template <class Ring>
std::vector<reserve_call<Ring>> waiting_reservations() {
  return {
      {"reserve", [](Ring& r, std::size_t n) { return r.reserve(n); }},
      {"try_reserve_for", [](Ring& r, std::size_t n) { return r.try_reserve_for(n, kLong); }},
      {"try_reserve_until(steady_clock)",
       [](Ring& r, std::size_t n) { return r.try_reserve_until(n, steady::now() + kLong); }},
      {"try_reserve_until(system_clock)",
       [](Ring& r, std::size_t n) { return r.try_reserve_until(n, sys::now() + kLong); }},
  };
}

// spsc_ring's up-to reservations: (ring, n, min_free).
struct up_to_call {
  std::string name;
  std::function<ring32::write_grant(ring32&, std::size_t, std::size_t)> call;
};

std::vector<up_to_call> waiting_up_to() {
  return {
      {"reserve_up_to", [](ring32& r, std::size_t n, std::size_t m) { return r.reserve_up_to(n, m); }},
      {"try_reserve_up_to_for",
       [](ring32& r, std::size_t n, std::size_t m) { return r.try_reserve_up_to_for(n, kLong, m); }},
      {"try_reserve_up_to_until(steady_clock)",
       [](ring32& r, std::size_t n, std::size_t m) { return r.try_reserve_up_to_until(n, steady::now() + kLong, m); }},
      {"try_reserve_up_to_until(system_clock)",
       [](ring32& r, std::size_t n, std::size_t m) { return r.try_reserve_up_to_until(n, sys::now() + kLong, m); }},
  };
}

// ============================================================================ typed suite

template <class Ring>
class RecordWaiting : public ::testing::Test {};

using record_rings = ::testing::Types<spsc_record_ring, mpsc_record_ring>;
struct record_ring_names {
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, spsc_record_ring> ? "spsc" : "mpsc";
  }
};
TYPED_TEST_SUITE(RecordWaiting, record_rings, record_ring_names);

// ============================================================================ 1. condition holds

// Every waiting call of spsc_ring whose condition already holds returns at once with the right
// grant (size, place in the storage, contents) and makes no system call: reservations with room,
// reads with enough ready. A read's water mark counts ready elements, but the grant stops at the
// end of the storage. reserve(0) and try_reserve_for(0, ...) return an empty grant at once even
// on a full ring, and count as no refusal.
TEST(SpscWaiting, CallsWhoseConditionHoldsReturnAtOnce) {
  std::array<u32, 8> store{};
  ring32 r{std::span<u32>(store)};
  watchdog dog(r);
  const std::uint64_t calls = kernel_calls();
  auto at = [&](const auto& g) { return g.data() - store.data(); };

  {
    auto g = r.reserve(3);
    ASSERT_EQ(g.size(), 3u);
    EXPECT_EQ(at(g), 0);
    fill_commit(g, 0);
  }
  {
    auto g = r.try_reserve_for(2, kLong);
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(at(g), 3);
    fill_commit(g, 3);
  }
  {
    auto g = r.try_reserve_until(1, steady::now() + kLong);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_EQ(at(g), 5);
    fill_commit(g, 5);
  }
  {
    auto g = r.try_reserve_until(1, sys::now() + kLong);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_EQ(at(g), 6);
    fill_commit(g, 6);
  }
  {  // One element is free: an up-to reservation (min_free 1) takes it.
    auto g = r.reserve_up_to(5);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_EQ(at(g), 7);
    fill_commit(g, 7);
  }
  // Full: a reservation of nothing still returns at once.
  EXPECT_FALSE(r.reserve(0));
  EXPECT_FALSE(r.try_reserve_for(0, kLong));
  EXPECT_FALSE(r.reserve_up_to(0));

  {
    auto g = r.read();
    EXPECT_EQ(values(g), seq(0, 8));
    EXPECT_EQ(g.data(), store.data());
    g.release(5);
  }
  {
    auto g = r.try_read_for(kLong, 3);
    EXPECT_EQ(values(g), seq(5, 3));
    g.release();
  }
  // Empty, the cursors at storage index 0: the up-to forms take the longest run, capped at n.
  {
    auto g = r.try_reserve_up_to_for(5, kLong, 5);
    ASSERT_EQ(g.size(), 5u);
    EXPECT_EQ(at(g), 0);
    fill_commit(g, 8);
  }
  {
    auto g = r.try_reserve_up_to_until(100, steady::now() + kLong, 3);
    ASSERT_EQ(g.size(), 3u);
    EXPECT_EQ(at(g), 5);
    fill_commit(g, 13);
  }
  {
    auto g = r.try_read_until(steady::now() + kLong, 8);
    EXPECT_EQ(values(g), seq(8, 8));
    g.release(4);
  }
  {
    auto g = r.try_reserve_up_to_until(100, sys::now() + kLong, 4);
    ASSERT_EQ(g.size(), 4u);
    EXPECT_EQ(at(g), 0);
    fill_commit(g, 16);
  }
  {  // Eight are ready, but the storage ends after four: the grant holds those four.
    auto g = r.try_read_until(sys::now() + kLong, 8);
    EXPECT_EQ(values(g), seq(12, 4));
    EXPECT_EQ(g.data(), store.data() + 4);
    g.release();
  }
  {
    auto g = r.read(4);
    EXPECT_EQ(values(g), seq(16, 4));
    g.release();
  }

  EXPECT_EQ(kernel_calls(), calls) << "a call whose condition held made a system call";
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.refused, 0u);
  EXPECT_EQ(s.committed, 20u);
  EXPECT_EQ(s.released, 20u);
  EXPECT_FALSE(dog.fired());
}

// The same for the record rings: reservations with room place the record at the predicted
// offset (behind a skipped tail when the end is too short), reads whose water mark (bytes of
// ring space: headers and padding included) is met return the ready records, with no system
// call.
TYPED_TEST(RecordWaiting, CallsWhoseConditionHoldsReturnAtOnce) {
  alignas(8) std::array<std::byte, kCap> store{};
  TypeParam r{std::span<std::byte>(store)};
  ASSERT_EQ(r.max_record_size(), kMax);
  watchdog dog(r);
  const std::uint64_t calls = kernel_calls();
  auto at = [&](const auto& g) { return g.data() - store.data(); };

  {
    auto g = r.reserve(10);  // spans 24 bytes at 0
    ASSERT_TRUE(g);
    EXPECT_EQ(g.size(), 10u);
    EXPECT_EQ(at(g), 8);
    write_commit(g, 1);
  }
  {
    auto g = r.try_reserve_for(0, kLong);  // spans 8 at 24
    ASSERT_TRUE(g);
    EXPECT_EQ(g.size(), 0u);
    EXPECT_EQ(at(g), 32);
    write_commit(g, 2);
  }
  {
    auto g = r.try_reserve_until(20, steady::now() + kLong);  // spans 32 at 32
    ASSERT_TRUE(g);
    EXPECT_EQ(at(g), 40);
    write_commit(g, 3);
  }
  {
    auto g = r.try_reserve_until(5, sys::now() + kLong);  // spans 16 at 64
    ASSERT_TRUE(g);
    EXPECT_EQ(at(g), 72);
    write_commit(g, 4);
  }
  {
    auto b = r.read();
    EXPECT_EQ(records_of(b), expected({{1, 10}, {2, 0}, {3, 20}, {4, 5}}));
    b.release(1);
  }
  {  // Exactly the water mark: 8 + 32 + 16 bytes.
    auto b = r.try_read_for(kLong, span_of(0) + span_of(20) + span_of(5));
    EXPECT_EQ(records_of(b), expected({{2, 0}, {3, 20}, {4, 5}}));
    b.release();
  }
  {  // 48 bytes are left at the end, the record spans 56: it goes to 0, the tail is skipped.
    auto g = r.reserve(48);
    ASSERT_TRUE(g);
    EXPECT_EQ(at(g), 8);
    write_commit(g, 5);
  }
  {  // The skipped tail counts towards the water mark: 48 + 56 bytes.
    auto b = r.try_read_until(steady::now() + kLong, 48 + span_of(48));
    EXPECT_EQ(records_of(b), expected({{5, 48}}));
    b.release();
  }
  {
    auto g = r.try_reserve_until(kMax, sys::now() + kLong);  // the largest record, at 56
    ASSERT_TRUE(g);
    EXPECT_EQ(at(g), 64);
    write_commit(g, 6);
  }
  {
    auto b = r.try_read_until(sys::now() + kLong, span_of(kMax));
    EXPECT_EQ(records_of(b), expected({{6, kMax}}));
    b.release();
  }

  EXPECT_EQ(kernel_calls(), calls) << "a call whose condition held made a system call";
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.refused, 0u);
  EXPECT_EQ(s.committed, 6u);
  EXPECT_EQ(s.released, 6u);
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_FALSE(dog.fired());
}

// ============================================================================ 2. the other side provides

// A consumer asleep in each waiting read returns once the producer commits, with exactly the
// elements committed (one commit of three); the wake-up is a real one (a futex wake, counted in
// statistics().wakeups and kernel_calls()).
TEST(SpscWaiting, SleepingConsumerGetsExactlyWhatIsCommitted) {
  for (const auto& form : waiting_reads<ring32>()) {
    SCOPED_TRACE(form.name);
    ring32 r(8);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto g = form.call(r, 1);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    EXPECT_FALSE(returned(reader));
    {
      auto g = r.try_reserve(3);
      ASSERT_TRUE(g);
      fill_commit(g, 10);
    }
    EXPECT_EQ(reader.get(), seq(10, 3));
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_GT(kernel_calls(), calls + calls_per_sleep());
    EXPECT_EQ(r.size_approx(), 0u);
    EXPECT_FALSE(dog.fired());
  }
}

// A producer asleep in each waiting reservation on a full ring returns once the consumer
// releases three elements, with a grant of exactly those three (the up-to forms: the three
// free, the longest run); what it commits arrives after the older elements.
TEST(SpscWaiting, SleepingProducerGetsRoomOnceReleased) {
  auto check = [](const std::string& name, const std::function<ring32::write_grant(ring32&)>& reserve) {
    SCOPED_TRACE(name);
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 8);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] {
      auto g = reserve(r);
      const std::size_t n = g.size();
      if (g) fill_commit(g, 100);
      return n;
    });
    ASSERT_TRUE(asleep_since(calls));
    EXPECT_FALSE(returned(writer));
    {
      auto g = r.try_read();
      EXPECT_EQ(values(g), seq(0, 8));
      g.release(3);
    }
    EXPECT_EQ(writer.get(), 3u);
    std::vector<u32> want = seq(3, 5);
    for (u32 v : seq(100, 3)) want.push_back(v);
    EXPECT_EQ(drain(r), want);
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_FALSE(dog.fired());
  };
  for (const auto& form : waiting_reservations<ring32>()) check(form.name, [&](ring32& r) { return form.call(r, 3); });
  for (const auto& form : waiting_up_to()) check(form.name, [&](ring32& r) { return form.call(r, 5, 1); });
}

// A consumer asleep in each waiting read of a record ring returns once the records are ready:
// of two reservations, committing the second does not return it (the first, still in flight,
// holds the second back); committing the first delivers both, in reservation order.
TYPED_TEST(RecordWaiting, SleepingConsumerGetsExactlyWhatIsCommitted) {
  for (const auto& form : waiting_reads<TypeParam>()) {
    SCOPED_TRACE(form.name);
    TypeParam r(kCap);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto b = form.call(r, 1);
      std::vector<payload> got = records_of(b);
      b.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    auto first = r.try_reserve(10);
    auto second = r.try_reserve(20);
    ASSERT_TRUE(first && second);
    write_commit(second, 2);
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "returned while the first record was still in flight";
    write_commit(first, 1);
    EXPECT_EQ(reader.get(), expected({{1, 10}, {2, 20}}));
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_GT(kernel_calls(), calls + calls_per_sleep());
    EXPECT_EQ(r.size_approx(), 0u);
    EXPECT_FALSE(dog.fired());
  }
}

// A producer asleep in each waiting reservation on a full record ring returns once the consumer
// releases one record, with a grant of the requested size; its record arrives after the older.
TYPED_TEST(RecordWaiting, SleepingProducerGetsRoomOnceReleased) {
  for (const auto& form : waiting_reservations<TypeParam>()) {
    SCOPED_TRACE(form.name);
    TypeParam r(kCap);
    watchdog dog(r);
    put(r, 1, kMax);
    put(r, 2, kMax);  // full: 2 x 64 bytes
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] {
      auto g = form.call(r, kMax);
      const std::size_t n = g ? g.size() : 0;
      if (g) write_commit(g, 3);
      return n;
    });
    ASSERT_TRUE(asleep_since(calls));
    EXPECT_FALSE(returned(writer));
    {
      auto b = r.try_read();
      EXPECT_EQ(records_of(b), expected({{1, kMax}, {2, kMax}}));
      b.release(1);
    }
    EXPECT_EQ(writer.get(), kMax);
    EXPECT_EQ(drain_records(r), expected({{2, kMax}, {3, kMax}}));
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_FALSE(dog.fired());
  }
}

// Several producers of an mpsc ring asleep on a full ring, one in each waiting form, are all
// served as the consumer frees room (one record at a time, so they must take turns), and every
// record arrives intact.
TEST(MpscWaiting, SeveralSleepingProducersAreAllServed) {
  mpsc_record_ring r(kCap);
  watchdog dog(r);
  put(r, 1, kMax);
  put(r, 2, kMax);
  const auto forms = waiting_reservations<mpsc_record_ring>();
  std::vector<std::future<std::size_t>> writers;
  for (std::size_t i = 0; i < forms.size(); ++i)
    writers.push_back(start([&r, &forms, i] {
      auto g = forms[i].call(r, kMax);
      const std::size_t n = g ? g.size() : 0;
      if (g) write_commit(g, 10 + i);
      return n;
    }));
  std::this_thread::sleep_for(kLinger);
  for (const auto& w : writers) EXPECT_FALSE(returned(w));

  std::vector<payload> got;
  while (got.size() < 2 + forms.size()) {
    auto b = r.try_read_for(kLong);
    if (!b) break;
    got.push_back(records_of(b).front());
    b.release(1);
  }
  for (auto& w : writers) EXPECT_EQ(w.get(), kMax);
  ASSERT_EQ(got.size(), 2 + forms.size());
  EXPECT_EQ(got[0], bytes_of(1, kMax));
  EXPECT_EQ(got[1], bytes_of(2, kMax));
  for (std::size_t i = 0; i < forms.size(); ++i)
    EXPECT_EQ(std::count(got.begin(), got.end(), bytes_of(10 + i, kMax)), 1) << forms[i].name;
  EXPECT_EQ(r.statistics().refused, 0u);
  EXPECT_FALSE(dog.fired());
}

// nanoseconds::max() and the largest time_point of the steady and system clocks mean "no
// deadline": the reader waits until data comes instead of returning at once.
TEST(SpscWaiting, PracticallyForeverTimeoutsWait) {
  const std::vector<std::pair<std::string, std::function<ring32::read_grant(ring32&)>>> forms = {
      {"try_read_for(nanoseconds::max())", [](ring32& r) { return r.try_read_for(std::chrono::nanoseconds::max()); }},
      {"try_read_until(steady_clock::time_point::max())",
       [](ring32& r) { return r.try_read_until(steady::time_point::max()); }},
      {"try_read_until(system_clock::time_point::max())",
       [](ring32& r) { return r.try_read_until(sys::time_point::max()); }},
  };
  for (const auto& entry : forms) {
    const std::string& name = entry.first;
    const auto& read = entry.second;
    SCOPED_TRACE(name);
    ring32 r(4);
    watchdog dog(r);
    auto reader = start([&] {
      auto g = read(r);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "returned at once";
    push(r, 7, 1);
    EXPECT_EQ(reader.get(), seq(7, 1));
    EXPECT_FALSE(dog.fired());
  }
}

// ============================================================================ 3. timeouts

// On an empty spsc_ring with no producer, the timed reads return an empty grant once their
// time is up (at least that long: measured on the deadline's own clock); with a water mark
// that is never met they return what is there, also only after the full time.
TEST(SpscWaiting, TimedReadsTimeOut) {
  ring32 r(8);
  for (std::size_t min : {std::size_t{1}, std::size_t{5}}) {
    SCOPED_TRACE("water mark " + std::to_string(min));
    if (min == 5) push(r, 0, 3);  // 3 of 5
    const std::vector<u32> there = min == 5 ? seq(0, 3) : std::vector<u32>{};
    {
      const auto t0 = steady::now();
      auto g = r.try_read_for(kShort, min);
      EXPECT_GE(steady::now() - t0, kShort);
      EXPECT_EQ(values(g), there);
    }
    {
      const auto deadline = steady::now() + kShort;
      auto g = r.try_read_until(deadline, min);
      EXPECT_GE(steady::now(), deadline);
      EXPECT_EQ(values(g), there);
    }
    {
      const auto deadline = sys::now() + kShort;
      auto g = r.try_read_until(deadline, min);
      EXPECT_GE(sys::now(), deadline);
      EXPECT_EQ(values(g), there);
    }
    {  // Any duration type on any clock.
      const auto deadline = std::chrono::time_point_cast<std::chrono::milliseconds>(sys::now()) + kShort;
      auto g = r.try_read_until(deadline, min);
      EXPECT_GE(sys::now(), deadline);
      EXPECT_EQ(values(g), there);
    }
  }
  EXPECT_EQ(r.statistics().wakeups, 0u);
}

// On a full spsc_ring with no consumer, every timed reservation returns an empty grant once its
// time is up (at least that long, on the deadline's own clock), and each counts once in
// statistics().refused. An up-to reservation whose water mark is not met returns the longest
// free run when its time is up, which is not a refusal: here 6 elements are free, but at most 4
// in a row.
TEST(SpscWaiting, TimedReservationsTimeOutAndCountAsRefused) {
  ring32 r(8);
  push(r, 0, 8);
  {
    const auto t0 = steady::now();
    EXPECT_FALSE(r.try_reserve_for(1, kShort));
    EXPECT_GE(steady::now() - t0, kShort);
  }
  {
    const auto t0 = steady::now();
    EXPECT_FALSE(r.try_reserve_up_to_for(4, kShort));
    EXPECT_GE(steady::now() - t0, kShort);
  }
  {
    const auto deadline = steady::now() + kShort;
    EXPECT_FALSE(r.try_reserve_until(1, deadline));
    EXPECT_GE(steady::now(), deadline);
  }
  {
    const auto deadline = steady::now() + kShort;
    EXPECT_FALSE(r.try_reserve_up_to_until(4, deadline));
    EXPECT_GE(steady::now(), deadline);
  }
  {
    const auto deadline = sys::now() + kShort;
    EXPECT_FALSE(r.try_reserve_until(1, deadline));
    EXPECT_GE(sys::now(), deadline);
  }
  {
    const auto deadline = sys::now() + kShort;
    EXPECT_FALSE(r.try_reserve_up_to_until(4, deadline, 2));
    EXPECT_GE(sys::now(), deadline);
  }
  EXPECT_EQ(r.statistics().refused, 6u);
  EXPECT_EQ(drain(r), seq(0, 8));

  // The cursors at index 0 again. Elements at indexes 4 and 5 wait; 6, 7 and 0..3 are free.
  push(r, 8, 6);
  EXPECT_EQ(values(r.try_read()), seq(8, 6));
  {
    auto g = r.try_read();
    g.release(4);
  }
  {
    const auto t0 = steady::now();
    auto g = r.try_reserve_up_to_for(8, kShort, 5);
    EXPECT_GE(steady::now() - t0, kShort);
    EXPECT_EQ(g.size(), 4u);  // the run at the start of the storage
  }
  {  // min(n, min_free) = 3 is there: at once.
    auto g = r.try_reserve_up_to_until(3, sys::now() + kLong, 5);
    EXPECT_EQ(g.size(), 3u);
  }
  EXPECT_EQ(r.statistics().refused, 6u) << "a timed-out up-to reservation that granted a run counted";
  EXPECT_EQ(drain(r), seq(12, 2));
}

// The record rings: timed reads on an empty ring return empty, with an unmet water mark they
// return the ready records, each only after the full time; timed reservations on a full ring
// return empty after the full time and count as refused.
TYPED_TEST(RecordWaiting, TimedCallsTimeOut) {
  TypeParam r(kCap);
  for (std::size_t min : {std::size_t{1}, kCap}) {
    SCOPED_TRACE("water mark " + std::to_string(min));
    if (min == kCap) put(r, 1, 8);  // 16 of 128 bytes
    const std::vector<payload> there = min == kCap ? expected({{1, 8}}) : std::vector<payload>{};
    {
      const auto t0 = steady::now();
      auto b = r.try_read_for(kShort, min);
      EXPECT_GE(steady::now() - t0, kShort);
      EXPECT_EQ(records_of(b), there);
    }
    {
      const auto deadline = steady::now() + kShort;
      auto b = r.try_read_until(deadline, min);
      EXPECT_GE(steady::now(), deadline);
      EXPECT_EQ(records_of(b), there);
    }
    {
      const auto deadline = std::chrono::time_point_cast<std::chrono::milliseconds>(sys::now()) + kShort;
      auto b = r.try_read_until(deadline, min);
      EXPECT_GE(sys::now(), deadline);
      EXPECT_EQ(records_of(b), there);
    }
  }
  put(r, 2, kMax);  // 80 bytes used; a 56-byte record needs 48 (skipped tail) + 64
  {
    const auto t0 = steady::now();
    EXPECT_FALSE(r.try_reserve_for(kMax, kShort));
    EXPECT_GE(steady::now() - t0, kShort);
  }
  {
    const auto deadline = steady::now() + kShort;
    EXPECT_FALSE(r.try_reserve_until(kMax, deadline));
    EXPECT_GE(steady::now(), deadline);
  }
  {
    const auto deadline = sys::now() + kShort;
    EXPECT_FALSE(r.try_reserve_until(kMax, deadline));
    EXPECT_GE(sys::now(), deadline);
  }
  EXPECT_EQ(r.statistics().refused, 3u);
  EXPECT_EQ(r.statistics().wakeups, 0u);
  EXPECT_EQ(drain_records(r), expected({{1, 8}, {2, kMax}}));
}

// Zero and negative timeouts, and deadlines in the past on either clock, answer at once (no
// system call) with what a non-blocking call would: a grant when there is room, the ready
// elements (fewer than the water mark if that is all), or empty; a refused reservation counts.
TEST(SpscWaiting, ZeroAndNegativeTimeoutsAnswerAtOnce) {
  ring32 r(4);
  const std::uint64_t calls = kernel_calls();
  EXPECT_FALSE(r.try_read_for(0s));
  EXPECT_FALSE(r.try_read_for(-1s));
  EXPECT_FALSE(r.try_read_until(steady::now() - 1s));
  EXPECT_FALSE(r.try_read_until(sys::time_point{}));  // 1970
  {
    auto g = r.try_reserve_for(2, 0s);
    ASSERT_EQ(g.size(), 2u);
    fill_commit(g, 0);
  }
  {
    auto g = r.try_reserve_until(1, steady::now() - 1s);
    ASSERT_EQ(g.size(), 1u);
    fill_commit(g, 2);
  }
  {
    auto g = r.try_reserve_up_to_for(4, -1s, 4);  // one is free: the longest run there is
    ASSERT_EQ(g.size(), 1u);
    fill_commit(g, 3);
  }
  EXPECT_FALSE(r.try_reserve_for(1, 0s));
  EXPECT_FALSE(r.try_reserve_until(1, sys::time_point{}));
  EXPECT_FALSE(r.try_reserve_up_to_for(2, 0s));
  EXPECT_FALSE(r.try_reserve_up_to_until(2, steady::now() - 1h));
  EXPECT_EQ(r.statistics().refused, 4u);
  {
    auto g = r.try_read_for(0s, 4);
    EXPECT_EQ(values(g), seq(0, 4));
    g.release(1);
  }
  {
    auto g = r.try_read_until(sys::now() - 1s, 4);  // 3 of 4: what is there
    EXPECT_EQ(values(g), seq(1, 3));
    g.release();
  }
  EXPECT_EQ(kernel_calls(), calls);
  EXPECT_EQ(r.statistics().wakeups, 0u);
}

TYPED_TEST(RecordWaiting, ZeroAndNegativeTimeoutsAnswerAtOnce) {
  TypeParam r(kCap);
  const std::uint64_t calls = kernel_calls();
  EXPECT_FALSE(r.try_read_for(0s));
  EXPECT_FALSE(r.try_read_for(-1s, kCap));
  EXPECT_FALSE(r.try_read_until(steady::now() - 1s));
  EXPECT_FALSE(r.try_read_until(sys::time_point{}));
  {
    auto g = r.try_reserve_for(kMax, 0s);
    ASSERT_TRUE(g);
    write_commit(g, 1);
  }
  {
    auto g = r.try_reserve_until(kMax, steady::now() - 1s);
    ASSERT_TRUE(g);
    write_commit(g, 2);
  }
  EXPECT_FALSE(r.try_reserve_for(0, 0s));
  EXPECT_FALSE(r.try_reserve_for(0, -1s));
  EXPECT_FALSE(r.try_reserve_until(0, sys::time_point{}));
  EXPECT_EQ(r.statistics().refused, 3u);
  {
    auto b = r.try_read_for(0s, kCap);
    EXPECT_EQ(records_of(b), expected({{1, kMax}, {2, kMax}}));
    b.release(1);
  }
  {
    auto b = r.try_read_for(-1s, kCap);  // 64 of 128 bytes: what is there
    EXPECT_EQ(records_of(b), expected({{2, kMax}}));
    b.release();
  }
  EXPECT_EQ(kernel_calls(), calls);
  EXPECT_EQ(r.statistics().wakeups, 0u);
}

// ============================================================================ 4. water marks

// A consumer waiting for 4 elements (each waiting form) is not returned by commits of 1, 2 and
// 3 while the producer is not stuck; the fourth commit returns it with all four.
TEST(SpscWaiting, WaterMarkHoldsTheConsumerUntilEnoughIsReady) {
  for (const auto& form : waiting_reads<ring32>()) {
    SCOPED_TRACE(form.name);
    ring32 r(8);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto g = form.call(r, 4);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    push(r, 0, 3);
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "returned with fewer than the water mark";
    push(r, 3, 1);
    EXPECT_EQ(reader.get(), seq(0, 4));
    EXPECT_FALSE(dog.fired());
  }
}

// Record rings: the water mark is bytes of ring space. Records of one byte span 16 bytes each;
// a consumer waiting for 48 is not returned by two of them (32 bytes), and is by the third.
TYPED_TEST(RecordWaiting, WaterMarkHoldsTheConsumerUntilEnoughIsReady) {
  for (const auto& form : waiting_reads<TypeParam>()) {
    SCOPED_TRACE(form.name);
    TypeParam r(kCap);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto b = form.call(r, 3 * span_of(1));
      std::vector<payload> got = records_of(b);
      b.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    put(r, 1, 1);
    put(r, 2, 1);
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "returned with fewer bytes than the water mark";
    put(r, 3, 1);
    EXPECT_EQ(reader.get(), expected({{1, 1}, {2, 1}, {3, 1}}));
    EXPECT_FALSE(dog.fired());
  }
}

// A water mark never deadlocks the two sides. (a) The consumer sleeps on a mark of 8; 4 are
// committed, and the producer then sleeps for 5 in a row: the consumer returns the 4 at once,
// releases them, and the producer gets its grant. (b) The producer sleeps first: a consumer
// then asking for 8 returns the 4 without waiting.
TEST(SpscWaiting, WaterMarkGivesWayToASleepingProducer) {
  {
    SCOPED_TRACE("consumer asleep first");
    ring32 r(8);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto g = r.read(8);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    push(r, 0, 4);
    auto g = r.try_reserve_for(5, kLong);  // 4 free, not in a row with 5: sleeps
    ASSERT_EQ(g.size(), 5u);
    fill_commit(g, 4);
    EXPECT_EQ(reader.get(), seq(0, 4));
    EXPECT_EQ(drain(r), seq(4, 5));
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_FALSE(dog.fired());
  }
  {
    SCOPED_TRACE("producer asleep first");
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 4);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] {
      auto g = r.reserve(5);
      const std::size_t n = g.size();
      if (g) fill_commit(g, 4);
      return n;
    });
    ASSERT_TRUE(asleep_since(calls));
    {
      auto g = r.read(8);
      EXPECT_EQ(values(g), seq(0, 4));
      g.release();
    }
    EXPECT_EQ(writer.get(), 5u);
    EXPECT_EQ(drain(r), seq(4, 5));
    EXPECT_FALSE(dog.fired());
  }
}

// The same on the record rings: 80 of 128 bytes ready (records of 56 and 8 bytes); the
// consumer waits for 128 and a producer needs 48 (skipped tail) + 64 bytes.
TYPED_TEST(RecordWaiting, WaterMarkGivesWayToASleepingProducer) {
  {
    SCOPED_TRACE("consumer asleep first");
    TypeParam r(kCap);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto b = r.read(kCap);
      std::vector<payload> got = records_of(b);
      b.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    put(r, 1, kMax);
    put(r, 2, 8);
    auto g = r.try_reserve_for(kMax, kLong);
    ASSERT_TRUE(g);
    write_commit(g, 3);
    EXPECT_EQ(reader.get(), expected({{1, kMax}, {2, 8}}));
    EXPECT_EQ(drain_records(r), expected({{3, kMax}}));
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_FALSE(dog.fired());
  }
  {
    SCOPED_TRACE("producer asleep first");
    TypeParam r(kCap);
    watchdog dog(r);
    put(r, 1, kMax);
    put(r, 2, 8);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] {
      auto g = r.reserve(kMax);
      const bool got = static_cast<bool>(g);
      if (g) write_commit(g, 3);
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    {
      auto b = r.read(kCap);
      EXPECT_EQ(records_of(b), expected({{1, kMax}, {2, 8}}));
      b.release();
    }
    EXPECT_TRUE(writer.get());
    EXPECT_EQ(drain_records(r), expected({{3, kMax}}));
    EXPECT_FALSE(dog.fired());
  }
}

// A non-blocking reservation refused for room nudges a consumer asleep on a water mark with
// something ready, which then returns what is there: 3 elements are ready when the consumer
// starts waiting for 8 (it stays put while nobody is refused), and the producer is refused 6 (5
// free) by try_reserve or try_reserve_split; it retries, as a dropping producer would, until the
// consumer is back. (try_push and write_some are refused only on a full ring, where no water
// mark is unmet.) WaitingRegressions covers a consumer that fell asleep before the data came.
TEST(SpscWaiting, RefusedReservationNudgesAWaterMarkSleeper) {
  const std::vector<std::pair<std::string, std::function<bool(ring32&)>>> refusals = {
      {"try_reserve", [](ring32& r) { return static_cast<bool>(r.try_reserve(6)); }},
      {"try_reserve_split", [](ring32& r) { return static_cast<bool>(r.try_reserve_split(6)); }},
  };
  for (const auto& entry : refusals) {
    const std::string& name = entry.first;
    const auto& reserve = entry.second;
    SCOPED_TRACE(name);
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 3);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto g = r.read(8);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    ASSERT_TRUE(asleep_since(calls));
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader));
    std::uint64_t refused = 0;  // once the consumer has released, a reservation may succeed
    ASSERT_TRUE(eventually([&] {
      if (!reserve(r)) ++refused;
      return returned(reader);
    }));
    EXPECT_EQ(reader.get(), seq(0, 3));
    EXPECT_GE(refused, 1u);
    EXPECT_EQ(r.statistics().refused, refused);
    EXPECT_FALSE(dog.fired());
  }
}

// The same on the record rings: 72 bytes ready (three records of 16) when the consumer starts
// waiting for 128, and try_reserve(56) is refused (it needs 56 skipped + 64).
TYPED_TEST(RecordWaiting, RefusedReservationNudgesAWaterMarkSleeper) {
  TypeParam r(kCap);
  watchdog dog(r);
  put(r, 1, 16);
  put(r, 2, 16);
  put(r, 3, 16);
  const std::uint64_t calls = kernel_calls();
  auto reader = start([&] {
    auto b = r.read(kCap);
    std::vector<payload> got = records_of(b);
    b.release();
    return got;
  });
  ASSERT_TRUE(asleep_since(calls));
  std::this_thread::sleep_for(kLinger);
  EXPECT_FALSE(returned(reader));
  std::uint64_t refused = 0;
  ASSERT_TRUE(eventually([&] {
    if (!r.try_reserve(kMax)) ++refused;  // a grant after the consumer is back is withdrawn
    return returned(reader);
  }));
  EXPECT_EQ(reader.get(), expected({{1, 16}, {2, 16}, {3, 16}}));
  EXPECT_GE(refused, 1u);
  EXPECT_EQ(r.statistics().refused, refused);
  EXPECT_FALSE(dog.fired());
}

// An up-to reservation with min_free waits for that many free elements in a row, in each form:
// on a full ring of 8, releasing 2 and then 4 (in a row from index 0) does not return it for
// min_free 5; releasing a fifth does, with a grant of the 5.
TEST(SpscWaiting, ReserveUpToWaitsForMinFreeInARow) {
  for (const auto& form : waiting_up_to()) {
    SCOPED_TRACE(form.name);
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 8);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] {
      auto g = form.call(r, 8, 5);
      const std::size_t n = g.size();
      if (g) fill_commit(g, 100);
      return n;
    });
    ASSERT_TRUE(asleep_since(calls));
    for (u32 v = 0; v < 4; ++v) {
      EXPECT_EQ(r.try_pop(), std::optional<u32>(v));
      if (v % 2 == 1) {
        std::this_thread::sleep_for(kLinger);
        EXPECT_FALSE(returned(writer)) << "returned with " << v + 1 << " free";
      }
    }
    EXPECT_EQ(r.try_pop(), std::optional<u32>(4));
    EXPECT_EQ(writer.get(), 5u);
    std::vector<u32> want = seq(5, 3);
    for (u32 v : seq(100, 5)) want.push_back(v);
    EXPECT_EQ(drain(r), want);
    EXPECT_FALSE(dog.fired());
  }
}

// ============================================================================ 5. close

// close() wakes a consumer asleep in each waiting read: on an empty ring it returns an empty
// grant; asleep on a water mark with 3 of 8 ready, it returns the 3. closed() reports it.
TEST(SpscWaiting, CloseWakesASleepingConsumer) {
  for (const auto& form : waiting_reads<ring32>()) {
    for (u32 ready : {0u, 3u}) {
      SCOPED_TRACE(form.name + " with " + std::to_string(ready) + " ready");
      ring32 r(8);
      watchdog dog(r);
      push(r, 0, ready);
      const std::uint64_t calls = kernel_calls();
      auto reader = start([&] {
        auto g = form.call(r, 8);
        std::vector<u32> got = values(g);
        g.release();
        return got;
      });
      ASSERT_TRUE(asleep_since(calls));
      EXPECT_FALSE(r.closed());
      r.close();
      EXPECT_TRUE(r.closed());
      EXPECT_EQ(reader.get(), seq(0, ready));
      EXPECT_GE(r.statistics().wakeups, 1u);
      EXPECT_FALSE(dog.fired());
    }
  }
}

// close() wakes a producer asleep in each waiting reservation on a full ring: it returns an
// empty grant, which is not counted as refused; everything committed is still delivered.
TEST(SpscWaiting, CloseWakesASleepingProducer) {
  auto check = [](const std::string& name, const std::function<ring32::write_grant(ring32&)>& reserve) {
    SCOPED_TRACE(name);
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 8);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] { return reserve(r).size(); });
    ASSERT_TRUE(asleep_since(calls));
    r.close();
    EXPECT_EQ(writer.get(), 0u);
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_EQ(drain(r), seq(0, 8));
    EXPECT_FALSE(dog.fired());
  };
  for (const auto& form : waiting_reservations<ring32>()) check(form.name, [&](ring32& r) { return form.call(r, 3); });
  for (const auto& form : waiting_up_to()) check(form.name, [&](ring32& r) { return form.call(r, 5, 2); });
}

TYPED_TEST(RecordWaiting, CloseWakesASleepingConsumer) {
  for (const auto& form : waiting_reads<TypeParam>()) {
    for (std::size_t ready : {std::size_t{0}, std::size_t{2}}) {
      SCOPED_TRACE(form.name + " with " + std::to_string(ready) + " ready");
      TypeParam r(kCap);
      watchdog dog(r);
      for (std::size_t i = 0; i < ready; ++i) put(r, i + 1, 8);
      const std::uint64_t calls = kernel_calls();
      auto reader = start([&] {
        auto b = form.call(r, kCap);
        std::vector<payload> got = records_of(b);
        b.release();
        return got;
      });
      ASSERT_TRUE(asleep_since(calls));
      r.close();
      EXPECT_TRUE(r.closed());
      EXPECT_EQ(reader.get(), ready ? expected({{1, 8}, {2, 8}}) : std::vector<payload>{});
      EXPECT_GE(r.statistics().wakeups, 1u);
      EXPECT_FALSE(dog.fired());
    }
  }
}

TYPED_TEST(RecordWaiting, CloseWakesASleepingProducer) {
  for (const auto& form : waiting_reservations<TypeParam>()) {
    SCOPED_TRACE(form.name);
    TypeParam r(kCap);
    watchdog dog(r);
    put(r, 1, kMax);
    put(r, 2, kMax);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] { return static_cast<bool>(form.call(r, 0)); });
    ASSERT_TRUE(asleep_since(calls));
    r.close();
    EXPECT_FALSE(writer.get());
    EXPECT_EQ(r.statistics().refused, 0u);
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_EQ(drain_records(r), expected({{1, kMax}, {2, kMax}}));
    EXPECT_FALSE(dog.fired());
  }
}

// close() wakes every producer of an mpsc ring asleep on a full ring, one in each form.
TEST(MpscWaiting, CloseWakesEverySleepingProducer) {
  mpsc_record_ring r(kCap);
  watchdog dog(r);
  put(r, 1, kMax);
  put(r, 2, kMax);
  const auto forms = waiting_reservations<mpsc_record_ring>();
  std::vector<std::future<bool>> writers;
  for (const auto& form : forms) writers.push_back(start([&r, &form] { return static_cast<bool>(form.call(r, 8)); }));
  std::this_thread::sleep_for(kLinger);
  for (const auto& w : writers) EXPECT_FALSE(returned(w));
  r.close();
  for (auto& w : writers) EXPECT_FALSE(w.get());
  EXPECT_EQ(r.statistics().refused, 0u);
  EXPECT_EQ(drain_records(r), expected({{1, kMax}, {2, kMax}}));
  EXPECT_FALSE(dog.fired());
}

// close() from a third thread wakes a sleeping consumer (empty ring) and, on another ring, a
// sleeping producer (full ring). One spsc_ring never has both sides asleep: the producer sleeps
// only while elements wait for the consumer, and a consumer that finds elements while the
// producer sleeps returns them.
TEST(SpscWaiting, CloseFromAThirdThread) {
  {
    ring32 r(8);
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] {
      auto g = r.read();
      return g.size();
    });
    ASSERT_TRUE(asleep_since(calls));
    std::thread([&] { r.close(); }).join();
    EXPECT_EQ(reader.get(), 0u);
    EXPECT_FALSE(dog.fired());
  }
  {
    ring32 r(8);
    watchdog dog(r);
    push(r, 0, 8);
    const std::uint64_t calls = kernel_calls();
    auto writer = start([&] { return r.reserve(1).size(); });
    ASSERT_TRUE(asleep_since(calls));
    std::thread([&] { r.close(); }).join();
    EXPECT_EQ(writer.get(), 0u);
    EXPECT_EQ(drain(r), seq(0, 8));
    EXPECT_FALSE(dog.fired());
  }
}

// A record ring can have both sides asleep: a producer holds two reservations that fill the
// ring (nothing ready for the consumer) and sleeps for more room. close() from a third thread
// wakes both with empty results. The two records, committed after close() (allowed for grants
// obtained before), are then delivered, and nothing else.
TYPED_TEST(RecordWaiting, CloseFromAThirdThreadWakesBothSides) {
  TypeParam r(kCap);
  watchdog dog(r);
  const std::uint64_t calls = kernel_calls();
  auto reader = start([&] {
    auto b = r.read();
    return records_of(b);
  });
  ASSERT_TRUE(asleep_since(calls));
  std::atomic<bool> consumer_back{false};
  const std::uint64_t before_producer = kernel_calls();
  auto writer = start([&] {
    auto a = r.try_reserve(kMax);
    auto b = r.try_reserve(kMax);
    const bool held = a && b;
    const bool refused = !r.reserve(0);  // no room: sleeps until close()
    // Commit only once the consumer is back, so it returned because of close(), not these.
    eventually([&] { return consumer_back.load(); });
    if (a) write_commit(a, 1);
    if (b) write_commit(b, 2);
    return held && refused;
  });
  ASSERT_TRUE(eventually([&] { return kernel_calls() >= before_producer + calls_per_sleep(); }));
  std::this_thread::sleep_for(kLinger);
  EXPECT_FALSE(returned(reader));
  EXPECT_FALSE(returned(writer));
  std::thread([&] { r.close(); }).join();
  EXPECT_EQ(reader.get(), std::vector<payload>{});
  consumer_back = true;
  EXPECT_TRUE(writer.get());
  EXPECT_EQ(drain_records(r), expected({{1, kMax}, {2, kMax}}));
  {
    auto b = r.read();
    EXPECT_FALSE(b);
  }
  EXPECT_EQ(r.statistics().refused, 0u);
  EXPECT_FALSE(dog.fired());
}

// After close() the consumer still gets everything committed before it, in order (across the
// wrap: one contiguous run per read), plus what a grant obtained before close() commits after
// it; then every read, blocking ones included, returns empty at once. No system call: nobody
// slept, so close() wakes nobody.
TEST(SpscWaiting, CommittedBeforeCloseIsDrainedInOrder) {
  ring32 r(8);
  watchdog dog(r);
  push(r, 0, 6);
  EXPECT_EQ(drain(r), seq(0, 6));  // the cursors at index 6
  const std::uint64_t calls = kernel_calls();
  const std::array<u32, 3> src{6, 7, 8};
  EXPECT_EQ(r.write_some(src), 3u);  // 6, 7 at the end, 8 at index 0
  auto held = r.try_reserve(2);
  ASSERT_TRUE(held);
  r.close();
  r.close();  // twice is fine
  EXPECT_TRUE(r.closed());
  fill_commit(held, 9);
  {
    auto g = r.read();
    EXPECT_EQ(values(g), seq(6, 2));
    g.release();
  }
  {
    auto g = r.read(8);
    EXPECT_EQ(values(g), seq(8, 3));
    g.release();
  }
  EXPECT_FALSE(r.read());
  EXPECT_FALSE(r.read(8));
  EXPECT_FALSE(r.try_read_for(kLong));
  EXPECT_FALSE(r.try_read_until(steady::now() + kLong, 3));
  EXPECT_FALSE(r.try_read_until(sys::now() + kLong));
  EXPECT_EQ(kernel_calls(), calls);
  EXPECT_EQ(r.statistics().wakeups, 0u);
  EXPECT_FALSE(dog.fired());
}

TYPED_TEST(RecordWaiting, CommittedBeforeCloseIsDrainedInOrder) {
  TypeParam r(kCap);
  watchdog dog(r);
  const std::uint64_t calls = kernel_calls();
  put(r, 1, 10);
  put(r, 2, 0);
  auto held = r.try_reserve(20);
  ASSERT_TRUE(held);
  r.close();
  r.close();
  EXPECT_TRUE(r.closed());
  {  // The held reservation still holds back what follows it: nothing follows.
    auto b = r.read(kCap);
    EXPECT_EQ(records_of(b), expected({{1, 10}, {2, 0}}));
    b.release(1);
  }
  write_commit(held, 3);
  {
    auto b = r.try_read_for(kLong, kCap);
    EXPECT_EQ(records_of(b), expected({{2, 0}, {3, 20}}));
    b.release();
  }
  EXPECT_FALSE(r.read());
  EXPECT_FALSE(r.read(kCap));
  EXPECT_FALSE(r.try_read_for(kLong));
  EXPECT_FALSE(r.try_read_until(steady::now() + kLong));
  EXPECT_FALSE(r.try_read_until(sys::now() + kLong, 8));
  EXPECT_EQ(kernel_calls(), calls);
  EXPECT_EQ(r.statistics().wakeups, 0u);
  EXPECT_FALSE(dog.fired());
}

// After close() every reservation form returns empty (false, 0) at once and never throws: with
// a write grant outstanding, with sizes and water marks beyond the capacity, and on a full ring
// where the blocking forms would otherwise sleep. These refusals are not counted, and no system
// call is made.
TEST(SpscWaiting, AfterCloseEveryReservationReturnsEmptyAtOnce) {
  ring32 r(8);
  watchdog dog(r);
  push(r, 0, 6);
  auto held = r.try_reserve(2);  // the ring is now spoken for
  ASSERT_TRUE(held);
  EXPECT_FALSE(r.closed());
  r.close();
  EXPECT_TRUE(r.closed());
  const std::uint64_t calls = kernel_calls();
  const std::array<u32, 2> src{1, 2};
  auto every_reservation_is_empty = [&] {
    EXPECT_FALSE(r.try_reserve(1));
    EXPECT_FALSE(r.try_reserve(9));
    EXPECT_FALSE(r.reserve(1));
    EXPECT_FALSE(r.reserve(9));
    EXPECT_FALSE(r.try_reserve_for(1, kLong));
    EXPECT_FALSE(r.try_reserve_for(9, kLong));
    EXPECT_FALSE(r.try_reserve_until(1, steady::now() + kLong));
    EXPECT_FALSE(r.try_reserve_until(9, sys::now() + kLong));
    EXPECT_FALSE(r.try_reserve_up_to(4));
    EXPECT_FALSE(r.reserve_up_to(4));
    EXPECT_FALSE(r.reserve_up_to(4, 9));
    EXPECT_FALSE(r.try_reserve_up_to_for(4, kLong));
    EXPECT_FALSE(r.try_reserve_up_to_for(4, kLong, 9));
    EXPECT_FALSE(r.try_reserve_up_to_until(4, steady::now() + kLong, 9));
    EXPECT_FALSE(r.try_reserve_up_to_until(4, sys::now() + kLong));
    EXPECT_FALSE(r.try_reserve_split(1));
    EXPECT_FALSE(r.try_reserve_split(9));
    EXPECT_EQ(r.write_some(src), 0u);
    EXPECT_FALSE(r.try_push(1));
  };
  {
    SCOPED_TRACE("a write grant outstanding");
    EXPECT_NO_THROW(every_reservation_is_empty());
  }
  fill_commit(held, 6);  // a grant obtained before close() may still commit
  {
    SCOPED_TRACE("a full ring");
    EXPECT_NO_THROW(every_reservation_is_empty());
  }
  EXPECT_EQ(kernel_calls(), calls);
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.refused, 0u);
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.committed, 8u);
  EXPECT_EQ(drain(r), seq(0, 8));
  EXPECT_FALSE(dog.fired());
}

// The same for the record rings, with a reservation held (and the ring full), sizes beyond
// max_record_size(), and zero-length records.
TYPED_TEST(RecordWaiting, AfterCloseEveryReservationReturnsEmptyAtOnce) {
  TypeParam r(kCap);
  watchdog dog(r);
  auto held = r.try_reserve(kMax);
  ASSERT_TRUE(held);
  put(r, 2, kMax);  // full
  r.close();
  EXPECT_TRUE(r.closed());
  const std::uint64_t calls = kernel_calls();
  auto every_reservation_is_empty = [&] {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, kMax + 1, kCap + 1}) {
      SCOPED_TRACE("n = " + std::to_string(n));
      EXPECT_FALSE(r.try_reserve(n));
      EXPECT_FALSE(r.reserve(n));
      EXPECT_FALSE(r.try_reserve_for(n, kLong));
      EXPECT_FALSE(r.try_reserve_until(n, steady::now() + kLong));
      EXPECT_FALSE(r.try_reserve_until(n, sys::now() + kLong));
    }
  };
  {
    SCOPED_TRACE("a reservation held");
    EXPECT_NO_THROW(every_reservation_is_empty());
  }
  write_commit(held, 1);
  {
    SCOPED_TRACE("a full ring");
    EXPECT_NO_THROW(every_reservation_is_empty());
  }
  EXPECT_EQ(kernel_calls(), calls);
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.refused, 0u);
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.committed, 2u);
  EXPECT_EQ(drain_records(r), expected({{1, kMax}, {2, kMax}}));
  EXPECT_FALSE(dog.fired());
}

// ============================================================================ 6. statistics

// spsc_ring's counters after a known sequence, in elements: committed counts what commits
// published (a partial commit its prefix), released what the consumer freed (partial releases
// too), refused every call refused for room (try_push, write_some of a non-empty span,
// try_reserve, try_reserve_up_to, try_reserve_split, and timed reservations that ran out of
// time) but not reservations of nothing nor those refused because the ring is closed,
// high_water the most the consumer found ready. Nobody slept: wakeups stays 0, close() too.
TEST(SpscWaiting, StatisticsCountExactly) {
  ring32 r(8);
  auto stats = [&] { return r.statistics(); };
  EXPECT_EQ(stats().committed, 0u);
  EXPECT_EQ(stats().released, 0u);
  EXPECT_EQ(stats().refused, 0u);
  EXPECT_EQ(stats().discarded, 0u);
  EXPECT_EQ(stats().high_water, 0u);
  EXPECT_EQ(stats().wakeups, 0u);

  push(r, 0, 5);
  EXPECT_EQ(r.try_pop(), std::optional<u32>(0));  // found 5 ready
  EXPECT_EQ(stats().high_water, 5u);
  const std::array<u32, 3> three{5, 6, 7};
  EXPECT_EQ(r.write_some(three), 3u);
  EXPECT_TRUE(r.try_push(8));  // full: 1..8
  EXPECT_EQ(stats().committed, 9u);
  EXPECT_EQ(stats().released, 1u);

  EXPECT_FALSE(r.try_push(9));                             // 1
  EXPECT_EQ(r.write_some(std::span<const u32>(three)), 0u);  // 2
  EXPECT_EQ(r.write_some(std::span<const u32>{}), 0u);      // nothing asked: not refused
  EXPECT_FALSE(r.try_reserve(1));                          // 3
  EXPECT_FALSE(r.try_reserve(0));                          // nothing asked
  EXPECT_FALSE(r.try_reserve_up_to(4));                    // 4
  EXPECT_FALSE(r.try_reserve_up_to(0));                    // nothing asked
  EXPECT_FALSE(r.try_reserve_split(1));                    // 5
  EXPECT_FALSE(r.try_reserve_for(1, 0s));                  // 6: timed out at once
  EXPECT_FALSE(r.try_reserve_up_to_until(4, steady::now()));  // 7
  EXPECT_FALSE(r.reserve(0));                              // nothing asked
  EXPECT_EQ(stats().refused, 7u);

  {
    auto g = r.try_read();  // finds 8 ready; 7 of them before the end of the storage
    EXPECT_EQ(values(g), seq(1, 7));
    g.release(2);
  }
  EXPECT_EQ(stats().high_water, 8u);
  EXPECT_EQ(stats().released, 3u);
  {
    auto g = r.try_read_split();
    EXPECT_EQ(g.size(), 6u);
    g.release(4);
  }
  std::array<u32, 10> dst{};
  EXPECT_EQ(r.read_some(dst), 2u);
  EXPECT_EQ(stats().released, 9u);
  {
    auto g = r.reserve(4);
    ASSERT_EQ(g.size(), 4u);
    for (u32& x : g) x = 100;
    g.commit(2);  // a partial commit counts what it published
  }
  {
    auto g = r.try_reserve(3);
    ASSERT_TRUE(g);
    g.discard();  // withdrawn: spsc_ring does not count these
  }
  r.close();
  EXPECT_FALSE(r.try_push(1));  // closed: not counted
  EXPECT_FALSE(r.try_reserve_for(1, 0s));

  sluice::ring_statistics s = stats();
  EXPECT_EQ(s.committed, 11u);
  EXPECT_EQ(s.released, 9u);
  EXPECT_EQ(s.refused, 7u);
  EXPECT_EQ(s.discarded, 0u);
  EXPECT_EQ(s.high_water, 8u);
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(drain(r), (std::vector<u32>{100, 100}));
  EXPECT_EQ(stats().released, 11u);
}

// Record rings count records (committed, discarded: by discard() and by dropping a grant,
// released: partial batch releases too), refusals for room (try_reserve and timed reservations
// that ran out of time; not oversized requests, which throw, nor refusals once closed), and
// high_water in bytes of ring space (headers, padding and withdrawn records included).
TYPED_TEST(RecordWaiting, StatisticsCountExactly) {
  TypeParam r(kCap);
  EXPECT_EQ(r.statistics().high_water, 0u);
  put(r, 1, 10);  // 24 bytes
  put(r, 2, 0);   // 8
  {
    auto g = r.try_reserve(20);  // 32
    ASSERT_TRUE(g);
    g.commit(5);
  }
  {
    auto g = r.try_reserve(8);  // 16
    ASSERT_TRUE(g);
    g.discard();
  }
  {
    auto g = r.try_reserve(1);  // 16, dropped
    ASSERT_TRUE(g);
  }
  EXPECT_FALSE(r.try_reserve(kMax));  // 96 used: needs 32 skipped + 64. Refused: 1
  EXPECT_THROW((void)r.try_reserve(kMax + 1), std::length_error);
  put(r, 3, 24);                           // 32: full
  EXPECT_FALSE(r.try_reserve(0));          // 2
  EXPECT_FALSE(r.try_reserve_for(0, 0s));  // 3
  EXPECT_FALSE(r.try_reserve_until(0, sys::now() - 1s));  // 4
  {
    auto b = r.try_read();  // finds all 128 bytes
    ASSERT_EQ(b.size(), 4u);
    EXPECT_EQ(records_of(b)[2].size(), 5u);
    b.release(1);
  }
  {
    auto b = r.try_read();
    EXPECT_EQ(b.size(), 3u);
    b.release();
  }
  r.close();
  EXPECT_FALSE(r.try_reserve(0));
  EXPECT_FALSE(r.try_reserve_for(0, 0s));

  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.committed, 4u);
  EXPECT_EQ(s.discarded, 2u);
  EXPECT_EQ(s.released, 4u);
  EXPECT_EQ(s.refused, 4u);
  EXPECT_EQ(s.high_water, kCap);
  EXPECT_EQ(s.wakeups, 0u);
}

// ============================================================================ 7. no system call

// No non-blocking call of spsc_ring makes a system call, whatever it answers. First on one
// thread, every call on an empty ring (nothing to read) and on a full one (every reservation
// refused); then a producer thread and a consumer thread move 200000 elements with every
// non-blocking call (try_push, try_reserve, write_some, try_reserve_up_to, try_reserve_split /
// try_pop, try_read with partial releases, read_some, try_read_split), retrying when refused.
// kernel_calls() does not move, no wake-up is counted, and every element arrives in order.
// (Construction may register membarrier, a call kernel_calls() does not count; the snapshot is
// taken after it anyway.)
TEST(NoSystemCalls, SpscRingNonBlockingTraffic) {
  constexpr u32 kItems = 200'000;
  ring32 r(1024);
  const std::uint64_t calls = kernel_calls();
  {
    std::array<u32, 4> buf{};
    EXPECT_FALSE(r.try_pop());
    EXPECT_FALSE(r.try_read());
    EXPECT_FALSE(r.try_read_split());
    EXPECT_EQ(r.read_some(buf), 0u);
    push(r, 0, 1024);
    EXPECT_FALSE(r.try_push(0));
    EXPECT_FALSE(r.try_reserve(1));
    EXPECT_FALSE(r.try_reserve_up_to(1));
    EXPECT_FALSE(r.try_reserve_split(1));
    EXPECT_EQ(r.write_some(std::span<const u32>(buf)), 0u);
    EXPECT_EQ(drain(r), seq(0, 1024));
    EXPECT_EQ(r.statistics().refused, 5u);
    EXPECT_EQ(kernel_calls(), calls) << "on one thread";
  }
  auto producer = start([&] {
    u32 next = 0;
    for (u32 turn = 0; next < kItems; ++turn) {
      const u32 left = kItems - next;
      u32 sent = 0;
      switch (turn % 5) {
        case 0:
          sent = r.try_push(next) ? 1 : 0;
          break;
        case 1:
          if (auto g = r.try_reserve(std::min<u32>(left, 5))) {
            sent = static_cast<u32>(g.size());
            fill_commit(g, next);
          }
          break;
        case 2: {
          std::array<u32, 7> src{};
          std::iota(src.begin(), src.end(), next);
          sent = static_cast<u32>(r.write_some(std::span<const u32>(src.data(), std::min<u32>(left, 7))));
          break;
        }
        case 3:
          if (auto g = r.try_reserve_up_to(9)) {
            sent = std::min(static_cast<u32>(g.size()), left);
            for (u32 i = 0; i < sent; ++i) g[i] = next + i;
            g.commit(sent);
          }
          break;
        case 4:
          if (auto g = r.try_reserve_split(std::min<u32>(left, 6))) {
            u32 v = next;
            for (u32& x : g.first()) x = v++;
            for (u32& x : g.second()) x = v++;
            sent = static_cast<u32>(g.size());
            g.commit();
          }
          break;
      }
      next += sent;
      if (sent == 0) std::this_thread::yield();
    }
  });
  u32 expect = 0;
  std::uint64_t wrong = 0;
  for (u32 turn = 0; expect < kItems; ++turn) {
    const u32 before = expect;
    switch (turn % 4) {
      case 0:
        if (std::optional<u32> v = r.try_pop()) wrong += *v != expect++;
        break;
      case 1:
        if (auto g = r.try_read()) {
          const std::size_t k = (g.size() + 1) / 2;  // a partial release
          for (std::size_t i = 0; i < k; ++i) wrong += g[i] != expect++;
          g.release(k);
        }
        break;
      case 2: {
        std::array<u32, 6> dst{};
        const std::size_t n = r.read_some(dst);
        for (std::size_t i = 0; i < n; ++i) wrong += dst[i] != expect++;
        break;
      }
      case 3:
        if (auto g = r.try_read_split()) {
          for (u32 x : g.first()) wrong += x != expect++;
          for (u32 x : g.second()) wrong += x != expect++;
          g.release();
        }
        break;
    }
    if (expect == before) std::this_thread::yield();
  }
  producer.get();
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(kernel_calls(), calls) << "a non-blocking call made a system call";
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.committed, kItems + 1024);
  EXPECT_EQ(s.released, kItems + 1024);
}

// The same for the record rings: try_read on an empty ring and try_reserve on a full one on one
// thread, then 100000 records of 0..40 bytes (every tenth reservation withdrawn) from a
// producer thread through a 16 KiB ring with try_reserve and try_read, released whole or in
// part.
TYPED_TEST(RecordWaiting, NoSystemCallOnTheNonBlockingPaths) {
  constexpr std::uint64_t kRecords = 100'000;
  constexpr std::size_t kRing = 16384;
  auto withdrawn = [](std::uint64_t s) { return s % 10 == 7; };
  auto length = [](std::uint64_t s) { return static_cast<std::size_t>(s % 41); };
  TypeParam r(kRing);
  const std::uint64_t calls = kernel_calls();
  {
    EXPECT_FALSE(r.try_read());
    for (std::size_t i = 0; i < kRing / span_of(0); ++i) put(r, 1, 0);
    EXPECT_FALSE(r.try_reserve(0));
    EXPECT_EQ(drain_records(r).size(), kRing / span_of(0));
    EXPECT_EQ(kernel_calls(), calls) << "on one thread";
  }
  const std::uint64_t before = r.statistics().committed;
  auto producer = start([&] {
    for (std::uint64_t s = 0; s < kRecords;) {
      auto g = r.try_reserve(length(s));
      if (!g) {
        std::this_thread::yield();
        continue;
      }
      if (withdrawn(s))
        g.discard();
      else
        write_commit(g, s);
      ++s;
    }
  });
  std::uint64_t expect = 0, wrong = 0, received = 0;
  auto skip_withdrawn = [&] {
    while (expect < kRecords && withdrawn(expect)) ++expect;
  };
  skip_withdrawn();
  for (std::uint64_t turn = 0; expect < kRecords; ++turn) {
    auto b = r.try_read();
    if (!b) {
      std::this_thread::yield();
      continue;
    }
    const std::size_t k = turn % 2 ? b.size() : (b.size() + 1) / 2;
    std::size_t i = 0;
    for (std::span<const std::byte> rec : b) {
      if (i++ == k) break;
      const payload want = bytes_of(expect, length(expect));
      wrong += !std::equal(rec.begin(), rec.end(), want.begin(), want.end());
      ++expect;
      ++received;
      skip_withdrawn();
    }
    b.release(k);
  }
  producer.get();
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(kernel_calls(), calls) << "a non-blocking call made a system call";
  const sluice::ring_statistics s = r.statistics();
  EXPECT_EQ(s.wakeups, 0u);
  EXPECT_EQ(s.committed, before + received);
  EXPECT_EQ(s.released, before + received);
  EXPECT_EQ(s.discarded, kRecords - received);
  EXPECT_GE(s.refused, 1u);  // the one above, and any the threads met
}

// The control for the two tests above: the counter does move when a thread really sleeps and
// is woken (each ring type), so an unchanged counter means something.
TEST(NoSystemCalls, ControlASleepIsCounted) {
  auto check = [](auto& r, auto provide) {
    watchdog dog(r);
    const std::uint64_t calls = kernel_calls();
    auto reader = start([&] { return static_cast<bool>(r.read()); });
    ASSERT_TRUE(asleep_since(calls));
    provide();
    EXPECT_TRUE(reader.get());
    EXPECT_GE(kernel_calls(), calls + calls_per_sleep() + 1);  // the sleep, and the wake
    EXPECT_GE(r.statistics().wakeups, 1u);
    EXPECT_FALSE(dog.fired());
  };
  ring32 a(8);
  check(a, [&] { push(a, 0, 1); });
  spsc_record_ring b(kCap);
  check(b, [&] { put(b, 1, 1); });
  mpsc_record_ring c(kCap);
  check(c, [&] { put(c, 1, 1); });
}

// ============================================================================ 8. misuse

// spsc_ring: a water mark above the capacity (reads, and min_free of the up-to reservations) and
// a reservation above it throw std::length_error naming the request and the capacity, on an
// empty or a full ring alike (before any waiting); a water mark of exactly the capacity and an
// up-to request of more than it are fine. With a grant outstanding on that side, every waiting
// call throws std::logic_error; the grant is still usable afterwards.
TEST(SpscWaiting, MisuseThrows) {
  ring32 r(37);
  watchdog dog(r);
  for (int full = 0; full < 2; ++full) {
    SCOPED_TRACE(full ? "full ring" : "empty ring");
    EXPECT_TRUE(throws_length_error([&] { (void)r.read(38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_read_for(kLong, 38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_read_until(steady::now() + kLong, 38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_read_until(sys::now() + kLong, 1000); }, 1000, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.reserve(38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_for(38, kLong); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_until(38, steady::now() + kLong); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_until(99, sys::now() + kLong); }, 99, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.reserve_up_to(5, 38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_up_to_for(5, kLong, 38); }, 38, 37));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_up_to_until(5, sys::now() + kLong, 38); }, 38, 37));
    if (!full) push(r, 0, 37);
  }
  EXPECT_NO_THROW({
    auto g = r.try_read_for(0s, 37);
    EXPECT_EQ(g.size(), 37u);
    g.release(3);
  });
  EXPECT_NO_THROW({
    auto g = r.reserve_up_to(1000);
    EXPECT_EQ(g.size(), 3u);
  });

  auto w = r.try_reserve(2);
  ASSERT_TRUE(w);
  EXPECT_TRUE(throws_outstanding([&] { (void)r.reserve(1); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_reserve_for(1, kLong); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_reserve_until(1, steady::now() + kLong); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.reserve_up_to(1); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_reserve_up_to_for(1, kLong); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_reserve_up_to_until(1, sys::now() + kLong); }));
  fill_commit(w, 37);

  auto g = r.try_read();
  ASSERT_TRUE(g);
  EXPECT_TRUE(throws_outstanding([&] { (void)r.read(); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_read_for(kLong); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_read_until(sys::now() + kLong); }));
  g.release();
  std::vector<u32> want = seq(37, 2);
  EXPECT_EQ(drain(r), want);
  EXPECT_FALSE(dog.fired());
}

// Record rings: a water mark above the capacity throws std::length_error naming it and the
// capacity, a record above max_record_size() one naming it and the limit, before any waiting;
// exactly the capacity is a valid water mark. With a batch outstanding every waiting read
// throws std::logic_error. (A producer may hold several grants: no misuse there.)
TYPED_TEST(RecordWaiting, MisuseThrows) {
  TypeParam r(kCap);
  watchdog dog(r);
  for (int full = 0; full < 2; ++full) {
    SCOPED_TRACE(full ? "full ring" : "empty ring");
    EXPECT_TRUE(throws_length_error([&] { (void)r.read(kCap + 1); }, kCap + 1, kCap));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_read_for(kLong, kCap + 1); }, kCap + 1, kCap));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_read_until(sys::now() + kLong, 5000); }, 5000, kCap));
    EXPECT_TRUE(throws_length_error([&] { (void)r.reserve(kMax + 1); }, kMax + 1, kMax));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_for(kMax + 1, kLong); }, kMax + 1, kMax));
    EXPECT_TRUE(throws_length_error([&] { (void)r.try_reserve_until(kCap, steady::now() + kLong); }, kCap, kMax));
    if (!full) {
      put(r, 1, kMax);
      put(r, 2, kMax);
    }
  }
  auto b = r.try_read_for(0s, kCap);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(throws_outstanding([&] { (void)r.read(); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_read_for(kLong); }));
  EXPECT_TRUE(throws_outstanding([&] { (void)r.try_read_until(steady::now() + kLong); }));
  b.release();
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_FALSE(dog.fired());
}

// ============================================================================ 9. no_waiting

// Rings with the no_waiting policy have no waiting calls (static_asserts at the top); their
// non-blocking calls, close() and statistics() work as with waitable, without a system call.
TEST(NoWaiting, CloseAndStatisticsWork) {
  const std::uint64_t calls = kernel_calls();
  {
    quiet32 r(4);
    push(r, 0, 4);
    EXPECT_FALSE(r.try_push(4));
    EXPECT_EQ(r.try_pop(), std::optional<u32>(0));
    EXPECT_FALSE(r.closed());
    r.close();
    r.close();
    EXPECT_TRUE(r.closed());
    EXPECT_FALSE(r.try_push(5));
    EXPECT_NO_THROW(EXPECT_FALSE(r.try_reserve(5)));
    EXPECT_EQ(drain(r), seq(1, 3));
    const sluice::ring_statistics s = r.statistics();
    EXPECT_EQ(s.committed, 4u);
    EXPECT_EQ(s.released, 4u);
    EXPECT_EQ(s.refused, 1u);
    EXPECT_EQ(s.high_water, 4u);
    EXPECT_EQ(s.wakeups, 0u);
  }
  auto records = [](auto& r) {
    put(r, 1, kMax);
    put(r, 2, kMax);
    EXPECT_FALSE(r.try_reserve(0));
    r.close();
    EXPECT_TRUE(r.closed());
    EXPECT_NO_THROW(EXPECT_FALSE(r.try_reserve(kMax + 1)));
    EXPECT_EQ(drain_records(r), expected({{1, kMax}, {2, kMax}}));
    const sluice::ring_statistics s = r.statistics();
    EXPECT_EQ(s.committed, 2u);
    EXPECT_EQ(s.released, 2u);
    EXPECT_EQ(s.refused, 1u);
    EXPECT_EQ(s.high_water, kCap);
    EXPECT_EQ(s.wakeups, 0u);
  };
  {
    SCOPED_TRACE("spsc records");
    quiet_spsc_records r(kCap);
    records(r);
  }
  {
    SCOPED_TRACE("mpsc records");
    quiet_mpsc_records r(kCap);
    records(r);
  }
  EXPECT_EQ(kernel_calls(), calls);
}

// ======================================================================== regressions
// Each of these once failed.

// A consumer short of its water mark returns what is ready once a producer is refused for room
// since the read began, even if it went to sleep before any data came: it declares that it holds
// out for a mark before it first sleeps, not on a later re-check (which only a wake-up brings,
// and commits below its mark do not wake it). Here 3 of 8 elements are ready and the producer
// is refused 6 again and again: the consumer must come back with the 3, not sleep on to its own
// timeout, or a producer that drops what does not fit would starve it of the data that is there.
TEST(WaitingRegressions, RefusalNudgesAConsumerThatFellAsleepBeforeTheData) {
  ring32 r(8);
  const std::uint64_t calls = kernel_calls();
  auto reader = start([&] {
    auto g = r.try_read_for(kLong, 8);
    std::vector<u32> got = values(g);
    g.release();
    return got;
  });
  ASSERT_TRUE(asleep_since(calls));
  push(r, 0, 3);  // below the water mark: the consumer sleeps on, as it should
  const auto give_up = steady::now() + 1s;
  while (!returned(reader) && steady::now() < give_up) {
    (void)r.try_reserve(6);  // 5 free, not 6 in a row: refused (until the consumer is back)
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(returned(reader)) << "a second of refusals did not bring the consumer back";
  r.close();  // ends the wait either way
  EXPECT_EQ(reader.get(), seq(0, 3));
}

// The same on the record rings: 72 bytes ready (records of 16) below a water mark of 128, and a
// 56-byte record refused for a second.
TYPED_TEST(RecordWaiting, RefusalNudgesAConsumerThatFellAsleepBeforeTheData) {
  TypeParam r(kCap);
  const std::uint64_t calls = kernel_calls();
  auto reader = start([&] {
    auto b = r.try_read_for(kLong, kCap);
    std::vector<payload> got = records_of(b);
    b.release();
    return got;
  });
  ASSERT_TRUE(asleep_since(calls));
  put(r, 1, 16);
  put(r, 2, 16);
  put(r, 3, 16);
  const auto give_up = steady::now() + 1s;
  while (!returned(reader) && steady::now() < give_up) {
    (void)r.try_reserve(kMax);  // refused (until the consumer is back)
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(returned(reader)) << "a second of refusals did not bring the consumer back";
  r.close();
  EXPECT_EQ(reader.get(), expected({{1, 16}, {2, 16}, {3, 16}}));
}

// spsc_ring's read(min) waits until min elements are committed, and a tail skipped by a wrapped
// grant (inside `write_ - read_`) is not data. Here 4 elements are committed behind a 2-element
// skipped tail and nothing else happens (no refusal, no sleeping producer, no close): a consumer
// waiting for 6 must wait, not return at once with 4.
TEST(WaitingRegressions, SpscWaterMarkDoesNotCountASkippedTail) {
  // 4 elements committed at index 0, behind a skipped tail at indexes 6 and 7.
  auto wrapped = [](ring32& r) {
    push(r, 0, 6);
    EXPECT_EQ(drain(r), seq(0, 6));
    auto g = r.try_reserve(4);
    ASSERT_EQ(g.size(), 4u);
    fill_commit(g, 100);
  };
  {
    SCOPED_TRACE("timed");
    ring32 r(8);
    wrapped(r);
    const auto t0 = steady::now();
    auto g = r.try_read_for(kLinger, 6);  // may return only once the time is up
    EXPECT_GE(steady::now() - t0, kLinger) << "returned early with " << g.size() << " of 6";
    EXPECT_EQ(values(g), seq(100, 4));
  }
  {
    SCOPED_TRACE("blocking");
    ring32 r(8);
    watchdog dog(r);
    wrapped(r);
    auto reader = start([&] {
      auto g = r.read(6);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "read(6) returned with 4 committed";
    push(r, 104, 2);
    EXPECT_EQ(reader.get(), seq(100, 6));
    EXPECT_FALSE(dog.fired());
  }
}

// The timed calls take any std::chrono::duration or time_point. Durations above ~292 years in a
// unit coarser than nanoseconds (seconds::max(), 1000 years) and deadlines such as
// sys_seconds::max() do not fit in nanoseconds: converting them would overflow (undefined; in
// practice negative, so the call returned at once). They must wait like nanoseconds::max()
// (PracticallyForeverTimeoutsWait).
TEST(WaitingRegressions, CoarseHugeTimeoutsWait) {
  const std::vector<std::pair<std::string, std::function<ring32::read_grant(ring32&)>>> forms = {
      {"try_read_for(seconds::max())", [](ring32& r) { return r.try_read_for(std::chrono::seconds::max()); }},
      {"try_read_for(milliseconds::max())", [](ring32& r) { return r.try_read_for(std::chrono::milliseconds::max()); }},
      {"try_read_for(1000 years)", [](ring32& r) { return r.try_read_for(std::chrono::hours(24 * 365 * 1000)); }},
      {"try_read_until(sys_seconds::max())", [](ring32& r) { return r.try_read_until(std::chrono::sys_seconds::max()); }},
  };
  for (const auto& entry : forms) {
    const std::string& name = entry.first;
    const auto& read = entry.second;
    SCOPED_TRACE(name);
    ring32 r(4);
    watchdog dog(r);
    auto reader = start([&] {
      auto g = read(r);
      std::vector<u32> got = values(g);
      g.release();
      return got;
    });
    std::this_thread::sleep_for(kLinger);
    EXPECT_FALSE(returned(reader)) << "returned at once";
    push(r, 7, 1);
    EXPECT_EQ(reader.get(), seq(7, 1));
    EXPECT_FALSE(dog.fired());
  }
}

}  // namespace
