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
//   model_check [suite] [--iterations=N] [--stop-at-failure]
//   (SLUICE_MODEL_ITERATIONS and SLUICE_MODEL_STOP_AT_FAILURE do the same.)
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "model.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
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

}  // namespace

int main(int argc, char** argv) {
  const sluice_model::run_options options = sluice_model::parse_options(argc, argv);
  (void)sluice_model::mutation::get();  // reads the environment before any simulation
  int failures = 0;
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
  if (sluice_model::mutation::get().active())
    std::cout << "mutated operation ran " << sluice_model::mutation::get().hits() << " times" << std::endl;
  std::cout << (failures == 0 ? "all suites passed" : "FAILED suites: " + std::to_string(failures)) << std::endl;
  return failures == 0 ? 0 : 1;
}
