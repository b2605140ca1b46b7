// The rings' own code under Relacy's schedulers and weak-memory model (built with
// SLUICE_MODEL_CHECK: see <sluice/detail/atomic.hpp>). Tiny capacities, so that a handful of
// operations wraps the storage several times and every wrap case is reached.
//
// Each suite checks, in every execution Relacy explores:
//   - no data race on the storage (the shadow: a payload written is published before it is
//     read, and read before it is overwritten a lap later);
//   - what the consumer sees is exactly the committed data, in order, each once (sequence
//     numbers in every element and record), and after the threads end the rest drains;
//   - the blocking suites never deadlock: a lost wake-up leaves a thread asleep forever, which
//     Relacy reports as a deadlock.
//
//   model_check [suite] [--iterations=N] [--shared-iterations=N] [--stop-at-failure]
//   (SLUICE_MODEL_ITERATIONS and SLUICE_MODEL_STOP_AT_FAILURE do the same.)
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "model.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace {

using sluice::detail::test_access;
using sluice_model::registered_storage;
using sluice_model::shadow;

// ============================================================ spsc_ring<T>

using element_ring = sluice::spsc_ring<std::uint32_t>;

// What the consumer of an element ring checks of each element it is given: the shadow (a race
// if the write is not ordered before) and the value (the next in sequence).
template <std::size_t Cells>
struct element_checker {
  element_ring& ring;
  shadow<Cells>& cells;
  std::uint32_t next = 1;  // the value the next element must hold

  std::size_t cell(const std::uint32_t* p) const { return static_cast<std::size_t>(p - test_access::data(ring)); }
  void fill(std::span<std::uint32_t> s, std::uint32_t first) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      s[i] = first + static_cast<std::uint32_t>(i);
      cells.write(cell(&s[i]), first + static_cast<std::uint32_t>(i));
    }
  }
  void check(std::span<const std::uint32_t> s, std::uint32_t first) const {
    for (std::size_t i = 0; i < s.size(); ++i) {
      RL_ASSERT(cells.read(cell(&s[i])) == first + i);
      RL_ASSERT(s[i] == first + i);
    }
  }
};

// The state every element suite starts from: a ring of Capacity elements, its shadow, and the
// two sides' checkers.
template <std::size_t Capacity>
struct elements {
  static constexpr std::size_t capacity = Capacity;
  element_ring ring{Capacity};
  shadow<Capacity> cells;
  element_checker<Capacity> producer{ring, cells};
  element_checker<Capacity> consumer{ring, cells};

  // Fills the first k elements of a write grant with the next values and commits them.
  void publish(element_ring::write_grant& g, std::size_t k) {
    producer.fill(g.span().first(k), producer.next);
    g.commit(k);
    producer.next += static_cast<std::uint32_t>(k);
  }
  // Checks every element of a read grant and releases the first k.
  void take(element_ring::read_grant& g, std::size_t k) {
    consumer.check(g.span(), consumer.next);
    g.release(k);
    consumer.next += static_cast<std::uint32_t>(k);
  }
  // What is left after the threads end: all of it must be the rest of the sequence.
  void drain_and_compare() {
    while (auto g = ring.try_read()) take(g, g.size());
    RL_ASSERT(consumer.next == producer.next);
  }
};

// Non-blocking reservations, partial commits, reserve_up_to, partial releases, over a ring of
// three elements.
struct spsc_elements : rl::test_suite<spsc_elements, 2>, elements<3> {
  static constexpr unsigned attempts = 5;

  void produce(unsigned attempt) {
    auto g = attempt % 3 == 2 ? ring.try_reserve_up_to(2) : ring.try_reserve(attempt % 2 + 1);
    if (!g) return;
    publish(g, attempt == 1 && g.size() > 1 ? g.size() - 1 : g.size());  // a partial commit on the second
  }
  bool consume(bool partial) {
    auto g = ring.try_read();
    if (!g) return false;
    take(g, partial && g.size() > 1 ? 1 : g.size());
    return true;
  }
  void thread(unsigned index) {
    for (unsigned a = 0; a < attempts; ++a) {
      if (index == 0) {
        produce(a);
      } else {
        consume(a % 2 == 0);
      }
    }
  }
  void after() {
    drain_and_compare();
    const auto s = ring.statistics();
    RL_ASSERT(s.committed == producer.next - 1 && s.released == consumer.next - 1);
  }
};

// Split grants (both pieces of a wrapped region), try_pop and read_some, over four elements.
struct spsc_split : rl::test_suite<spsc_split, 2>, elements<4> {
  static constexpr unsigned attempts = 4;

  void produce(unsigned attempt) {
    auto g = ring.try_reserve_split(attempt % 2 ? 1 : 3);
    if (!g) return;
    producer.fill(g.first(), producer.next);
    producer.fill(g.second(), producer.next + static_cast<std::uint32_t>(g.first().size()));
    producer.next += static_cast<std::uint32_t>(g.size());
    g.commit();
  }
  // The copying calls read through memcpy, outside the shadow: they check the values only.
  bool consume(unsigned attempt) {
    if (attempt % 3 == 0) {
      auto g = ring.try_read_split();
      if (!g) return false;
      consumer.check(g.first(), consumer.next);
      consumer.check(g.second(), consumer.next + static_cast<std::uint32_t>(g.first().size()));
      consumer.next += static_cast<std::uint32_t>(g.size());
      g.release();
      return true;
    }
    if (attempt % 3 == 1) {
      const auto v = ring.try_pop();
      if (!v) return false;
      RL_ASSERT(*v == consumer.next);
      ++consumer.next;
      return true;
    }
    std::array<std::uint32_t, 2> out{};
    const std::size_t n = ring.read_some(out);
    for (std::size_t i = 0; i < n; ++i) RL_ASSERT(out[i] == consumer.next + i);
    consumer.next += static_cast<std::uint32_t>(n);
    return n != 0;
  }
  void thread(unsigned index) {
    for (unsigned a = 0; a < attempts; ++a) {
      if (index == 0) {
        produce(a);
      } else {
        consume(a);
      }
    }
  }
  void after() {
    while (consume(0)) {
    }
    RL_ASSERT(consumer.next == producer.next);
  }
};

// Blocking reserve, reserve_up_to and read with water marks over two elements, then close():
// every element delivered, nobody left asleep.
struct spsc_blocking : rl::test_suite<spsc_blocking, 2>, elements<2> {
  static constexpr std::uint32_t total = 5;

  void thread(unsigned index) {
    if (index == 0) {
      for (unsigned a = 0; producer.next <= total; ++a) {
        auto g = a % 3 == 1 ? ring.reserve(2) : a % 3 == 2 ? ring.reserve_up_to(2) : ring.reserve(1);
        RL_ASSERT(g);
        publish(g, std::min<std::size_t>(g.size(), total + 1 - producer.next));
      }
      ring.close();
    } else {
      for (unsigned a = 0;; ++a) {
        auto g = ring.read(a % 2 + 1);  // a water mark of 2 on every other read
        if (!g) break;                  // closed and drained
        take(g, g.size());
      }
      RL_ASSERT(ring.closed());
    }
  }
  void after() { RL_ASSERT(consumer.next == total + 1 && producer.next == total + 1); }
};

// close() from a third thread while both sides may be asleep: both wake, reservations after it
// are empty, and whatever was committed before it is still delivered.
struct spsc_close : rl::test_suite<spsc_close, 3>, elements<2> {
  void thread(unsigned index) {
    if (index == 0) {
      for (int i = 0; i < 4; ++i) {
        auto g = ring.reserve(i == 1 ? 2 : 1);
        if (!g) {
          RL_ASSERT(ring.closed());
          RL_ASSERT(!ring.try_reserve(1));
          return;
        }
        publish(g, g.size());
      }
    } else if (index == 1) {
      while (auto g = ring.read()) take(g, g.size());
    } else {
      ring.close();
    }
  }
  // A grant the producer obtained before close() may be committed after the consumer's read
  // came back empty (closed, nothing ready then): it is not lost, the next read returns it.
  void after() { drain_and_compare(); }
};

// A third thread observing: size_approx() never exceeds what was ever committed (three
// elements in a ring of four), and closed() makes what the closing thread did before visible.
struct spsc_observer : rl::test_suite<spsc_observer, 3>, elements<4> {
  static constexpr std::uint32_t total = 3;
  shadow<1> note;  // written by the producer before close()

  void thread(unsigned index) {
    if (index == 0) {
      for (unsigned a = 0; a < 4 && producer.next <= total; ++a) {
        auto g = ring.try_reserve(1);
        if (g) publish(g, 1);
      }
      note.write(0, 1);
      ring.close();
    } else if (index == 1) {
      for (unsigned a = 0; a < 4; ++a) {
        if (auto g = ring.try_read()) take(g, g.size());
      }
    } else {
      for (unsigned a = 0; a < 3; ++a) {
        RL_ASSERT(ring.size_approx() <= total);
        if (ring.closed()) RL_ASSERT(note.read(0) == 1);
      }
    }
  }
};

// ============================================================ record rings

// A record's payload: its sequence number in the first byte (and the producer's in the second,
// for mpsc), then bytes derived from both. The shadow covers every byte of the storage.
template <class Ring, std::size_t Bytes>
struct record_checker {
  Ring& ring;
  shadow<Bytes>& cells;

  std::size_t cell(const std::byte* p) const { return static_cast<std::size_t>(p - test_access::data(ring)); }
  static unsigned byte_at(unsigned seq, unsigned who, std::size_t i) {
    return i == 0 ? seq : i == 1 ? who : (seq * 7 + who * 3 + static_cast<unsigned>(i)) & 0xff;
  }
  void fill(std::span<std::byte> s, unsigned seq, unsigned who) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      s[i] = static_cast<std::byte>(byte_at(seq, who, i));
      cells.write(cell(&s[i]), byte_at(seq, who, i));
    }
  }
  // Checks the record against its own first two bytes; returns {seq, who}.
  std::pair<unsigned, unsigned> check(std::span<const std::byte> s) const {
    RL_ASSERT(s.size() >= 2);
    const unsigned seq = cells.read(cell(&s[0]));
    const unsigned who = cells.read(cell(&s[1]));
    for (std::size_t i = 0; i < s.size(); ++i) {
      RL_ASSERT(cells.read(cell(&s[i])) == byte_at(seq, who, i));
      RL_ASSERT(static_cast<unsigned>(s[i]) == byte_at(seq, who, i));
    }
    return {seq, who};
  }
};

// Payload sizes that make footprints of 16 and 24 bytes in a 64-byte ring: records wrap (with
// a pad to the end) every few.
inline std::size_t record_size(unsigned seq) { return seq % 3 == 0 ? 12 : seq % 3 == 1 ? 2 : 7; }

// spsc_record_ring: reserve, commit (partial) or discard, read batches, release all or part.
struct spsc_records : rl::test_suite<spsc_records, 2> {
  static constexpr std::size_t capacity = 64;
  static constexpr unsigned attempts = 5;
  sluice::spsc_record_ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  shadow<capacity> cells;
  record_checker<sluice::spsc_record_ring, capacity> records{ring, cells};
  unsigned next = 1;       // producer: the next sequence number
  unsigned committed = 0;  // producer: the last committed one
  unsigned seen = 0;       // consumer: the last delivered one

  void produce() {
    const std::size_t n = record_size(next);
    auto g = ring.try_reserve(n);
    if (!g) return;
    if (next % 4 == 3) {
      g.discard();  // never delivered; the sequence skips it
    } else {
      const std::size_t k = next % 4 == 2 ? n - 1 : n;  // a partial commit
      records.fill(g.span().first(k), next, 0);
      g.commit(k);
      committed = next;
    }
    ++next;
  }
  bool consume(bool partial) {
    auto b = ring.try_read();
    if (!b) return false;
    std::size_t taken = 0;
    for (auto r : b) {
      if (partial && taken == 1) break;
      const auto [seq, who] = records.check(r);
      RL_ASSERT(who == 0 && seq > seen);
      RL_ASSERT(seq % 4 != 3);  // discarded ones never appear
      for (unsigned skipped = seen + 1; skipped < seq; ++skipped) RL_ASSERT(skipped % 4 == 3);
      seen = seq;
      ++taken;
    }
    if (partial) {
      b.release(taken);
    } else {
      RL_ASSERT(taken == b.size());
      b.release();
    }
    return true;
  }
  void thread(unsigned index) {
    for (unsigned a = 0; a < attempts; ++a) {
      if (index == 0) {
        produce();
      } else {
        consume(a % 2 == 1);
      }
    }
  }
  void after() {
    while (consume(false)) {
    }
    RL_ASSERT(seen == committed);
    RL_ASSERT(ring.size_approx() == 0 && ring.in_flight() == 0);
  }
};

// mpsc_record_ring: two producers, each holding two reservations at once and finishing them out
// of order (the later committed first, the earlier then committed or discarded), and a consumer
// that must deliver each committed record once, in each producer's order, never a discarded one.
struct mpsc_records : rl::test_suite<mpsc_records, 3> {
  static constexpr std::size_t capacity = 64;
  sluice::mpsc_record_ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  shadow<capacity> cells;
  record_checker<sluice::mpsc_record_ring, capacity> records{ring, cells};
  std::array<unsigned, 2> committed{};  // producer p: records it committed
  std::array<unsigned, 2> last_seen{};  // consumer: the last sequence number of each producer
  std::array<unsigned, 2> delivered{};  // consumer: records of each producer

  void produce(unsigned who) {
    unsigned seq = 1;
    for (int round = 0; round < 2; ++round) {
      auto first = ring.try_reserve(2);
      auto second = ring.try_reserve(who == 0 ? 7 : 2);
      const unsigned a = seq++;
      const unsigned b = seq++;
      if (second) {
        records.fill(second.span(), b, who);
        second.commit();
        ++committed[who];
      }
      if (first) {
        if (round == 1 && who == 1) {
          first.discard();
        } else {
          records.fill(first.span(), a, who);
          first.commit();
          ++committed[who];
        }
      }
    }
  }
  bool consume() {
    auto b = ring.try_read();
    if (!b) return false;
    for (auto r : b) {
      const auto [seq, who] = records.check(r);
      RL_ASSERT(who < 2);
      RL_ASSERT(seq > last_seen[who]);          // each producer's records in its order, once
      RL_ASSERT(!(who == 1 && seq == 3));       // producer 1 discards its third reservation
      ++delivered[who];
      last_seen[who] = seq;
    }
    b.release();
    return true;
  }
  void thread(unsigned index) {
    if (index < 2) {
      produce(index);
    } else {
      for (int a = 0; a < 4; ++a) consume();
    }
  }
  void after() {
    while (consume()) {
    }
    RL_ASSERT(delivered[0] == committed[0] && delivered[1] == committed[1]);
    RL_ASSERT(ring.in_flight() == 0 && ring.size_approx() == 0);
  }
};

// Blocking record calls: a producer that waits for room (80 bytes of records through 64),
// a consumer that waits for data with a water mark, then close(); nothing lost, nobody asleep.
struct spsc_records_blocking : rl::test_suite<spsc_records_blocking, 2> {
  static constexpr std::size_t capacity = 64;
  static constexpr unsigned total = 4;
  sluice::spsc_record_ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  shadow<capacity> cells;
  record_checker<sluice::spsc_record_ring, capacity> records{ring, cells};
  unsigned seen = 0;

  void thread(unsigned index) {
    if (index == 0) {
      for (unsigned seq = 1; seq <= total; ++seq) {
        auto g = ring.reserve(seq % 2 ? 2 : 12);
        RL_ASSERT(g);
        records.fill(g.span(), seq, 0);
        g.commit();
      }
      ring.close();
    } else {
      for (unsigned a = 0;; ++a) {
        auto b = ring.read(a % 2 ? 16 : 1);  // every other read waits for 16 bytes
        if (!b) break;
        for (auto r : b) {
          const auto [seq, who] = records.check(r);
          RL_ASSERT(seq == seen + 1 && who == 0);
          seen = seq;
        }
        b.release();
      }
    }
  }
  void after() { RL_ASSERT(seen == total); }
};

// Two producers waiting for room on a 64-byte ring (80 bytes of records), a blocking consumer,
// and close() by the first producer when it is done: the other's later reservations come back
// empty, and what was committed before is delivered.
struct mpsc_records_blocking : rl::test_suite<mpsc_records_blocking, 3> {
  static constexpr std::size_t capacity = 64;
  sluice::mpsc_record_ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  shadow<capacity> cells;
  record_checker<sluice::mpsc_record_ring, capacity> records{ring, cells};
  std::array<unsigned, 2> committed{};
  std::array<unsigned, 2> last_seen{};
  std::array<unsigned, 2> delivered{};

  // Checks a batch (each producer's records in its order) and releases it.
  void deliver(sluice::mpsc_record_ring::batch& b) {
    for (auto r : b) {
      const auto [seq, who] = records.check(r);
      RL_ASSERT(who < 2 && seq == last_seen[who] + 1);
      last_seen[who] = seq;
      ++delivered[who];
    }
    b.release();
  }

  void thread(unsigned index) {
    if (index < 2) {
      for (unsigned seq = 1; seq <= 2; ++seq) {
        auto g = ring.reserve(index == 0 ? 12 : 7);
        if (!g) {
          RL_ASSERT(index == 1 && ring.closed());
          return;
        }
        records.fill(g.span(), seq, index);
        g.commit();
        ++committed[index];
      }
      if (index == 0) ring.close();
    } else {
      while (auto b = ring.read()) deliver(b);
    }
  }
  // A blocking read on a closed ring returns at once, even with producer 1's reservation (made
  // before the close) still in flight ahead of producer 0's committed records; those, and what
  // producer 1 commits, stay in the ring for the next read (see close()).
  void after() {
    RL_ASSERT(ring.in_flight() == 0);
    while (auto b = ring.try_read()) deliver(b);
    RL_ASSERT(delivered[0] == committed[0] && delivered[1] == committed[1]);
  }
};

// An observer thread beside the producers (one or two) and the consumer, while each producer
// reserves, fills and commits one record at a time: in_flight() counts the reservation a
// producer holds (asked by that producer) and never more than one per producer (asked by the
// observer); size_approx() never exceeds the bytes ever reserved; and closed() makes what the
// closing thread did before visible.
template <class Ring, unsigned Producers>
struct record_observer : rl::test_suite<record_observer<Ring, Producers>, Producers + 2> {
  static constexpr std::size_t capacity = 128;
  static constexpr unsigned rounds = 2;
  Ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  shadow<capacity> cells;
  shadow<1> note;  // written by producer 0 before close()
  record_checker<Ring, capacity> records{ring, cells};

  void thread(unsigned index) {
    if (index < Producers) {
      for (unsigned seq = 1; seq <= rounds; ++seq) {
        auto g = ring.try_reserve(2);  // a footprint of 16 bytes
        if (!g) continue;
        RL_ASSERT(ring.in_flight() >= 1);
        records.fill(g.span(), seq, index);
        g.commit();
      }
      if (index == 0) {
        note.write(0, 1);
        ring.close();
      }
    } else if (index == Producers) {
      for (int a = 0; a < 3; ++a) {
        if (auto b = ring.try_read()) {
          for (auto r : b) (void)records.check(r);
          b.release();
        }
      }
    } else {
      for (int a = 0; a < 3; ++a) {
        RL_ASSERT(ring.in_flight() <= Producers);
        RL_ASSERT(ring.size_approx() <= Producers * rounds * 16);
        if (ring.closed()) RL_ASSERT(note.read(0) == 1);
      }
    }
  }
};
using spsc_record_observer = record_observer<sluice::spsc_record_ring, 1>;
using mpsc_record_observer = record_observer<sluice::mpsc_record_ring, 2>;

// in_flight() from another thread never hides a reservation that is in flight throughout the
// call, even when the producer finishes a later one first: the producer holds A and B, commits
// B, and commits A only once the observer is done. An observer that saw B's commit before its
// call must count A. The observer starts once a relaxed flag says B is committed: relaxed, so
// it orders nothing (what the observer may see is the ring's business alone), and without it
// a random schedule almost never lets the producer's dozens of steps run first.
template <class Ring>
struct in_flight_lower_bound : rl::test_suite<in_flight_lower_bound<Ring>, 2> {
  static constexpr std::size_t capacity = 64;
  Ring ring{capacity};
  registered_storage<capacity> words{test_access::data(ring)};
  rl::atomic<int> observer_done{0};  // test-owned: A is committed only after it is set
  rl::atomic<int> b_committed{0};    // test-owned, relaxed: steers the schedule only

  void thread(unsigned index) {
    if (index == 0) {
      auto a = ring.try_reserve(2);
      auto b = ring.try_reserve(2);
      RL_ASSERT(a && b);
      b.commit();
      b_committed.store(1, rl::mo_relaxed, RL_INFO);
      while (observer_done.load(rl::mo_acquire, RL_INFO) == 0) rl::yield(1, RL_INFO);
      a.commit();
    } else {
      while (b_committed.load(rl::mo_relaxed, RL_INFO) == 0) rl::yield(1, RL_INFO);
      const std::uint64_t committed_before = ring.statistics().committed;
      const std::size_t in_flight = ring.in_flight();
      if (committed_before >= 1) RL_ASSERT(in_flight >= 1);
      observer_done.store(1, rl::mo_release, RL_INFO);
    }
  }
};
using spsc_in_flight = in_flight_lower_bound<sluice::spsc_record_ring>;
using mpsc_in_flight = in_flight_lower_bound<sluice::mpsc_record_ring>;

// ============================================================ shared rings
//
// A shared ring's processes run here as threads of one process, each with its own ring object
// and its own mapping of the segment: the control block, the process table and the storage
// words are the model's atomics, at a different address in each mapping (the storage is
// registered at each). A process "dies" through test_access::abandon(): its slot stays held,
// as a crash leaves it, and a successor (here: the same pid) may take it over.

using sluice::role;
using sluice::shared_options;
template <class Ring>
using shared_segment = sluice_model::shared_segment<Ring>;

// A shared record ring whose producer is taken over. Before the threads, the consumer creates
// the segment and producer P1 opens it, commits two records and dies, between records. In
// thread 0 its successor opens the segment (the same slot, a new generation) and commits two
// more, the second over bytes the consumer freed; the consumer, in thread 1, reads, and calls
// recover() whenever nothing is ready: it must reclaim nothing, for the successor lives and its
// busy headers name its generation.
template <class Ring>
struct shared_takeover : rl::test_suite<shared_takeover<Ring>, 2> {
  static constexpr std::size_t capacity = 64;
  shared_segment<Ring> segment;
  Ring consumer{sluice::create_shared, segment.name(), capacity};
  std::optional<Ring> producer{std::in_place, sluice::open_shared, segment.name(),
                               shared_options{.role = role::producer}};
  registered_storage<capacity> words{test_access::data(consumer), test_access::data(*producer)};
  shadow<capacity> cells;
  unsigned committed = 0;  // the last sequence number committed
  unsigned seen = 0;       // consumer: the last one delivered

  void commit(Ring& ring, unsigned seq) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto g = ring.try_reserve(record_size(seq));
      if (!g) continue;
      record_checker<Ring, capacity>{ring, cells}.fill(g.span(), seq, 0);
      RL_ASSERT(g.commit());  // nobody reclaims a live producer's reservation
      committed = seq;
      return;
    }
  }
  void before() {
    commit(*producer, 1);
    commit(*producer, 2);
    test_access::abandon(*producer);
    producer.reset();
  }
  bool consume() {
    auto b = consumer.try_read();
    if (!b) return false;
    for (auto r : b) {
      const auto [seq, who] = record_checker<Ring, capacity>{consumer, cells}.check(r);
      RL_ASSERT(who == 0 && seq == seen + 1);
      seen = seq;
    }
    b.release();
    return true;
  }
  void thread(unsigned index) {
    if (index == 0) {
      producer.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::producer});
      words.alias(test_access::data(*producer));
      commit(*producer, 3);
      commit(*producer, 4);
    } else {
      for (int a = 0; a < 4; ++a)
        if (!consume()) RL_ASSERT(consumer.recover() == 0);
    }
  }
  void after() {
    while (consume()) {
    }
    RL_ASSERT(consumer.recover() == 0 && seen == committed && consumer.statistics().lost == 0);
  }
};
using shared_spsc_takeover = shared_takeover<sluice::spsc_record_ring>;
using shared_mpsc_takeover = shared_takeover<sluice::mpsc_record_ring>;

// A shared record ring whose producer died holding a reservation: P1 commits record 1, reserves
// record 2 and dies with it (its busy header stays, naming P1's generation). Its successor
// commits records 3 and 4 in thread 0 while the consumer, in thread 1, reads and calls
// recover() whenever nothing is ready. Once it sees the successor's claim, the dead reservation
// reads as gone: it is reclaimed exactly once, never delivered, and what follows it is.
template <class Ring>
struct shared_dead_reservation : shared_takeover<Ring> {
  using base = shared_takeover<Ring>;
  using grant = typename Ring::grant;
  alignas(grant) unsigned char dead[sizeof(grant)];  // P1's reservation: never finished, never destroyed
  unsigned reclaimed = 0;

  void before() {
    base::commit(*this->producer, 1);
    auto g = this->producer->try_reserve(record_size(2));
    RL_ASSERT(g);
    new (dead) grant(std::move(g));
    test_access::abandon(*this->producer);
    this->producer.reset();
  }
  bool consume() {
    auto b = this->consumer.try_read();
    if (!b) return false;
    for (auto r : b) {
      const auto [seq, who] = record_checker<Ring, base::capacity>{this->consumer, this->cells}.check(r);
      RL_ASSERT(who == 0 && seq > this->seen && seq != 2);
      this->seen = seq;
    }
    b.release();
    return true;
  }
  void thread(unsigned index) {
    if (index == 0) {
      base::thread(0);
    } else {
      for (int a = 0; a < 4; ++a)
        if (!consume()) reclaimed += static_cast<unsigned>(this->consumer.recover());
    }
  }
  void after() {
    reclaimed += static_cast<unsigned>(this->consumer.recover());
    while (consume()) {
    }
    RL_ASSERT(reclaimed == 1 && this->consumer.statistics().lost == 1);
    RL_ASSERT(this->seen == this->committed);
  }
};
using shared_spsc_dead_reservation = shared_dead_reservation<sluice::spsc_record_ring>;
using shared_mpsc_dead_reservation = shared_dead_reservation<sluice::mpsc_record_ring>;

// As above, but the dead producer makes its reservation in thread 0, and its successor there
// attaches (a new generation) without reserving anything. The consumer, in thread 1, reclaims
// the busy header once it sees that generation and zeroes it: only the header's own release
// (and recover()'s acquire of it) orders that after the producer's store of it, for no claim
// of tail follows that store.
struct shared_dead_busy_header : shared_dead_reservation<sluice::spsc_record_ring> {
  void before() { commit(*producer, 1); }
  void thread(unsigned index) {
    if (index == 0) {
      auto g = producer->try_reserve(record_size(2));
      RL_ASSERT(g);
      new (dead) grant(std::move(g));
      test_access::abandon(*producer);
      producer.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::producer});
      words.alias(test_access::data(*producer));
    } else {
      for (int a = 0; a < 4; ++a)
        if (!consume()) reclaimed += static_cast<unsigned>(consumer.recover());
    }
  }
};

// A shared mpsc ring in which a producer process died after claiming 16 bytes of tail but before
// writing its busy header there (its slot still counts the claim in progress, under a holder
// that names no live process). A live producer claims the bytes after it and commits two
// records in thread 0; the consumer, in thread 1, calls recover() whenever nothing is ready. It
// must reclaim the dead claim's zeros, and only those: the live producer's claim behind them
// is never taken for more zeros, even when the consumer has not yet seen its busy header.
struct shared_dead_claim : shared_takeover<sluice::mpsc_record_ring> {
  using base = shared_takeover<sluice::mpsc_record_ring>;
  unsigned reclaimed = 0;

  void before() {
    auto& dead = test_access::processes(consumer).producers[1];
    // The same pid with another start time: a process that had our pid once and is gone.
    dead.holder.store(sluice::detail::this_process() ^ (std::uint64_t{1} << 32), std::memory_order_relaxed);
    dead.claiming.store(1, std::memory_order_relaxed);
    auto& control = test_access::control_of(consumer);
    control.tail.store(16, std::memory_order_relaxed);       // its claim: bytes 0 to 16, lap 0
    control.reserved.fetch_add(1, std::memory_order_relaxed);  // counted as reserved
  }
  void thread(unsigned index) {
    if (index == 0) {
      commit(*producer, 1);
      commit(*producer, 2);
    } else {
      for (int a = 0; a < 4; ++a)
        if (!consume()) reclaimed += static_cast<unsigned>(consumer.recover());
    }
  }
  void after() {
    reclaimed += static_cast<unsigned>(consumer.recover());
    while (consume()) {
    }
    RL_ASSERT(reclaimed == 1 && consumer.statistics().lost == 1 && seen == committed);
  }
};

// A shared record ring whose consumer is taken over after it reclaimed a dead reservation: P1
// commits record 1, reserves record 2 and dies; its successor attaches (a new generation). In
// thread 0 consumer C1 reads record 1, reclaims record 2 (its header replaced by a withdrawn
// one) and dies before its scan frees those bytes. Its successor C2 (thread 1) attaches once C1
// is gone and frees them, zeroing the header C1 wrote: C1's replacement must happen before.
struct shared_consumer_successor_after_recover : shared_dead_reservation<sluice::spsc_record_ring> {
  using base = shared_dead_reservation<sluice::spsc_record_ring>;
  using Ring = sluice::spsc_record_ring;
  std::optional<Ring> second;

  void before() {
    base::before();
    producer.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::producer});
    words.alias(test_access::data(*producer));
  }
  bool consume_second() {
    auto b = second->try_read();
    if (!b) return false;
    for (auto r : b) {
      (void)record_checker<Ring, capacity>{*second, cells}.check(r);
      RL_ASSERT(false);  // nothing but record 1 was committed, and C1 read it
    }
    b.release();
    return true;
  }
  void attach_second() {
    try {
      second.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::consumer});
      words.alias(test_access::data(*second));
    } catch (const sluice::attach_error&) {
      rl::yield(1, RL_INFO);  // C1 still holds the role
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      RL_ASSERT(consume() && seen == 1);  // record 1: the header after it is record 2's, busy
      reclaimed += static_cast<unsigned>(consumer.recover());
      test_access::abandon(consumer);
    } else {
      auto& control = test_access::control_of(consumer);
      for (int attempt = 0; attempt < 8 && !second; ++attempt) {
        if (control.head.load(std::memory_order_relaxed) != 0)
          attach_second();
        else
          rl::yield(1, RL_INFO);
      }
      if (second)
        for (int a = 0; a < 3; ++a)
          if (!consume_second()) reclaimed += static_cast<unsigned>(second->recover());
    }
  }
  void after() {
    if (!second) attach_second();
    RL_ASSERT(second);
    reclaimed += static_cast<unsigned>(second->recover());
    while (consume_second()) {
    }
    RL_ASSERT(reclaimed == 1 && second->statistics().lost == 1 && seen == 1);
    RL_ASSERT(test_access::control_of(*second).head.load(std::memory_order_relaxed) ==
              test_access::control_of(*second).tail.load(std::memory_order_relaxed));
  }
};

// What the shared spsc_ring suites share: the segment (declared before the rings, so that it
// outlives them), the shadow, and the one sequence of values every producer continues and the
// consumer must see whole, in order.
template <std::size_t Capacity>
struct shared_elements {
  static constexpr std::size_t capacity = Capacity;
  shared_segment<element_ring> segment;
  shadow<Capacity> cells;
  std::uint32_t written = 1;  // the next value a producer writes
  std::uint32_t next = 1;     // the next value the consumer must see

  void publish(element_ring& ring, std::size_t n) {
    auto g = ring.try_reserve(n);
    if (!g) return;
    element_checker<Capacity>{ring, cells}.fill(g.span(), written);
    written += static_cast<std::uint32_t>(n);
    g.commit();
  }
  bool consume(element_ring& ring) {
    auto g = ring.try_read();
    if (!g) return false;
    element_checker<Capacity>{ring, cells}.check(g.span(), next);
    next += static_cast<std::uint32_t>(g.size());
    g.release();
    return true;
  }
  void drain_and_compare(element_ring& ring) {
    while (consume(ring)) {
    }
    RL_ASSERT(next == written);
  }
};

// spsc_ring, its producer taken over: P1 publishes two elements of three and dies; in thread 0
// its successor opens the segment and publishes more, into slots the consumer (thread 1) frees.
struct shared_producer_successor : rl::test_suite<shared_producer_successor, 2>, shared_elements<3> {
  element_ring consumer{sluice::create_shared, segment.name(), capacity};
  std::optional<element_ring> producer{std::in_place, sluice::open_shared, segment.name(),
                                       shared_options{.role = role::producer}};

  void before() {
    publish(*producer, 2);
    test_access::abandon(*producer);
    producer.reset();
  }
  void thread(unsigned index) {
    if (index == 0) {
      producer.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::producer});
      for (unsigned a = 0; a < 4; ++a) publish(*producer, a % 2 + 1);
    } else {
      for (int a = 0; a < 4; ++a) consume(consumer);
    }
  }
  void after() { drain_and_compare(consumer); }
};

// spsc_ring, its producer role handed over cleanly between two processes: P1 (thread 0)
// publishes two elements and gives the role back; P2 (thread 1) attaches once P1 is gone (until
// then the role is refused) and publishes more, starting where P1's published elements end,
// which only the hand-over through the process slot tells it; the consumer reads in thread 2.
struct shared_producer_handover : rl::test_suite<shared_producer_handover, 3>, shared_elements<3> {
  element_ring consumer{sluice::create_shared, segment.name(), capacity};
  std::optional<element_ring> first{std::in_place, sluice::open_shared, segment.name(),
                                    shared_options{.role = role::producer}};
  std::optional<element_ring> second;

  void thread(unsigned index) {
    if (index == 0) {
      publish(*first, 2);
      first.reset();  // gives the role back
    } else if (index == 1) {
      for (int attempt = 0; attempt < 4 && !second; ++attempt) {
        try {
          second.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::producer});
        } catch (const sluice::attach_error&) {
          rl::yield(1, RL_INFO);  // P1 still holds the role
        }
      }
      if (second)
        for (unsigned a = 0; a < 3; ++a) publish(*second, a % 2 + 1);
    } else {
      for (int a = 0; a < 4; ++a) consume(consumer);
    }
  }
  void after() { drain_and_compare(consumer); }
};

// spsc_ring, its consumer taken over mid-release: with a skipped tail pending (four slots: the
// producer wrapped at slot 3), consumer C1 reads the split grant around it (slot 2, then slots
// 0 and 1) and dies releasing it, after recording the pass (`passing`, the cleared skip) and
// before publishing read. Its successor, in the same thread, must complete that release, and
// publish it so that the producer (thread 0) overwrites those slots only after C1's reads.
struct shared_consumer_successor : rl::test_suite<shared_consumer_successor, 2>, shared_elements<4> {
  std::optional<element_ring> consumer{std::in_place, sluice::create_shared, segment.name(), capacity};
  element_ring producer{sluice::open_shared, segment.name(), shared_options{.role = role::producer}};

  void before() {
    publish(producer, 3);  // slots 0 to 2
    auto g = consumer->try_read();
    RL_ASSERT(g.size() == 3);
    g.release(2);          // read at 2
    publish(producer, 2);  // slot 3 is too short: skipped, the grant wraps to slots 0 and 1
    RL_ASSERT(written == 6);
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (unsigned a = 0; a < 4; ++a) publish(producer, a % 2 + 1);
    } else {
      {
        auto g = consumer->try_read_split();
        RL_ASSERT(g.first().size() == 1 && g.second().size() == 2);
        element_checker<capacity>{*consumer, cells}.check(g.first(), 3);
        element_checker<capacity>{*consumer, cells}.check(g.second(), 4);
        // What release() stores before it publishes read (clear_skip()), then death.
        auto& control = test_access::control_of(*consumer);
        control.passing.store(2 + 1 + 1 + 2, std::memory_order_relaxed);
        control.skip_index.store(0, std::memory_order_relaxed);
      }  // dropped: frees nothing
      next = 6;
      test_access::abandon(*consumer);
      consumer.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::consumer});
      for (int a = 0; a < 3; ++a) consume(*consumer);
    }
  }
  void after() { drain_and_compare(*consumer); }
};

// spsc_ring, its consumer taken over after a clean release: C1 (thread 1) passes a skipped tail
// (slot 3 of four), reads slots 0 to 2, releases two of them and dies. Its successor C2 (thread
// 2) attaches once it sees that read position, and reads and releases slot 2; the producer
// (thread 0) needs that release to publish again, over the slots C1 read. Only C2's attach
// orders C1's reads (and its clearing of the skip) before the producer's writes: C2 acquires
// C1's last release of read, and the producer acquires C2's.
struct shared_consumer_successor_after_pass : rl::test_suite<shared_consumer_successor_after_pass, 3>,
                                              shared_elements<4> {
  std::optional<element_ring> first{std::in_place, sluice::create_shared, segment.name(), capacity};
  element_ring producer{sluice::open_shared, segment.name(), shared_options{.role = role::producer}};
  std::optional<element_ring> second;

  void before() {
    publish(producer, 3);  // slots 0 to 2
    RL_ASSERT(consume(*first) && next == 4);
    publish(producer, 2);  // slot 3 is too short: skipped, the grant wraps to slots 0 and 1
    publish(producer, 1);  // slot 2
    RL_ASSERT(written == 7);
  }
  void attach_second() {
    try {
      second.emplace(sluice::open_shared, segment.name(), shared_options{.role = role::consumer});
    } catch (const sluice::attach_error&) {
      rl::yield(1, RL_INFO);  // C1 still holds the role
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      // Three elements from slot 3 skip it again and take slots 0 to 2: read must reach 7, which
      // only C2's release of slot 2 stores, and the producer then overwrites slots C1 read.
      auto& control = test_access::control_of(producer);
      for (int a = 0; a < 12 && control.read.load(std::memory_order_relaxed) != 7; ++a) rl::yield(1, RL_INFO);
      publish(producer, 3);
    } else if (index == 1) {
      {
        auto g = first->try_read();  // passes the skip, publishing read 4
        RL_ASSERT(g.size() == 3);
        element_checker<capacity>{*first, cells}.check(g.span().first(2), 4);
        g.release(2);  // read 6, and no more: C2 starts there
      }
      next = 6;
      test_access::abandon(*first);
    } else {
      auto& control = test_access::control_of(producer);
      for (int attempt = 0; attempt < 8 && !second; ++attempt) {
        if (control.read.load(std::memory_order_relaxed) == 6)
          attach_second();
        else
          rl::yield(1, RL_INFO);
      }
      if (second)
        for (int a = 0; a < 3; ++a) consume(*second);
    }
  }
  void after() {
    if (!second) attach_second();
    RL_ASSERT(second);
    drain_and_compare(*second);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const sluice_model::run_options options = sluice_model::parse_options(argc, argv);
  (void)sluice_model::mutation::get();  // reads the environment before any simulation
  int failures = 0;
  constexpr auto shared = sluice_model::suite_kind::shared;
  sluice_model::run<spsc_elements>("spsc_elements", options, failures);
  sluice_model::run<spsc_split>("spsc_split", options, failures);
  sluice_model::run<spsc_blocking>("spsc_blocking", options, failures);
  sluice_model::run<spsc_close>("spsc_close", options, failures);
  sluice_model::run<spsc_observer>("spsc_observer", options, failures);
  sluice_model::run<spsc_records>("spsc_records", options, failures);
  sluice_model::run<mpsc_records>("mpsc_records", options, failures);
  sluice_model::run<spsc_records_blocking>("spsc_records_blocking", options, failures);
  sluice_model::run<mpsc_records_blocking>("mpsc_records_blocking", options, failures);
  sluice_model::run<spsc_record_observer>("spsc_record_observer", options, failures);
  sluice_model::run<mpsc_record_observer>("mpsc_record_observer", options, failures);
  sluice_model::run<spsc_in_flight>("spsc_in_flight", options, failures);
  sluice_model::run<mpsc_in_flight>("mpsc_in_flight", options, failures);
  sluice_model::run<shared_spsc_takeover>("shared_spsc_takeover", options, failures, shared);
  sluice_model::run<shared_mpsc_takeover>("shared_mpsc_takeover", options, failures, shared);
  sluice_model::run<shared_spsc_dead_reservation>("shared_spsc_dead_reservation", options, failures, shared);
  sluice_model::run<shared_mpsc_dead_reservation>("shared_mpsc_dead_reservation", options, failures, shared);
  sluice_model::run<shared_dead_busy_header>("shared_dead_busy_header", options, failures, shared);
  sluice_model::run<shared_dead_claim>("shared_dead_claim", options, failures, shared);
  sluice_model::run<shared_consumer_successor_after_recover>("shared_consumer_successor_after_recover", options,
                                                             failures, shared);
  sluice_model::run<shared_producer_successor>("shared_producer_successor", options, failures, shared);
  sluice_model::run<shared_consumer_successor>("shared_consumer_successor", options, failures, shared);
  sluice_model::run<shared_consumer_successor_after_pass>("shared_consumer_successor_after_pass", options, failures,
                                                          shared);
  sluice_model::run<shared_producer_handover>("shared_producer_handover", options, failures, shared);
  if (sluice_model::mutation::get().active())
    std::cout << "mutated operation ran " << sluice_model::mutation::get().hits() << " times" << std::endl;
  std::cout << (failures == 0 ? "all suites passed" : "FAILED suites: " + std::to_string(failures)) << std::endl;
  return failures == 0 ? 0 : 1;
}
