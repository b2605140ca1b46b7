// Single-threaded unit tests for sluice::spsc_ring<T>: construction, grant contracts, the wrap
// and bip-buffer skip logic at every offset and in every cursor era (near 0, 2^32 and 2^64),
// errors, move semantics, and a randomized comparison against a reference model; the seam and
// the model again over mirrored storage (tests/mirrored_storage_test.cpp has the rest of that).
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// ============================================================================ test hook
// Declared in sluice/detail/config.hpp and befriended by spsc_ring; defined here only, for this
// executable.
namespace sluice::detail {

struct test_access {
  // Puts an EMPTY ring with no outstanding grants at cursor position `pos`, storage index
  // `index`: as if `pos` elements had gone through it and the last one ended at `index`.
  template <class T>
  static void set_position(spsc_ring<T>& r, std::uint64_t pos, std::size_t index) {
    if (r.write_open_ || r.read_open_) throw std::logic_error("set_position: a grant is outstanding");
    if (index >= r.capacity_) throw std::out_of_range("set_position: index >= capacity");
    r.ctl_->read.store(pos, std::memory_order_relaxed);
    r.ctl_->write.store(pos, std::memory_order_relaxed);
    r.w_ = pos;
    r.r_ = pos;
    r.cached_read_ = pos;
    r.cached_write_ = pos;
    r.widx_ = index;
    r.ridx_ = index;
    r.ctl_->skip_index.store(0, std::memory_order_relaxed);  // no pending skip, as in a new ring
    r.cached_skip_index_ = spsc_ring<T>::no_skip;
  }
  // Start of the ring's storage (owned or caller's).
  template <class T>
  static const T* storage(const spsc_ring<T>& r) {
    return r.data_;
  }
  template <class T>
  static std::size_t write_index(const spsc_ring<T>& r) {
    return r.widx_;
  }
  template <class T>
  static std::size_t read_index(const spsc_ring<T>& r) {
    return r.ridx_;
  }
};

}  // namespace sluice::detail

namespace {

using sluice::spsc_ring;
using ta = sluice::detail::test_access;
using u32 = std::uint32_t;
using ring32 = spsc_ring<u32>;

constexpr std::uint64_t kNear32 = (std::uint64_t{1} << 32) - 2;
constexpr std::uint64_t kNear64 = std::numeric_limits<std::uint64_t>::max() - 2;
constexpr std::array<std::uint64_t, 3> kPositions{0, kNear32, kNear64};
constexpr std::uint64_t kSeed = 0x5eed'0f'5a1c'e000ULL;

// ---------------------------------------------------------------------------- helpers

template <class Range>
std::vector<u32> vals(const Range& r) {
  return std::vector<u32>(r.begin(), r.end());
}

std::vector<u32> seq(u32 first, std::size_t n) {
  std::vector<u32> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

template <class A, class B>
std::vector<u32> concat(const A& a, const B& b) {
  std::vector<u32> v(a.begin(), a.end());
  v.insert(v.end(), b.begin(), b.end());
  return v;
}

// Pops until empty (bounded, so a broken ring fails the comparison instead of hanging).
std::vector<u32> drain(ring32& r) {
  std::vector<u32> out;
  while (out.size() <= 2 * r.capacity() + 16) {
    std::optional<u32> v = r.try_pop();
    if (!v) break;
    out.push_back(*v);
  }
  return out;
}

// Pushes `n` consecutive values starting at `first`; every push must succeed.
void push_seq(ring32& r, u32 first, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(r.try_push(first + static_cast<u32>(i))) << i;
}

// Pops `n` elements, which must be first, first+1, ...
void pop_seq(ring32& r, u32 first, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<u32> v = r.try_pop();
    ASSERT_TRUE(v.has_value()) << i;
    ASSERT_EQ(*v, first + static_cast<u32>(i));
  }
}

std::size_t index_of(const ring32& r, const u32* p) { return static_cast<std::size_t>(p - ta::storage(r)); }

// ============================================================================ reference model
// What the ring must do, derived from its documented contract: published contents (a deque),
// the storage index each side stands on, and the pending skipped tail of a wrapped grant, which
// counts as occupied until the consumer passes it (any consumer call made while standing on it).
// Over mirrored storage a view may run on past the end of the storage into its second mapping,
// up to twice the capacity: then no grant wraps or skips, and every read is one run.
struct ring_model {
  ring_model(std::size_t capacity, std::size_t index, bool over_mirror = false)
      : cap(capacity), widx(index), ridx(index), mirrored(over_mirror) {}

  std::size_t cap;
  std::size_t widx;  // where the producer writes next (without wrapping)
  std::size_t ridx;  // where the consumer reads next (or the start of the pending skip)
  std::deque<u32> q;
  std::size_t skip_tail = 0;    // length of the pending skipped tail, 0 if none
  std::size_t skip_before = 0;  // published elements in front of the pending skip
  std::size_t skips_passed = 0;  // coverage: how often the consumer jumped a skip
  bool mirrored;

  // One past the last index a contiguous view may reach.
  std::size_t end() const { return mirrored ? 2 * cap : cap; }
  std::size_t occupied() const { return q.size() + skip_tail; }
  std::size_t free_slots() const { return occupied() >= cap ? 0 : cap - occupied(); }
  std::size_t size_approx() const { return std::min(occupied(), cap); }

  // Where an exact grant of n (1 <= n <= cap) must start, or nullopt if it must fail.
  std::optional<std::size_t> exact_at(std::size_t n) const {
    const std::size_t tail = end() - widx;
    if (occupied() == 0) return n <= tail ? widx : 0;  // empty ring: any n, wrapping if needed
    const std::size_t f = free_slots();
    if (n <= tail) return f >= n ? std::optional<std::size_t>(widx) : std::nullopt;
    return f >= tail + n ? std::optional<std::size_t>(0) : std::nullopt;
  }

  // Longest contiguous free run, capped at n; at the write position when that run is as long.
  struct run {
    std::size_t size;
    std::size_t at;
  };
  run up_to(std::size_t n) const {
    const std::size_t tail = end() - widx;
    const std::size_t f = free_slots();
    const bool empty = occupied() == 0;
    const std::size_t at_end = std::min(tail, f);  // an empty ring's f is cap, at least the tail
    const std::size_t at_start = empty ? cap : (f > tail ? f - tail : 0);
    const std::size_t want = std::min(n, std::max(at_end, at_start));
    return {want, at_end >= want ? widx : 0};
  }

  // A contiguous grant at `at` committed with `v`. False if the model sees an impossible wrap.
  bool commit_contiguous(std::size_t at, const std::vector<u32>& v) {
    if (v.empty()) return true;  // publishes nothing, skips nothing
    if (at != widx) {
      if (at != 0 || skip_tail != 0) return false;
      skip_tail = cap - widx;
      skip_before = q.size();
      widx = 0;
    }
    append(v);
    return true;
  }
  // Elements written from widx on, across the storage end (split grants, write_some, try_push).
  void append(const std::vector<u32>& v) {
    q.insert(q.end(), v.begin(), v.end());
    widx = (widx + v.size()) % cap;
  }

  // A consumer call made while standing on the pending skip passes it.
  void pass_skip_if_at_it() {
    if (skip_tail != 0 && skip_before == 0 && !q.empty()) {
      skip_tail = 0;
      ridx = 0;
      ++skips_passed;
    }
  }
  // Readable contiguously from ridx (after pass_skip_if_at_it).
  std::size_t first_run() const { return skip_tail != 0 ? skip_before : std::min(q.size(), end() - ridx); }
  std::vector<u32> front(std::size_t n) const { return std::vector<u32>(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n)); }

  void release(std::size_t k) {
    for (; k > 0; --k) {
      pass_skip_if_at_it();
      q.pop_front();
      if (skip_tail != 0) --skip_before;
      ridx = (ridx + 1) % cap;
    }
  }

  // Internal consistency of the model itself.
  bool consistent() const {
    if (q.empty()) return skip_tail == 0 && ridx == widx;
    if (skip_tail != 0)
      return ridx + skip_before + skip_tail == cap && (q.size() - skip_before) % cap == widx;
    return (ridx + q.size()) % cap == widx;
  }
};

// ============================================================================ model runner
// Drives a ring32 with random operations (holding at most one grant per side across steps, so
// producer and consumer interleave) and checks every result against a ring_model.
class model_runner {
 public:
  // Coverage of the interesting paths, so a test can prove it exercised them.
  struct coverage {
    std::size_t wrapped_grants = 0;      // contiguous grants placed at 0 with a skip
    std::size_t empty_ring_wraps = 0;    // ... where skip + data exceed the capacity
    std::size_t fragmented_fails = 0;    // exact reserve failing although enough is free
    std::size_t split_grants_cross = 0;  // split write grants with two regions
    std::size_t split_reads_gap = 0;     // split reads with two regions around a skip
    std::size_t busy_throws = 0;         // calls rejected for an outstanding grant
    std::size_t seam_grants = 0;         // mirrored: contiguous grants running past the storage end
    std::size_t seam_reads = 0;          // mirrored: read grants running past the storage end
  };
  coverage cov;

  model_runner(ring32& r, ring_model& m, std::uint64_t seed)
      : r_(r), m_(m), rng_(seed), seed_(seed), base_(ta::storage(r)) {}

  void run(std::size_t steps) {
    for (std::size_t i = 0; i < steps; ++i) {
      ++step_;
      if (coin(50)) {
        producer_step();
      } else {
        consumer_step();
      }
      if (::testing::Test::HasFailure()) return;
      ASSERT_EQ(r_.size_approx(), m_.size_approx()) << where();
      ASSERT_TRUE(m_.consistent()) << where();
    }
  }

  // Ends the open grants, drains everything (which must be exactly the model's contents) and
  // checks the ring is then empty and grants its whole capacity.
  void finish() {
    op_ = "finish";
    if (wkind_ != wnone) commit_write(true);
    if (::testing::Test::HasFailure()) return;
    if (rkind_ != rnone) drop_read();
    m_.pass_skip_if_at_it();
    std::vector<u32> out(m_.q.size() + m_.cap + 1);
    const std::size_t n = r_.read_some(out);
    ASSERT_EQ(n, m_.q.size()) << where();
    out.resize(n);
    ASSERT_EQ(out, m_.front(n)) << where();
    m_.release(n);
    ASSERT_EQ(r_.size_approx(), 0u) << where();
    ASSERT_FALSE(r_.try_pop().has_value()) << where();
    ASSERT_TRUE(r_.try_read().empty()) << where();
    auto g = r_.try_reserve(m_.cap);  // an empty ring grants its capacity wherever it stands
    ASSERT_EQ(g.size(), m_.cap) << where();
    g.discard();
  }

 private:
  enum wkind { wnone, wcontig, wsplit };
  enum rkind { rnone, rplain, rsplit };

  std::string where() const {
    return "seed=" + std::to_string(seed_) + " (base seed " + std::to_string(kSeed) + ") capacity=" +
           std::to_string(m_.cap) + " step=" + std::to_string(step_) + " op=" + op_ +
           " model{size=" + std::to_string(m_.q.size()) + " widx=" + std::to_string(m_.widx) +
           " ridx=" + std::to_string(m_.ridx) + " skip_tail=" + std::to_string(m_.skip_tail) +
           " skip_before=" + std::to_string(m_.skip_before) + "}";
  }
  std::size_t pick(std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_); }
  bool coin(unsigned percent) { return pick(0, 99) < percent; }

  // ---- producer
  void producer_step() {
    if (wkind_ != wnone) {
      const std::size_t c = pick(0, 9);
      if (c < 6) return commit_write(false);
      if (c < 8) return abandon_write();
      return expect_producer_busy();
    }
    switch (pick(0, 4)) {
      case 0: return reserve_exact(coin(2) ? m_.cap + 1 : pick(0, m_.cap));
      case 1: return reserve_up_to(pick(0, m_.cap + 3));
      case 2: return reserve_split(coin(2) ? m_.cap + 1 : pick(0, m_.cap));
      case 3: return push();
      default: return write_some(pick(0, m_.cap + 2));
    }
  }

  void reserve_exact(std::size_t n) {
    op_ = "try_reserve(" + std::to_string(n) + ")";
    if (n > m_.cap) {
      EXPECT_THROW((void)r_.try_reserve(n), std::length_error) << where();
      return;
    }
    const std::optional<std::size_t> at = m_.exact_at(n);
    auto g = r_.try_reserve(n);
    if (n > 0 && m_.q.empty()) {
      ASSERT_EQ(g.size(), n) << "an empty ring must grant any n <= capacity; " << where();
    }
    if (n == 0 || !at) {
      if (n > 0 && m_.free_slots() >= n) ++cov.fragmented_fails;
      ASSERT_TRUE(g.empty()) << where();
      ASSERT_EQ(g.size(), 0u) << where();
      return;
    }
    ASSERT_EQ(g.size(), n) << where();
    ASSERT_EQ(index_of(r_, g.data()), *at) << where();
    count_wrap(*at, n);
    open_contiguous(std::move(g), *at);
  }

  void reserve_up_to(std::size_t n) {
    op_ = "try_reserve_up_to(" + std::to_string(n) + ")";
    const ring_model::run want = m_.up_to(n);
    auto g = r_.try_reserve_up_to(n);
    if (want.size == 0) {
      ASSERT_TRUE(g.empty()) << where();
      return;
    }
    ASSERT_EQ(g.size(), want.size) << where();
    ASSERT_EQ(index_of(r_, g.data()), want.at) << where();
    count_wrap(want.at, want.size);
    open_contiguous(std::move(g), want.at);
  }

  void count_wrap(std::size_t at, std::size_t n) {
    if (at == m_.widx) return;
    ++cov.wrapped_grants;
    if (m_.cap - m_.widx + n > m_.cap) ++cov.empty_ring_wraps;
  }

  void open_contiguous(ring32::write_grant g, std::size_t at) {
    if (at + g.size() > m_.cap) ++cov.seam_grants;
    for (u32& x : g) x = next_++;
    wvals_ = vals(g);
    wg_ = std::move(g);
    wat_ = at;
    wkind_ = wcontig;
  }

  void reserve_split(std::size_t n) {
    op_ = "try_reserve_split(" + std::to_string(n) + ")";
    if (n > m_.cap) {
      EXPECT_THROW((void)r_.try_reserve_split(n), std::length_error) << where();
      return;
    }
    const bool ok = n > 0 && m_.free_slots() >= n;
    auto g = r_.try_reserve_split(n);
    if (!ok) {
      ASSERT_TRUE(g.empty()) << where();
      ASSERT_EQ(g.size(), 0u) << where();
      return;
    }
    const std::size_t first = std::min(n, m_.end() - m_.widx);
    ASSERT_EQ(g.size(), n) << where();
    ASSERT_EQ(g.first().size(), first) << where();
    ASSERT_EQ(index_of(r_, g.first().data()), m_.widx) << where();
    ASSERT_EQ(g.second().size(), n - first) << where();
    if (n > first) {
      ASSERT_EQ(g.second().data(), base_) << where();
      ++cov.split_grants_cross;
    }
    for (u32& x : g.first()) x = next_++;
    for (u32& x : g.second()) x = next_++;
    wvals_ = concat(g.first(), g.second());
    swg_ = std::move(g);
    wkind_ = wsplit;
  }

  void push() {
    op_ = "try_push";
    const bool ok = m_.free_slots() >= 1;
    const u32 v = next_++;
    ASSERT_EQ(r_.try_push(v), ok) << where();
    if (ok) m_.append({v});
  }

  void write_some(std::size_t n) {
    op_ = "write_some(" + std::to_string(n) + ")";
    const std::vector<u32> src = seq(next_, n);
    next_ += static_cast<u32>(n);
    const std::size_t expect = std::min(n, m_.free_slots());
    ASSERT_EQ(r_.write_some(src), expect) << where();
    m_.append(std::vector<u32>(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(expect)));
  }

  // Commits a random prefix (all of it if `all`); sometimes first tries past the end.
  void commit_write(bool all) {
    const std::size_t size = wkind_ == wcontig ? wg_.size() : swg_.size();
    op_ = "commit of " + std::to_string(size);
    if (!all && coin(5)) {
      if (wkind_ == wcontig) {
        EXPECT_THROW(wg_.commit(size + 1), std::out_of_range) << where();
        ASSERT_EQ(wg_.size(), size) << where();
      } else {
        EXPECT_THROW(swg_.commit(size + 1), std::out_of_range) << where();
        ASSERT_EQ(swg_.size(), size) << where();
      }
      return;  // still open
    }
    const std::size_t k = (all || coin(40)) ? size : pick(0, size);
    op_ = "commit(" + std::to_string(k) + ") of " + std::to_string(size);
    const std::vector<u32> published(wvals_.begin(), wvals_.begin() + static_cast<std::ptrdiff_t>(k));
    if (wkind_ == wcontig) {
      ASSERT_EQ(vals(wg_), wvals_) << "grant contents changed while open; " << where();
      if (k == size && coin(50)) {
        wg_.commit();
      } else {
        wg_.commit(k);
      }
      ASSERT_TRUE(wg_.empty()) << where();
      ASSERT_TRUE(m_.commit_contiguous(wat_, published)) << where();
    } else {
      ASSERT_EQ(concat(swg_.first(), swg_.second()), wvals_) << "grant contents changed while open; " << where();
      if (k == size && coin(50)) {
        swg_.commit();
      } else {
        swg_.commit(k);
      }
      ASSERT_TRUE(swg_.empty()) << where();
      m_.append(published);
    }
    wkind_ = wnone;
  }

  // Ends the write grant without publishing, in one of three equivalent ways.
  void abandon_write() {
    op_ = "abandon write grant";
    const std::size_t how = pick(0, 2);
    if (wkind_ == wcontig) {
      if (how == 0) wg_.discard();
      if (how == 1) wg_ = ring32::write_grant{};
      if (how == 2) ring32::write_grant gone(std::move(wg_));
      ASSERT_TRUE(wg_.empty()) << where();
    } else {
      if (how == 0) swg_.discard();
      if (how == 1) swg_ = ring32::split_write_grant{};
      if (how == 2) ring32::split_write_grant gone(std::move(swg_));
      ASSERT_TRUE(swg_.empty()) << where();
    }
    wkind_ = wnone;
  }

  void expect_producer_busy() {
    op_ = "producer call with a write grant open";
    ++cov.busy_throws;
    std::array<u32, 1> one{7};
    switch (pick(0, 4)) {
      case 0: EXPECT_THROW((void)r_.try_reserve(1), std::logic_error) << where(); break;
      case 1: EXPECT_THROW((void)r_.try_reserve_up_to(1), std::logic_error) << where(); break;
      case 2: EXPECT_THROW((void)r_.try_reserve_split(1), std::logic_error) << where(); break;
      case 3: EXPECT_THROW((void)r_.try_push(1), std::logic_error) << where(); break;
      default: EXPECT_THROW((void)r_.write_some(one), std::logic_error) << where(); break;
    }
  }

  // ---- consumer
  void consumer_step() {
    if (rkind_ != rnone) {
      const std::size_t c = pick(0, 9);
      if (c < 6) return release_read();
      if (c < 8) return drop_read();
      return expect_consumer_busy();
    }
    switch (pick(0, 3)) {
      case 0: return read();
      case 1: return read_split();
      case 2: return pop();
      default: return read_some(pick(0, m_.cap + 2));
    }
  }

  void read() {
    op_ = "try_read";
    m_.pass_skip_if_at_it();
    auto g = r_.try_read();
    if (m_.q.empty()) {
      ASSERT_TRUE(g.empty()) << where();
      return;
    }
    const std::size_t first = m_.first_run();
    ASSERT_EQ(g.size(), first) << where();
    ASSERT_EQ(g.data(), base_ + m_.ridx) << where();
    ASSERT_EQ(vals(g), m_.front(first)) << where();
    if (m_.ridx + first > m_.cap) ++cov.seam_reads;
    if (coin(50)) {  // release at once
      const std::size_t k = coin(50) ? first : pick(0, first);
      g.release(k);
      m_.release(k);
      return;
    }
    rvals_ = vals(g);
    rg_ = std::move(g);
    rkind_ = rplain;
  }

  void read_split() {
    op_ = "try_read_split";
    m_.pass_skip_if_at_it();
    auto g = r_.try_read_split();
    if (m_.q.empty()) {
      ASSERT_TRUE(g.empty()) << where();
      ASSERT_EQ(g.size(), 0u) << where();
      return;
    }
    const std::size_t first = m_.first_run();
    ASSERT_EQ(g.first().size(), first) << where();
    ASSERT_EQ(g.first().data(), base_ + m_.ridx) << where();
    ASSERT_EQ(g.second().size(), m_.q.size() - first) << where();
    if (!g.second().empty()) {
      ASSERT_EQ(g.second().data(), base_) << where();
      if (m_.skip_tail != 0) ++cov.split_reads_gap;
    }
    ASSERT_EQ(concat(g.first(), g.second()), m_.front(m_.q.size())) << where();
    rvals_ = concat(g.first(), g.second());
    srg_ = std::move(g);
    rkind_ = rsplit;
  }

  void pop() {
    op_ = "try_pop";
    m_.pass_skip_if_at_it();
    const std::optional<u32> v = r_.try_pop();
    if (m_.q.empty()) {
      ASSERT_FALSE(v.has_value()) << where();
      return;
    }
    ASSERT_TRUE(v.has_value()) << where();
    ASSERT_EQ(*v, m_.q.front()) << where();
    m_.release(1);
  }

  void read_some(std::size_t n) {
    op_ = "read_some(" + std::to_string(n) + ")";
    m_.pass_skip_if_at_it();
    constexpr u32 sentinel = 0xdead'beefu;
    std::vector<u32> dst(n + 1, sentinel);  // one guard element past the span handed over
    const std::size_t expect = std::min(n, m_.q.size());
    ASSERT_EQ(r_.read_some(std::span<u32>(dst.data(), n)), expect) << where();
    for (std::size_t i = expect; i <= n; ++i) ASSERT_EQ(dst[i], sentinel) << "wrote past the count; " << where();
    dst.resize(expect);
    ASSERT_EQ(dst, m_.front(expect)) << where();
    m_.release(expect);
  }

  // Releases a random prefix of the held read grant; sometimes first tries past the end.
  void release_read() {
    const std::size_t size = rkind_ == rplain ? rg_.size() : srg_.size();
    op_ = "release of " + std::to_string(size);
    if (coin(5)) {
      if (rkind_ == rplain) {
        EXPECT_THROW(rg_.release(size + 1), std::out_of_range) << where();
        ASSERT_EQ(rg_.size(), size) << where();
      } else {
        EXPECT_THROW(srg_.release(size + 1), std::out_of_range) << where();
        ASSERT_EQ(srg_.size(), size) << where();
      }
      return;  // still open
    }
    const std::size_t k = coin(40) ? size : pick(0, size);
    op_ = "release(" + std::to_string(k) + ") of " + std::to_string(size);
    if (rkind_ == rplain) {
      ASSERT_EQ(vals(rg_), rvals_) << "producer overwrote held slots; " << where();
      rg_.release(k);
      ASSERT_TRUE(rg_.empty()) << where();
    } else {
      ASSERT_EQ(concat(srg_.first(), srg_.second()), rvals_) << "producer overwrote held slots; " << where();
      srg_.release(k);
      ASSERT_TRUE(srg_.empty()) << where();
    }
    m_.release(k);
    rkind_ = rnone;
  }

  void drop_read() {
    op_ = "drop read grant";
    const bool by_assign = coin(50);
    if (rkind_ == rplain) {
      ASSERT_EQ(vals(rg_), rvals_) << "producer overwrote held slots; " << where();
      if (by_assign) {
        rg_ = ring32::read_grant{};
      } else {
        ring32::read_grant gone(std::move(rg_));
      }
    } else {
      ASSERT_EQ(concat(srg_.first(), srg_.second()), rvals_) << "producer overwrote held slots; " << where();
      if (by_assign) {
        srg_ = ring32::split_read_grant{};
      } else {
        ring32::split_read_grant gone(std::move(srg_));
      }
    }
    rkind_ = rnone;
  }

  void expect_consumer_busy() {
    op_ = "consumer call with a read grant open";
    ++cov.busy_throws;
    std::array<u32, 2> dst{};
    switch (pick(0, 3)) {
      case 0: EXPECT_THROW((void)r_.try_read(), std::logic_error) << where(); break;
      case 1: EXPECT_THROW((void)r_.try_read_split(), std::logic_error) << where(); break;
      case 2: EXPECT_THROW((void)r_.try_pop(), std::logic_error) << where(); break;
      default: EXPECT_THROW((void)r_.read_some(dst), std::logic_error) << where(); break;
    }
  }

  ring32& r_;
  ring_model& m_;
  std::mt19937_64 rng_;
  std::uint64_t seed_;
  const u32* base_;
  std::size_t step_ = 0;
  std::string op_;
  u32 next_ = 1;

  wkind wkind_ = wnone;
  ring32::write_grant wg_;
  ring32::split_write_grant swg_;
  std::size_t wat_ = 0;
  std::vector<u32> wvals_;

  rkind rkind_ = rnone;
  ring32::read_grant rg_;
  ring32::split_read_grant srg_;
  std::vector<u32> rvals_;
};

// ============================================================================ construction

// Capacity 1 works: one slot, usable lap after lap, by every kind of call.
TEST(Construction, CapacityOne) {
  ring32 r(1);
  EXPECT_EQ(r.capacity(), 1u);
  EXPECT_EQ(r.size_approx(), 0u);
  for (u32 i = 0; i < 4; ++i) {
    EXPECT_TRUE(r.try_push(i));
    EXPECT_FALSE(r.try_push(99));
    EXPECT_EQ(r.size_approx(), 1u);
    EXPECT_EQ(r.try_pop(), std::optional<u32>(i));
    EXPECT_FALSE(r.try_pop().has_value());
    auto g = r.try_reserve_up_to(10);
    ASSERT_EQ(g.size(), 1u);
    g[0] = 100 + i;
    g.commit();
    auto rg = r.try_read();
    ASSERT_EQ(rg.size(), 1u);
    EXPECT_EQ(rg[0], 100 + i);
    rg.release();
  }
  EXPECT_THROW((void)r.try_reserve(2), std::length_error);
}

// Non-power-of-two capacities report themselves and use every slot, also on a later lap.
TEST(Construction, NonPowerOfTwoCapacitiesUseEverySlot) {
  for (std::size_t cap : std::array<std::size_t, 4>{3, 5, 7, 100}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    ring32 r(cap);
    EXPECT_EQ(r.capacity(), cap);
    push_seq(r, 0, cap);
    EXPECT_FALSE(r.try_push(999));
    EXPECT_EQ(r.size_approx(), cap);
    EXPECT_TRUE(r.try_reserve(1).empty());
    EXPECT_TRUE(r.try_reserve_up_to(1).empty());
    EXPECT_TRUE(r.try_reserve_split(1).empty());
    EXPECT_EQ(r.write_some(std::vector<u32>{1, 2}), 0u);
    pop_seq(r, 0, 2);  // free two slots at the start; refill them across the lap boundary
    push_seq(r, static_cast<u32>(cap), 2);
    EXPECT_FALSE(r.try_push(999));
    EXPECT_EQ(r.size_approx(), cap);
    EXPECT_EQ(drain(r), seq(2, cap));
    EXPECT_EQ(r.size_approx(), 0u);
  }
}

TEST(Construction, ZeroCapacityThrowsInvalidArgument) {
  EXPECT_THROW({ ring32 r(0); }, std::invalid_argument);
  EXPECT_THROW({ spsc_ring<> r(0); }, std::invalid_argument);
}

// capacity * sizeof(T) overflowing size_t is rejected before any allocation (under ASan a
// giant allocation attempt would abort instead).
TEST(Construction, ByteSizeOverflowThrowsLengthError) {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  EXPECT_THROW({ spsc_ring<std::uint64_t> r(max / 4); }, std::length_error);
  EXPECT_THROW({ spsc_ring<std::uint64_t> r(max / 8 + 1); }, std::length_error);
  EXPECT_THROW({ spsc_ring<std::uint32_t> r(max); }, std::length_error);
}

// The span constructor uses the caller's array: grants point into it, data lands in it.
TEST(Construction, SpanConstructorUsesCallerStorage) {
  std::array<u32, 5> store{};
  ring32 r{std::span<u32>(store)};
  EXPECT_EQ(r.capacity(), 5u);
  auto g = r.try_reserve(5);
  ASSERT_EQ(g.size(), 5u);
  EXPECT_EQ(g.data(), store.data());
  std::iota(g.begin(), g.end(), 10u);
  g.commit();
  EXPECT_EQ(store, (std::array<u32, 5>{10, 11, 12, 13, 14}));
  auto rg = r.try_read();
  ASSERT_EQ(rg.size(), 5u);
  EXPECT_EQ(rg.data(), store.data());
  rg.release(2);
  ASSERT_TRUE(r.try_push(15));
  EXPECT_EQ(store[0], 15u);
}

TEST(Construction, EmptySpanThrowsInvalidArgument) {
  EXPECT_THROW({ ring32 r{std::span<u32>{}}; }, std::invalid_argument);
  std::array<std::byte, 4> store{};
  EXPECT_THROW({ spsc_ring<> r{std::span<std::byte>(store.data(), 0)}; }, std::invalid_argument);
}

// Owned storage is aligned to 128 bytes, as documented; std::byte is the default element.
TEST(Construction, OwnedStorageAlignedAndDefaultElementIsByte) {
  static_assert(std::is_same_v<spsc_ring<>::value_type, std::byte>);
  static_assert(std::is_same_v<ring32::size_type, std::size_t>);
  for (std::size_t cap : std::array<std::size_t, 4>{1, 3, 100, 4097}) {
    spsc_ring<> r(cap);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ta::storage(r)) % 128, 0u) << cap;
  }
}

// ============================================================================ exact grants

// A grant exposes exactly n writable slots through every accessor; commit() publishes all.
TEST(ExactGrant, AccessorsAndCommitAll) {
  ring32 r(8);
  auto g = r.try_reserve(5);
  ASSERT_TRUE(g);
  EXPECT_FALSE(g.empty());
  EXPECT_EQ(g.size(), 5u);
  EXPECT_EQ(g.data(), ta::storage(r));
  EXPECT_EQ(g.span().data(), g.data());
  EXPECT_EQ(g.span().size(), 5u);
  EXPECT_EQ(g.begin(), g.data());
  EXPECT_EQ(g.end(), g.data() + 5);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<u32>(20 + i);
  EXPECT_EQ(&g[4], g.data() + 4);
  EXPECT_EQ(r.size_approx(), 0u);  // nothing published before commit
  EXPECT_TRUE(r.try_read().empty());
  g.commit();
  EXPECT_TRUE(g.empty());
  EXPECT_FALSE(g);
  EXPECT_EQ(r.size_approx(), 5u);
  auto rg = r.try_read();
  ASSERT_TRUE(rg);
  EXPECT_EQ(rg.size(), 5u);
  EXPECT_EQ(rg.data(), ta::storage(r));
  EXPECT_EQ(rg.span().size(), 5u);
  EXPECT_EQ(rg.end() - rg.begin(), 5);
  EXPECT_EQ(vals(rg), seq(20, 5));
  EXPECT_EQ(rg[2], 22u);
  rg.release();
  EXPECT_TRUE(rg.empty());
  EXPECT_EQ(r.size_approx(), 0u);
}

// commit(k) publishes only the first k; the uncommitted rest is reused by the next grant.
TEST(ExactGrant, PartialCommitPublishesPrefix) {
  ring32 r(8);
  auto g = r.try_reserve(5);
  ASSERT_EQ(g.size(), 5u);
  std::iota(g.begin(), g.end(), 1u);
  g.commit(2);
  EXPECT_TRUE(g.empty());
  EXPECT_EQ(r.size_approx(), 2u);
  auto g2 = r.try_reserve(3);
  ASSERT_EQ(g2.size(), 3u);
  EXPECT_EQ(g2.data(), ta::storage(r) + 2);
  std::iota(g2.begin(), g2.end(), 50u);
  g2.commit(0);  // publishes nothing
  EXPECT_EQ(r.size_approx(), 2u);
  EXPECT_EQ(drain(r), (std::vector<u32>{1, 2}));
}

// commit(k > size) throws std::out_of_range (a logic_error) and changes nothing: the grant is
// still open and can be committed afterwards.
TEST(ExactGrant, CommitBeyondSizeThrowsAndLeavesGrantUsable) {
  ring32 r(8);
  auto g = r.try_reserve(3);
  ASSERT_EQ(g.size(), 3u);
  std::iota(g.begin(), g.end(), 7u);
  EXPECT_THROW(g.commit(4), std::out_of_range);
  EXPECT_THROW(g.commit(4), std::logic_error);
  EXPECT_EQ(g.size(), 3u);
  EXPECT_EQ(g.data(), ta::storage(r));
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_TRUE(r.try_read().empty());
  EXPECT_THROW((void)r.try_reserve(1), std::logic_error);  // still outstanding
  g.commit();
  EXPECT_EQ(drain(r), seq(7, 3));
}

// n > capacity throws std::length_error naming the capacity; no grant is left open.
TEST(ExactGrant, MoreThanCapacityThrowsLengthErrorNamingCapacity) {
  ring32 r(37);
  try {
    (void)r.try_reserve(38);
    FAIL() << "no exception";
  } catch (const std::length_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("37"), std::string::npos) << what;
    EXPECT_NE(what.find("38"), std::string::npos) << what;
  }
  EXPECT_THROW((void)r.try_reserve(std::numeric_limits<std::size_t>::max()), std::length_error);
  EXPECT_THROW((void)r.try_reserve_split(38), std::length_error);
  auto g = r.try_reserve(37);  // not blocked by the failed calls
  EXPECT_EQ(g.size(), 37u);
}

// n == 0 yields an empty grant, opens nothing and publishes nothing.
TEST(ExactGrant, ZeroIsEmptyAndChangesNothing) {
  ring32 r(4);
  ASSERT_TRUE(r.try_push(1));
  for (int round = 0; round < 2; ++round) {
    auto g = r.try_reserve(0);
    EXPECT_TRUE(g.empty());
    EXPECT_FALSE(g);
    EXPECT_EQ(g.size(), 0u);
    EXPECT_THROW(g.commit(1), std::out_of_range);
    g.commit();  // committing an empty grant is a no-op
    EXPECT_TRUE(r.try_reserve_up_to(0).empty());
    EXPECT_TRUE(r.try_reserve_split(0).empty());
  }
  EXPECT_EQ(r.size_approx(), 1u);
  auto g = r.try_reserve(3);  // nothing left open
  EXPECT_EQ(g.size(), 3u);
  EXPECT_EQ(g.data(), ta::storage(r) + 1);
}

// ============================================================================ wrap everywhere

// For every capacity, cursor era (0, 2^32, 2^64), start index and length, an empty ring
// grants n, the data comes back exactly through try_read (after the skip when it wrapped) and
// size_approx agrees; then random mixed operations continue against the model and the ring
// ends empty.
TEST(Wrap, EveryOffsetEveryLengthEveryCursorEra) {
  std::uint64_t sub = 0;
  for (std::size_t cap : std::array<std::size_t, 5>{1, 2, 3, 5, 8}) {
    for (std::uint64_t pos : kPositions) {
      for (std::size_t idx = 0; idx < cap; ++idx) {
        for (std::size_t n = 1; n <= cap; ++n) {
          SCOPED_TRACE("capacity=" + std::to_string(cap) + " pos=" + std::to_string(pos) + " index=" +
                       std::to_string(idx) + " n=" + std::to_string(n));
          ring32 r(cap);
          ta::set_position(r, pos, idx);
          EXPECT_EQ(r.size_approx(), 0u);
          const bool wraps = n > cap - idx;
          const std::size_t at = wraps ? 0 : idx;
          {
            auto g = r.try_reserve(n);
            ASSERT_EQ(g.size(), n);
            ASSERT_EQ(index_of(r, g.data()), at);
            std::iota(g.begin(), g.end(), 1000u);
            g.commit();
          }
          // A wrap leaves the skipped tail counted as occupied until the consumer passes it.
          EXPECT_EQ(r.size_approx(), wraps ? std::min(cap, cap - idx + n) : n);
          {
            auto rg = r.try_read();
            ASSERT_EQ(rg.size(), n);
            ASSERT_EQ(rg.data(), ta::storage(r) + at);
            ASSERT_EQ(vals(rg), seq(1000, n));
            rg.release();
          }
          EXPECT_EQ(r.size_approx(), 0u);
          EXPECT_TRUE(r.try_read().empty());
          ring_model m(cap, (at + n) % cap);
          model_runner run(r, m, kSeed + (++sub));
          run.run(6 * cap + 20);
          if (HasFailure()) return;
          run.finish();
          if (HasFailure()) return;
        }
      }
    }
  }
}

// An empty ring whose indexes stand mid-storage grants the full capacity (wrapping to index 0);
// until the consumer passes the skip the producer sees no room at all.
TEST(Wrap, EmptyRingMidStorageGrantsFullCapacity) {
  for (std::uint64_t pos : kPositions) {
    SCOPED_TRACE("pos=" + std::to_string(pos));
    ring32 r(8);
    ta::set_position(r, pos, 0);
    push_seq(r, 0, 5);
    pop_seq(r, 0, 5);  // empty, both indexes at 5
    ASSERT_EQ(ta::write_index(r), 5u);
    ASSERT_EQ(ta::read_index(r), 5u);
    {
      auto g = r.try_reserve(8);
      ASSERT_EQ(g.size(), 8u);
      EXPECT_EQ(g.data(), ta::storage(r));
      std::iota(g.begin(), g.end(), 100u);
      g.commit();
    }
    EXPECT_EQ(r.size_approx(), 8u);  // 3 skipped + 8 data, clamped
    EXPECT_FALSE(r.try_push(1));
    EXPECT_TRUE(r.try_reserve(1).empty());
    EXPECT_TRUE(r.try_reserve_up_to(8).empty());
    EXPECT_TRUE(r.try_reserve_split(1).empty());
    EXPECT_EQ(r.write_some(std::vector<u32>{1}), 0u);
    {
      auto rg = r.try_read();
      ASSERT_EQ(rg.size(), 8u);
      EXPECT_EQ(rg.data(), ta::storage(r));
      EXPECT_EQ(vals(rg), seq(100, 8));
      rg.release(3);
    }
    EXPECT_EQ(r.size_approx(), 5u);
    push_seq(r, 108, 3);
    EXPECT_EQ(drain(r), seq(103, 8));
    // Empty again with both indexes at 3: 6 does not fit at the end but the ring grants it.
    auto g = r.try_reserve(6);
    ASSERT_EQ(g.size(), 6u);
    EXPECT_EQ(g.data(), ta::storage(r));
  }
}

// ============================================================================ bip-buffer skip

struct bip_fixture {
  static constexpr u32 kPoison = 999;
  std::array<u32, 8> store{};
  ring32 r{std::span<u32>(store)};

  // push 0..5, pop 0..3: read index 4, write index 6, 2 elements (4, 5) published.
  void setup() {
    store.fill(kPoison);
    push_seq(r, 0, 6);
    pop_seq(r, 0, 4);
    ASSERT_EQ(ta::read_index(r), 4u);
    ASSERT_EQ(ta::write_index(r), 6u);
  }
  // Reserve 3 (must wrap to index 0), write 100..102, commit.
  void wrap3() {
    auto g = r.try_reserve(3);
    ASSERT_EQ(g.size(), 3u);
    ASSERT_EQ(g.data(), store.data());
    std::iota(g.begin(), g.end(), 100u);
    g.commit();
    // 2 old + 2 skipped + 3 new
    ASSERT_EQ(r.size_approx(), 7u);
  }
};

// More than the start can hold fails: only indexes 0..3 are free at the start (6, 7 at the
// end are too short) and a failed reserve leaves nothing open.
TEST(BipSkip, ReserveLargerThanStartRunFails) {
  bip_fixture f;
  f.setup();
  EXPECT_TRUE(f.r.try_reserve(5).empty());
  EXPECT_TRUE(f.r.try_reserve(5).empty());
  EXPECT_EQ(f.r.size_approx(), 2u);
  auto g = f.r.try_reserve(4);  // exactly the start run
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g.data(), f.store.data());
}

// After the wrap, try_read shows the 2 old elements, then the 3 new ones at index 0; the skipped
// tail (poisoned) is never shown.
TEST(BipSkip, TryReadSeesOldThenNewNeverTheTail) {
  bip_fixture f;
  f.setup();
  f.wrap3();
  {
    auto rg = f.r.try_read();
    ASSERT_EQ(rg.size(), 2u);
    EXPECT_EQ(rg.data(), f.store.data() + 4);
    EXPECT_EQ(vals(rg), (std::vector<u32>{4, 5}));
    rg.release();
  }
  EXPECT_EQ(f.r.size_approx(), 5u);  // the skipped tail still counts until passed
  {
    auto rg = f.r.try_read();
    ASSERT_EQ(rg.size(), 3u);
    EXPECT_EQ(rg.data(), f.store.data());
    EXPECT_EQ(vals(rg), (std::vector<u32>{100, 101, 102}));
    rg.release();
  }
  EXPECT_EQ(f.r.size_approx(), 0u);
  EXPECT_TRUE(f.r.try_read().empty());
  EXPECT_EQ(f.store[6], bip_fixture::kPoison);
  EXPECT_EQ(f.store[7], bip_fixture::kPoison);
}

// The same through try_pop and read_some: exactly 4, 5, 100, 101, 102.
TEST(BipSkip, PopAndReadSomeSkipTheTail) {
  {
    bip_fixture f;
    f.setup();
    f.wrap3();
    EXPECT_EQ(drain(f.r), (std::vector<u32>{4, 5, 100, 101, 102}));
  }
  {
    bip_fixture f;
    f.setup();
    f.wrap3();
    std::vector<u32> dst(10, 0);
    ASSERT_EQ(f.r.read_some(dst), 5u);
    dst.resize(5);
    EXPECT_EQ(dst, (std::vector<u32>{4, 5, 100, 101, 102}));
    EXPECT_EQ(f.r.size_approx(), 0u);
  }
  {
    bip_fixture f;  // read_some stopping exactly at the skip, then across nothing but new data
    f.setup();
    f.wrap3();
    std::array<u32, 2> two{};
    ASSERT_EQ(f.r.read_some(two), 2u);
    EXPECT_EQ(two, (std::array<u32, 2>{4, 5}));
    std::array<u32, 4> four{};
    ASSERT_EQ(f.r.read_some(four), 3u);
    EXPECT_EQ(four, (std::array<u32, 4>{100, 101, 102, 0}));
  }
}

// A split read across a pending skip: first region ends at the skip, second starts at index 0;
// a partial release crosses the gap correctly.
TEST(BipSkip, SplitReadAcrossPendingSkip) {
  bip_fixture f;
  f.setup();
  f.wrap3();
  {
    auto g = f.r.try_read_split();
    ASSERT_EQ(g.size(), 5u);
    ASSERT_EQ(g.first().size(), 2u);
    EXPECT_EQ(g.first().data(), f.store.data() + 4);
    ASSERT_EQ(g.second().size(), 3u);
    EXPECT_EQ(g.second().data(), f.store.data());
    EXPECT_EQ(concat(g.first(), g.second()), (std::vector<u32>{4, 5, 100, 101, 102}));
    g.release(3);  // 4, 5 and 100
  }
  EXPECT_EQ(f.r.size_approx(), 2u);
  auto rg = f.r.try_read();
  ASSERT_EQ(rg.size(), 2u);
  EXPECT_EQ(rg.data(), f.store.data() + 1);
  EXPECT_EQ(vals(rg), (std::vector<u32>{101, 102}));
}

// A split release of exactly the first region stops on the skip; the next read jumps it.
TEST(BipSkip, SplitReleaseEndingOnTheSkip) {
  bip_fixture f;
  f.setup();
  f.wrap3();
  {
    auto g = f.r.try_read_split();
    ASSERT_EQ(g.first().size(), 2u);
    g.release(2);
  }
  EXPECT_EQ(f.r.size_approx(), 5u);  // 2 skipped + 3 new
  auto g = f.r.try_read_split();
  ASSERT_EQ(g.first().size(), 3u);
  EXPECT_EQ(g.first().data(), f.store.data());
  EXPECT_TRUE(g.second().empty());
  EXPECT_EQ(vals(g.first()), (std::vector<u32>{100, 101, 102}));
}

// A wrapped grant that is discarded or committed with 0 leaves no skip behind: the next
// grant goes at the write index again and the consumer sees plain FIFO data.
TEST(BipSkip, AbandonedWrapLeavesNoSkip) {
  for (int how = 0; how < 3; ++how) {
    SCOPED_TRACE("how=" + std::to_string(how));
    bip_fixture f;
    f.setup();
    {
      auto g = f.r.try_reserve(3);
      ASSERT_EQ(g.data(), f.store.data());
      g[0] = 77;
      if (how == 0) g.discard();
      if (how == 1) g.commit(0);
      // how == 2: destroyed at the end of the scope
    }
    EXPECT_EQ(f.r.size_approx(), 2u);
    auto g = f.r.try_reserve(2);
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g.data(), f.store.data() + 6);
    g[0] = 6;
    g[1] = 7;
    g.commit();
    EXPECT_EQ(drain(f.r), (std::vector<u32>{4, 5, 6, 7}));
  }
}

// A partial commit of a wrapped grant still records the skip; the rest is reusable.
TEST(BipSkip, PartialCommitOfWrappedGrant) {
  bip_fixture f;
  f.setup();
  {
    auto g = f.r.try_reserve(4);
    ASSERT_EQ(g.data(), f.store.data());
    std::iota(g.begin(), g.end(), 100u);
    g.commit(1);
  }
  EXPECT_EQ(f.r.size_approx(), 5u);  // 2 + 2 skipped + 1
  auto g = f.r.try_reserve(3);         // indexes 1..3 are still free
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g.data(), f.store.data() + 1);
  std::iota(g.begin(), g.end(), 101u);
  g.commit();
  EXPECT_EQ(drain(f.r), (std::vector<u32>{4, 5, 100, 101, 102, 103}));
}

// The skip marker never aliases: with cursors crossing 2^64 and no wrapped grant ever made,
// the read position passing 2^64 - 1 must not be taken for a skipped tail.
TEST(BipSkip, NoFalseSkipWhenCursorsCross2To64) {
  sluice::spsc_ring<u32> r(4);
  sluice::detail::test_access::set_position(r, ~std::uint64_t{0} - 2, 1);
  for (int lap = 0; lap < 3; ++lap) {
    for (u32 i = 0; i < 4; ++i) ASSERT_TRUE(r.try_push(i));
    for (u32 i = 0; i < 4; ++i) ASSERT_EQ(r.try_pop(), std::optional<u32>(i)) << "lap " << lap;
    EXPECT_FALSE(r.try_pop());
  }
}

// A skip passed through a split release is cleared: the same storage index in the next lap is
// ordinary data.
TEST(BipSkip, PassedSkipIsForgottenInTheNextLap) {
  sluice::spsc_ring<u32> r(5);
  for (u32 i = 0; i < 4; ++i) ASSERT_TRUE(r.try_push(i));  // indexes 0..3
  pop_seq(r, 0, 3);  // read index 3
  {
    auto g = r.try_reserve(2);  // index 4 is 1 long: wraps to 0, skipping index 4
    ASSERT_EQ(g.size(), 2u);
    g[0] = 10;
    g[1] = 11;
    g.commit();
  }
  {
    auto s = r.try_read_split();  // 3 | skip | 10 11
    ASSERT_EQ(s.first().size(), 1u);
    ASSERT_EQ(s.second().size(), 2u);
    s.release();
  }
  // Now at index 2 of the next lap: fill through index 4 (where the old skip was) and beyond.
  for (u32 i = 20; i < 25; ++i) ASSERT_TRUE(r.try_push(i));
  EXPECT_EQ(drain(r), (std::vector<u32>{20, 21, 22, 23, 24}));
}

// ============================================================================ up-to grants

// try_reserve_up_to grants min(n, longest contiguous free run); n may exceed the capacity;
// empty when full or n == 0.
TEST(UpTo, GrantsMinOfRequestAndFreeRun) {
  ring32 r(8);
  {
    auto g = r.try_reserve_up_to(100);
    EXPECT_EQ(g.size(), 8u);
    EXPECT_EQ(g.data(), ta::storage(r));
  }
  {
    auto g = r.try_reserve_up_to(3);
    EXPECT_EQ(g.size(), 3u);
  }
  EXPECT_TRUE(r.try_reserve_up_to(0).empty());
  push_seq(r, 0, 8);
  EXPECT_TRUE(r.try_reserve_up_to(1).empty());
  EXPECT_TRUE(r.try_reserve_up_to(100).empty());
  pop_seq(r, 0, 3);  // data wraps now: free run is 0..2 only
  {
    auto g = r.try_reserve_up_to(100);
    EXPECT_EQ(g.size(), 3u);
    EXPECT_EQ(g.data(), ta::storage(r));
  }
}

// It picks the longer of the run at the end and the run at the start; on a tie, the end (no
// skip is wasted).
TEST(UpTo, PicksTheLongerRun) {
  {  // end longer: read idx 2, write idx 3 -> end run 5 (3..7), start run 2 (0..1)
    ring32 r(8);
    push_seq(r, 0, 3);
    pop_seq(r, 0, 2);
    auto g = r.try_reserve_up_to(8);
    EXPECT_EQ(g.size(), 5u);
    EXPECT_EQ(g.data(), ta::storage(r) + 3);
  }
  {  // start longer: read idx 5, write idx 7 -> end run 1, start run 5
    ring32 r(8);
    push_seq(r, 0, 7);
    pop_seq(r, 0, 5);
    {
      auto g = r.try_reserve_up_to(8);
      ASSERT_EQ(g.size(), 5u);
      EXPECT_EQ(g.data(), ta::storage(r));
      std::iota(g.begin(), g.end(), 100u);
      g.commit();
    }
    EXPECT_EQ(drain(r), (std::vector<u32>{5, 6, 100, 101, 102, 103, 104}));
  }
  {  // tie: read idx 2, write idx 6 -> end run 2, start run 2: stays at the end
    ring32 r(8);
    push_seq(r, 0, 6);
    pop_seq(r, 0, 2);
    auto g = r.try_reserve_up_to(8);
    EXPECT_EQ(g.size(), 2u);
    EXPECT_EQ(g.data(), ta::storage(r) + 6);
  }
  {  // request fits at the end: no wrap even though the start run is longer
    ring32 r(8);
    push_seq(r, 0, 7);
    pop_seq(r, 0, 5);
    auto g = r.try_reserve_up_to(1);
    EXPECT_EQ(g.size(), 1u);
    EXPECT_EQ(g.data(), ta::storage(r) + 7);
  }
  {  // empty ring mid-storage: the whole storage is one run from index 0
    ring32 r(8);
    push_seq(r, 0, 3);
    pop_seq(r, 0, 3);
    auto g5 = r.try_reserve_up_to(5);
    EXPECT_EQ(g5.size(), 5u);
    EXPECT_EQ(g5.data(), ta::storage(r) + 3);
    g5.discard();
    auto g = r.try_reserve_up_to(100);
    EXPECT_EQ(g.size(), 8u);
    EXPECT_EQ(g.data(), ta::storage(r));
  }
}

// Exact reserve needs the whole n contiguous; up-to takes what is there.
TEST(UpTo, ExactFailsWhereUpToSucceeds) {
  ring32 r(8);
  push_seq(r, 0, 6);
  pop_seq(r, 0, 2);  // read 2, write 6: runs of 2 at both ends, 4 free in total
  EXPECT_TRUE(r.try_reserve(3).empty());
  EXPECT_EQ(r.try_reserve_up_to(3).size(), 2u);
  auto s = r.try_reserve_split(4);  // a split grant takes non-contiguous space
  EXPECT_EQ(s.size(), 4u);
}

// ============================================================================ abandoned grants

// A write grant destroyed or discard()ed publishes nothing and ends the grant.
TEST(Abandon, WriteGrantDestroyedOrDiscardedPublishesNothing) {
  ring32 r(8);
  {
    auto g = r.try_reserve(4);
    ASSERT_EQ(g.size(), 4u);
    std::iota(g.begin(), g.end(), 1u);
  }
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_TRUE(r.try_read().empty());
  EXPECT_FALSE(r.try_pop().has_value());
  auto g = r.try_reserve(4);
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g.data(), ta::storage(r));  // the same slots again
  std::iota(g.begin(), g.end(), 1u);
  g.discard();
  EXPECT_TRUE(g.empty());
  g.commit();  // no-op on an ended grant
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_TRUE(r.try_read().empty());
  {
    auto s = r.try_reserve_split(3);
    ASSERT_EQ(s.size(), 3u);
    s.first()[0] = 1;
  }
  auto s = r.try_reserve_split(3);
  ASSERT_EQ(s.size(), 3u);
  s.discard();
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_TRUE(r.try_push(42));
  EXPECT_EQ(drain(r), (std::vector<u32>{42}));
}

// A read grant dropped without release frees nothing: it is a peek.
TEST(Abandon, ReadGrantDroppedIsAPeek) {
  ring32 r(4);
  push_seq(r, 10, 4);
  for (int i = 0; i < 2; ++i) {
    auto rg = r.try_read();
    ASSERT_EQ(rg.size(), 4u);
    EXPECT_EQ(vals(rg), seq(10, 4));
  }
  EXPECT_EQ(r.size_approx(), 4u);
  EXPECT_FALSE(r.try_push(0));  // the slots were not freed
  {
    auto rg = r.try_read();
    rg.release(0);  // frees nothing either
  }
  {
    auto s = r.try_read_split();
    ASSERT_EQ(s.size(), 4u);
  }
  EXPECT_EQ(r.size_approx(), 4u);
  EXPECT_EQ(drain(r), seq(10, 4));
}

// ============================================================================ one grant per side

// While a write grant (exact, up-to or split) is open every producer call throws
// std::logic_error and changes nothing; afterwards the calls work again.
TEST(OneGrantPerSide, ProducerCallsThrowWhileWriteGrantOpen) {
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE("kind=" + std::to_string(kind));
    ring32 r(8);
    ASSERT_TRUE(r.try_push(1));
    ring32::write_grant g;
    ring32::split_write_grant s;
    if (kind == 0) g = r.try_reserve(2);
    if (kind == 1) g = r.try_reserve_up_to(2);
    if (kind == 2) s = r.try_reserve_split(2);
    ASSERT_TRUE(kind == 2 ? !s.empty() : !g.empty());
    const std::array<u32, 2> src{8, 9};
    EXPECT_THROW((void)r.try_reserve(1), std::logic_error);
    EXPECT_THROW((void)r.try_reserve(0), std::logic_error);
    EXPECT_THROW((void)r.try_reserve_up_to(1), std::logic_error);
    EXPECT_THROW((void)r.try_reserve_split(1), std::logic_error);
    EXPECT_THROW((void)r.try_push(5), std::logic_error);
    EXPECT_THROW((void)r.write_some(src), std::logic_error);
    EXPECT_EQ(r.size_approx(), 1u);
    // The consumer side is independent.
    EXPECT_EQ(r.try_pop(), std::optional<u32>(1));
    if (kind == 2) {
      s.first()[0] = 2;
      s.first()[1] = 3;
      s.commit();
    } else {
      g[0] = 2;
      g[1] = 3;
      g.commit();
    }
    EXPECT_TRUE(r.try_push(4));
    EXPECT_EQ(r.write_some(src), 2u);
    EXPECT_EQ(drain(r), (std::vector<u32>{2, 3, 4, 8, 9}));
  }
}

// Failed or zero-sized reservations open nothing.
TEST(OneGrantPerSide, EmptyGrantsDoNotCount) {
  ring32 r(2);
  push_seq(r, 0, 2);
  auto a = r.try_reserve(1);       // fails: full
  auto b = r.try_reserve_up_to(1);  // fails: full
  auto c = r.try_reserve_split(1);  // fails: full
  auto d = r.try_reserve(0);
  EXPECT_TRUE(a.empty() && b.empty() && c.empty() && d.empty());
  EXPECT_EQ(r.try_pop(), std::optional<u32>(0));
  EXPECT_TRUE(r.try_push(2));
  auto rg = r.try_read();
  ASSERT_EQ(rg.size(), 1u);  // index 1 to the end
  rg.release();
  auto e = r.try_read();
  ASSERT_EQ(e.size(), 1u);
  e.release();
  auto f = r.try_read();  // nothing there: empty grant, opens nothing
  EXPECT_TRUE(f.empty());
  EXPECT_FALSE(r.try_pop().has_value());
}

// While a read grant (plain or split) is open every consumer call throws std::logic_error and
// changes nothing; afterwards they work again.
TEST(OneGrantPerSide, ConsumerCallsThrowWhileReadGrantOpen) {
  for (int kind = 0; kind < 2; ++kind) {
    SCOPED_TRACE("kind=" + std::to_string(kind));
    ring32 r(8);
    push_seq(r, 0, 4);
    ring32::read_grant g;
    ring32::split_read_grant s;
    if (kind == 0) g = r.try_read();
    if (kind == 1) s = r.try_read_split();
    ASSERT_EQ(kind == 0 ? g.size() : s.size(), 4u);
    std::array<u32, 3> dst{};
    EXPECT_THROW((void)r.try_read(), std::logic_error);
    EXPECT_THROW((void)r.try_read_split(), std::logic_error);
    EXPECT_THROW((void)r.try_pop(), std::logic_error);
    EXPECT_THROW((void)r.read_some(dst), std::logic_error);
    EXPECT_EQ(dst, (std::array<u32, 3>{}));
    EXPECT_EQ(r.size_approx(), 4u);
    EXPECT_TRUE(r.try_push(4));  // the producer side is independent
    if (kind == 0) {
      g.release(1);
    } else {
      s.release(1);
    }
    EXPECT_EQ(r.try_pop(), std::optional<u32>(1));
    EXPECT_EQ(r.read_some(dst), 3u);
    EXPECT_EQ(dst, (std::array<u32, 3>{2, 3, 4}));
  }
}

// ============================================================================ move semantics

template <class G>
constexpr bool move_only_v = !std::is_copy_constructible_v<G> && !std::is_copy_assignable_v<G> &&
                             std::is_nothrow_move_constructible_v<G> && std::is_nothrow_move_assignable_v<G> &&
                             std::is_nothrow_default_constructible_v<G>;
static_assert(move_only_v<ring32::write_grant>);
static_assert(move_only_v<ring32::read_grant>);
static_assert(move_only_v<ring32::split_write_grant>);
static_assert(move_only_v<ring32::split_read_grant>);
static_assert(!std::is_copy_constructible_v<ring32> && !std::is_copy_assignable_v<ring32>);
static_assert(!std::is_convertible_v<ring32::write_grant, bool>);  // explicit operator bool
static_assert(std::is_constructible_v<bool, ring32::write_grant>);

// A moved-from write grant is empty and inert; the moved-to one owns the reservation.
TEST(Move, WriteGrantMoveConstruct) {
  ring32 r(4);
  auto g = r.try_reserve(3);
  u32* p = g.data();
  ring32::write_grant h(std::move(g));
  EXPECT_TRUE(g.empty());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(g.size(), 0u);
  EXPECT_FALSE(g);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.data(), p);
  g.discard();  // withdrawing the moved-from grant must not end h's reservation
  { ring32::write_grant gone(std::move(g)); }
  EXPECT_THROW((void)r.try_reserve(1), std::logic_error);
  std::iota(h.begin(), h.end(), 1u);
  h.commit();
  EXPECT_EQ(drain(r), seq(1, 3));
}

// Move-assigning onto an open grant withdraws it (its ring publishes nothing and is free for a
// new grant) and takes over the other one.
TEST(Move, WriteGrantMoveAssignWithdrawsTarget) {
  ring32 a(4), b(4);
  auto ga = a.try_reserve(2);
  auto gb = b.try_reserve(3);
  std::iota(ga.begin(), ga.end(), 10u);
  std::iota(gb.begin(), gb.end(), 20u);
  ga = std::move(gb);
  EXPECT_TRUE(gb.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(ga.size(), 3u);
  EXPECT_EQ(a.size_approx(), 0u);
  auto again = a.try_reserve(2);  // a's grant was withdrawn
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(again.data(), ta::storage(a));
  EXPECT_THROW((void)b.try_reserve(1), std::logic_error);  // b's grant lives on in ga
  ga.commit();
  EXPECT_EQ(drain(b), seq(20, 3));
  EXPECT_TRUE(a.try_read().empty());
  ring32::write_grant empty;
  empty = b.try_reserve(4);  // move-assign onto a default-constructed grant
  EXPECT_EQ(empty.size(), 4u);
}

TEST(Move, ReadGrantMoveConstructAndAssign) {
  ring32 a(4), b(4);
  push_seq(a, 1, 2);
  push_seq(b, 5, 3);
  auto ra = a.try_read();
  ring32::read_grant moved(std::move(ra));
  EXPECT_TRUE(ra.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.size(), 2u);
  auto rb = b.try_read();
  moved = std::move(rb);  // withdraws a's grant without freeing anything
  EXPECT_TRUE(rb.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(vals(moved), seq(5, 3));
  EXPECT_EQ(a.size_approx(), 2u);
  EXPECT_EQ(a.try_pop(), std::optional<u32>(1));  // a is free again
  EXPECT_THROW((void)b.try_pop(), std::logic_error);
  moved.release(1);
  EXPECT_EQ(drain(b), (std::vector<u32>{6, 7}));
}

TEST(Move, SplitGrantsMoveConstructAndAssign) {
  ring32 a(4), b(4);
  auto sa = a.try_reserve_split(2);
  ring32::split_write_grant sw(std::move(sa));
  EXPECT_TRUE(sa.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(sw.size(), 2u);
  auto sb = b.try_reserve_split(3);
  sw = std::move(sb);  // a's withdrawn
  EXPECT_EQ(sw.size(), 3u);
  EXPECT_EQ(a.try_reserve(4).size(), 4u);
  sw.first()[0] = 1;
  sw.first()[1] = 2;
  sw.first()[2] = 3;
  sw.commit();
  ASSERT_TRUE(a.try_push(9));
  auto ra = a.try_read_split();
  ring32::split_read_grant sr(std::move(ra));
  EXPECT_TRUE(ra.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(sr.size(), 1u);
  auto rb = b.try_read_split();
  sr = std::move(rb);  // a's withdrawn, nothing freed
  EXPECT_EQ(concat(sr.first(), sr.second()), seq(1, 3));
  sr.release();
  EXPECT_EQ(b.size_approx(), 0u);
  EXPECT_EQ(a.try_pop(), std::optional<u32>(9));
}

// ============================================================================ release

// release(k) frees exactly k; release beyond the size throws std::out_of_range and changes
// nothing (the grant is still open and still valid).
TEST(Release, PartialAndBeyondSize) {
  ring32 r(8);
  push_seq(r, 0, 5);
  {
    auto rg = r.try_read();
    ASSERT_EQ(rg.size(), 5u);
    EXPECT_THROW(rg.release(6), std::out_of_range);
    EXPECT_EQ(rg.size(), 5u);
    EXPECT_EQ(r.size_approx(), 5u);
    EXPECT_THROW((void)r.try_pop(), std::logic_error);  // still open
    rg.release(2);
    EXPECT_TRUE(rg.empty());
  }
  EXPECT_EQ(r.size_approx(), 3u);
  {
    auto s = r.try_read_split();
    ASSERT_EQ(s.size(), 3u);
    EXPECT_THROW(s.release(4), std::out_of_range);
    EXPECT_EQ(s.size(), 3u);
    EXPECT_EQ(r.size_approx(), 3u);
    s.release(1);
  }
  auto rg = r.try_read();
  ASSERT_EQ(rg.size(), 2u);
  EXPECT_EQ(rg.data(), ta::storage(r) + 3);
  EXPECT_EQ(vals(rg), (std::vector<u32>{3, 4}));
}

// ============================================================================ copying calls

// write_some / read_some copy across the storage end; a short destination reads a prefix.
TEST(Copying, WriteSomeReadSomeAcrossTheWrap) {
  ring32 r(5);
  ta::set_position(r, kNear64, 3);
  EXPECT_EQ(r.write_some(seq(1, 4)), 4u);  // indexes 3, 4, 0, 1
  EXPECT_EQ(r.size_approx(), 4u);
  EXPECT_EQ(ta::storage(r)[4], 2u);
  EXPECT_EQ(ta::storage(r)[0], 3u);
  EXPECT_EQ(r.write_some(seq(5, 3)), 1u);  // only one slot free
  EXPECT_EQ(r.write_some(seq(6, 1)), 0u);  // full
  EXPECT_EQ(r.write_some({}), 0u);
  std::array<u32, 3> small{};
  EXPECT_EQ(r.read_some(small), 3u);
  EXPECT_EQ(small, (std::array<u32, 3>{1, 2, 3}));
  std::vector<u32> big(10, 0);
  EXPECT_EQ(r.read_some(big), 2u);
  EXPECT_EQ(big[0], 4u);
  EXPECT_EQ(big[1], 5u);
  EXPECT_EQ(big[2], 0u);
  EXPECT_EQ(r.read_some(big), 0u);  // empty
  EXPECT_EQ(r.size_approx(), 0u);
}

// read_some with an empty destination copies nothing and frees nothing. Regression: an empty
// span's data() is null and memcpy(nullptr, p, 0) is undefined (UBSan: "null pointer passed as
// argument 1"); the ring must not call memcpy for an empty run.
TEST(Copying, ReadSomeIntoEmptySpan) {
  ring32 r(4);
  push_seq(r, 0, 2);
  EXPECT_EQ(r.read_some(std::span<u32>{}), 0u);
  EXPECT_EQ(r.size_approx(), 2u);
  EXPECT_EQ(drain(r), seq(0, 2));
}

// try_push / try_pop keep FIFO order over many laps; try_pop on empty is nullopt.
TEST(Copying, PushPopFifo) {
  ring32 r(3);
  EXPECT_FALSE(r.try_pop().has_value());
  u32 in = 0, out = 0;
  for (int round = 0; round < 50; ++round) {
    const int burst = 1 + round % 3;
    for (int i = 0; i < burst; ++i) ASSERT_TRUE(r.try_push(in++));
    for (int i = 0; i < burst; ++i) ASSERT_EQ(r.try_pop(), std::optional<u32>(out++));
    ASSERT_FALSE(r.try_pop().has_value());
  }
}

// ============================================================================ split grants

// A split reserve at index 6 of 8 yields two regions; a partial commit spans both; a split read
// shows them as two regions; a partial release crosses the storage end.
TEST(Split, ReserveCommitReadReleaseAcrossTheEnd) {
  ring32 r(8);
  ta::set_position(r, kNear32, 6);
  const u32* base = ta::storage(r);
  {
    auto s = r.try_reserve_split(5);
    ASSERT_EQ(s.size(), 5u);
    ASSERT_EQ(s.first().size(), 2u);
    EXPECT_EQ(s.first().data(), base + 6);
    ASSERT_EQ(s.second().size(), 3u);
    EXPECT_EQ(s.second().data(), base);
    std::iota(s.first().begin(), s.first().end(), 1u);
    std::iota(s.second().begin(), s.second().end(), 3u);
    EXPECT_THROW(s.commit(6), std::out_of_range);
    EXPECT_EQ(s.size(), 5u);
    s.commit(4);  // 1, 2 at 6..7 and 3, 4 at 0..1
  }
  EXPECT_EQ(r.size_approx(), 4u);
  EXPECT_EQ(ta::write_index(r), 2u);
  {
    auto g = r.try_read_split();
    ASSERT_EQ(g.first().size(), 2u);
    EXPECT_EQ(g.first().data(), base + 6);
    ASSERT_EQ(g.second().size(), 2u);
    EXPECT_EQ(g.second().data(), base);
    EXPECT_EQ(concat(g.first(), g.second()), seq(1, 4));
    g.release(3);
  }
  EXPECT_EQ(r.size_approx(), 1u);
  auto g = r.try_read();
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g.data(), base + 1);
  EXPECT_EQ(g[0], 4u);
  g.release();
  auto s = r.try_reserve_split(3);  // continues at index 2, no wrap
  ASSERT_EQ(s.first().size(), 3u);
  EXPECT_EQ(s.first().data(), base + 2);
  EXPECT_TRUE(s.second().empty());
}

// A split reserve succeeds on total free space, contiguous or not, and fails beyond it.
TEST(Split, NeedsTotalFreeNotContiguous) {
  ring32 r(8);
  push_seq(r, 0, 6);
  pop_seq(r, 0, 4);  // read 4, write 6: free 6, 7, 0..3
  EXPECT_TRUE(r.try_reserve_split(7).empty());
  auto s = r.try_reserve_split(6);
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s.first().size(), 2u);
  EXPECT_EQ(s.second().size(), 4u);
  std::iota(s.first().begin(), s.first().end(), 6u);
  std::iota(s.second().begin(), s.second().end(), 8u);
  s.commit();
  EXPECT_EQ(r.size_approx(), 8u);
  EXPECT_EQ(drain(r), seq(4, 8));
}

// ============================================================================ stale caches

// try_read reports everything contiguous that is committed, even after try_pop left the
// consumer's cached copy of the write cursor behind.
TEST(StaleCache, TryReadSeesEverythingCommitted) {
  ring32 r(8);
  push_seq(r, 0, 2);
  EXPECT_EQ(r.try_pop(), std::optional<u32>(0));  // caches write_ == 2
  push_seq(r, 2, 3);
  {
    auto g = r.try_reserve(2);
    ASSERT_EQ(g.size(), 2u);
    g[0] = 5;
    g[1] = 6;
    g.commit();
  }
  auto rg = r.try_read();
  ASSERT_EQ(rg.size(), 6u);
  EXPECT_EQ(vals(rg), seq(1, 6));
  rg.release(1);
  EXPECT_EQ(r.try_pop(), std::optional<u32>(2));
  push_seq(r, 7, 1);
  EXPECT_EQ(drain(r), seq(3, 5));  // try_pop refreshes once its cache runs out
}

// The producer's calls report all free space even when its cached read cursor is stale.
TEST(StaleCache, ProducerSeesEverythingFreed) {
  ring32 r(8);
  push_seq(r, 0, 8);  // caches read_ when it finds the ring full
  EXPECT_FALSE(r.try_push(8));
  pop_seq(r, 0, 8);
  EXPECT_EQ(r.try_reserve_up_to(100).size(), 8u);
  EXPECT_EQ(r.try_reserve(8).size(), 8u);
  push_seq(r, 8, 8);
  EXPECT_FALSE(r.try_push(16));
  pop_seq(r, 8, 8);
  EXPECT_EQ(r.try_reserve_split(8).size(), 8u);
  EXPECT_EQ(r.write_some(seq(16, 8)), 8u);
  EXPECT_EQ(drain(r), seq(16, 8));
}

// ============================================================================ model test

// 200k random operations over capacities 1..17 and three cursor eras against the reference
// model: every read returns exactly the model's front, every grant has the size and place the
// contract demands, and an empty ring always grants n <= capacity.
TEST(Model, RandomOperationsMatchReference) {
  constexpr std::size_t kStepsPerRun = 4000;  // 17 capacities x 3 eras x 4000 = 204k steps
  std::mt19937_64 setup(kSeed);
  std::uint64_t sub = 1000;
  model_runner::coverage total;
  std::size_t skips_passed = 0;
  for (std::size_t cap = 1; cap <= 17; ++cap) {
    for (std::uint64_t pos : kPositions) {
      const std::size_t idx = std::uniform_int_distribution<std::size_t>(0, cap - 1)(setup);
      SCOPED_TRACE("base seed=" + std::to_string(kSeed) + " capacity=" + std::to_string(cap) + " pos=" +
                   std::to_string(pos) + " index=" + std::to_string(idx));
      ring32 r(cap);
      ta::set_position(r, pos, idx);
      ring_model m(cap, idx);
      model_runner run(r, m, kSeed + (++sub));
      run.run(kStepsPerRun);
      if (HasFailure()) return;
      run.finish();
      if (HasFailure()) return;
      total.wrapped_grants += run.cov.wrapped_grants;
      total.empty_ring_wraps += run.cov.empty_ring_wraps;
      total.fragmented_fails += run.cov.fragmented_fails;
      total.split_grants_cross += run.cov.split_grants_cross;
      total.split_reads_gap += run.cov.split_reads_gap;
      total.busy_throws += run.cov.busy_throws;
      skips_passed += m.skips_passed;
    }
  }
  // The random walk really went through the interesting paths.
  EXPECT_GT(total.wrapped_grants, 1000u);
  EXPECT_GT(total.empty_ring_wraps, 400u);
  EXPECT_GT(total.fragmented_fails, 100u);
  EXPECT_GT(total.split_grants_cross, 500u);
  EXPECT_GT(total.split_reads_gap, 40u);
  EXPECT_GT(total.busy_throws, 2000u);
  EXPECT_GT(skips_passed, 600u);
  std::printf("model coverage: wrapped=%zu empty_ring_wraps=%zu fragmented_fails=%zu split_cross=%zu "
              "split_read_gap=%zu busy=%zu skips_passed=%zu\n",
              total.wrapped_grants, total.empty_ring_wraps, total.fragmented_fails, total.split_grants_cross,
              total.split_reads_gap, total.busy_throws, skips_passed);
}

// ============================================================================ mirrored storage

// Over mirrored storage, at every storage index and in every cursor era (0, 2^32, 2^64), an
// empty ring grants n = 1, the run up to the end of the storage, one more, and the whole
// capacity, each as one span at that index; try_read returns it whole at the same place, and
// what ran past the end is at the start of the storage.
TEST(Mirrored, SeamAtEveryOffsetInEveryCursorEra) {
  ring32 r(sluice::mirrored, 1);
  ASSERT_TRUE(r.mirrored());
  const std::size_t cap = r.capacity();
  ASSERT_EQ(cap * sizeof(u32), sluice::mirrored_storage::page_size());
  const u32* const base = ta::storage(r);
  u32 next = 0;
  for (std::uint64_t pos : kPositions) {
    for (std::size_t idx = 0; idx < cap; ++idx) {
      for (std::size_t n : std::array<std::size_t, 4>{1, cap - idx, cap - idx + 1, cap}) {
        if (n > cap) continue;
        SCOPED_TRACE("pos=" + std::to_string(pos) + " index=" + std::to_string(idx) + " n=" + std::to_string(n));
        ta::set_position(r, pos, idx);
        {
          auto g = r.try_reserve(n);
          ASSERT_EQ(g.size(), n);
          ASSERT_EQ(g.data(), base + idx);
          std::iota(g.begin(), g.end(), next);
          g.commit();
        }
        EXPECT_EQ(r.size_approx(), n);
        auto rg = r.try_read();
        ASSERT_EQ(rg.size(), n);
        ASSERT_EQ(rg.data(), base + idx);
        ASSERT_EQ(vals(rg), seq(next, n));
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(base[(idx + i) % cap], next + i) << "through the first copy, " << i;
        rg.release();
        EXPECT_EQ(r.size_approx(), 0u);
        EXPECT_EQ(ta::read_index(r), (idx + n) % cap);
        EXPECT_EQ(ta::write_index(r), (idx + n) % cap);
        next += static_cast<u32>(n);
      }
    }
  }
}

// The randomized comparison against the reference model, over mirrored storage of one page
// (1024 elements) and three (3072), in three cursor eras: every grant lands at the write
// position and is exactly as long as asked whenever that much is free; every read returns all
// that is committed, at the read position; split grants and reads have an empty second part.
TEST(Mirrored, RandomOperationsMatchReference) {
  constexpr std::size_t kStepsPerRun = 4000;  // 2 capacities x 3 eras x 4000 = 24k steps
  std::mt19937_64 setup(kSeed ^ 0x3117);
  std::uint64_t sub = 5000;
  model_runner::coverage total;
  for (std::size_t request : std::array<std::size_t, 2>{1, 2049}) {
    for (std::uint64_t pos : kPositions) {
      ring32 r(sluice::mirrored, request);
      ASSERT_TRUE(r.mirrored());
      const std::size_t cap = r.capacity();
      ASSERT_EQ(cap, sluice::mirrored_storage::rounded_size(request * sizeof(u32), sizeof(u32)) / sizeof(u32));
      const std::size_t idx = std::uniform_int_distribution<std::size_t>(0, cap - 1)(setup);
      SCOPED_TRACE("mirrored, base seed=" + std::to_string(kSeed) + " capacity=" + std::to_string(cap) + " pos=" +
                   std::to_string(pos) + " index=" + std::to_string(idx));
      ta::set_position(r, pos, idx);
      ring_model m(cap, idx, /*over_mirror=*/true);
      model_runner run(r, m, kSeed + (++sub));
      run.run(kStepsPerRun);
      if (HasFailure()) return;
      run.finish();
      if (HasFailure()) return;
      total.wrapped_grants += run.cov.wrapped_grants;
      total.split_grants_cross += run.cov.split_grants_cross;
      total.busy_throws += run.cov.busy_throws;
      total.seam_grants += run.cov.seam_grants;
      total.seam_reads += run.cov.seam_reads;
      EXPECT_EQ(m.skips_passed, 0u);
    }
  }
  // Nothing wrapped or split; the walk crossed the seam often, both ways.
  EXPECT_EQ(total.wrapped_grants, 0u);
  EXPECT_EQ(total.split_grants_cross, 0u);
  EXPECT_GT(total.seam_grants, 300u);
  EXPECT_GT(total.seam_reads, 300u);
  EXPECT_GT(total.busy_throws, 1000u);
  std::printf("mirrored model coverage: seam_grants=%zu seam_reads=%zu busy=%zu\n", total.seam_grants,
              total.seam_reads, total.busy_throws);
}

// ============================================================================ element types

struct sample {
  std::int32_t id;
  std::uint16_t tag;
  char c;
  friend bool operator==(const sample&, const sample&) = default;
};
static_assert(std::is_trivially_copyable_v<sample>);

template <class T>
T make(std::size_t i);
template <>
std::byte make<std::byte>(std::size_t i) {
  return static_cast<std::byte>(i * 7 + 1);
}
template <>
float make<float>(std::size_t i) {
  return static_cast<float>(i) + 0.25f;
}
template <>
sample make<sample>(std::size_t i) {
  return {static_cast<std::int32_t>(i) - 5, static_cast<std::uint16_t>(i * 3), static_cast<char>('a' + i % 26)};
}

template <class T>
class ElementType : public ::testing::Test {};
using element_types = ::testing::Types<std::byte, float, sample>;
TYPED_TEST_SUITE(ElementType, element_types);

// Every API path round-trips values of each element type, including across a skip and the end.
TYPED_TEST(ElementType, RoundTripsThroughEveryPath) {
  using T = TypeParam;
  // Capacity 10: the laps start at varying indexes, so the 3-element reserve wraps (with a skip)
  // on some of them and the split reserve crosses the end on others; two pushes + a skip of at
  // most 2 + 3 + 3 always fits.
  std::array<T, 10> store{};
  spsc_ring<T> r{std::span<T>(store)};
  std::size_t in = 0, out = 0, wraps = 0, splits = 0;
  auto expect_next = [&](const T& v) { EXPECT_EQ(v, make<T>(out++)); };
  for (int lap = 0; lap < 30; ++lap) {
    for (int i = 0; i <= lap % 2; ++i) ASSERT_TRUE(r.try_push(make<T>(in++)));
    {
      auto g = r.try_reserve(3);  // wraps on some laps
      ASSERT_EQ(g.size(), 3u);
      if (g.data() == store.data()) ++wraps;
      for (T& x : g) x = make<T>(in++);
      g.commit();
    }
    {
      const std::size_t m = 1 + static_cast<std::size_t>(lap) % 3;
      std::array<T, 3> src{make<T>(in), make<T>(in + 1), make<T>(in + 2)};
      ASSERT_EQ(r.write_some(std::span<const T>(src.data(), m)), m);
      in += m;
    }
    std::optional<T> p = r.try_pop();
    ASSERT_TRUE(p.has_value());
    expect_next(*p);
    {
      auto s = r.try_read_split();
      ASSERT_EQ(s.size(), in - out);
      for (const T& x : s.first()) expect_next(x);
      for (const T& x : s.second()) expect_next(x);
      s.release();
    }
    EXPECT_EQ(r.size_approx(), 0u);
    {
      auto g = r.try_reserve_up_to(100);  // empty: the whole storage, maybe wrapping
      ASSERT_EQ(g.size(), 10u);
      EXPECT_EQ(g.data(), store.data());
      g.discard();
    }
    {
      auto s = r.try_reserve_split(2);
      ASSERT_EQ(s.size(), 2u);
      if (!s.second().empty()) ++splits;
      for (T& x : s.first()) x = make<T>(in++);
      for (T& x : s.second()) x = make<T>(in++);
      s.commit();
    }
    std::array<T, 4> dst{};
    ASSERT_EQ(r.read_some(dst), 2u);
    expect_next(dst[0]);
    expect_next(dst[1]);
    ASSERT_EQ(in, out);
  }
  EXPECT_GE(wraps, 2u);
  EXPECT_GE(splits, 1u);
}

}  // namespace
