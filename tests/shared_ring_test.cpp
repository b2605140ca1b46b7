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
//   (refused) or a dead one (taken over), a second spsc producer, calls of the other role;
//   every other field of a forged header (resealed, so only that field is wrong), a file
//   shorter than a header, a capacity no record ring has, all 64 mpsc producer slots held, a
//   creator's membarrier pairing this process cannot join, and malformed names.
// - A corrupt or hostile peer: impossible cursors and headers written into the control block
//   and the data make the ring throw corrupt_ring, never read or write outside the mapping
//   (ASan watches), and a header rewritten under a batch ends the iteration inside the batch.
// - Recovery paths of the record rings: reservations and header-less claims of dead producers
//   just past the end of the storage (plain and mirrored), a live claimer, a stall that moves,
//   malformed busy and record headers (the byte named, nothing changed), a garbage or a valid
//   release left by a dead consumer, corrupt cursors at attach, and a peer rewriting the head's
//   header under recover(); a dead claim across the end counted once, and a successor that
//   ignores a release past the reservation cursor.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "child_exit.hpp"
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
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
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
  template <class Ring>
  static process_table& processes(Ring& r) {
    return r.segment_.processes();
  }
  // Record rings: the header flags, and a busy header as claim_space() writes it for a producer
  // in process slot `slot` of generation `generation`.
  template <class Ring>
  static constexpr std::uint64_t pad_flag = Ring::pad_flag;
  template <class Ring>
  static constexpr std::uint64_t discard_flag = Ring::discard_flag;
  template <class Ring>
  static constexpr std::uint64_t busy_header(std::uint64_t footprint, std::uint32_t slot, std::uint32_t generation,
                                             std::uint32_t lap) {
    return Ring::busy_flag | (footprint / 8) << 32 | std::uint64_t{slot} << Ring::tag_slot_shift |
           std::uint64_t{generation & Ring::tag_generation_mask} << Ring::tag_generation_shift | (lap & 0xffffu);
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
    sluice_test::exit_child(rc);
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


// ============================================================================ forged headers
//
// Every other refusal of segment::open(): a header rewritten field by field, with its check
// word resealed, so that only the field under test is wrong. Each refusal is followed by the
// original header and a successful open (the test changed nothing else).

namespace sd = sluice::detail;

// The header of segment `name`, mapped read-write in this process (the rings never read it
// again after opening). forge() rewrites a copy of the original and reseals its check word;
// restore() (and the destructor) put the original back.
class header_forger {
 public:
  explicit header_forger(const segment_name& name) {
    const int fd = ::shm_open(name.str().c_str(), O_RDWR, 0);
    if (fd < 0) throw std::runtime_error("shm_open " + name.str());
    void* p = ::mmap(nullptr, sd::header_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("mmap " + name.str());
    live_ = static_cast<sd::segment_header*>(p);
    std::memcpy(static_cast<void*>(&original_), p, fields);
  }
  header_forger(const header_forger&) = delete;
  header_forger& operator=(const header_forger&) = delete;
  ~header_forger() {
    restore();
    ::munmap(live_, sd::header_size);
  }
  const sd::segment_header& original() const { return original_; }
  template <class Change>
  void forge(Change change) {
    restore();
    change(*live_);
    live_->check = sd::header_check(*live_);
  }
  void restore() { std::memcpy(static_cast<void*>(live_), &original_, fields); }

 private:
  static constexpr std::size_t fields = offsetof(sd::segment_header, ready);  // `ready` stays 1
  sd::segment_header* live_ = nullptr;
  sd::segment_header original_{};
};

// What attaching a `Ring` to `name` in `r` ends with: "attached", or the attach_error's what().
// Any other exception escapes and fails the test.
template <class Ring = item_ring>
std::string attach_outcome(std::string_view name, role r = role::producer,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(1000)) {
  sluice::shared_options o = as(r);
  o.attach_timeout = timeout;
  try {
    Ring ring(sluice::open_shared, name, o);
    return "attached";
  } catch (const sluice::attach_error& e) {
    return e.what();
  }
}

::testing::AssertionResult mentions(const std::string& what, const std::string& words) {
  if (what.find(words) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << what << "\" does not say \"" << words << "\"";
}

// Forges `name`'s header with `change`: attaching a `Ring` is refused with `words`, and
// attaching succeeds again once the header is restored.
template <class Ring = item_ring, class Change>
void expect_forged_refusal(header_forger& header, const segment_name& name, Change change, const std::string& words) {
  SCOPED_TRACE(words);
  header.forge(change);
  EXPECT_TRUE(mentions(attach_outcome<Ring>(name), words));
  header.restore();
  EXPECT_EQ(attach_outcome<Ring>(name), "attached");
}

std::string figure(std::uint64_t n) { return std::to_string(n); }

// A new spsc_ring<uint64_t> segment of 100 elements (this process its consumer) and a forger of
// its header, for the tests that refuse one forged field at a time.
struct forged_items {
  segment_name name;
  item_ring ring;
  header_forger header;
  explicit forged_items(const char* what)
      : name(what), ring(sluice::create_shared, name, 100, as(role::consumer)), header(name) {}
  template <class Change>
  void refuses(Change change, const std::string& words) {
    expect_forged_refusal(header, name, change, words);
  }
};

// A control block of another size, or at another offset, is refused with both figures.
TEST(SharedHeader, ControlBlockOfAnotherSizeOrOffsetIsRefused) {
  forged_items f("hdr-control");
  const std::uint64_t size = f.header.original().control_size;
  ASSERT_EQ(f.header.original().control_offset, sd::control_offset);
  f.refuses([&](sd::segment_header& h) { h.control_size = size + 64; },
            "has a control block of " + figure(size + 64) + " bytes at 2048, not " + figure(size) +
                " at 2048");
  f.refuses([&](sd::segment_header& h) { h.control_size = 0; },
            "has a control block of 0 bytes at 2048, not " + figure(size) + " at 2048");
  f.refuses([&](sd::segment_header& h) { h.control_offset = 4096; },
            "has a control block of " + figure(size) + " bytes at 4096, not " + figure(size) +
                " at 2048");
}

// Flag bits this version does not know are refused, whichever they are.
TEST(SharedHeader, UnknownFlagsAreRefused) {
  forged_items f("hdr-flags");
  for (const std::uint32_t bit : {8u, 0x100u, 0x80000000u})
    f.refuses([&](sd::segment_header& h) { h.flags |= bit; }, "has unknown flags set");
}

// A capacity of 0, one whose data would exceed 2^48 bytes, and one whose byte count wraps
// around 2^64 (with data_bytes forged to the wrapped product) are impossible; 2^48 bytes
// exactly passes that check (and is refused later, for the file's length). An element size of
// 0 never reaches the capacity check: the element size must match the ring's first.
TEST(SharedHeader, ImpossibleCapacityIsRefused) {
  forged_items f("hdr-capacity");
  const std::uint64_t limit = (std::uint64_t{1} << 48) / sizeof(std::uint64_t);
  f.refuses([](sd::segment_header& h) { h.capacity = 0; }, "has an impossible capacity (0)");
  f.refuses(
      [&](sd::segment_header& h) {
        h.capacity = limit + 1;
        h.data_bytes = h.capacity * 8;
      },
      "has an impossible capacity (" + figure(limit + 1) + ")");
  const std::uint64_t wraps = (std::uint64_t{1} << 61) + 1;  // * 8 == 8 modulo 2^64
  f.refuses(
      [&](sd::segment_header& h) {
        h.capacity = wraps;
        h.data_bytes = wraps * 8;
      },
      "has an impossible capacity (" + figure(wraps) + ")");
  const std::uint64_t file_size = f.header.original().segment_size;
  const std::uint64_t claimed = f.header.original().data_offset + (std::uint64_t{1} << 48);
  f.refuses(
      [&](sd::segment_header& h) {
        h.capacity = limit;
        h.data_bytes = std::uint64_t{1} << 48;
        h.segment_size = claimed;
      },
      "is " + figure(file_size) + " bytes long, its header says " + figure(claimed));
  f.refuses([](sd::segment_header& h) { h.element_size = 0; },
            "holds elements of 0 bytes, not 8");
}

// data_bytes must be capacity * element size; mirrored data must be whole pages, both for a
// plain segment forged mirrored and for a mirrored one forged one element short.
TEST(SharedHeader, DataOfAnotherSizeIsRefused) {
  forged_items f("hdr-data");
  ASSERT_EQ(f.header.original().data_bytes, 800u);
  f.refuses([](sd::segment_header& h) { h.data_bytes = 808; },
            "has 808 bytes of data for 100 elements of 8");
  f.refuses([](sd::segment_header& h) { h.data_bytes = 792; },
            "has 792 bytes of data for 100 elements of 8");
  f.refuses([](sd::segment_header& h) { h.flags |= sd::flag_mirrored; },
            "has 800 bytes of data for 100 elements of 8");

  segment_name mirrored_name("hdr-data-mirrored");
  item_ring mirrored(sluice::create_shared, mirrored_name, 64, as(role::consumer, true));
  header_forger mirrored_header(mirrored_name);
  const std::uint64_t page = sluice::mirrored_storage::page_size();
  ASSERT_EQ(mirrored_header.original().data_bytes, page);
  ASSERT_NE(mirrored_header.original().flags & sd::flag_mirrored, 0u);
  // One element fewer, consistently: only the whole-pages rule is broken (the segment's size,
  // rounded up to pages, is unchanged).
  expect_forged_refusal(mirrored_header, mirrored_name,
                        [](sd::segment_header& h) {
                          h.capacity -= 1;
                          h.data_bytes -= 8;
                        },
                        "has " + figure(page - 8) + " bytes of data for " + figure(page / 8 - 1) + " elements of 8");
}

// The data must start at the first page after the control block.
TEST(SharedHeader, DataAtAnotherOffsetIsRefused) {
  forged_items f("hdr-data-offset");
  const std::uint64_t page = sluice::mirrored_storage::page_size();
  const std::uint64_t offset = f.header.original().data_offset;
  ASSERT_EQ(offset % page, 0u);
  // A page further, with the segment's size moved along, so that only the offset is wrong.
  f.refuses(
      [&](sd::segment_header& h) {
        h.data_offset = offset + page;
        h.segment_size += page;
      },
      "has its data at an unexpected offset (" + figure(offset + page) + ")");
  f.refuses([&](sd::segment_header& h) { h.data_offset = offset - 8; },
            "has its data at an unexpected offset (" + figure(offset - 8) + ")");
  f.refuses([](sd::segment_header& h) { h.data_offset = 0; },
            "has its data at an unexpected offset (0)");
}

// segment_size must be the header's own sum (data offset + data rounded up to pages), even
// when the file has been sized to match the forged figure; the existing AttachRefusals test
// covers a file that disagrees with a correct header.
TEST(SharedHeader, SegmentSizeThatDisagreesWithTheHeaderIsRefused) {
  forged_items f("hdr-segment-size");
  const std::string path = "/dev/shm" + f.name.str();
  const std::uint64_t page = sluice::mirrored_storage::page_size();
  const std::uint64_t size = f.header.original().segment_size;
  // A page longer, file and header alike: the file agrees, the header's sum does not.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size + page)), 0);
  f.header.forge([&](sd::segment_header& h) { h.segment_size = size + page; });
  EXPECT_TRUE(mentions(attach_outcome(f.name), "has a header whose segment size (" + figure(size + page) +
                                                   " bytes) is not the sum of its parts (" + figure(size) + ")"));
  f.header.restore();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0);
  EXPECT_EQ(attach_outcome(f.name), "attached");
  // A page shorter in the header only.
  f.refuses([&](sd::segment_header& h) { h.segment_size = size - page; },
            "segment size (" + figure(size - page) + " bytes) is not the sum of its parts");
  EXPECT_EQ(attach_outcome(f.name), "attached");
}

// A file too short for a header is refused with its length once the timeout passes; at a
// header's length (zeros) it is an unpublished segment instead.
TEST(SharedHeader, FileShorterThanAHeaderIsRefused) {
  segment_name name("hdr-short");
  const int fd = ::shm_open(name.str().c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  for (const off_t length : {0, 100, 255}) {
    ASSERT_EQ(::ftruncate(fd, length), 0);
    EXPECT_TRUE(mentions(attach_outcome(name, role::consumer, 20ms),
                         "is too short to hold a ring (" + std::to_string(length) + " bytes)"));
  }
  ASSERT_EQ(::ftruncate(fd, 256), 0);
  EXPECT_TRUE(mentions(attach_outcome(name, role::consumer, 20ms), "was never published"));
  ::close(fd);
}

// The waitable and the no_waiting policy refuse each other's segments, in both directions;
// each attaches to its own.
TEST(SharedSpscRing, WaitPolicyMismatchIsRefusedBothWays) {
  using quiet_ring = sluice::spsc_ring<std::uint64_t, sluice::no_waiting>;
  segment_name waitable("items-policy-waitable");
  segment_name quiet("items-policy-quiet");
  item_ring a(sluice::create_shared, waitable, 64, as(role::consumer));
  quiet_ring b(sluice::create_shared, quiet, 64, as(role::consumer));
  EXPECT_TRUE(mentions(attach_outcome<quiet_ring>(waitable),
                       "was made with the waitable policy, this ring has the no_waiting one"));
  EXPECT_TRUE(mentions(attach_outcome<item_ring>(quiet),
                       "was made with the no_waiting policy, this ring has the waitable one"));
  EXPECT_EQ(attach_outcome<item_ring>(waitable), "attached");
  EXPECT_EQ(attach_outcome<quiet_ring>(quiet), "attached");
}

// A child process that attaches to `name` in both roles and stays alive (paused) until killed.
template <class Ring>
pid_t hold_both_roles(const segment_name& name) {
  pipe_signal holding;
  const pid_t holder = spawn([&] {
    Ring consumer(sluice::open_shared, name, as(role::consumer));
    Ring producer(sluice::open_shared, name, as(role::producer));
    holding.notify();
    ::pause();
    return 0;
  });
  EXPECT_TRUE(holding.wait()) << "the holder did not attach";
  return holder;
}

// Both roles of an spsc_ring held by another live process are refused, naming the role and
// the process; once it is dead, both are taken over.
TEST(SharedSpscRing, RolesHeldByALiveProcessAreRefused) {
  segment_name name("items-held");
  { item_ring creator(sluice::create_shared, name, 64, as(role::consumer)); }
  const pid_t holder = hold_both_roles<item_ring>(name);
  const std::string pid = std::to_string(holder);
  EXPECT_TRUE(mentions(attach_outcome(name, role::consumer), "its consumer role is held by process " + pid + ", which is alive"));
  EXPECT_TRUE(mentions(attach_outcome(name, role::producer), "its producer role is held by process " + pid + ", which is alive"));
  ::kill(holder, SIGKILL);
  EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
  EXPECT_EQ(attach_outcome(name, role::consumer), "attached");
  EXPECT_EQ(attach_outcome(name, role::producer), "attached");
}

// A header whose capacity no record ring can have (off the 8-byte grid, or below the
// minimum) passes segment::open() and is refused by the ring, naming the capacity; the
// minimum itself attaches.
TYPED_TEST(SharedRecordRing, ForgedCapacityIsRefused) {
  segment_name name("records-capacity");
  TypeParam ring(sluice::create_shared, name, 4096, as(role::consumer));
  header_forger header(name);
  ASSERT_EQ(header.original().capacity, 4096u);
  // Every capacity below rounds up to the same pages as 4096: segment_size stays right.
  for (const std::uint64_t capacity : {4092u, 4095u, 24u, 31u, 36u}) {
    expect_forged_refusal<TypeParam>(header, name,
                                     [&](sd::segment_header& h) {
                                       h.capacity = capacity;
                                       h.data_bytes = capacity;
                                     },
                                     "has a capacity of " + figure(capacity) + " bytes, which no record ring has");
  }
  header.forge([](sd::segment_header& h) {
    h.capacity = TypeParam::min_capacity;
    h.data_bytes = TypeParam::min_capacity;
  });
  EXPECT_EQ(attach_outcome<TypeParam>(name), "attached") << "the minimum capacity";
}

// Roles held by another live process (which stays alive, paused): a second consumer is
// refused naming the role and the holder's pid, and so is a second producer of an
// spsc_record_ring (an mpsc_record_ring takes another slot). Once the holder is dead, both
// roles are taken over.
TYPED_TEST(SharedRecordRing, RolesHeldByALiveProcessAreRefused) {
  segment_name name("records-held");
  { TypeParam creator(sluice::create_shared, name, 4096, as(role::consumer)); }
  const pid_t holder = hold_both_roles<TypeParam>(name);
  EXPECT_TRUE(mentions(attach_outcome<TypeParam>(name, role::consumer),
                       "its consumer role is held by process " + std::to_string(holder) + ", which is alive"));
  if (multi<TypeParam>)
    EXPECT_EQ(attach_outcome<TypeParam>(name, role::producer), "attached");
  else
    EXPECT_TRUE(mentions(attach_outcome<TypeParam>(name, role::producer), "its producer role is held by a live process"));
  ::kill(holder, SIGKILL);
  EXPECT_EQ(wait_for(holder), 128 + SIGKILL);
  EXPECT_EQ(attach_outcome<TypeParam>(name, role::consumer), "attached");
  EXPECT_EQ(attach_outcome<TypeParam>(name, role::producer), "attached");
}

// An mpsc_record_ring has 64 producer slots: with all of them held (64 ring objects of this
// process), a 65th producer is refused; one slot given back, it attaches.
TEST(SharedMpscRecordRing, AllProducerSlotsHeldIsRefused) {
  segment_name name("records-slots");
  sluice::mpsc_record_ring consumer(sluice::create_shared, name, 4096, as(role::consumer));
  std::vector<std::unique_ptr<sluice::mpsc_record_ring>> producers;
  for (unsigned i = 0; i < sd::max_producer_processes; ++i)
    producers.push_back(std::make_unique<sluice::mpsc_record_ring>(sluice::open_shared, name, as(role::producer)));
  EXPECT_TRUE(mentions(attach_outcome<sluice::mpsc_record_ring>(name), "all 64 producer slots are held by live processes"));
  producers.erase(producers.begin() + 17);
  EXPECT_EQ(attach_outcome<sluice::mpsc_record_ring>(name), "attached");
}

// A segment whose creator used membarrier (flag_asymmetric) is refused by a process that
// cannot register for it. The registration is decided once per process, so the refusing side
// is this test binary run again with SLUICE_NO_MEMBARRIER=1 (the child test below); the flag is
// forged on, in case this process could not register either.
TEST(SharedHeader, AsymmetricSegmentRefusedWithoutGlobalFences) {
  segment_name items("fences-items");
  segment_name spsc("fences-spsc");
  segment_name mpsc("fences-mpsc");
  item_ring a(sluice::create_shared, items, 64, as(role::consumer));
  sluice::spsc_record_ring b(sluice::create_shared, spsc, 4096, as(role::consumer));
  sluice::mpsc_record_ring c(sluice::create_shared, mpsc, 4096, as(role::consumer));
  header_forger ha(items), hb(spsc), hc(mpsc);
  for (header_forger* h : {&ha, &hb, &hc}) h->forge([](sd::segment_header& x) { x.flags |= sd::flag_asymmetric; });
  const std::string segments = items.str() + "," + spsc.str() + "," + mpsc.str();
  const pid_t child = spawn([&] {
    ::setenv("SLUICE_NO_MEMBARRIER", "1", 1);
    ::setenv("SLUICE_TEST_FENCES_SEGMENTS", segments.c_str(), 1);
    ::unsetenv("GTEST_OUTPUT");
    ::execl("/proc/self/exe", "shared_ring_test", "--gtest_filter=SharedHeaderChild.RefusedWithoutGlobalFences",
            "--gtest_brief=1", static_cast<char*>(nullptr));
    return 98;
  });
  EXPECT_EQ(wait_for(child), 42) << "the child's refusals (see its output)";
  for (header_forger* h : {&ha, &hb, &hc}) h->restore();
  EXPECT_EQ(attach_outcome<item_ring>(items), "attached");
  EXPECT_EQ(attach_outcome<sluice::spsc_record_ring>(spsc), "attached");
  EXPECT_EQ(attach_outcome<sluice::mpsc_record_ring>(mpsc), "attached");
}

// The child of AsymmetricSegmentRefusedWithoutGlobalFences (skipped when run on its own; ctest
// leaves it out: tests/CMakeLists.txt).
TEST(SharedHeaderChild, RefusedWithoutGlobalFences) {
  const char* list = std::getenv("SLUICE_TEST_FENCES_SEGMENTS");
  if (!list) GTEST_SKIP() << "runs only as the child of SharedHeader.AsymmetricSegmentRefusedWithoutGlobalFences";
  EXPECT_FALSE(sd::enable_global_fences());
  std::vector<std::string> names;
  for (std::string rest = list;;) {
    const auto comma = rest.find(',');
    names.push_back(rest.substr(0, comma));
    if (comma == std::string::npos) break;
    rest.erase(0, comma + 1);
  }
  ASSERT_EQ(names.size(), 3u);
  const std::string words = "its creator pairs membarrier (global expedited) with compiler barriers, and this process "
                            "cannot register for it";
  EXPECT_TRUE(mentions(attach_outcome<item_ring>(names[0]), words));
  EXPECT_TRUE(mentions(attach_outcome<sluice::spsc_record_ring>(names[1]), words));
  EXPECT_TRUE(mentions(attach_outcome<sluice::mpsc_record_ring>(names[2]), words));
  sluice_test::exit_child(::testing::Test::HasFailure() ? 1 : 42);  // 42: the refusals above were checked
}

// ================================================================ recovery and its checks
//
// recover(), a consumer's attach and the record header checks, through the paths only a crash
// at one particular instruction or a hostile peer reaches. Each state is what such a process
// leaves (a child killed there, or words written into the segment as it would write them); each
// test shows what the consumer receives, that nothing is delivered twice or lost, and that a
// refused call changes nothing.

// A record header word (record_ring.hpp, "The layout").
constexpr std::uint64_t record_header(std::uint64_t length, std::uint64_t footprint) {
  return length | (footprint / 8) << 32;
}

// The header word at storage index `at`, read and written as the rings do (atomically).
template <class Ring>
std::atomic_ref<std::uint64_t> word_at(Ring& ring, std::size_t at) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(ta::data(ring) + at));
}

// A busy header of a producer in slot 63, generation 1: no process has held that slot (its
// generation is still 0), so recover() reads it as a dead producer's at once.
template <class Ring>
std::uint64_t dead_busy_header(std::uint64_t footprint, std::uint32_t lap = 0) {
  return ta::busy_header<Ring>(footprint, sd::max_producer_processes - 1, 1, lap);
}

// The cursor `bytes` after `p` (lap << 32 | index) in a ring of `capacity` bytes.
constexpr std::uint64_t cursor_after(std::uint64_t p, std::uint64_t bytes, std::uint64_t capacity) {
  const std::uint64_t index = (p & 0xffffffffu) + bytes;
  return ((p >> 32) + index / capacity) << 32 | index % capacity;
}

// What a refused call must leave as it was: the cursors, the release in progress, the count of
// reclaimed reservations and every byte of the storage.
struct ring_state {
  std::uint64_t head, tail, releasing, lost;
  std::vector<std::byte> data;
  bool operator==(const ring_state&) const = default;
};
template <class Ring>
ring_state state_of(Ring& ring) {
  auto& c = ta::control(ring);
  const std::byte* data = ta::data(ring);
  return {c.head.load(), c.tail.load(), c.releasing.load(), c.lost.load(),
          std::vector<std::byte>(data, data + ring.capacity())};
}

// The message of the corrupt_ring `call` throws, or "no corrupt_ring".
template <class Call>
std::string corrupt_outcome(Call call) {
  try {
    call();
    return "no corrupt_ring";
  } catch (const sluice::corrupt_ring& e) {
    return e.what();
  }
}

// A record of `n` bytes, each `fill`, committed through `producer`.
template <class Ring>
void commit_filled(Ring& producer, std::size_t n, int fill) {
  auto g = producer.try_reserve(n);
  ASSERT_TRUE(g) << n << " bytes refused";
  std::memset(g.data(), fill, n);
  ASSERT_TRUE(g.commit());
}

// A record as "<length>x<fill>" (all its bytes equal), or "<length> mixed".
std::string filled(std::size_t n, int fill) { return std::to_string(n) + "x" + std::to_string(fill); }
std::string describe_record(std::span<const std::byte> rec) {
  for (const std::byte b : rec)
    if (b != rec[0]) return std::to_string(rec.size()) + " mixed";
  return filled(rec.size(), rec.empty() ? 0 : std::to_integer<int>(rec[0]));
}
// Everything the consumer can read now, each record described, each batch released.
template <class Ring>
std::vector<std::string> drain(Ring& consumer) {
  std::vector<std::string> got;
  while (auto b = consumer.try_read()) {
    for (auto rec : b) got.push_back(describe_record(rec));
    b.release();
  }
  return got;
}
using records = std::vector<std::string>;

// The head of `consumer` moved to index 2048 of its 4096 bytes: a record of 2040 bytes
// (footprint 2048) committed by a producer that then leaves, read and released.
template <class Ring>
void head_to_2048(Ring& consumer, const segment_name& name) {
  {
    Ring producer(sluice::open_shared, name, as(role::producer));
    commit_filled(producer, 2040, 1);
  }
  EXPECT_EQ(drain(consumer), records{filled(2040, 1)});
  ASSERT_EQ(ta::control(consumer).head.load(), 2048u);
}

// The head moved on to index 4000: a second record, of 1944 bytes (footprint 1952).
template <class Ring>
void head_to_4000(Ring& consumer, const segment_name& name) {
  head_to_2048(consumer, name);
  {
    Ring producer(sluice::open_shared, name, as(role::producer));
    commit_filled(producer, 1944, 1);
  }
  EXPECT_EQ(drain(consumer), records{filled(1944, 1)});
  ASSERT_EQ(ta::control(consumer).head.load(), 4000u);
}

// recover() on an in-process ring (heap or mirrored storage) returns 0 at once, with or without
// a timeout: no producer process can die there. A reservation held keeps holding back the
// record behind it, and both arrive, in order, once it commits.
TYPED_TEST(SharedRecordRing, InProcessRingRecoversNothing) {
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    auto ring = mirrored ? std::make_unique<TypeParam>(sluice::mirrored, 4096) : std::make_unique<TypeParam>(4096);
    ASSERT_FALSE(ring->shared());
    auto held = ring->try_reserve(16);
    ASSERT_TRUE(held);
    std::memset(held.data(), 1, 16);
    commit_filled(*ring, 8, 2);
    EXPECT_EQ(ring->recover(), 0u);
    EXPECT_EQ(ring->recover(0ns), 0u);
    EXPECT_FALSE(ring->try_read());
    EXPECT_EQ(ring->statistics().lost, 0u);
    ASSERT_TRUE(held.commit()) << "recover() must not have reclaimed it";
    EXPECT_EQ(drain(*ring), (records{filled(16, 1), filled(8, 2)}));
  }
}

// With the whole storage committed and unread (plain: two records of max_record_size(),
// mirrored: one), recover() scans a full capacity of ready records and stops there: nothing
// can be reserved beyond them. It reclaims nothing, even with a timeout of 0, and every record
// then arrives once.
TYPED_TEST(SharedRecordRing, FullRingOfReadyRecordsRecoversNothing) {
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    segment_name name("records-full");
    TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
    TypeParam producer(sluice::open_shared, name, as(role::producer));
    ASSERT_EQ(consumer.capacity(), 4096u);
    const std::size_t max = producer.max_record_size();
    records expected;
    for (int fill = 1; ta::control(consumer).tail.load() != (std::uint64_t{1} << 32); ++fill) {
      ASSERT_LE(fill, 2);
      commit_filled(producer, max, fill);
      expected.push_back(filled(max, fill));
    }
    EXPECT_FALSE(producer.try_reserve(0)) << "the ring is full";
    const ring_state before = state_of(consumer);
    EXPECT_EQ(consumer.recover(), 0u);
    EXPECT_EQ(consumer.recover(0ns), 0u);
    EXPECT_TRUE(state_of(consumer) == before);
    EXPECT_EQ(drain(consumer), expected);
    EXPECT_EQ(consumer.statistics().lost, 0u);
  }
}

// A dead producer's reservation just past the end of the storage: the head stands at byte 4000
// of 4096 and the victim's committed record wraps (plain: a skipped tail, then the record at the
// start; mirrored: one record across the seam), its next reservation follows. recover() finds
// that reservation beyond the end, reclaims it, and the records before and after it arrive once.
TYPED_TEST(SharedRecordRing, DeadReservationPastTheEndIsReclaimed) {
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    segment_name name("records-seam");
    TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
    ASSERT_EQ(consumer.capacity(), 4096u);
    head_to_4000(consumer, name);
    pipe_signal holding;
    const pid_t victim = spawn([&] {
      TypeParam ring(sluice::open_shared, name, as(role::producer));
      auto wrapped = ring.try_reserve(200);
      if (!wrapped) return 3;
      std::memset(wrapped.data(), 2, 200);
      if (!wrapped.commit()) return 4;
      auto held = ring.try_reserve(24);  // written, never committed
      if (!held) return 5;
      std::memset(held.data(), 9, 24);
      holding.notify();
      ::pause();
      return 0;
    });
    ASSERT_TRUE(holding.wait());
    ::kill(victim, SIGKILL);
    EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
    {
      TypeParam later(sluice::open_shared, name, as(role::producer));  // spsc: the victim's successor
      commit_filled(later, 40, 3);
    }
    // Before any read, so that the scan starts at 4000 and crosses the end.
    EXPECT_EQ(consumer.recover(), 1u);
    EXPECT_EQ(drain(consumer), (records{filled(200, 2), filled(40, 3)}));
    EXPECT_EQ(consumer.statistics().lost, 1u);
    EXPECT_EQ(consumer.recover(), 0u) << "nothing left to reclaim";
  }
}

// A producer process that dies between claiming a reservation that wraps and writing anything
// there: over plain storage its claim covers the tail it skips (never marked as skipped) and
// its footprint at the start; over mirrored storage one footprint across the seam. recover()
// reclaims the zeros (plain: the tail up to the end as a skipped tail, then the start) and the
// record reserved after it arrives, once; nothing else is delivered.
TYPED_TEST(SharedRecordRing, DeadClaimAcrossTheEndIsReclaimed) {
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    segment_name name("records-claim-seam");
    TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
    head_to_4000(consumer, name);
    // A footprint of 208 at 4000: plain storage skips the 96 bytes left first.
    const std::uint64_t claimed = mirrored ? 208 : 96 + 208;
    const pid_t victim = spawn([&] {
      TypeParam ring(sluice::open_shared, name, as(role::producer));
      // claim_space() up to its first store into the storage (the skip or the busy header).
      auto& c = ta::control(ring);
      ta::slot(ring).claiming.fetch_add(1);
      c.tail.store(cursor_after(c.tail.load(), claimed, 4096));
      c.reserved.fetch_add(1);
      ::raise(SIGKILL);
      return 0;
    });
    EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
    {
      TypeParam later(sluice::open_shared, name, as(role::producer));
      commit_filled(later, 40, 3);
    }
    EXPECT_FALSE(consumer.try_read()) << "the zeros hold back the record behind them";
    // One reservation: one run over mirrored storage, two pieces (the padding and the record)
    // counted once over plain storage (DeadClaimAcrossTheEndCountsOnce).
    EXPECT_EQ(consumer.recover(), 1u);
    EXPECT_EQ(consumer.statistics().lost, 1u);
    EXPECT_EQ(drain(consumer), records{filled(40, 3)});
    EXPECT_EQ(consumer.recover(), 0u);
    EXPECT_EQ(ta::control(consumer).head.load(), ta::control(consumer).tail.load());
  }
}

// A dead producer's claim that wraps over plain storage (the tail it skips, never marked, and
// its footprint at the start) is one reservation, counted once in `reserved`; recover()
// reclaims it as two runs of zeros (zero_run() stops at the end of the storage) and must count
// it once. Counting two would make in_flight() (reserved - committed - discarded - lost) count
// one reservation too few, the unsafe way: with a live producer's reservation outstanding it
// would read 0, and a consumer following the documented recipe (wait until in_flight() is 0,
// then read until a read is empty) would stop before that record arrives.
TYPED_TEST(SharedRecordRing, DeadClaimAcrossTheEndCountsOnce) {
  segment_name name("records-claim-seam-count");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  head_to_4000(consumer, name);
  const pid_t victim = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::producer));
    auto& c = ta::control(ring);
    ta::slot(ring).claiming.fetch_add(1);
    c.tail.store(cursor_after(c.tail.load(), 96 + 208, 4096));
    c.reserved.fetch_add(1);
    ::raise(SIGKILL);
    return 0;
  });
  EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
  TypeParam later(sluice::open_shared, name, as(role::producer));
  commit_filled(later, 40, 3);
  auto held = later.try_reserve(8);  // a live producer's reservation, outstanding
  ASSERT_TRUE(held);
  EXPECT_EQ(consumer.recover(), 1u) << "one dead reservation";
  EXPECT_EQ(consumer.statistics().lost, 1u);
  EXPECT_EQ(consumer.in_flight(), 1u) << "the live reservation is in flight";
  EXPECT_EQ(drain(consumer), records{filled(40, 3)});
  std::memset(held.data(), 4, 8);
  ASSERT_TRUE(held.commit());
  EXPECT_EQ(drain(consumer), records{filled(8, 4)});
}

// A reservation cursor more than a capacity ahead of the head (no correct producer gets there):
// recover() reclaims nothing, not even the dead producer's reservation at the head, and changes
// nothing; with the cursor put back, it reclaims that reservation, and the ring goes on.
TYPED_TEST(SharedRecordRing, TailMoreThanACapacityAheadIsNotRecovered) {
  segment_name name("records-far-tail");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  ASSERT_EQ(ta::processes(consumer).producers[sd::max_producer_processes - 1].generation.load(), 0u);
  auto& c = ta::control(consumer);
  word_at(consumer, 0).store(dead_busy_header<TypeParam>(32));
  c.tail.store(cursor_after(0, 4096 + 8, 4096));
  const ring_state before = state_of(consumer);
  EXPECT_EQ(consumer.recover(), 0u);
  EXPECT_EQ(consumer.recover(0ns), 0u);
  EXPECT_TRUE(state_of(consumer) == before);
  c.tail.store(32);
  EXPECT_EQ(consumer.recover(), 1u);
  EXPECT_EQ(consumer.statistics().lost, 1u);
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(c.head.load(), 32u) << "the next read frees the reclaimed reservation";
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  commit_filled(producer, 8, 5);
  EXPECT_EQ(drain(consumer), records{filled(8, 5)});
}

// A busy header no correct producer writes, at the head (byte 2048 of 4096): a footprint of 0,
// one larger than the storage, one that runs past the end of plain storage, one flagged as a
// skipped tail too. recover() throws corrupt_ring naming the byte and changes nothing; over
// mirrored storage the footprint across the end is a correct one and is reclaimed. A well-formed
// one put there instead is reclaimed.
TYPED_TEST(SharedRecordRing, MalformedBusyHeaderThrowsNamingTheByte) {
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    segment_name name("records-bad-busy");
    TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
    head_to_2048(consumer, name);
    auto& c = ta::control(consumer);
    c.tail.store(cursor_after(2048, 2056, 4096));  // reserved: more than any header below claims
    const std::string words =
        "the busy header at byte 2048 is malformed, which no correct peer can write (capacity 4096 bytes)";
    const std::uint64_t across_the_end = dead_busy_header<TypeParam>(2056);
    for (const std::uint64_t h : {dead_busy_header<TypeParam>(0), dead_busy_header<TypeParam>(4104),
                                  dead_busy_header<TypeParam>(2048) | ta::pad_flag<TypeParam>, across_the_end}) {
      if (h == across_the_end && mirrored) continue;
      SCOPED_TRACE(h);
      word_at(consumer, 2048).store(h);
      const ring_state before = state_of(consumer);
      EXPECT_TRUE(mentions(corrupt_outcome([&] { (void)consumer.recover(); }), words));
      EXPECT_TRUE(mentions(corrupt_outcome([&] { (void)consumer.recover(0ns); }), words));
      EXPECT_TRUE(state_of(consumer) == before) << "a refused recover() changes nothing";
    }
    // Reserved up to the end of that header, so that it is all there is to reclaim.
    c.tail.store(cursor_after(2048, mirrored ? 2056 : 2048, 4096));
    word_at(consumer, 2048).store(mirrored ? across_the_end : dead_busy_header<TypeParam>(2048));
    EXPECT_EQ(consumer.recover(), 1u);
    EXPECT_EQ(consumer.statistics().lost, 1u);
    EXPECT_FALSE(consumer.try_read());
  }
}

// A record header no correct producer writes, at the head (byte 2048 of 4096): a footprint of
// 0 or larger than the storage; over plain storage one that runs past the end, a skipped tail
// that stops short of the end, one also flagged withdrawn; over mirrored storage (which never
// skips) any skipped tail. try_read() and recover() (which scans first) throw corrupt_ring naming
// the byte and the footprint, and change nothing. The headers a correct peer can write there
// (mirrored: a record across the seam; plain: a skipped tail to the end) are read.
TYPED_TEST(SharedRecordRing, MalformedRecordHeaderThrowsNamingTheByte) {
  const std::uint64_t pad = ta::pad_flag<TypeParam>, discarded = ta::discard_flag<TypeParam>;
  for (const bool mirrored : {false, true}) {
    SCOPED_TRACE(mirrored ? "mirrored" : "plain");
    segment_name name("records-bad-header");
    TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer, mirrored));
    head_to_2048(consumer, name);
    auto& c = ta::control(consumer);
    c.tail.store(cursor_after(2048, 2056, 4096));
    const struct {
      std::uint64_t header;
      std::uint64_t footprint;
      bool plain_ok, mirrored_ok;
    } cases[] = {
        {record_header(5, 0), 0, false, false},
        {record_header(8, 4104), 4104, false, false},
        {record_header(2048, 2056), 2056, false, true},  // past the end
        {record_header(0, 1024) | pad, 1024, false, false},
        {record_header(0, 2048) | pad | discarded, 2048, false, false},
        {record_header(0, 2048) | pad, 2048, true, false},
    };
    for (const auto& k : cases) {
      SCOPED_TRACE(k.header);
      word_at(consumer, 2048).store(k.header);
      if (mirrored ? k.mirrored_ok : k.plain_ok) continue;  // read below
      const std::string words = "the record header at byte 2048 describes " + figure(k.footprint) +
                                " bytes, which no correct peer can write (capacity 4096 bytes)";
      const ring_state before = state_of(consumer);
      EXPECT_TRUE(mentions(corrupt_outcome([&] { (void)consumer.try_read(); }), words));
      EXPECT_TRUE(mentions(corrupt_outcome([&] { (void)consumer.recover(); }), words));
      EXPECT_TRUE(state_of(consumer) == before) << "a refused read changes nothing";
    }
    if (mirrored) {
      word_at(consumer, 2048).store(record_header(2048, 2056));
      EXPECT_EQ(drain(consumer), records{filled(2048, 0)}) << "one record across the seam";
      EXPECT_EQ(c.head.load(), cursor_after(2048, 2056, 4096));
    } else {
      word_at(consumer, 2048).store(record_header(0, 2048) | pad);
      EXPECT_FALSE(consumer.try_read()) << "a skipped tail to the end";
      EXPECT_EQ(c.head.load(), std::uint64_t{1} << 32);
    }
    EXPECT_EQ(consumer.statistics().lost, 0u);
  }
}

// A consumer that dies with a batch read and not released leaves `releasing` at the head. A
// successor that finds garbage there (an index beyond the storage, off the 8-byte grid, more
// than a capacity ahead of the head, behind it) ignores it: the cursors and the data stay as
// they were, and it reads the unreleased records again, none released before. A valid one (the
// predecessor died while zeroing a release) is completed: those bytes are zeroed and their
// records are not delivered again. Plain and mirrored; the ring goes on after either.
TYPED_TEST(SharedRecordRing, SuccessorIgnoresAGarbageReleaseAndCompletesAValidOne) {
  // Records of 100, 200, 300, 8 and 16 bytes: footprints 112, 208, 312, 16, 24. The first two
  // are released before the crash, so the head stands at 320.
  const std::uint64_t head = 320;
  const struct {
    const char* what;
    std::uint64_t releasing;
    bool completed;
  } cases[] = {
      {"an index beyond the storage", 4096 + 8, false},
      {"an index beyond the storage, a lap on", std::uint64_t{1} << 32 | 0xfffffff8u, false},
      {"off the 8-byte grid", head + 4, false},
      {"more than a capacity ahead", cursor_after(head, 4096 + 8, 4096), false},
      {"behind the head", head - 112, false},
      {"a lap behind the head", cursor_after(head, 4096, 4096) - (std::uint64_t{2} << 32), false},
      {"the end of the third record", head + 312, true},
  };
  for (const bool mirrored : {false, true}) {
    for (const auto& k : cases) {
      SCOPED_TRACE(std::string(mirrored ? "mirrored, " : "plain, ") + k.what);
      segment_name name("records-releasing");
      TypeParam producer(sluice::create_shared, name, 4096, as(role::producer, mirrored));
      int fill = 1;
      for (const std::size_t n : {100, 200, 300, 8, 16}) commit_filled(producer, n, fill++);
      ring_state crashed;
      {
        TypeParam consumer(sluice::open_shared, name, as(role::consumer));
        {
          auto b = consumer.try_read();
          ASSERT_EQ(b.size(), 5u);
          b.release(2);
        }
        auto again = consumer.try_read();
        ASSERT_EQ(again.size(), 3u);
        ASSERT_EQ(ta::control(consumer).head.load(), head);
        ASSERT_EQ(ta::control(consumer).releasing.load(), head);
        ta::control(consumer).releasing.store(k.releasing);
        crashed = state_of(consumer);
        ta::abandon(consumer);
      }
      TypeParam successor(sluice::open_shared, name, as(role::consumer));
      const ring_state attached = state_of(successor);
      if (k.completed) {
        EXPECT_EQ(attached.head, k.releasing);
        EXPECT_EQ(attached.tail, crashed.tail);
        EXPECT_TRUE(std::all_of(attached.data.begin() + head, attached.data.begin() + 632,
                                [](std::byte b) { return b == std::byte{0}; }))
            << "the release is completed: its bytes read 0 again";
        EXPECT_TRUE(std::equal(attached.data.begin() + 632, attached.data.end(), crashed.data.begin() + 632));
        EXPECT_EQ(drain(successor), (records{filled(8, 4), filled(16, 5)}));
      } else {
        EXPECT_TRUE(attached == crashed) << "a garbage release changes nothing";
        EXPECT_EQ(drain(successor), (records{filled(300, 3), filled(8, 4), filled(16, 5)}));
      }
      commit_filled(producer, 24, 6);
      EXPECT_EQ(drain(successor), records{filled(24, 6)});
      EXPECT_EQ(successor.statistics().lost, 0u);
    }
  }
}

// A `releasing` past the reservation cursor, yet on the 8-byte grid, inside the storage and
// within a capacity of the head, is garbage too: a correct consumer releases only records, all
// reserved before it, so its `releasing` never passes `tail`. A successor ignores it like the
// values above. (Honouring it would zero the three committed records, never released, without
// a count, and move the head past the tail: then an mpsc producer refuses every reservation,
// and an spsc producer reserves behind the new head, where the consumer parses a record from
// its middle.)
TYPED_TEST(SharedRecordRing, SuccessorIgnoresAReleasePastTheReservationCursor) {
  segment_name name("records-releasing-past-tail");
  TypeParam producer(sluice::create_shared, name, 4096, as(role::producer));
  int fill = 1;
  for (const std::size_t n : {100, 200, 300}) commit_filled(producer, n, fill++);
  ASSERT_EQ(ta::control(producer).tail.load(), 632u);
  ring_state crashed;
  {
    TypeParam consumer(sluice::open_shared, name, as(role::consumer));
    auto b = consumer.try_read();  // never released
    ASSERT_EQ(b.size(), 3u);
    ta::control(consumer).releasing.store(632 + 64);
    crashed = state_of(consumer);
    ta::abandon(consumer);
  }
  TypeParam successor(sluice::open_shared, name, as(role::consumer));
  EXPECT_TRUE(state_of(successor) == crashed) << "head " << ta::control(successor).head.load() << ", tail "
                                              << ta::control(successor).tail.load();
  EXPECT_EQ(drain(successor), (records{filled(100, 1), filled(200, 2), filled(300, 3)}));
  // The ring goes on: records committed now arrive, each once.
  records expected;
  for (int i = 10; i < 14; ++i) {
    commit_filled(producer, 16, i);
    expected.push_back(filled(16, i));
  }
  records got;
  EXPECT_EQ(corrupt_outcome([&] { got = drain(successor); }), "no corrupt_ring");
  EXPECT_EQ(got, expected);
}

// With the reservation cursor corrupt as well (behind the head, so that from head to tail reads
// as almost 2^64 bytes), a `releasing` three capacities ahead must still be bounded by the
// capacity: the successor ignores it and zeroes nothing (ASan watches the 4096-byte storage).
TYPED_TEST(SharedRecordRing, SuccessorBoundsAReleaseByTheCapacityWhateverTheTail) {
  segment_name name("records-releasing-wild");
  TypeParam producer(sluice::create_shared, name, 4096, as(role::producer));
  int fill = 1;
  for (const std::size_t n : {100, 200, 300}) commit_filled(producer, n, fill++);
  ring_state crashed;
  {
    TypeParam consumer(sluice::open_shared, name, as(role::consumer));
    auto b = consumer.try_read();
    ASSERT_EQ(b.size(), 3u);
    b.release(1);
    ASSERT_EQ(ta::control(consumer).head.load(), 112u);
    ta::control(consumer).tail.store(104);
    ta::control(consumer).releasing.store(cursor_after(112, 3 * 4096 + 8, 4096));
    crashed = state_of(consumer);
    ta::abandon(consumer);
  }
  TypeParam successor(sluice::open_shared, name, as(role::consumer));
  EXPECT_TRUE(state_of(successor) == crashed) << "head " << ta::control(successor).head.load();
}

// A producer process stopped between claiming space and writing its header, alive: recover()
// must not skip the zeros it claimed, with or without a timeout, and changes nothing; the record
// reserved after them (mpsc: by another process) waits. Once the claimer is dead (its claiming
// count still raised), the zeros are reclaimed at once and the record behind them arrives,
// once; the reclaimed claim counts as finished.
TYPED_TEST(SharedRecordRing, LiveClaimerHoldsRecoveryUntilItDies) {
  segment_name name("records-claimer");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  pipe_signal claimed;
  const pid_t claimer = spawn([&] {
    TypeParam ring(sluice::open_shared, name, as(role::producer));
    auto g = ring.try_reserve(16);
    if (!g) return 3;
    std::memset(g.data(), 1, 16);
    if (!g.commit()) return 4;
    // claim_space() up to its first store into the storage.
    auto& c = ta::control(ring);
    ta::slot(ring).claiming.fetch_add(1);
    c.tail.store(cursor_after(c.tail.load(), 48, 4096));
    c.reserved.fetch_add(1);
    claimed.notify();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(claimed.wait());
  std::unique_ptr<TypeParam> later;
  if (multi<TypeParam>) {
    later = std::make_unique<TypeParam>(sluice::open_shared, name, as(role::producer));
    commit_filled(*later, 24, 2);
  }
  EXPECT_EQ(drain(consumer), records{filled(16, 1)});
  const ring_state before = state_of(consumer);
  EXPECT_EQ(consumer.recover(), 0u);
  EXPECT_EQ(consumer.recover(0ns), 0u) << "a live claimer's zeros are not a stall recover() may time";
  EXPECT_TRUE(state_of(consumer) == before);
  EXPECT_FALSE(consumer.try_read());
  ::kill(claimer, SIGKILL);
  EXPECT_EQ(wait_for(claimer), 128 + SIGKILL);
  EXPECT_EQ(consumer.recover(), 1u);
  if (!multi<TypeParam>) {
    later = std::make_unique<TypeParam>(sluice::open_shared, name, as(role::producer));
    commit_filled(*later, 24, 2);
  }
  EXPECT_EQ(drain(consumer), records{filled(24, 2)});
  EXPECT_EQ(consumer.statistics().lost, 1u);
  EXPECT_EQ(consumer.in_flight(), 0u);
  EXPECT_EQ(consumer.recover(), 0u);
}

// recover(limit) times a stall from the call that first sees it at a position. Calls that find
// the same stall keep its start, so a live producer's reservation is reclaimed once it has
// lasted `limit` (a bounded wait here); a stall at a new position starts anew, so the next
// reservation is not reclaimed at once though the previous stall began more than `limit` ago.
TYPED_TEST(SharedRecordRing, StallTimerFollowsTheStallPosition) {
  segment_name name("records-stall-timer");
  TypeParam consumer(sluice::create_shared, name, 4096, as(role::consumer));
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  constexpr auto limit = 20ms;
  auto first = producer.try_reserve(16);
  ASSERT_TRUE(first);
  std::memset(first.data(), 1, 16);
  commit_filled(producer, 8, 2);
  auto second = producer.try_reserve(16);
  ASSERT_TRUE(second);
  std::memset(second.data(), 3, 16);
  commit_filled(producer, 8, 4);
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(consumer.recover(limit), 0u) << "a stall seen for the first time has not lasted";
  const auto first_seen = std::chrono::steady_clock::now();  // at or after the stall's start
  while (std::chrono::steady_clock::now() - first_seen < 2 * limit) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(first.commit()) << "the producer resumed in time";
  EXPECT_EQ(drain(consumer), (records{filled(16, 1), filled(8, 2)}));
  EXPECT_EQ(consumer.recover(limit), 0u) << "a stall at a new position is timed from now";
  std::size_t reclaimed = 0;
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;
       reclaimed == 0 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(1ms);
    reclaimed = consumer.recover(limit);
  }
  EXPECT_EQ(reclaimed, 1u) << "the same stall, seen again, keeps its start";
  EXPECT_EQ(drain(consumer), records{filled(8, 4)});
  EXPECT_FALSE(second.commit()) << "a reclaimed reservation must not publish";
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(consumer.statistics().lost, 1u);
}

// A peer that keeps rewriting the header at the head under recover(): busy headers that never
// repeat, alone, in turn with zeros, in turn with a withdrawn reservation's header. Passes find
// the header changed under them (their compare-and-swap fails, a zero header turns out written,
// a header is no longer the one scan() stopped at) or reclaim what they find; yet each call
// ends within its bound of passes (the capacity in words, and 64 more) and counts each reclaim
// once. Once the peer stops, a dead producer's header there is reclaimed once and the ring
// carries records again.
TYPED_TEST(SharedRecordRing, RecoverEndsWhileAPeerRewritesTheHead) {
  segment_name name("records-hostile");
  TypeParam consumer(sluice::create_shared, name, 32, as(role::consumer));
  ASSERT_EQ(consumer.capacity(), 32u);
  const std::size_t bound = consumer.capacity() / 8 + 64;
  auto& c = ta::control(consumer);
  c.tail.store(std::uint64_t{1} << 32);  // the whole storage reserved
  // The busy headers name slot 62 in its current generation, held by a process that is gone
  // (this pid with another start time): owner_gone() reads /proc to tell, a window in which the
  // peer rewrites the header many times over.
  constexpr std::uint32_t slot = sd::max_producer_processes - 2;
  ta::processes(consumer).producers[slot].holder.store(sd::this_process() + (std::uint64_t{1} << 32));
  const std::uint32_t generation = ta::processes(consumer).producers[slot].generation.load();
  const std::uint64_t withdrawn = record_header(0, 32) | ta::discard_flag<TypeParam>;
  std::uint64_t reclaimed = 0;
  for (const int mix : {0, 1, 2}) {
    SCOPED_TRACE(mix == 0 ? "busy headers" : mix == 1 ? "busy headers and zeros" : "busy headers and withdrawn");
    std::atomic<std::uint64_t> writes{0};
    std::atomic<bool> stop{false};
    std::thread peer([&] {
      std::atomic_ref<std::uint64_t> w = word_at(consumer, 0);
      for (std::uint32_t lap = 0; !stop.load(std::memory_order_relaxed); ++lap) {
        w.store(ta::busy_header<TypeParam>(32, slot, generation, lap), std::memory_order_relaxed);
        if (mix != 0) w.store(mix == 1 ? 0 : withdrawn, std::memory_order_relaxed);
        writes.fetch_add(1, std::memory_order_relaxed);
      }
    });
    for (int call = 0; call < 300; ++call) {
      // Each call while the peer runs: it has written since the last one.
      for (const std::uint64_t seen = writes.load(); writes.load() == seen;) std::this_thread::yield();
      const std::size_t n = consumer.recover();
      EXPECT_LE(n, bound);
      reclaimed += n;
    }
    stop.store(true);
    peer.join();
    EXPECT_EQ(consumer.statistics().lost, reclaimed) << "each reclaim counted once";
    EXPECT_EQ(c.head.load(), 0u) << "recover() releases nothing";
  }
  word_at(consumer, 0).store(dead_busy_header<TypeParam>(32));
  EXPECT_EQ(consumer.recover(), 1u);
  EXPECT_EQ(consumer.statistics().lost, reclaimed + 1);
  EXPECT_FALSE(consumer.try_read());
  EXPECT_EQ(c.head.load(), std::uint64_t{1} << 32) << "the reclaimed storage is freed";
  TypeParam producer(sluice::open_shared, name, as(role::producer));
  commit_filled(producer, 8, 7);
  EXPECT_EQ(drain(consumer), records{filled(8, 7)});
}

// A release or reservation cursor outside the storage or off the 8-byte grid is refused when a
// process attaches, in either role, with corrupt_ring naming the cursor and the byte; the
// refusal holds no role (with the cursor put back, both roles attach at once). An mpsc
// producer already attached refuses to reserve at such a reservation cursor, and reserves
// again once it is put back.
TYPED_TEST(SharedRecordRing, CorruptCursorsAreRefusedOnAttach) {
  segment_name name("records-attach-cursor");
  TypeParam owner(sluice::create_shared, name, 4096, as(role::consumer));
  ta::abandon(owner);  // the consumer role stays held by this process, free for its next object
  auto& c = ta::control(owner);
  const struct {
    sd::atomic<std::uint64_t>* cursor;
    std::uint64_t value;
    const char* words;
  } cases[] = {
      {&c.head, 4096 + 8, "the release cursor points at byte 4104"},
      {&c.head, std::uint64_t{3} << 32 | 4, "the release cursor points at byte 4"},
      {&c.tail, 4096, "the reservation cursor points at byte 4096"},
      {&c.tail, 12, "the reservation cursor points at byte 12"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.words);
    k.cursor->store(k.value);
    for (const role r : {role::consumer, role::producer}) {
      const std::string what = corrupt_outcome([&] { TypeParam ring(sluice::open_shared, name, as(r)); });
      EXPECT_TRUE(mentions(what, std::string(k.words) + ", which no correct peer can write (capacity 4096 bytes)"));
    }
    k.cursor->store(0);
    EXPECT_EQ(attach_outcome<TypeParam>(name, role::consumer), "attached");
    EXPECT_EQ(attach_outcome<TypeParam>(name, role::producer), "attached");
  }
  if (multi<TypeParam>) {
    TypeParam producer(sluice::open_shared, name, as(role::producer));
    c.tail.store(4096 + 16);
    EXPECT_TRUE(mentions(corrupt_outcome([&] { (void)producer.try_reserve(8); }),
                         "the reservation cursor points at byte 4112"));
    EXPECT_EQ(c.tail.load(), 4096u + 16) << "a refused reservation claims nothing";
    EXPECT_EQ(ta::slot(producer).claiming.load(), 0u) << "and leaves no claim announced";
    c.tail.store(0);
    TypeParam consumer(sluice::open_shared, name, as(role::consumer));
    commit_filled(producer, 8, 1);
    EXPECT_EQ(drain(consumer), records{filled(8, 1)});
  }
}

// ================================================================================ names

// check_name()'s rule: '/' and 1 to 254 characters, none of them '/' (and no '\0').
constexpr const char* name_rule = "must be '/' followed by 1 to 254 characters, none of them '/'";

// Malformed names are refused by create, open and remove_shared with std::invalid_argument
// stating the rule; a name of the longest length allowed (255 characters) is accepted.
TEST(SharedSegmentName, MalformedNamesAreRefused) {
  const std::string longest = [] {
    std::string n = "/sluice-test-" + std::to_string(::getpid()) + "-longest-";
    n.resize(255, 'x');
    return n;
  }();
  const struct {
    const char* why;
    std::string name;
  } malformed[] = {
      {"no leading '/'", "sluice-test-no-slash"},
      {"a second '/'", "/sluice-test/second-slash"},
      {"empty", ""},
      {"'/' alone", "/"},
      {"256 characters", longest + "x"},
  };
  auto expect_refused = [](const char* why, const std::function<void()>& call) {
    try {
      call();
      ADD_FAILURE() << why << ": accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(mentions(e.what(), name_rule)) << why;
    }
  };
  for (const auto& m : malformed) {
    expect_refused(m.why, [&] { item_ring r(sluice::create_shared, m.name, 64, as(role::consumer)); });
    expect_refused(m.why, [&] { item_ring r(sluice::open_shared, m.name, as(role::producer)); });
    expect_refused(m.why, [&] { (void)sluice::remove_shared(m.name); });
  }
  {
    item_ring r(sluice::create_shared, longest, 64, as(role::consumer));
    EXPECT_EQ(attach_outcome(longest), "attached");
  }
  EXPECT_TRUE(sluice::remove_shared(longest));
  EXPECT_FALSE(sluice::remove_shared(longest));
}

// A name with an embedded '\0' (which shm_open would read as the shorter name before it) is
// refused by create, open and remove_shared, and nothing of that shorter name is created.
// what() is a C string: it ends at the '\0' the message quotes, so the rule's words that follow
// cannot be checked here (the message is cut to `...name "/sluice-test-<pid>-nul`).
TEST(SharedSegmentName, EmbeddedNulIsRefused) {
  const std::string prefix = "/sluice-test-" + std::to_string(::getpid()) + "-nul";
  const std::string name = prefix + std::string(1, '\0') + "tail";
  sluice::remove_shared(prefix);
  auto refusal = [](const std::function<void()>& call) {
    try {
      call();
      return std::string("accepted");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
  };
  const std::string outcomes[] = {
      refusal([&] { item_ring r(sluice::create_shared, name, 64, as(role::consumer)); }),
      refusal([&] { item_ring r(sluice::open_shared, name, as(role::producer)); }),
      refusal([&] { (void)sluice::remove_shared(name); }),
  };
  for (const std::string& what : outcomes) {
    EXPECT_TRUE(mentions(what, "sluice: shared segment name \"" + prefix + "\\x00tail\""));
    EXPECT_TRUE(mentions(what, "must be '/' followed by 1 to 254 characters"));
  }
  EXPECT_FALSE(sluice::remove_shared(prefix)) << "the name before the '\\0' was created";
}

}  // namespace
