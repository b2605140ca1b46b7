// libFuzzer target: an arbitrary sequence of operations on a spsc_record_ring or an
// mpsc_record_ring, checked against a reference model of the reservations in order.
//
// The first byte picks the ring (its low bit: single or multi producer) and the second its
// capacity (32 to 512 bytes); every following pair of bytes is one operation and its argument.
// Producer and consumer calls interleave on one thread, holding up to four grants at once, so
// each call's outcome is checked against the model at that instant:
//   - the model is the deque of reservations not yet released, in reservation order, each in
//     flight or committed with its size (a discarded one leaves it: it never holds anything
//     back). A batch must be exactly the committed prefix, up to the first reservation in
//     flight, and every record's bytes exactly what its producer wrote;
//   - try_reserve(n) must succeed on an empty ring (size_approx() == 0), and whenever the free
//     space holds the record's footprint (8-byte header, payload rounded up to 8) twice over,
//     as at least one side of a wrap point then has room; it must fail when the footprint
//     exceeds the free space; otherwise either outcome is legal;
//   - every failure is the documented one: std::length_error for n > max_record_size(),
//     std::out_of_range for commit(k)/release(k) past the grant or batch, std::logic_error for
//     a second batch; after close() every reservation is empty and never throws. A failed call
//     changes nothing (the model and the counters are re-checked after it).
// Anything else aborts.
#include <sluice/record_ring.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <stdexcept>
#include <vector>

#include "fuzz_checks.hpp"

const char* const sluice_fuzz::target_name = "record_ring_ops_fuzz";

namespace {

using sluice_fuzz::check;
using sluice_fuzz::expect_throw;
using sluice_fuzz::fail;

// Byte i of reservation `id`'s payload.
std::byte payload_byte(std::uint32_t id, std::size_t i) {
  return static_cast<std::byte>((id * 131u + i * 7u) & 0xffu);
}

template <class Ring>
struct harness {
  explicit harness(std::size_t capacity) : ring(capacity) {}

  struct reservation {
    std::uint32_t id;
    bool committed;
    std::size_t size;  // payload bytes: reserved, then committed
  };
  struct held_grant {
    typename Ring::grant grant;
    std::uint32_t id;
  };

  Ring ring;
  std::deque<reservation> model;       // not yet released, in reservation order
  std::vector<held_grant> held;        // grants not yet committed or discarded
  std::optional<typename Ring::batch> batch;
  std::size_t batch_records = 0;       // records of `batch`: the model's first ones
  std::uint32_t next_id = 0;
  std::uint64_t committed = 0, discarded = 0, released = 0;
  bool closed = false;

  static std::size_t footprint(std::size_t n) { return 8 + (n + 7) / 8 * 8; }

  reservation& entry(std::uint32_t id) {
    for (auto& r : model)
      if (r.id == id) return r;
    fail("a held grant is missing from the model");
  }

  void reserve(std::size_t n) {
    if (held.size() == 4) return;
    const std::size_t max = ring.max_record_size();
    if (closed) return check(!ring.try_reserve(n), "a closed ring granted a reservation");
    if (n > max) return expect_throw<std::length_error>([&] { (void)ring.try_reserve(n); }, "n > max_record_size");
    const std::size_t used = ring.size_approx();
    check(used <= ring.capacity(), "size_approx beyond the capacity");
    const std::size_t free = ring.capacity() - used;
    auto g = ring.try_reserve(n);
    if (used == 0) check(bool(g), "an empty ring refused n <= max_record_size()");
    if (free >= 2 * footprint(n)) check(bool(g), "refused although the footprint fits twice over");
    if (footprint(n) > free) check(!g, "granted more than is free");
    if (!g) return;
    check(g.size() == n && (reinterpret_cast<std::uintptr_t>(g.data()) % 8) == 0, "grant of a wrong size or alignment");
    for (std::size_t i = 0; i < n; ++i) g.data()[i] = payload_byte(next_id, i);
    model.push_back({next_id, false, n});
    held.push_back({std::move(g), next_id++});
  }

  void commit(std::size_t which, std::optional<std::size_t> k) {
    if (held.empty()) return;
    held_grant& h = held[which % held.size()];
    reservation& r = entry(h.id);
    if (k && *k > h.grant.size()) {
      expect_throw<std::out_of_range>([&] { h.grant.commit(*k); }, "commit(k) past the grant");
      return check(h.grant && h.grant.size() == r.size, "a failed commit changed the grant");
    }
    const std::size_t size = k ? *k : h.grant.size();
    if (k)
      h.grant.commit(size);
    else
      h.grant.commit();
    check(!h.grant, "a committed grant still holds its region");
    r.committed = true;
    r.size = size;
    ++committed;
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(which % held.size()));
  }

  void withdraw(std::size_t which, bool by_drop) {
    if (held.empty()) return;
    auto at = held.begin() + static_cast<std::ptrdiff_t>(which % held.size());
    const std::uint32_t id = at->id;
    if (!by_drop) at->grant.discard();
    held.erase(at);  // destroying the grant withdraws it too (a no-op after discard())
    for (auto it = model.begin(); it != model.end(); ++it)
      if (it->id == id) {
        model.erase(it);
        break;
      }
    ++discarded;
  }

  // What a batch must hold now: the committed prefix of the model.
  std::size_t ready() const {
    std::size_t n = 0;
    while (n < model.size() && model[n].committed) ++n;
    return n;
  }

  void read() {
    if (batch) return expect_throw<std::logic_error>([&] { (void)ring.try_read(); }, "a second batch");
    auto b = ring.try_read();
    const std::size_t expected = ready();
    check(b.size() == expected, "a batch is not the committed prefix");
    if (!b) return;
    std::size_t i = 0;
    for (std::span<const std::byte> record : b) {
      check(i < expected, "a batch iterates more records than its size");
      const reservation& r = model[i++];
      check(record.size() == r.size, "a record of a wrong size");
      for (std::size_t j = 0; j < record.size(); ++j)
        if (record[j] != payload_byte(r.id, j)) fail("a record's bytes changed");
    }
    check(i == expected, "a batch iterates fewer records than its size");
    batch.emplace(std::move(b));
    batch_records = expected;
  }

  void release(std::optional<std::size_t> k) {
    if (!batch) return;
    if (k && *k > batch_records) {
      expect_throw<std::out_of_range>([&] { batch->release(*k); }, "release(k) past the batch");
      return check(batch->size() == batch_records, "a failed release changed the batch");
    }
    const std::size_t n = k ? *k : batch_records;
    if (k)
      batch->release(n);
    else
      batch->release();
    model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(n));
    released += n;
    batch.reset();
  }

  void drop_batch() { batch.reset(); }  // frees nothing: the records are read again

  void close() {
    ring.close();
    closed = true;
  }

  void check_counters() {
    const sluice::ring_statistics s = ring.statistics();
    check(s.committed == committed && s.discarded == discarded && s.released == released,
          "the statistics disagree with the model");
    check(ring.in_flight() == held.size(), "in_flight() is not the number of held grants");
    // Every reservation not yet released occupies its footprint (withdrawn ones too, until the
    // consumer passes them, and padding besides).
    std::size_t occupied = 0;
    for (const auto& r : model) occupied += footprint(r.size);  // a partial commit keeps more
    check(ring.size_approx() >= occupied && ring.size_approx() <= ring.capacity(), "size_approx() out of its bounds");
  }
};

template <class Ring>
void run(const std::uint8_t* data, std::size_t size) {
  harness<Ring> h(32 + 8 * (data[1] % 61));
  for (std::size_t i = 2; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i];
    const std::size_t arg = data[i + 1];
    switch (op % 11) {
      case 0: h.reserve(arg * (h.ring.max_record_size() + 16) / 255); break;
      case 1: h.commit(arg, std::nullopt); break;
      case 2: h.commit(arg >> 2, arg & 3 ? std::optional<std::size_t>(arg % 97) : std::nullopt); break;
      case 3: h.withdraw(arg, false); break;
      case 4: h.withdraw(arg, true); break;
      case 5: h.read(); break;
      case 6: h.release(std::nullopt); break;
      case 7: h.release(arg % 7); break;
      case 8: h.drop_batch(); break;
      case 9: h.reserve(arg % 24); break;  // small records: many at once
      default:
        if (arg < 4) h.close();
        break;
    }
    h.check_counters();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  if (data[0] & 1)
    run<sluice::mpsc_record_ring>(data, size);
  else
    run<sluice::spsc_record_ring>(data, size);
  return 0;
}
