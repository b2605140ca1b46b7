// libFuzzer target: an arbitrary sequence of operations on one spsc_ring<uint16_t>, checked
// against a reference model (a std::deque of what is committed and not yet released).
//
// The first byte picks the capacity (1 to 64); every following pair of bytes is one operation
// and its size argument. Producer and consumer calls interleave on one thread, so each call's
// outcome is checked against the model at that instant:
//   - values come out exactly once, in commit order (each element is its sequence number);
//   - a call whose outcome does not depend on where the cursors stand must match the model
//     exactly (free space is capacity() - size_approx(), exact on one thread, as a skipped
//     tail stays occupied until the consumer passes it): try_reserve_split(n), write_some, try_push, try_reserve_up_to (succeeds iff
//     anything is free), try_read, try_read_split (everything), read_some, try_pop;
//   - try_reserve(n), which needs n contiguous elements, must succeed on an empty ring and
//     fail when fewer than n are free; otherwise either outcome is legal;
//   - every failure is the documented one: std::length_error for n > capacity(),
//     std::out_of_range for commit(k)/release(k) past the grant, std::logic_error for a second
//     grant on one side; and a failed call changes nothing (the model is re-checked after it).
// Anything else aborts.
#include <sluice/spsc_ring.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <stdexcept>
#include <vector>

#include "fuzz_checks.hpp"

const char* const sluice_fuzz::target_name = "spsc_ring_ops_fuzz";

namespace {

using ring_t = sluice::spsc_ring<std::uint16_t>;

using sluice_fuzz::check;
using sluice_fuzz::expect_throw;
using sluice_fuzz::fail;

struct harness {
  explicit harness(std::size_t capacity) : ring(capacity), cap(capacity) {}

  ring_t ring;
  std::size_t cap;
  std::deque<std::uint16_t> model;  // committed, not released, in order
  std::uint16_t next = 0;           // sequence number of the next element written

  std::optional<ring_t::write_grant> wg;
  std::optional<ring_t::split_write_grant> swg;
  std::optional<ring_t::read_grant> rg;
  std::optional<ring_t::split_read_grant> srg;

  // Free space: one thread, so size_approx() is exact; it counts a skipped tail (space a
  // wrapped grant left before the end) as occupied until the consumer passes it.
  std::size_t free() const {
    const std::size_t used = ring.size_approx();
    check(used >= model.size() && used <= cap, "size_approx out of its bounds");
    return cap - used;
  }
  bool writing() const { return wg.has_value() || swg.has_value(); }
  bool reading() const { return rg.has_value() || srg.has_value(); }

  // Fills a fresh write region with the sequence numbers it would publish.
  void fill(std::span<std::uint16_t> s, std::uint16_t from) {
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint16_t>(from + i);
  }

  void reserve(std::size_t n) {
    if (writing()) return expect_throw<std::logic_error>([&] { (void)ring.try_reserve(n); }, "second write grant");
    if (n > cap) return expect_throw<std::length_error>([&] { (void)ring.try_reserve(n); }, "n > capacity");
    auto g = ring.try_reserve(n);
    if (n == 0) return check(!g, "try_reserve(0) granted");
    if (model.empty()) check(bool(g), "an empty ring refused try_reserve(n <= capacity)");
    if (free() < n) check(!g, "try_reserve granted more than is free");
    if (!g) return;
    check(g.size() == n, "try_reserve granted a wrong size");
    fill(g.span(), next);
    wg.emplace(std::move(g));
  }

  void reserve_up_to(std::size_t n) {
    if (writing())
      return expect_throw<std::logic_error>([&] { (void)ring.try_reserve_up_to(n); }, "second write grant (up_to)");
    auto g = ring.try_reserve_up_to(n);
    if (n == 0 || free() == 0) return check(!g, "try_reserve_up_to granted nothing free or n == 0");
    check(bool(g), "try_reserve_up_to refused although space is free");
    check(g.size() >= 1 && g.size() <= n && g.size() <= free(), "try_reserve_up_to granted a wrong size");
    fill(g.span(), next);
    wg.emplace(std::move(g));
  }

  void reserve_split(std::size_t n) {
    if (writing())
      return expect_throw<std::logic_error>([&] { (void)ring.try_reserve_split(n); }, "second write grant (split)");
    if (n > cap) return expect_throw<std::length_error>([&] { (void)ring.try_reserve_split(n); }, "split n > capacity");
    auto g = ring.try_reserve_split(n);
    if (n == 0 || free() < n) return check(!g, "try_reserve_split granted what is not free");
    check(bool(g) && g.size() == n && g.first().size() + g.second().size() == n,
          "try_reserve_split refused or sized wrong although n are free");
    fill(g.first(), next);
    fill(g.second(), static_cast<std::uint16_t>(next + g.first().size()));
    swg.emplace(std::move(g));
  }

  template <class Grant>
  void commit_grant(std::optional<Grant>& g, std::size_t k) {
    const std::size_t size = g->size();
    if (k > size) {
      expect_throw<std::out_of_range>([&] { g->commit(k); }, "commit(k) past the grant");
      check(bool(*g) && g->size() == size, "a failed commit changed the grant");
      return;
    }
    g->commit(k);
    for (std::size_t i = 0; i < k; ++i) model.push_back(next++);
    g.reset();
  }

  void commit(std::size_t k) {
    if (wg) return commit_grant(wg, k);
    if (swg) return commit_grant(swg, k);
  }

  void discard() {
    if (wg) wg->discard(), wg.reset();
    if (swg) swg->discard(), swg.reset();
  }

  void write_some(std::size_t n) {
    std::vector<std::uint16_t> src(n);
    fill(src, next);
    if (writing()) return expect_throw<std::logic_error>([&] { (void)ring.write_some(src); }, "write_some with a grant");
    const std::size_t room = free();
    const std::size_t got = ring.write_some(src);
    check(got == std::min(n, room), "write_some copied a wrong count");
    for (std::size_t i = 0; i < got; ++i) model.push_back(next++);
  }

  void push() {
    if (writing()) return expect_throw<std::logic_error>([&] { (void)ring.try_push(next); }, "try_push with a grant");
    const std::size_t room = free();
    const bool ok = ring.try_push(next);
    check(ok == (room > 0), "try_push disagrees with the free space");
    if (ok) model.push_back(next++);
  }

  // The consumer's view must be the model's oldest elements.
  void expect_front(std::span<const std::uint16_t> s, std::size_t offset) {
    check(offset + s.size() <= model.size(), "a read view is longer than what is committed");
    for (std::size_t i = 0; i < s.size(); ++i) check(s[i] == model[offset + i], "a read view shows a wrong value");
  }

  void read() {
    if (reading()) return expect_throw<std::logic_error>([&] { (void)ring.try_read(); }, "second read grant");
    auto g = ring.try_read();
    check(bool(g) == !model.empty(), "try_read disagrees with what is committed");
    if (!g) return;
    expect_front(g.span(), 0);
    rg.emplace(std::move(g));
  }

  void read_split() {
    if (reading()) return expect_throw<std::logic_error>([&] { (void)ring.try_read_split(); }, "second read grant (split)");
    auto g = ring.try_read_split();
    check(bool(g) == !model.empty(), "try_read_split disagrees with what is committed");
    if (!g) return;
    check(g.size() == model.size(), "try_read_split did not show everything committed");
    expect_front(g.first(), 0);
    expect_front(g.second(), g.first().size());
    srg.emplace(std::move(g));
  }

  template <class Grant>
  void release_grant(std::optional<Grant>& g, std::size_t k) {
    const std::size_t size = g->size();
    if (k > size) {
      expect_throw<std::out_of_range>([&] { g->release(k); }, "release(k) past the grant");
      check(bool(*g) && g->size() == size, "a failed release changed the grant");
      return;
    }
    g->release(k);
    model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(k));
    g.reset();
  }

  void release(std::size_t k) {
    if (rg) return release_grant(rg, k);
    if (srg) return release_grant(srg, k);
  }

  void read_some(std::size_t n) {
    std::vector<std::uint16_t> dst(n);
    if (reading()) return expect_throw<std::logic_error>([&] { (void)ring.read_some(dst); }, "read_some with a grant");
    const std::size_t got = ring.read_some(dst);
    check(got == std::min(n, model.size()), "read_some copied a wrong count");
    expect_front(std::span<const std::uint16_t>(dst.data(), got), 0);
    model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(got));
  }

  void pop() {
    if (reading()) return expect_throw<std::logic_error>([&] { (void)ring.try_pop(); }, "try_pop with a grant");
    const std::optional<std::uint16_t> v = ring.try_pop();
    check(v.has_value() == !model.empty(), "try_pop disagrees with what is committed");
    if (!v) return;
    check(*v == model.front(), "try_pop returned a wrong value");
    model.pop_front();
  }

  // What every observer must say at any instant (one thread: nothing is stale).
  void check_observers() {
    check(ring.capacity() == cap, "capacity changed");
    (void)free();  // checks size_approx()
    const sluice::ring_statistics s = ring.statistics();
    check(s.committed - s.released == model.size(), "statistics disagree with the model");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  harness h(1 + data[0] % 64);
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const std::size_t arg = data[i + 1] % (2 * h.cap + 2);
    switch (data[i] % 14) {
      case 0: h.reserve(arg); break;
      case 1: h.reserve_up_to(arg); break;
      case 2: h.reserve_split(arg); break;
      case 3: h.commit(arg); break;
      case 4: h.commit(h.wg ? h.wg->size() : h.swg ? h.swg->size() : 0); break;
      case 5: h.discard(); break;
      case 6: h.write_some(arg); break;
      case 7: h.push(); break;
      case 8: h.read(); break;
      case 9: h.read_split(); break;
      case 10: h.release(arg); break;
      case 11: h.release(h.rg ? h.rg->size() : h.srg ? h.srg->size() : 0); break;
      case 12: h.read_some(arg); break;
      case 13: h.pop(); break;
    }
    h.check_observers();
  }
  return 0;
}
