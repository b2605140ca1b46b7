// Rings shared between processes: every test forks real processes (or, where a crash must fall
// between two particular stores, leaves a ring object in exactly the state such a crash leaves
// and attaches a successor to it).
//
// - Hand-offs across processes for spsc_ring<T> (plain and mirrored), spsc_record_ring and
//   mpsc_record_ring with three producer processes: every element or record carries its
//   producer, sequence number and a checksum, and the consumer proves each arrives exactly once,
//   in order. Both sides block (process-shared futexes) on small rings.
// - Crashes: a producer process killed with SIGKILL while it holds a reservation (the consumer
//   reclaims it with recover(): one record lost, every other delivered once); a producer that
//   dies between claiming space and writing its header; a stalled producer reclaimed after a
//   timeout (its late commit returns false); a consumer killed in the middle of a batch (its
//   successor re-reads the batch: at least once); a consumer that dies while zeroing what it
//   released, or between passing a skipped tail and publishing it; a producer that dies between
//   storing a skip and publishing the wrapped grant. Each successor must continue exactly where
//   the state says.
// - Attaching: a missing segment, another kind of ring, another element size, a corrupt or
//   foreign header, a truncated file, a segment never published, a role held by a live process
//   (refused) or a dead one (taken over), a second spsc producer, calls of the other role.
// - A corrupt or hostile peer: impossible cursors and headers written into the control block
//   and the data make the ring throw corrupt_ring, never read or write outside the mapping
//   (ASan watches), and a header rewritten under a batch ends the iteration inside the batch.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "random_seed.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sluice::detail {
// The rings' shared state, for tests that must write what a crash or a hostile peer leaves.
struct test_access {
  template <class Ring>
  static auto& control(Ring& r) {
    return *r.ctl_;
  }
  template <class Ring>
  static std::byte* data(Ring& r) {
    return r.data_;
  }
  // As if this process died now: its role slot stays held (the successor here is the same
  // process, so it may take the slot over) and nothing is undone.
  template <class Ring>
  static void abandon(Ring& r) {
    forget_slot(r.segment_, *r.role_slot_);
    r.role_slot_ = nullptr;
  }
  template <class Ring>
  static process_slot& slot(Ring& r) {
    return *r.role_slot_;
  }
};
}  // namespace sluice::detail

namespace {

using namespace std::chrono_literals;
using ta = sluice::detail::test_access;
using sluice::role;
using sluice_test::mix;

constexpr std::uint64_t chunks = SLUICE_STRESS_CHUNKS;

// A segment name of this test process, removed when the test ends.
class segment_name {
 public:
  explicit segment_name(const char* what) {
    static int counter = 0;
    name_ = "/sluice-test-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(counter++);
    sluice::remove_shared(name_);
  }
  ~segment_name() { sluice::remove_shared(name_); }
  const std::string& str() const { return name_; }
  operator std::string_view() const { return name_; }

 private:
  std::string name_;
};

sluice::shared_options as(role r, bool mirrored = false) {
  sluice::shared_options o;
  o.role = r;
  o.mirrored = mirrored;
  return o;
}

// Runs `body` in a child process; its return value is the exit status (an exception: 99).
pid_t spawn(std::function<int()> body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  return pid;
}

// The child's exit status, or 128 + the signal that ended it.
int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A one-byte signal from a child to its parent.
class pipe_signal {
 public:
  pipe_signal() { EXPECT_EQ(::pipe(fds_), 0); }
  ~pipe_signal() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void notify() { (void)!::write(fds_[1], "x", 1); }
  bool wait() {
    char c;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2]{-1, -1};
};

// A consumer process that attaches and sleeps in a wait for `mark` is killed there: its
// announcement stays in the segment until a successor attaches, which clears it (and the water
// mark it held out for). Returns the successor.
template <class Ring>
std::unique_ptr<Ring> dead_sleeper_is_cleared(Ring& producer, const segment_name& name, std::size_t mark) {
  pipe_signal attached;
  const pid_t child = spawn([&] {
    Ring consumer(sluice::open_shared, name, as(role::consumer));
    attached.notify();
    (void)consumer.try_read_for(std::chrono::seconds(60), mark);
    return 0;
  });
  EXPECT_TRUE(attached.wait());
  auto& sleepers = sluice::detail::test_access::control(producer).consumer_wait;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!sleepers.has_sleepers() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(sleepers.has_sleepers()) << "the consumer never went to sleep";
  EXPECT_TRUE(sleepers.holding_out());
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_for(child), 128 + SIGKILL);
  EXPECT_TRUE(sleepers.has_sleepers()) << "a dead sleeper's announcement stays until a successor attaches";
  auto successor = std::make_unique<Ring>(sluice::open_shared, name, as(role::consumer));
  EXPECT_FALSE(sleepers.has_sleepers());
  EXPECT_FALSE(sleepers.holding_out());
  return successor;
}

// ---------------------------------------------------------------------------- record contents

// A record: producer id (4 bytes), sequence (4), then a body derived from both; its length
// derives from them too, so the consumer checks everything from the first 8 bytes.
constexpr std::size_t meta = 8;
std::size_t record_length(unsigned id, std::uint32_t seq, std::size_t max) {
  return meta + static_cast<std::size_t>(mix((std::uint64_t{id} << 32) | seq) % (max - meta + 1));
}
void write_record(std::span<std::byte> out, unsigned id, std::uint32_t seq) {
  const std::uint32_t id32 = id;
  std::memcpy(out.data(), &id32, 4);
  std::memcpy(out.data() + 4, &seq, 4);
  for (std::size_t i = meta; i < out.size(); ++i)
    out[i] = static_cast<std::byte>(mix((std::uint64_t{id} << 40) ^ (std::uint64_t{seq} << 8) ^ i));
}

// Checks records as they arrive: per-producer order, length and body.
class record_checker {
 public:
  record_checker(unsigned producers, std::size_t max) : next_(producers, 0), max_(max) {}
  // Accepts `rec`; `again` tolerates a record delivered before (at-least-once after a consumer
  // crash): it must then be the one right before next.
  bool accept(std::span<const std::byte> rec, bool again = false) {
    if (rec.size() < meta) return fail("a record of " + std::to_string(rec.size()) + " bytes");
    std::uint32_t id, seq;
    std::memcpy(&id, rec.data(), 4);
    std::memcpy(&seq, rec.data() + 4, 4);
    if (id >= next_.size()) return fail("producer id " + std::to_string(id));
    if (rec.size() != record_length(id, seq, max_)) return fail("length of " + std::to_string(id) + "/" + std::to_string(seq));
    for (std::size_t i = meta; i < rec.size(); ++i)
      if (rec[i] != static_cast<std::byte>(mix((std::uint64_t{id} << 40) ^ (std::uint64_t{seq} << 8) ^ i)))
        return fail("body of " + std::to_string(id) + "/" + std::to_string(seq));
    if (again && seq < next_[id]) {
      ++repeats_;
      return true;
    }
    if (seq != next_[id])
      return fail("producer " + std::to_string(id) + ": got seq " + std::to_string(seq) + ", expected " +
                  std::to_string(next_[id]));
    ++next_[id];
    ++received_;
    return true;
  }
  // Producer `id` lost the record `seq` (reclaimed): the next one follows it.
  void skip(unsigned id) { ++next_[id]; }
  std::uint32_t next(unsigned id) const { return next_[id]; }
  std::uint64_t received() const { return received_; }
  std::uint64_t repeats() const { return repeats_; }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& e) {
    if (error_.empty()) error_ = e;
    return false;
  }
  std::vector<std::uint32_t> next_;
  std::size_t max_;
  std::uint64_t received_ = 0, repeats_ = 0;
  std::string error_;
};

// Produces `count` records of producer `id` through `ring` with blocking reservations; returns
// 0, or a code naming what went wrong.
template <class Ring>
int produce_records(Ring& ring, unsigned id, std::uint32_t first, std::uint32_t count, std::size_t max) {
  for (std::uint32_t seq = first; seq < first + count; ++seq) {
    auto g = ring.try_reserve_for(record_length(id, seq, max), 20s);
    if (!g) return 3;
    write_record(g.span(), id, seq);
    if (!g.commit()) return 4;
  }
  return 0;
}

// =============================================================================== spsc_ring<T>

using item_ring = sluice::spsc_ring<std::uint64_t>;
constexpr std::uint64_t item_of(std::uint64_t seq) { return seq ^ (mix(seq) << 24); }

// A producer process and a consumer process move `items` items through a small ring, in
// chunks of random size, both blocking; every item is checked.
void hand_off_items(bool mirrored) {
  segment_name name("items");
  item_ring consumer(sluice::create_shared, name, 64, as(role::consumer, mirrored));
  EXPECT_TRUE(consumer.shared());
  EXPECT_EQ(consumer.mirrored(), mirrored);
  const std::uint64_t items = chunks;
  const std::size_t capacity = consumer.capacity();
  const pid_t producer = spawn([&] {
    item_ring ring(sluice::open_shared, name, as(role::producer));
    if (ring.capacity() != capacity || ring.mirrored() != mirrored) return 5;
    std::mt19937_64 rng(7);
    for (std::uint64_t next = 0; next < items;) {
      const std::size_t n = std::min<std::uint64_t>(1 + rng() % 16, items - next);
      auto g = ring.try_reserve_for(n, 20s);
      if (!g) return 3;
      for (auto& x : g) x = item_of(next++);
      g.commit();
    }
    ring.close();
    return 0;
  });
  std::uint64_t next = 0;
  std::string error;
  while (auto g = consumer.try_read_for(20s)) {
    for (std::uint64_t x : g) {
      if (x != item_of(next) && error.empty()) error = "item " + std::to_string(next) + " wrong";
      ++next;
    }
    g.release();
    if (!error.empty()) break;
  }
  EXPECT_EQ(wait_for(producer), 0);
  EXPECT_EQ(error, "");
  EXPECT_EQ(next, items);
  EXPECT_TRUE(consumer.closed());
  const sluice::ring_statistics s = consumer.statistics();
  EXPECT_EQ(s.committed, items);
  EXPECT_EQ(s.released, items);
}

TEST(SharedSpscRing, HandOffAcrossProcesses) { hand_off_items(false); }
TEST(SharedSpscRing, HandOffAcrossProcessesMirrored) { hand_off_items(true); }

// A producer process killed with SIGKILL holding a reservation loses nothing it committed; its
// successor attaches and continues from the shared cursor.
TEST(SharedSpscRing, ProducerKilledHoldingAGrantIsSucceeded) {
  segment_name name("items-killed");
  item_ring consumer(sluice::create_shared, name, 100, as(role::consumer));
  pipe_signal holding;
  const pid_t first = spawn([&] {
    item_ring ring(sluice::open_shared, name, as(role::producer));
    for (std::uint64_t i = 0; i < 50; ++i) (void)ring.try_push(item_of(i));
    auto g = ring.try_reserve(10);  // written, never committed
    for (auto& x : g) x = 0xdead;
    holding.notify();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(holding.wait());
  // While it lives, its role is taken.
  EXPECT_THROW(item_ring(sluice::open_shared, name, as(role::producer)), sluice::attach_error);
  ::kill(first, SIGKILL);
  EXPECT_EQ(wait_for(first), 128 + SIGKILL);
  const pid_t second = spawn([&] {
    item_ring ring(sluice::open_shared, name, as(role::producer));
    for (std::uint64_t i = 50; i < 200; ++i) {
      auto g = ring.try_reserve_for(1, 20s);
      if (!g) return 3;
      g[0] = item_of(i);
      g.commit();
    }
    return 0;
  });
  std::uint64_t next = 0;
  while (next < 200) {
    auto g = consumer.try_read_for(20s);
    ASSERT_TRUE(g) << "stalled after " << next;
    for (std::uint64_t x : g) ASSERT_EQ(x, item_of(next++));
    g.release();
  }
  EXPECT_EQ(wait_for(second), 0);
}

// A consumer process killed in the middle of a batch: its successor reads that batch again
// (at least once), and everything released before is never delivered again.
TEST(SharedSpscRing, ConsumerKilledMidBatchIsSucceeded) {
  segment_name name("items-consumer");
  item_ring producer(sluice::create_shared, name, 64, as(role::producer));
  for (std::uint64_t i = 0; i < 40; ++i) ASSERT_TRUE(producer.try_push(item_of(i)));
  pipe_signal reading;
  const pid_t first = spawn([&] {
    item_ring ring(sluice::open_shared, name, as(role::consumer));
    for (std::uint64_t i = 0; i < 10; ++i)
      if (ring.try_pop() != item_of(i)) return 3;
    auto g = ring.try_read();  // 10..39, never released
    if (g.size() != 30) return 4;
    reading.notify();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(reading.wait());
  ::kill(first, SIGKILL);
  EXPECT_EQ(wait_for(first), 128 + SIGKILL);
  item_ring consumer(sluice::open_shared, name, as(role::consumer));
  std::uint64_t next = 10;
  while (auto g = consumer.try_read()) {
    for (std::uint64_t x : g) ASSERT_EQ(x, item_of(next++));
    g.release();
  }
  EXPECT_EQ(next, 40u);
}

// The consumer dies after passing a skipped tail (skip cleared) but before publishing its read
// position: the successor must complete the pass, not read the tail as data.
TEST(SharedSpscRing, ConsumerDiedBetweenPassingASkipAndPublishingIt) {
  segment_name name("items-skip");
  item_ring producer(sluice::create_shared, name, 8, as(role::producer));
  {
    item_ring consumer(sluice::open_shared, name, as(role::consumer));
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(producer.try_push(item_of(i)));
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_EQ(consumer.try_pop(), item_of(i));
    auto g = producer.try_reserve(4);  // wraps: indexes 6 and 7 skipped
    ASSERT_EQ(g.size(), 4u);
    for (std::uint64_t i = 0; i < 4; ++i) g[i] = item_of(6 + i);
    g.commit();
    // What the consumer's jump over the skip does before it publishes read = 8.
    auto& c = ta::control(consumer);
    c.passing.store(8);
    c.skip_index.store(0);
    ta::abandon(consumer);
  }
  item_ring successor(sluice::open_shared, name, as(role::consumer));
  std::vector<std::uint64_t> got;
  while (auto x = successor.try_pop()) got.push_back(*x);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{item_of(6), item_of(7), item_of(8), item_of(9)}));
}

// The producer dies after storing a skip but before publishing the wrapped grant: the skip is
// unpublished, and its successor must drop it before writing at that position.
TEST(SharedSpscRing, ProducerDiedBetweenStoringASkipAndPublishingIt) {
  segment_name name("items-skip-producer");
  item_ring consumer(sluice::create_shared, name, 8, as(role::consumer));
  {
    item_ring producer(sluice::open_shared, name, as(role::producer));
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(producer.try_push(item_of(i)));
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_EQ(consumer.try_pop(), item_of(i));
    ta::control(producer).skip_index.store(6);  // commit_write()'s first store, and no more
    ta::abandon(producer);
  }
  item_ring successor(sluice::open_shared, name, as(role::producer));
  ASSERT_TRUE(successor.try_push(item_of(6)));  // at index 6, where the stale skip began
  ASSERT_TRUE(successor.try_push(item_of(7)));
  EXPECT_EQ(consumer.try_pop(), item_of(6));
  EXPECT_EQ(consumer.try_pop(), item_of(7));
}

// A consumer asleep in one process is woken by a commit in another, and by close() from a third.
TEST(SharedSpscRing, SleepersWakeAcrossProcesses) {
  segment_name name("items-wake");
  item_ring consumer(sluice::create_shared, name, 16, as(role::consumer));
  const pid_t producer = spawn([&] {
    item_ring ring(sluice::open_shared, name, as(role::producer));
    ::usleep(100000);  // let the consumer fall asleep
    if (!ring.try_push(item_of(0))) return 3;
    ::usleep(100000);
    return 0;
  });
  auto g = consumer.try_read_for(20s);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0], item_of(0));
  g.release();
  EXPECT_EQ(wait_for(producer), 0);
  const pid_t closer = spawn([&] {
    ::usleep(100000);
    // Any process may close: attached as the producer (the role is free again).
    item_ring ring(sluice::open_shared, name, as(role::producer));
    ring.close();
    return 0;
  });
  EXPECT_FALSE(consumer.try_read_for(20s));
  EXPECT_TRUE(consumer.closed());
  EXPECT_EQ(wait_for(closer), 0);
  EXPECT_GE(consumer.statistics().wakeups, 2u);
}

// ============================================================================== record rings

template <class Ring>
class SharedRecordRing : public ::testing::Test {};
using record_rings = ::testing::Types<sluice::spsc_record_ring, sluice::mpsc_record_ring>;
class record_ring_names {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, sluice::spsc_record_ring> ? "spsc" : "mpsc";
  }
};
TYPED_TEST_SUITE(SharedRecordRing, record_rings, record_ring_names);

constexpr bool is_mpsc(const sluice::spsc_record_ring*) { return false; }
constexpr bool is_mpsc(const sluice::mpsc_record_ring*) { return true; }
template <class Ring>
constexpr bool multi = is_mpsc(static_cast<const Ring*>(nullptr));

// Producer processes (three for mpsc, one for spsc) send records of random length through a
// ring small enough that everyone blocks; the consumer checks each one.
template <class Ring>
void hand_off_records(bool mirrored) {
  segment_name name("records");
  Ring consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
  EXPECT_TRUE(consumer.shared());
  EXPECT_FALSE(Ring(4096).shared());
  const unsigned producers = multi<Ring> ? 3 : 1;
  const std::size_t max = 200;
  const std::uint32_t per_producer = static_cast<std::uint32_t>(std::max<std::uint64_t>(chunks / 4 / producers, 20000));
  std::vector<pid_t> pids;
  for (unsigned id = 0; id < producers; ++id)
    pids.push_back(spawn([&, id] {
      Ring ring(sluice::open_shared, name, as(role::producer));
      return produce_records(ring, id, 0, per_producer, max);
    }));
  record_checker check(producers, max);
  const std::uint64_t total = std::uint64_t{per_producer} * producers;
  while (check.received() < total) {
    // A water mark while plenty is still to come (a record spans at most 8 + 200 bytes).
    auto b = consumer.try_read_for(20s, total - check.received() > 8 ? 512 : 1);
    ASSERT_TRUE(b) << "stalled after " << check.received() << " records";
    for (auto rec : b) ASSERT_TRUE(check.accept(rec)) << check.error();
    b.release();
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_for(pid), 0);
  EXPECT_FALSE(consumer.try_read());
  const sluice::ring_statistics s = consumer.statistics();
  EXPECT_EQ(s.committed, std::uint64_t{per_producer} * producers);
  EXPECT_EQ(s.lost, 0u);
  EXPECT_EQ(consumer.in_flight(), 0u);
}

TYPED_TEST(SharedRecordRing, HandOffAcrossProcesses) { hand_off_records<TypeParam>(false); }
TYPED_TEST(SharedRecordRing, HandOffAcrossProcessesMirrored) { hand_off_records<TypeParam>(true); }

// A producer process killed with SIGKILL while it holds a reservation: the consumer reclaims
// it (one record lost) and everything else, before and after, arrives exactly once.
TYPED_TEST(SharedRecordRing, ProducerKilledHoldingAReservationIsReclaimed) {
  segment_name name("records-killed");
  TypeParam consumer(sluice::create_shared, name, 8192, as(role::consumer));
  const std::size_t max = 100;
  pipe_signal holding;
  const pid_t victim = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::producer));
    if (int rc = produce_records(ring, 0, 0, 20, max)) return rc;
    auto g = ring.try_reserve(record_length(0, 20, max));  // record 20: written, never committed
    if (!g) return 5;
    write_record(g.span(), 0, 20);
    holding.notify();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(holding.wait());
  // Records behind the held one: from another process (mpsc), or the victim's successor (spsc).
  ::kill(victim, SIGKILL);
  EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
  const unsigned later_id = multi<TypeParam> ? 1 : 0;
  const std::uint32_t later_first = multi<TypeParam> ? 0 : 21;
  const pid_t later = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::producer));
    return produce_records(ring, later_id, later_first, 30, max);
  });
  EXPECT_EQ(wait_for(later), 0);

  record_checker check(2, max);
  if (!multi<TypeParam>) check.skip(1);  // unused id
  auto drain = [&] {
    while (auto b = consumer.try_read()) {
      for (auto rec : b) EXPECT_TRUE(check.accept(rec)) << check.error();
      b.release();
    }
  };
  drain();
  EXPECT_EQ(check.next(0), 20u) << "the held reservation must hold back what follows it";
  EXPECT_EQ(consumer.recover(), 1u);
  check.skip(0);  // record 20 is lost
  drain();
  EXPECT_EQ(check.received(), 50u);
  EXPECT_EQ(consumer.statistics().lost, 1u);
  EXPECT_EQ(consumer.recover(), 0u) << "nothing left to reclaim";
}

// A producer that dies after claiming space but before writing the header that tells its
// extent: the consumer finds a zero word at the head, proves no live process is claiming, and
// reclaims the run of zeros up to the next header.
TYPED_TEST(SharedRecordRing, ProducerDiedBeforeWritingItsHeaderIsReclaimed) {
  segment_name name("records-headerless");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  const std::size_t max = 100;
  const pid_t victim = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::producer));
    if (int rc = produce_records(ring, 0, 0, 5, max)) return rc;
    // What claim() does before the busy header: raise the count, move tail. Then die.
    ta::slot(ring).claiming.fetch_add(1);
    ta::control(ring).tail.fetch_add(48);
    ::raise(SIGKILL);
    return 0;
  });
  EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
  const unsigned later_id = multi<TypeParam> ? 1 : 0;
  const std::uint32_t later_first = multi<TypeParam> ? 0 : 5;
  {
    TypeParam producer(sluice::open_shared, name, as(role::producer));
    ASSERT_EQ(produce_records(producer, later_id, later_first, 10, max), 0);
  }
  record_checker check(2, max);
  std::size_t got = 0;
  for (int round = 0; round < 2; ++round) {
    while (auto b = consumer.try_read()) {
      for (auto rec : b) EXPECT_TRUE(check.accept(rec)) << check.error();
      got += b.size();
      b.release();
    }
    if (round == 0) {
      EXPECT_EQ(got, 5u);
      EXPECT_EQ(consumer.recover(), 1u);
    }
  }
  EXPECT_EQ(got, 15u);
  EXPECT_EQ(consumer.statistics().lost, 1u);
}

// A producer that stalls with a reservation (alive): recover() leaves it alone without a
// timeout, reclaims it with one; its late commit then returns false and publishes nothing.
TYPED_TEST(SharedRecordRing, StalledProducerIsReclaimedAfterItsTimeout) {
  segment_name name("records-stalled");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  auto held = producer.try_reserve(16);
  ASSERT_TRUE(held);
  {
    auto g = producer.try_reserve(8);
    ASSERT_TRUE(g);
    std::memset(g.data(), 7, 8);
    ASSERT_TRUE(g.commit());
  }
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(consumer.recover(), 0u) << "a live producer's reservation without a timeout";
  EXPECT_EQ(consumer.recover(0ns), 1u);
  auto b = consumer.try_read();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ((*b.begin())[0], std::byte{7});
  b.release();
  std::memset(held.data(), 9, 16);
  EXPECT_FALSE(held.commit()) << "a reclaimed reservation must not publish";
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(consumer.statistics().lost, 1u);
  // The ring goes on.
  auto g = producer.try_reserve(8);
  ASSERT_TRUE(g);
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(consumer.try_read().size(), 1u);
}

// A consumer killed mid-batch: its successor reads the unreleased records again (at least
// once); records released before are never delivered again.
TYPED_TEST(SharedRecordRing, ConsumerKilledMidBatchIsSucceeded) {
  segment_name name("records-consumer");
  TypeParam producer(sluice::create_shared, name, 4096, as(role::producer));
  const std::size_t max = 60;
  ASSERT_EQ(produce_records(producer, 0, 0, 30, max), 0);
  pipe_signal reading;
  const pid_t first = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::consumer));
    auto b = ring.try_read();
    if (b.size() != 30) return 3;
    b.release(10);  // 0..9 released
    auto again = ring.try_read();  // 10..29, never released
    if (again.size() != 20) return 4;
    reading.notify();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(reading.wait());
  ::kill(first, SIGKILL);
  EXPECT_EQ(wait_for(first), 128 + SIGKILL);
  ASSERT_EQ(produce_records(producer, 0, 30, 10, max), 0);
  TypeParam consumer(sluice::open_shared, name, as(role::consumer));
  record_checker check(1, max);
  for (std::uint32_t i = 0; i < 10; ++i) check.skip(0);  // released by the first consumer
  while (auto b = consumer.try_read()) {
    for (auto rec : b) ASSERT_TRUE(check.accept(rec)) << check.error();
    b.release();
  }
  EXPECT_EQ(check.next(0), 40u);
}

// The consumer dies while zeroing what it released: the successor completes the release, so
// nothing released is delivered again and the zeroed header does not stall the ring.
TYPED_TEST(SharedRecordRing, ConsumerDiedWhileZeroingIsCompleted) {
  segment_name name("records-zeroing");
  TypeParam producer(sluice::create_shared, name, 4096, as(role::producer));
  const std::size_t max = 60;
  ASSERT_EQ(produce_records(producer, 0, 0, 3, max), 0);
  {
    TypeParam consumer(sluice::open_shared, name, as(role::consumer));
    auto b = consumer.try_read();
    ASSERT_EQ(b.size(), 3u);
    // What release_bytes() does first: record the new head, zero the first record. Then die.
    auto& c = ta::control(consumer);
    std::size_t bytes = 0;
    for (std::uint32_t i = 0; i < 3; ++i) bytes += 8 + (record_length(0, i, max) + 7) / 8 * 8;
    c.releasing.store(c.head.load() + bytes);
    std::memset(ta::data(consumer), 0, 8 + (record_length(0, 0, max) + 7) / 8 * 8);
    ta::abandon(consumer);
  }
  ASSERT_EQ(produce_records(producer, 0, 3, 2, max), 0);
  TypeParam successor(sluice::open_shared, name, as(role::consumer));
  record_checker check(1, max);
  for (int i = 0; i < 3; ++i) check.skip(0);
  auto b = successor.try_read();
  ASSERT_EQ(b.size(), 2u) << "the successor must resume after the released records";
  for (auto rec : b) EXPECT_TRUE(check.accept(rec)) << check.error();
}

// Attach refusals name what is wrong; nothing is left mapped or held.
TYPED_TEST(SharedRecordRing, AttachRefusals) {
  segment_name name("records-attach");
  EXPECT_THROW(TypeParam(sluice::open_shared, name, as(role::consumer)), sluice::mapping_error) << "no such segment";
  EXPECT_THROW(TypeParam(sluice::open_shared, "no-slash", as(role::consumer)), std::invalid_argument);
  TypeParam ring(sluice::create_shared, name, 4096, as(role::consumer));
  EXPECT_THROW(TypeParam(sluice::create_shared, name, 4096, as(role::producer)), sluice::mapping_error)
      << "it exists already";
  try {
    sluice::spsc_ring<std::uint32_t> wrong(sluice::open_shared, name, as(role::producer));
    ADD_FAILURE() << "opened a record ring as an spsc_ring";
  } catch (const sluice::attach_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a spsc_ring"), std::string::npos) << e.what();
  }
  using other = std::conditional_t<multi<TypeParam>, sluice::spsc_record_ring, sluice::mpsc_record_ring>;
  EXPECT_THROW(other(sluice::open_shared, name, as(role::producer)), sluice::attach_error);
  // The consumer role is held by this (live) process.
  const pid_t child = spawn([&] {
    try {
      TypeParam second(sluice::open_shared, name, as(role::consumer));
      return 3;
    } catch (const sluice::attach_error& e) {
      return std::string(e.what()).find("consumer role is held by process") != std::string::npos ? 0 : 4;
    }
  });
  EXPECT_EQ(wait_for(child), 0);
  if (!multi<TypeParam>) {
    TypeParam first(sluice::open_shared, name, as(role::producer));
    const pid_t second = spawn([&] {
      try {
        TypeParam p(sluice::open_shared, name, as(role::producer));
        return 3;
      } catch (const sluice::attach_error&) {
        return 0;
      }
    });
    EXPECT_EQ(wait_for(second), 0) << "a second producer of an spsc_record_ring";
  }
}

// A consumer that died asleep leaves its announcement; its successor clears it.
TYPED_TEST(SharedRecordRing, SuccessorClearsADeadSleeper) {
  segment_name name("records-sleeper");
  TypeParam producer(sluice::create_shared, name, 4096, as(role::producer));
  const auto successor = dead_sleeper_is_cleared(producer, name, 64);
  auto g = producer.try_reserve(3);
  ASSERT_TRUE(g);
  g.commit();
  EXPECT_EQ(successor->try_read().size(), 1u);
}

// Calls of the other role are refused.
TYPED_TEST(SharedRecordRing, CallsOfTheOtherRoleThrow) {
  segment_name name("records-roles");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  EXPECT_THROW((void)consumer.try_reserve(8), std::logic_error);
  EXPECT_THROW((void)producer.try_read(), std::logic_error);
  EXPECT_THROW((void)producer.recover(), std::logic_error);
  auto g = producer.try_reserve(8);
  ASSERT_TRUE(g);
  ASSERT_TRUE(g.commit());
  EXPECT_EQ(consumer.try_read().size(), 1u);
}

// Impossible state written by a hostile peer makes the ring throw, never stray.
TYPED_TEST(SharedRecordRing, CorruptStateThrowsInsteadOfStraying) {
  segment_name name("records-corrupt");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  {
    auto g = producer.try_reserve(16);
    ASSERT_TRUE(g);
    ASSERT_TRUE(g.commit());
  }
  std::byte* data = ta::data(consumer);
  std::uint64_t header;
  std::memcpy(&header, data, 8);
  // A footprint that runs past the end of the storage.
  const std::uint64_t huge = (header & 0xffffffffull) | (std::uint64_t{1000} << 32);
  std::memcpy(data, &huge, 8);
  EXPECT_THROW((void)consumer.try_read(), sluice::corrupt_ring);
  // A length longer than its footprint.
  const std::uint64_t long_length = (header & ~0xffffffffull) | 4000;
  std::memcpy(data, &long_length, 8);
  EXPECT_THROW((void)consumer.try_read(), sluice::corrupt_ring);
  std::memcpy(data, &header, 8);
  EXPECT_EQ(consumer.try_read().size(), 1u);
  // A header rewritten under a batch: iteration stays inside the batch.
  {
    auto b = consumer.try_read();
    ASSERT_EQ(b.size(), 1u);
    std::memcpy(data, &huge, 8);
    std::size_t n = 0;
    for (auto rec : b) {
      EXPECT_LE(rec.size(), 16u);
      ++n;
    }
    EXPECT_LE(n, 1u);
    std::memcpy(data, &header, 8);
  }
  if (multi<TypeParam>) {
    // A reservation cursor off the 8-byte grid.
    auto& tail = ta::control(producer).tail;
    const std::uint64_t saved = tail.load();
    tail.store(saved + 3);
    EXPECT_THROW((void)producer.try_reserve(8), sluice::corrupt_ring);
    tail.store(saved);
  }
}

// ============================================================================ spsc_ring attach

TEST(SharedSpscRing, AttachRefusals) {
  segment_name name("items-attach");
  item_ring ring(sluice::create_shared, name, 100, as(role::consumer));
  EXPECT_THROW(sluice::spsc_ring<std::uint32_t>(sluice::open_shared, name, as(role::producer)), sluice::attach_error)
      << "another element size";
  EXPECT_THROW(sluice::mpsc_record_ring(sluice::open_shared, name, as(role::producer)), sluice::attach_error);
  const std::string path = "/dev/shm" + name.str();
  auto poke = [&](std::size_t offset, std::uint32_t value) {
    const int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof value));
    ::close(fd);
  };
  auto refusal = [&] {
    try {
      item_ring r(sluice::open_shared, name, as(role::producer));
      return std::string("attached");
    } catch (const sluice::attach_error& e) {
      return std::string(e.what());
    }
  };
  auto expect_refusal = [&](const char* words) {
    const std::string what = refusal();
    EXPECT_NE(what.find(words), std::string::npos) << what;
  };
  poke(0, 0x12345678);  // magic
  expect_refusal("not a sluice ring");
  poke(0, 0x52434c53);  // restore the magic's low half
  poke(8, 99);          // version
  expect_refusal("layout version 99");
  poke(8, sluice::detail::layout_version);
  poke(24, 7);  // capacity, low half: the check word no longer matches
  expect_refusal("corrupt header");
  poke(24, 100);
  EXPECT_EQ(refusal(), "attached");
  // Truncated behind the header's back.
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  expect_refusal("bytes long");
}

TEST(SharedSpscRing, NeverPublishedSegmentIsRefusedAfterItsTimeout) {
  segment_name name("items-unpublished");
  const int fd = ::shm_open(name.str().c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 65536), 0);  // zeros: a creator that died laying it out
  ::close(fd);
  sluice::shared_options o = as(role::consumer);
  o.attach_timeout = 50ms;
  try {
    item_ring r(sluice::open_shared, name, o);
    ADD_FAILURE() << "attached to a segment nobody published";
  } catch (const sluice::attach_error& e) {
    EXPECT_NE(std::string(e.what()).find("never published"), std::string::npos) << e.what();
  }
}

TEST(SharedSpscRing, CorruptCursorThrowsInsteadOfStraying) {
  segment_name name("items-corrupt");
  item_ring consumer(sluice::create_shared, name, 64, as(role::consumer));
  item_ring producer(sluice::open_shared, name, as(role::producer));
  ASSERT_TRUE(producer.try_push(1));
  ta::control(producer).write.store(10000);
  EXPECT_THROW((void)consumer.try_read(), sluice::corrupt_ring);
  EXPECT_THROW((void)consumer.try_read_split(), sluice::corrupt_ring);
  std::uint64_t dst[4];
  EXPECT_THROW((void)consumer.read_some(dst), sluice::corrupt_ring);
  ta::control(producer).write.store(1);
  EXPECT_EQ(consumer.try_pop(), 1u);
}

// A role slot whose holder word names a pid that now belongs to a process started at another
// time (a reused pid) reads as free; one ring object per role and process.
TEST(SharedSpscRing, ReusedPidAndSecondObjectInOneProcess) {
  segment_name name("items-holder");
  item_ring consumer(sluice::create_shared, name, 64, as(role::consumer));
  try {
    item_ring twin(sluice::open_shared, name, as(role::consumer));
    ADD_FAILURE() << "two ring objects of one process hold the consumer role";
  } catch (const sluice::attach_error& e) {
    EXPECT_NE(std::string(e.what()).find("consumer role is held by process " + std::to_string(::getpid())),
              std::string::npos)
        << e.what();
  }
  {
    item_ring producer(sluice::open_shared, name, as(role::producer));
    ASSERT_TRUE(producer.try_push(7));
    // The producer slot now names our pid with another start time: the pid was reused.
    sluice::detail::process_slot& slot = ta::slot(producer);
    ta::abandon(producer);
    const std::uint64_t me = sluice::detail::this_process();
    slot.holder.store(me + (std::uint64_t{1} << 32));
    EXPECT_FALSE(sluice::detail::process_alive(slot.holder.load()));
    EXPECT_TRUE(sluice::detail::process_alive(me));
  }
  item_ring successor(sluice::open_shared, name, as(role::producer));
  ASSERT_TRUE(successor.try_push(8));
  EXPECT_EQ(consumer.try_pop(), 7u);
  EXPECT_EQ(consumer.try_pop(), 8u);
}

TEST(SharedSpscRing, WaitPolicyMismatchIsRefused) {
  segment_name name("items-policy");
  item_ring consumer(sluice::create_shared, name, 64, as(role::consumer));
  try {
    sluice::spsc_ring<std::uint64_t, sluice::no_waiting> producer(sluice::open_shared, name, as(role::producer));
    ADD_FAILURE() << "a no_waiting producer attached to a waitable ring";
  } catch (const sluice::attach_error& e) {
    EXPECT_NE(std::string(e.what()).find("no_waiting"), std::string::npos) << e.what();
  }
}

// A consumer that died asleep leaves its announcement; its successor clears it, so that the
// producer's commits stop taking the slow path.
TEST(SharedSpscRing, SuccessorClearsADeadSleeper) {
  segment_name name("items-sleeper");
  item_ring producer(sluice::create_shared, name, 64, as(role::producer));
  const auto successor = dead_sleeper_is_cleared(producer, name, 8);
  ASSERT_TRUE(producer.try_push(1));
  EXPECT_EQ(successor->try_pop(), 1u);
}

// A skipped tail a correct producer cannot have stored: beyond the storage, or any over
// mirrored storage (which never skips), or covering the rest of what is published.
TEST(SharedSpscRing, CorruptSkipThrowsInsteadOfStraying) {
  for (const bool mirrored : {false, true}) {
    segment_name name("items-corrupt-skip");
    item_ring consumer(sluice::create_shared, name, 64, as(role::consumer, mirrored));
    item_ring producer(sluice::open_shared, name, as(role::producer));
    const std::uint64_t capacity = consumer.capacity();
    ASSERT_TRUE(producer.try_push(1));
    auto& c = ta::control(producer);
    c.skip_index.store(mirrored ? 1 : capacity);
    EXPECT_THROW((void)consumer.try_read(), sluice::corrupt_ring) << "mirrored: " << mirrored;
    EXPECT_THROW((void)consumer.try_read_for(1ms, 1), sluice::corrupt_ring) << "mirrored: " << mirrored;
    EXPECT_THROW((void)consumer.try_read_for(1ms, 2), sluice::corrupt_ring) << "mirrored: " << mirrored;
    EXPECT_FALSE(c.consumer_wait.holding_out()) << "a wait that throws withdraws its water mark";
    c.skip_index.store(0);
    EXPECT_EQ(consumer.try_pop(), 1u);
    if (mirrored) continue;
    // The consumer stands at index 1; a skip there with write ending inside it.
    c.skip_index.store(1);
    c.write.store(capacity);  // one element short of what a correct producer publishes
    EXPECT_THROW((void)consumer.try_pop(), sluice::corrupt_ring);
    EXPECT_THROW((void)consumer.try_read(), sluice::corrupt_ring);
    EXPECT_EQ(c.read.load(), 1u) << "a refused jump publishes nothing";
  }
}

TEST(SharedSpscRing, CallsOfTheOtherRoleThrow) {
  segment_name name("items-roles");
  item_ring consumer(sluice::create_shared, name, 64, as(role::consumer));
  item_ring producer(sluice::open_shared, name, as(role::producer));
  EXPECT_THROW((void)consumer.try_push(1), std::logic_error);
  EXPECT_THROW((void)consumer.try_reserve(1), std::logic_error);
  EXPECT_THROW((void)producer.try_pop(), std::logic_error);
  EXPECT_THROW((void)producer.try_read(), std::logic_error);
  EXPECT_TRUE(producer.try_push(1));
  EXPECT_EQ(consumer.try_pop(), 1u);
}

}  // namespace
