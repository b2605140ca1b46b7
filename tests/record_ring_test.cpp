// Single-threaded unit tests for sluice::spsc_record_ring and sluice::mpsc_record_ring
// (<sluice/record_ring.hpp>): construction and capacity rules, the documented byte layout
// (headers, PAD and DISCARD, zeroed free space), try_reserve at every cursor offset and across
// the wrap, commit/commit(k)/discard and grant moves, the in-flight rule (reservation order,
// holding back only what follows), batches (iteration, release, release(k), drop, errors), and a
// randomized comparison of both rings against a reference model, also over mirrored storage.
// Both ring types run every shared test (TYPED_TEST); every test ends by checking that the ring
// is empty.
#include <sluice/record_ring.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using sluice::mpsc_record_ring;
using sluice::spsc_record_ring;

// ============================================================================ compile-time
// Grants and batches are move-only; the batch is a forward range of spans.
template <class Ring>
constexpr bool check_types() {
  using grant = typename Ring::grant;
  using batch = typename Ring::batch;
  static_assert(!std::is_copy_constructible_v<grant>);
  static_assert(!std::is_copy_assignable_v<grant>);
  static_assert(std::is_nothrow_move_constructible_v<grant>);
  static_assert(std::is_nothrow_move_assignable_v<grant>);
  static_assert(std::is_nothrow_default_constructible_v<grant>);
  static_assert(!std::is_copy_constructible_v<batch>);
  static_assert(!std::is_copy_assignable_v<batch>);
  static_assert(std::is_nothrow_move_constructible_v<batch>);
  static_assert(std::is_nothrow_move_assignable_v<batch>);
  static_assert(std::is_nothrow_default_constructible_v<batch>);
  // Contextual conversion only: no implicit conversion to bool.
  static_assert(!std::is_convertible_v<grant, bool>);
  static_assert(!std::is_convertible_v<batch, bool>);
  static_assert(std::is_constructible_v<bool, grant&>);
  static_assert(std::is_constructible_v<bool, batch&>);
  static_assert(!std::is_copy_constructible_v<Ring>);
  static_assert(!std::is_copy_assignable_v<Ring>);
  static_assert(std::is_same_v<decltype(std::declval<grant&>().span()), std::span<std::byte>>);
  static_assert(std::forward_iterator<typename batch::iterator>);
  static_assert(std::ranges::forward_range<const batch>);
  static_assert(std::is_same_v<std::ranges::range_value_t<batch>, std::span<const std::byte>>);
  static_assert(Ring::record_alignment == 8);
  static_assert(Ring::header_size == 8);
  static_assert(Ring::min_capacity == 32);
  static_assert(Ring::max_capacity == (std::size_t{1} << 31));
  return true;
}
static_assert(check_types<spsc_record_ring>());
static_assert(check_types<mpsc_record_ring>());

// ============================================================================ helpers

// Payload byte i of the record with sequence number seq: every record's bytes differ from its
// neighbours', so a record read from the wrong place or a stale copy is caught.
std::byte pattern(std::uint64_t seq, std::size_t i) {
  const std::uint64_t x = seq * 0x9E3779B97F4A7C15ull + i * 0x2545F4914F6CDD1Dull;
  return static_cast<std::byte>((x >> 56) ^ (x >> 24) ^ i);
}

void fill(std::span<std::byte> s, std::uint64_t seq) {
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = pattern(seq, i);
}

::testing::AssertionResult holds(std::span<const std::byte> rec, std::uint64_t seq, std::size_t len) {
  if (rec.size() != len)
    return ::testing::AssertionFailure() << "record #" << seq << " has " << rec.size() << " bytes, expected " << len;
  for (std::size_t i = 0; i < len; ++i)
    if (rec[i] != pattern(seq, i))
      return ::testing::AssertionFailure() << "record #" << seq << " byte " << i << " is "
                                           << static_cast<int>(rec[i]) << ", expected "
                                           << static_cast<int>(pattern(seq, i));
  return ::testing::AssertionSuccess();
}

bool aligned8(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 8 == 0; }

std::size_t footprint_of(std::size_t n) { return 8 + (n + 7) / 8 * 8; }

// The ring holds nothing: no reservation outstanding, nothing to read, no byte in use.
template <class Ring>
::testing::AssertionResult drained(Ring& r) {
  if (r.in_flight() != 0) return ::testing::AssertionFailure() << "in_flight() == " << r.in_flight();
  {
    auto b = r.try_read();
    if (b || b.size() != 0 || !b.empty())
      return ::testing::AssertionFailure() << "try_read() returned " << b.size() << " records";
  }
  if (r.size_approx() != 0) return ::testing::AssertionFailure() << "size_approx() == " << r.size_approx();
  return ::testing::AssertionSuccess();
}
#define EXPECT_DRAINED(r) EXPECT_TRUE(drained(r))

// Copies of a batch's records: (data pointer, size).
template <class Batch>
std::vector<std::span<const std::byte>> records_of(const Batch& b) {
  std::vector<std::span<const std::byte>> out;
  for (std::span<const std::byte> rec : b) out.push_back(rec);
  return out;
}

// Caller storage: 8-byte aligned, pre-filled with a non-zero byte, with one spare word beyond
// `bytes` to catch writes past the end.
class caller_storage {
 public:
  explicit caller_storage(std::size_t bytes, unsigned char fill_byte = 0xA5)
      : words_(bytes / 8 + 2), bytes_(bytes) {
    std::memset(words_.data(), fill_byte, words_.size() * 8);
  }
  std::span<std::byte> span() { return {base(), bytes_}; }
  std::byte* base() { return reinterpret_cast<std::byte*>(words_.data()); }
  const std::byte* base() const { return reinterpret_cast<const std::byte*>(words_.data()); }
  std::uint64_t word_at(std::size_t index) const {
    std::uint64_t w;
    std::memcpy(&w, base() + index, 8);
    return w;
  }

 private:
  std::vector<std::uint64_t> words_;
  std::size_t bytes_;
};

constexpr std::uint64_t pad_flag = std::uint64_t{1} << 62;
constexpr std::uint64_t discard_flag = std::uint64_t{1} << 63;

// ============================================================================ the model harness
// A ring over caller storage paired with a reference model of the documented layout: records in
// reservation order (pads as their own entries), each pending, committed or discarded, and the
// byte cursors. Every operation predicts the outcome (success or failure, exact storage offset,
// batch contents and addresses) and checks it; check() verifies size_approx(), in_flight(), every
// header word still in the ring and that every free byte is 0. Or a ring over its own mirrored
// storage: then no record skips a tail, and a record may run past the end of the storage into
// its second mapping (its bytes are checked through both).
template <class Ring>
class harness {
 public:
  using grant = typename Ring::grant;
  using batch = typename Ring::batch;
  enum class kind { pending, committed, discarded, pad };
  struct entry {
    std::size_t at;         // storage index of the header
    std::size_t footprint;  // bytes
    std::uint64_t seq;
    std::size_t length;  // reserved, then committed length
    kind k;
  };
  struct held {
    std::unique_ptr<grant> g;
    std::uint64_t seq;
  };

  explicit harness(std::size_t capacity)
      : store_(capacity), ring_(store_.span()), cap_(ring_.capacity()), base_(store_.base()) {}

  // Over mirrored storage. The storage is found with a first reservation, withdrawn and stepped
  // over by a read, which leaves both cursors at 8.
  harness(sluice::mirrored_t, std::size_t capacity)
      : store_(0), ring_(sluice::mirrored, capacity), cap_(ring_.capacity()), mirrored_(true) {
    EXPECT_TRUE(ring_.mirrored());
    grant g = ring_.try_reserve(0);
    base_ = g.data() - 8;
    g.discard();
    batch b = ring_.try_read();
    EXPECT_FALSE(b);
    head_ = tail_ = 8;
  }

  Ring& ring() { return ring_; }
  std::byte* base() { return base_; }
  std::size_t capacity() const { return cap_; }
  std::size_t tail() const { return tail_; }
  std::size_t head() const { return head_; }
  std::size_t used() const { return used_; }
  std::size_t held_count() const { return held_.size(); }
  std::size_t held_size(std::size_t i) const { return find(held_[i].seq).length; }
  bool batch_open() const { return open_; }
  std::size_t last_at() const { return last_at_; }  // header index of the last reservation
  std::size_t pads() const { return pads_; }        // reservations that skipped the tail
  std::size_t seam_records() const { return seam_records_; }  // mirrored: records read across the end
  std::size_t batch_size() const { return open_records_; }

  // Storage index of the header a reservation of n bytes gets now, or nullopt if it must fail.
  std::optional<std::size_t> predict(std::size_t n) const {
    const std::size_t f = footprint_of(n);
    const std::size_t room = end() - tail_;
    const std::size_t pad = f <= room ? 0 : room;
    if (used_ + pad + f > cap_) return std::nullopt;
    return pad ? 0 : tail_;
  }

  // try_reserve(n) checked against the model; the grant is filled and held. Returns success.
  bool reserve(std::size_t n) {
    const std::optional<std::size_t> where = predict(n);
    const std::size_t before = ring_.size_approx();
    grant g = ring_.try_reserve(n);
    if (!where) {
      EXPECT_FALSE(g) << "reserve(" << n << ") should fail: used " << used_ << " tail " << tail_;
      EXPECT_EQ(g.size(), 0u);
      EXPECT_EQ(g.data(), nullptr);
      EXPECT_EQ(ring_.size_approx(), before);
      return false;
    }
    EXPECT_TRUE(g) << "reserve(" << n << ") should succeed at " << *where << ": used " << used_ << " tail "
                   << tail_;
    if (!g) return false;
    EXPECT_EQ(g.size(), n);
    EXPECT_EQ(g.span().size(), n);
    EXPECT_EQ(g.span().data(), g.data());
    EXPECT_TRUE(aligned8(g.data()));
    EXPECT_EQ(g.data(), base() + *where + 8) << "reserve(" << n << ")";
    EXPECT_GE(g.data(), base());
    EXPECT_LE(g.data() + g.size(), base() + end());
    const std::size_t f = footprint_of(n);
    if (*where != tail_) {
      entries_.push_back({tail_, cap_ - tail_, 0, 0, kind::pad});
      ++pads_;
      used_ += cap_ - tail_;
    }
    const std::uint64_t seq = next_seq_++;
    entries_.push_back({*where, f, seq, n, kind::pending});
    last_at_ = *where;
    used_ += f;
    tail_ = (*where + f) % cap_;
    fill(g.span(), seq);
    held_.push_back({std::make_unique<grant>(std::move(g)), seq});
    return true;
  }

  // Ends held grant i by commit(k) (k == npos: commit()).
  void commit(std::size_t i, std::size_t k = npos) {
    entry& e = find(held_[i].seq);
    grant& g = *held_[i].g;
    if (k == npos) {
      g.commit();
      k = e.length;
    } else {
      g.commit(k);
    }
    EXPECT_FALSE(g);
    EXPECT_EQ(g.size(), 0u);
    EXPECT_EQ(g.data(), nullptr);
    e.length = k;
    e.k = kind::committed;
    forget(i);
  }
  // commit(k > size()) throws and leaves the grant as it was.
  void commit_too_much(std::size_t i, std::size_t extra) {
    const entry& e = find(held_[i].seq);
    grant& g = *held_[i].g;
    std::byte* const data = g.data();
    EXPECT_THROW(g.commit(e.length + extra), std::out_of_range);
    EXPECT_TRUE(g);
    EXPECT_EQ(g.size(), e.length);
    EXPECT_EQ(g.data(), data);
  }
  void discard(std::size_t i) {
    grant& g = *held_[i].g;
    g.discard();
    EXPECT_FALSE(g);
    find(held_[i].seq).k = kind::discarded;
    forget(i);
  }
  // Destroys held grant i without committing: withdraws it.
  void destroy(std::size_t i) {
    held_[i].g.reset();
    find(held_[i].seq).k = kind::discarded;
    forget(i);
  }
  // held[dst] = std::move(held[src]): dst's reservation is withdrawn, dst takes src's.
  void move_assign(std::size_t dst, std::size_t src) {
    grant& d = *held_[dst].g;
    grant& s = *held_[src].g;
    std::byte* const data = s.data();
    const std::size_t size = s.size();
    d = std::move(s);
    EXPECT_FALSE(s);
    EXPECT_EQ(s.data(), nullptr);
    EXPECT_EQ(s.size(), 0u);
    EXPECT_TRUE(d);
    EXPECT_EQ(d.data(), data);
    EXPECT_EQ(d.size(), size);
    find(held_[dst].seq).k = kind::discarded;
    held_[dst].seq = held_[src].seq;
    forget(src);
  }

  // try_read() checked against the model; a non-empty batch stays open.
  void read() {
    ASSERT_FALSE(open_);
    std::size_t scanned = 0, records = 0;
    for (const entry& e : entries_) {
      if (e.k == kind::pending) break;
      ++scanned;
      if (e.k == kind::committed) ++records;
    }
    batch b = ring_.try_read();
    if (records == 0) {
      EXPECT_FALSE(b) << "expected an empty batch";
      EXPECT_EQ(b.size(), 0u);
      EXPECT_TRUE(b.empty());
      pop(scanned);  // skipped tails and withdrawn records are freed at once
      return;
    }
    EXPECT_TRUE(b);
    EXPECT_EQ(b.size(), records);
    open_ = true;
    open_scanned_ = scanned;
    open_records_ = records;
    batch_ = std::move(b);
    verify_batch();
  }
  // The open batch holds exactly the model's records, in place, in order.
  void verify_batch() {
    ASSERT_TRUE(open_);
    EXPECT_EQ(batch_.size(), open_records_);
    auto it = batch_.begin();
    std::size_t seen = 0;
    for (std::size_t i = 0; i < open_scanned_; ++i) {
      const entry& e = entries_[i];
      if (e.k != kind::committed) continue;
      ASSERT_NE(it, batch_.end()) << "batch ends after " << seen << " records";
      const std::span<const std::byte> rec = *it;
      EXPECT_EQ(rec.data(), base() + e.at + 8) << "record #" << e.seq;
      EXPECT_TRUE(aligned8(rec.data()));
      EXPECT_GE(rec.data(), base());
      EXPECT_LE(rec.data() + rec.size(), base() + end());
      EXPECT_TRUE(holds(rec, e.seq, e.length));
      if (mirrored_) {  // the same bytes through the first mapping, from the start past the end
        for (std::size_t j = 0; j < e.length; ++j)
          if (base_[(e.at + 8 + j) % cap_] != pattern(e.seq, j)) {
            ADD_FAILURE() << "record #" << e.seq << " byte " << j << " differs through the first mapping";
            break;
          }
        if (e.at + 8 + e.length > cap_) ++seam_records_;
      }
      ++it;
      ++seen;
    }
    EXPECT_EQ(it, batch_.end());
    EXPECT_EQ(seen, open_records_);
  }
  void release_all() {
    ASSERT_TRUE(open_);
    batch_.release();
    after_release(open_scanned_);
  }
  void release(std::size_t k) {
    ASSERT_TRUE(open_);
    batch_.release(k);
    if (k == open_records_) return after_release(open_scanned_);
    std::size_t n = 0;
    for (std::size_t records = 0; records < k; ++n)
      if (entries_[n].k == kind::committed) ++records;
    after_release(n);
  }
  // release(k > size()) throws; the batch is unchanged and still open.
  void release_too_many(std::size_t extra) {
    ASSERT_TRUE(open_);
    EXPECT_THROW(batch_.release(open_records_ + extra), std::out_of_range);
    EXPECT_TRUE(batch_);
    verify_batch();
    EXPECT_THROW((void)ring_.try_read(), std::logic_error);
  }
  // Drops the batch: nothing is freed.
  void drop() {
    ASSERT_TRUE(open_);
    batch_ = batch();
    open_ = false;
  }
  void expect_read_throws() {
    ASSERT_TRUE(open_);
    EXPECT_THROW((void)ring_.try_read(), std::logic_error);
  }

  // Everything observable matches the model.
  void check() {
    EXPECT_EQ(ring_.size_approx(), used_);
    EXPECT_EQ(ring_.in_flight(), held_.size());
    EXPECT_LE(ring_.size_approx(), cap_);
    // Header words of everything still in the ring, as documented.
    for (const entry& e : entries_) {
      const std::uint64_t w = word_at(e.at);
      const std::uint64_t fp = std::uint64_t{e.footprint / 8} << 32;
      switch (e.k) {
        case kind::pending:
          EXPECT_EQ(w, 0u) << "header of in-flight record #" << e.seq << " at " << e.at;
          break;
        case kind::committed:
          EXPECT_EQ(w, fp | e.length) << "header of record #" << e.seq << " at " << e.at;
          break;
        case kind::discarded:
          EXPECT_EQ(w & ~std::uint64_t{0xffffffffu}, fp | discard_flag) << "discarded #" << e.seq;
          break;
        case kind::pad:
          EXPECT_EQ(w, fp | pad_flag) << "pad at " << e.at;
          break;
      }
    }
    // Free bytes read 0 (the consumer zeroes what it releases).
    std::size_t idx = tail_;
    for (std::size_t i = used_; i < cap_; ++i) {
      if (base_[idx] != std::byte{0}) {
        ADD_FAILURE() << "free byte " << idx << " is " << static_cast<int>(base_[idx]);
        break;
      }
      if (++idx == cap_) idx = 0;
    }
    // Nothing past capacity() was touched (over mirrored storage, that is the first byte again).
    if (!mirrored_) {
      EXPECT_EQ(store_.base()[cap_], std::byte{0xA5});
    }
  }

  // Commits every held grant, reads and releases everything, then expects an empty ring.
  void drain() {
    if (open_) release_all();
    while (!held_.empty()) commit(held_.size() - 1);
    for (int guard = 0; !entries_.empty() && guard < 4; ++guard) {
      read();
      if (open_) release_all();
    }
    EXPECT_TRUE(entries_.empty());
    check();
    EXPECT_DRAINED(ring_);
  }

  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

 private:
  entry& find(std::uint64_t seq) {
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
      if (it->k != kind::pad && it->seq == seq) return *it;
    throw std::logic_error("harness: unknown record");
  }
  const entry& find(std::uint64_t seq) const { return const_cast<harness*>(this)->find(seq); }
  // One past the last index a record may reach: over mirrored storage, into the second mapping.
  std::size_t end() const { return mirrored_ ? 2 * cap_ : cap_; }
  std::uint64_t word_at(std::size_t index) const {
    std::uint64_t w;
    std::memcpy(&w, base_ + index, 8);
    return w;
  }
  void forget(std::size_t i) {
    std::swap(held_[i], held_.back());
    held_.pop_back();
  }
  void pop(std::size_t n) {
    for (; n != 0; --n) {
      head_ = (head_ + entries_.front().footprint) % cap_;
      used_ -= entries_.front().footprint;
      entries_.pop_front();
    }
  }
  void after_release(std::size_t entries) {
    EXPECT_FALSE(batch_);
    EXPECT_EQ(batch_.size(), 0u);
    open_ = false;
    pop(entries);
  }

  caller_storage store_;
  Ring ring_;
  std::size_t cap_;
  std::deque<entry> entries_;
  std::vector<held> held_;  // after ring_: destroyed first
  batch batch_;
  bool open_ = false;
  std::size_t open_scanned_ = 0, open_records_ = 0;
  std::size_t head_ = 0, tail_ = 0, used_ = 0;
  std::uint64_t next_seq_ = 1;
  std::size_t last_at_ = 0;
  std::size_t pads_ = 0;
  std::byte* base_ = nullptr;  // the storage's start
  bool mirrored_ = false;
  std::size_t seam_records_ = 0;
};

template <class Ring>
class RecordRing : public ::testing::Test {};

using ring_types = ::testing::Types<spsc_record_ring, mpsc_record_ring>;
struct ring_names {
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, spsc_record_ring> ? "spsc" : "mpsc";
  }
};
TYPED_TEST_SUITE(RecordRing, ring_types, ring_names);

// ============================================================================ construction

// Owned storage: capacity() is the request rounded down to a multiple of 8; a new ring is empty.
TYPED_TEST(RecordRing, OwnedCapacityRoundsDownToMultipleOf8) {
  for (std::size_t n = 32; n <= 300; ++n) {
    TypeParam r(n);
    EXPECT_EQ(r.capacity(), n / 8 * 8) << n;
    EXPECT_EQ(r.capacity() % 8, 0u);
    EXPECT_EQ(r.size_approx(), 0u);
    EXPECT_EQ(r.in_flight(), 0u);
    EXPECT_DRAINED(r);
  }
  TypeParam big(4096 + 7);
  EXPECT_EQ(big.capacity(), 4096u);
  EXPECT_DRAINED(big);
}

// Capacities below 32 throw std::invalid_argument, above 2^31 std::length_error, for owned and
// caller storage, before allocating or touching anything.
TYPED_TEST(RecordRing, ConstructionRejectsBadCapacities) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{8}, std::size_t{24}, std::size_t{31}})
    EXPECT_THROW(TypeParam r(n), std::invalid_argument) << n;
  const std::size_t max = std::size_t{1} << 31;
  for (std::size_t n : {max + 1, max + 7, max + 8, max * 2, std::numeric_limits<std::size_t>::max()})
    EXPECT_THROW(TypeParam r(n), std::length_error) << n;

  alignas(8) std::array<std::byte, 31> small{};
  small.fill(std::byte{0x5A});
  EXPECT_THROW(TypeParam r{std::span<std::byte>(small)}, std::invalid_argument);
  EXPECT_THROW(TypeParam r{std::span<std::byte>(small.data(), 0)}, std::invalid_argument);
  for (std::byte b : small) EXPECT_EQ(b, std::byte{0x5A});

  // The smallest ring works.
  TypeParam r(32);
  EXPECT_EQ(r.capacity(), 32u);
  EXPECT_DRAINED(r);
}

// Caller storage: the constructor zeroes exactly capacity() bytes (the rounded-down size), the
// grants and the consumer's spans point into it, and nothing past capacity() is ever written.
TYPED_TEST(RecordRing, CallerStorageIsZeroedAndUsedInPlace) {
  alignas(8) std::array<std::byte, 203> buf;
  buf.fill(std::byte{0xFF});
  {
    TypeParam r{std::span<std::byte>(buf)};
    ASSERT_EQ(r.capacity(), 200u);
    for (std::size_t i = 0; i < 200; ++i) ASSERT_EQ(buf[i], std::byte{0}) << i;
    for (std::size_t i = 200; i < buf.size(); ++i) EXPECT_EQ(buf[i], std::byte{0xFF}) << i;

    std::uint64_t seq = 0;
    for (int round = 0; round < 40; ++round) {
      const std::size_t n = (static_cast<std::size_t>(round) * 13) % (r.max_record_size() + 1);
      auto g = r.try_reserve(n);
      ASSERT_TRUE(g);
      EXPECT_GE(g.data(), buf.data());
      EXPECT_LE(g.data() + g.size(), buf.data() + 200);
      EXPECT_TRUE(aligned8(g.data()));
      fill(g.span(), seq);
      std::byte* const where = g.data();
      g.commit();
      auto b = r.try_read();
      ASSERT_EQ(b.size(), 1u);
      const auto rec = *b.begin();
      EXPECT_EQ(rec.data(), where);
      EXPECT_TRUE(holds(rec, seq, n));
      b.release();
      ++seq;
    }
    // Forty records later, the bytes past capacity() are still untouched.
    for (std::size_t i = 200; i < buf.size(); ++i) EXPECT_EQ(buf[i], std::byte{0xFF}) << i;
    EXPECT_DRAINED(r);
  }
  // A fresh ring over dirty storage starts at its beginning.
  buf.fill(std::byte{0x77});
  TypeParam r{std::span<std::byte>(buf.data(), 64)};
  EXPECT_EQ(r.capacity(), 64u);
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(buf[i], std::byte{0}) << i;
  EXPECT_EQ(buf[64], std::byte{0x77});
  {
    auto g = r.try_reserve(5);
    ASSERT_TRUE(g);
    EXPECT_EQ(g.data(), buf.data() + 8);
    g.commit();
  }
  auto b = r.try_read();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ((*b.begin()).data(), buf.data() + 8);
  EXPECT_EQ((*b.begin()).size(), 5u);
  b.release();
  EXPECT_DRAINED(r);
}

// Caller storage that does not start at an 8-byte boundary throws std::invalid_argument and is
// left as it was.
TYPED_TEST(RecordRing, MisalignedCallerStorageThrows) {
  alignas(8) std::array<std::byte, 256> buf;
  buf.fill(std::byte{0x3C});
  for (std::size_t off = 1; off < 8; ++off) {
    EXPECT_THROW(TypeParam r(std::span<std::byte>(buf.data() + off, 200)), std::invalid_argument) << off;
  }
  for (std::byte b : buf) ASSERT_EQ(b, std::byte{0x3C});
  TypeParam r{std::span<std::byte>(buf.data() + 8, 200)};  // aligned again: fine
  EXPECT_EQ(r.capacity(), 200u);
  EXPECT_DRAINED(r);
}

// max_record_size() is exactly (capacity+8)/16*8 - 8 (half the capacity rounded up to 8 bytes,
// less the header) for every capacity (owned storage rounds first), matches the documented
// examples, and is at least a quarter of the capacity.
TYPED_TEST(RecordRing, MaxRecordSizeFormula) {
  alignas(8) static std::array<std::byte, 4096 + 8> buf;
  for (std::size_t n = 32; n <= 4096 + 7; ++n) {
    TypeParam r{std::span<std::byte>(buf.data(), n)};
    const std::size_t cap = n / 8 * 8;
    ASSERT_EQ(r.capacity(), cap);
    ASSERT_EQ(r.max_record_size(), (cap + 8) / 16 * 8 - 8) << "capacity " << cap;
    EXPECT_GE(r.max_record_size(), cap / 4) << "capacity " << cap;
  }
  EXPECT_EQ(TypeParam(32).max_record_size(), 8u);
  EXPECT_EQ(TypeParam(40).max_record_size(), 16u);
  EXPECT_EQ(TypeParam(48).max_record_size(), 16u);
  EXPECT_EQ(TypeParam(4096).max_record_size(), 2040u);
  EXPECT_EQ(TypeParam(4100).max_record_size(), 2040u);
  TypeParam mib(std::size_t{1} << 20);
  EXPECT_EQ(mib.max_record_size(), 524280u);
  EXPECT_DRAINED(mib);
}

// ============================================================================ try_reserve

// A grant has exactly n bytes at an 8-byte-aligned address, span() == {data(), size()}; the
// consumer receives exactly those bytes. Owned storage.
TYPED_TEST(RecordRing, ReserveExactSizeAligned) {
  TypeParam r(256);
  std::uint64_t seq = 0;
  for (std::size_t n = 0; n <= r.max_record_size(); ++n, ++seq) {
    auto g = r.try_reserve(n);
    ASSERT_TRUE(g) << n;
    EXPECT_FALSE(g.empty());
    EXPECT_EQ(g.size(), n);
    EXPECT_EQ(g.span().size(), n);
    EXPECT_EQ(g.span().data(), g.data());
    ASSERT_NE(g.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(g.data()) % 8, 0u) << n;
    EXPECT_EQ(r.in_flight(), 1u);
    // The footprint, plus a skipped tail (shorter than the footprint) when the record wrapped.
    const std::size_t used = r.size_approx();
    EXPECT_TRUE(used == footprint_of(n) || (used > footprint_of(n) && used < 2 * footprint_of(n)))
        << "size_approx() " << used << " for a footprint of " << footprint_of(n);
    EXPECT_EQ(used % 8, 0u);
    fill(g.span(), seq);
    g.commit();
    EXPECT_EQ(r.in_flight(), 0u);
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*b.begin()).data()) % 8, 0u);
    EXPECT_TRUE(holds(*b.begin(), seq, n));
    b.release();
    EXPECT_EQ(r.size_approx(), 0u);
  }
  EXPECT_DRAINED(r);
}

// n > max_record_size() throws std::length_error whose message names the limit (and the
// request), and changes nothing: size_approx(), in_flight(), a live grant, and where the next
// reservation lands.
TYPED_TEST(RecordRing, ReserveTooLargeThrowsAndChangesNothing) {
  harness<TypeParam> h(128);
  auto& r = h.ring();
  const std::size_t max = r.max_record_size();
  ASSERT_EQ(max, 56u);
  // Move the cursors off 0, and hold a grant across the failure.
  ASSERT_TRUE(h.reserve(13));
  h.commit(0);
  h.read();
  h.release_all();
  ASSERT_TRUE(h.reserve(3));
  h.check();
  const std::size_t approx = r.size_approx(), flight = r.in_flight();
  for (std::size_t n : {max + 1, max + 8, std::size_t{1000}, std::size_t{1} << 40,
                        std::numeric_limits<std::size_t>::max()}) {
    try {
      (void)r.try_reserve(n);
      ADD_FAILURE() << "try_reserve(" << n << ") did not throw";
    } catch (const std::length_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::to_string(max)), std::string::npos) << what;
      EXPECT_NE(what.find(std::to_string(n)), std::string::npos) << what;
    } catch (...) {
      ADD_FAILURE() << "try_reserve(" << n << ") threw something other than std::length_error";
    }
    EXPECT_EQ(r.size_approx(), approx);
    EXPECT_EQ(r.in_flight(), flight);
  }
  h.check();
  // The next reservations land exactly where they would have (checked by the harness).
  ASSERT_TRUE(h.reserve(max));
  ASSERT_TRUE(h.reserve(0));
  h.commit(1);
  h.commit(0);
  h.commit(0);
  h.check();
  h.drain();
}

// On an EMPTY ring a reservation of exactly max_record_size() succeeds wherever the cursors
// stand: the cursors are walked (by records of various sizes, committed and read) to every
// 8-byte offset of small rings, including capacities that are not multiples of 16; the harness
// checks where the record lands (in the tail, or at 0 behind a PAD) and its bytes.
TYPED_TEST(RecordRing, MaxRecordFitsEmptyRingAtEveryOffset) {
  for (std::size_t cap : {32, 40, 48, 56, 64, 72, 88, 96, 104, 128, 136, 200, 256}) {
    for (std::size_t target = 0; target < cap; target += 8) {
      SCOPED_TRACE("capacity " + std::to_string(cap) + " offset " + std::to_string(target));
      harness<TypeParam> h(cap);
      const std::size_t max = h.ring().max_record_size();
      const std::size_t max_fp = footprint_of(max);
      // A warm-up lap of mixed sizes (some discarded), read as it goes.
      std::size_t seq = 0;
      for (std::size_t moved = 0; moved < cap + 8 * (target / 8 % 3);) {
        const std::size_t n = (seq * 5 + target) % (max + 1);
        const std::size_t before = h.tail();
        ASSERT_TRUE(h.reserve(n));
        moved += (h.tail() + cap - before) % cap;  // footprint (+ padding): never 0 or cap
        if (seq % 4 == 3) {
          h.discard(0);
        } else {
          h.commit(0, seq % 2 ? n : n / 2);
        }
        h.read();
        if (h.batch_open()) h.release_all();
        ++seq;
      }
      // Then step to the target with records that never need padding.
      while (h.tail() != target) {
        const std::size_t d = (target + cap - h.tail()) % cap;
        const std::size_t f = std::min({d, max_fp, cap - h.tail()});
        const std::size_t n = f - 8 - (f > 8 ? seq % 7 : 0);
        ASSERT_TRUE(h.reserve(n));
        h.commit(0);
        h.read();
        h.release_all();
        ++seq;
      }
      ASSERT_EQ(h.used(), 0u);
      ASSERT_EQ(h.head(), target);
      h.check();
      ASSERT_EQ(h.ring().size_approx(), 0u);
      // The claim under test.
      ASSERT_TRUE(h.predict(max).has_value());
      ASSERT_TRUE(h.reserve(max));
      h.check();
      h.commit(0);
      h.read();
      h.release_all();
      // And once more from wherever that left the cursors.
      ASSERT_TRUE(h.reserve(max));
      h.commit(0);
      h.drain();
    }
  }
}

// A full ring returns an empty, contextually false grant and changes nothing; in particular a
// failed reservation that would have needed padding writes no PAD (the next small record still
// lands in that tail and stays invisible until committed).
TYPED_TEST(RecordRing, FullReturnsEmptyGrantAndChangesNothing) {
  caller_storage store(64);
  TypeParam r(store.span());
  ASSERT_EQ(r.max_record_size(), 24u);
  // A (16 -> 24 bytes at 0), B (0 -> 8 at 24), C (16 -> 24 at 32): tail at 56.
  auto a = r.try_reserve(16);
  auto b = r.try_reserve(0);
  auto c = r.try_reserve(16);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a.data(), store.base() + 8);
  EXPECT_EQ(b.data(), store.base() + 32);
  EXPECT_EQ(c.data(), store.base() + 40);
  fill(a.span(), 1);
  fill(c.span(), 3);
  a.commit();
  {
    auto batch = r.try_read();
    ASSERT_EQ(batch.size(), 1u);
    batch.release();  // head at 24; 32 bytes in use
  }
  EXPECT_EQ(r.size_approx(), 32u);
  // 24 bytes (footprint 32) need the 8-byte tail skipped: 8 + 32 + 32 > 64.
  {
    auto full = r.try_reserve(24);
    EXPECT_FALSE(full);
    EXPECT_TRUE(full.empty());
    EXPECT_EQ(full.size(), 0u);
    EXPECT_EQ(full.data(), nullptr);
    EXPECT_TRUE(full.span().empty());
  }
  EXPECT_EQ(r.size_approx(), 32u);
  EXPECT_EQ(r.in_flight(), 2u);
  EXPECT_EQ(store.word_at(56), 0u) << "a failed reservation wrote a header";
  // The 8-byte tail is still free: a zero-length record goes there, not to 0.
  auto d = r.try_reserve(0);
  ASSERT_TRUE(d);
  EXPECT_EQ(d.data(), store.base() + 64);
  EXPECT_EQ(r.size_approx(), 40u);
  // Nothing is readable (B in flight); nothing but the ring's own bytes moved.
  EXPECT_FALSE(r.try_read());
  EXPECT_EQ(r.size_approx(), 40u);
  // Now only 24 bytes are free, at the start: 16 bytes (footprint 24) fit exactly, then nothing.
  auto e = r.try_reserve(16);
  ASSERT_TRUE(e);
  EXPECT_EQ(e.data(), store.base() + 8);
  fill(e.span(), 5);
  EXPECT_EQ(r.size_approx(), 64u);
  for (std::size_t n = 0; n <= r.max_record_size(); ++n) {
    auto g = r.try_reserve(n);
    EXPECT_FALSE(g) << n;
  }
  EXPECT_EQ(r.size_approx(), 64u);
  EXPECT_EQ(r.in_flight(), 4u);
  b.commit();
  c.commit();
  d.commit();
  e.commit();
  {
    auto batch = r.try_read();
    const auto recs = records_of(batch);
    ASSERT_EQ(recs.size(), 4u);
    EXPECT_TRUE(holds(recs[0], 2, 0));
    EXPECT_TRUE(holds(recs[1], 3, 16));
    EXPECT_TRUE(holds(recs[2], 4, 0));
    EXPECT_TRUE(holds(recs[3], 5, 16));
    batch.release();
  }
  EXPECT_DRAINED(r);
}

// ============================================================================ grants

// commit(k) publishes exactly the first k bytes; the record keeps its reserved footprint.
TYPED_TEST(RecordRing, CommitKShrinks) {
  TypeParam r(128);
  for (std::size_t k = 0; k <= 20; ++k) {
    auto g = r.try_reserve(20);
    ASSERT_TRUE(g);
    fill(g.span(), 100 + k);
    g.commit(k);
    EXPECT_FALSE(g);
    EXPECT_EQ(r.in_flight(), 0u);
    EXPECT_EQ(r.size_approx(), footprint_of(20));
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 1u);
    EXPECT_TRUE(holds(*b.begin(), 100 + k, k));
    b.release();
  }
  EXPECT_DRAINED(r);
}

// commit(k > size()) throws std::out_of_range and leaves the grant live and usable.
TYPED_TEST(RecordRing, CommitBeyondSizeThrowsGrantStillWorks) {
  TypeParam r(128);
  auto g = r.try_reserve(12);
  ASSERT_TRUE(g);
  fill(g.span(), 7);
  std::byte* const data = g.data();
  for (std::size_t k : {std::size_t{13}, std::size_t{16}, std::size_t{1000}, std::numeric_limits<std::size_t>::max()})
    EXPECT_THROW(g.commit(k), std::out_of_range) << k;
  EXPECT_TRUE(g);
  EXPECT_EQ(g.size(), 12u);
  EXPECT_EQ(g.data(), data);
  EXPECT_EQ(r.in_flight(), 1u);
  EXPECT_FALSE(r.try_read());  // still unpublished
  g.commit();
  auto b = r.try_read();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_TRUE(holds(*b.begin(), 7, 12));
  b.release();
  // An empty grant: commit()/commit(0)/discard() do nothing, commit(1) throws.
  typename TypeParam::grant none;
  EXPECT_FALSE(none);
  none.commit();
  none.commit(0);
  none.discard();
  EXPECT_THROW(none.commit(1), std::out_of_range);
  EXPECT_DRAINED(r);
}

// discard() and destruction without commit both withdraw the record: never delivered, space
// freed, in_flight() decremented.
TYPED_TEST(RecordRing, DiscardAndDestructionWithdraw) {
  TypeParam r(128);
  {
    auto g = r.try_reserve(10);
    ASSERT_TRUE(g);
    EXPECT_EQ(r.in_flight(), 1u);
    g.discard();
    EXPECT_FALSE(g);
    EXPECT_EQ(g.data(), nullptr);
    EXPECT_EQ(r.in_flight(), 0u);
    g.discard();  // idempotent
    g.commit();   // no-op on an ended grant
    EXPECT_EQ(r.in_flight(), 0u);
  }
  EXPECT_FALSE(r.try_read());
  EXPECT_EQ(r.size_approx(), 0u);
  {
    auto g = r.try_reserve(10);
    ASSERT_TRUE(g);
    fill(g.span(), 1);
    EXPECT_EQ(r.in_flight(), 1u);
  }  // destroyed without commit
  EXPECT_EQ(r.in_flight(), 0u);
  EXPECT_EQ(r.size_approx(), footprint_of(10));  // until the consumer steps over it
  EXPECT_FALSE(r.try_read());
  EXPECT_EQ(r.size_approx(), 0u);
  // Withdrawn records between committed ones are skipped.
  {
    auto a = r.try_reserve(3);
    auto x = r.try_reserve(4);
    auto c = r.try_reserve(5);
    fill(a.span(), 11);
    fill(c.span(), 13);
    a.commit();
    c.commit();
  }
  auto b = r.try_read();
  const auto recs = records_of(b);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(holds(recs[0], 11, 3));
  EXPECT_TRUE(holds(recs[1], 13, 5));
  b.release();
  EXPECT_DRAINED(r);
}

// Zero-length records are records: the grant is contextually true with size 0 and an aligned,
// non-null data(); the batch contains an empty span for each, in order; each takes 8 bytes.
TYPED_TEST(RecordRing, ZeroLengthRecordsAreRecords) {
  TypeParam r(64);
  auto z1 = r.try_reserve(0);
  ASSERT_TRUE(z1);
  EXPECT_FALSE(z1.empty());
  EXPECT_EQ(z1.size(), 0u);
  EXPECT_NE(z1.data(), nullptr);
  EXPECT_TRUE(aligned8(z1.data()));
  EXPECT_TRUE(z1.span().empty());
  auto mid = r.try_reserve(5);
  auto z2 = r.try_reserve(0);
  ASSERT_TRUE(mid && z2);
  EXPECT_EQ(r.size_approx(), 8u + 16u + 8u);
  fill(mid.span(), 9);
  z2.commit();
  mid.commit();
  z1.commit();
  auto b = r.try_read();
  ASSERT_EQ(b.size(), 3u);
  const auto recs = records_of(b);
  EXPECT_EQ(recs[0].size(), 0u);
  EXPECT_TRUE(holds(recs[1], 9, 5));
  EXPECT_EQ(recs[2].size(), 0u);
  b.release();
  // A batch of only zero-length records; a full ring of them.
  for (int i = 0; i < 8; ++i) {
    auto g = r.try_reserve(0);
    ASSERT_TRUE(g) << i;
    g.commit();
  }
  EXPECT_EQ(r.size_approx(), 64u);
  EXPECT_FALSE(r.try_reserve(0));
  auto all = r.try_read();
  EXPECT_EQ(all.size(), 8u);
  for (auto rec : all) EXPECT_TRUE(rec.empty());
  all.release();
  // A zero-length record committed with commit(0) as well.
  {
    auto g = r.try_reserve(0);
    g.commit(0);
  }
  auto one = r.try_read();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE((*one.begin()).empty());
  one.release();
  EXPECT_DRAINED(r);
}

template <class T>
void assign_from(T& to, T& from) {
  to = std::move(from);  // self-assignment when &to == &from, without a self-move warning
}

// Moving a grant transfers the reservation (moved-from is empty and false); move-assigning onto a
// live grant withdraws the target's reservation; self-move-assignment changes nothing.
TYPED_TEST(RecordRing, GrantMoves) {
  TypeParam r(256);
  auto a = r.try_reserve(7);
  ASSERT_TRUE(a);
  fill(a.span(), 1);
  std::byte* const a_data = a.data();
  typename TypeParam::grant moved(std::move(a));
  EXPECT_FALSE(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_TRUE(moved);
  EXPECT_EQ(moved.data(), a_data);
  EXPECT_EQ(moved.size(), 7u);
  EXPECT_EQ(r.in_flight(), 1u);
  a.commit();  // no-op on the moved-from grant
  a.discard();
  EXPECT_EQ(r.in_flight(), 1u);

  auto b = r.try_reserve(9);  // will be withdrawn by the move-assignment below
  auto c = r.try_reserve(11);
  ASSERT_TRUE(b && c);
  fill(b.span(), 2);
  fill(c.span(), 3);
  std::byte* const c_data = c.data();
  EXPECT_EQ(r.in_flight(), 3u);
  b = std::move(c);
  EXPECT_EQ(r.in_flight(), 2u);
  EXPECT_FALSE(c);
  EXPECT_EQ(c.data(), nullptr);
  EXPECT_TRUE(b);
  EXPECT_EQ(b.data(), c_data);
  EXPECT_EQ(b.size(), 11u);

  assign_from(b, b);
  EXPECT_TRUE(b);
  EXPECT_EQ(b.data(), c_data);
  EXPECT_EQ(r.in_flight(), 2u);

  // Assigning into an empty grant, and an empty grant onto a live one.
  typename TypeParam::grant d;
  d = std::move(moved);
  EXPECT_TRUE(d);
  EXPECT_EQ(d.data(), a_data);
  auto e = r.try_reserve(4);
  ASSERT_TRUE(e);
  e = typename TypeParam::grant();
  EXPECT_FALSE(e);
  EXPECT_EQ(r.in_flight(), 2u);

  b.commit();
  d.commit();
  auto batch = r.try_read();
  const auto recs = records_of(batch);
  ASSERT_EQ(recs.size(), 2u);  // a (7 bytes), c (11 bytes); b's and e's reservations withdrawn
  EXPECT_TRUE(holds(recs[0], 1, 7));
  EXPECT_TRUE(holds(recs[1], 3, 11));
  batch.release();
  EXPECT_DRAINED(r);
}

// ============================================================================ in-flight rule

// Several grants held at once and committed in every order: after each commit the consumer
// receives exactly the committed prefix (in reservation order) not yet read; in_flight() counts
// the outstanding grants exactly.
TYPED_TEST(RecordRing, CommitInAnyOrderDeliversInReservationOrder) {
  TypeParam r(256);
  std::array<int, 5> order{0, 1, 2, 3, 4};
  std::uint64_t base_seq = 0;
  do {
    std::array<typename TypeParam::grant, 5> g;
    const std::array<std::size_t, 5> sizes{3, 0, 17, 8, 9};
    for (std::size_t i = 0; i < 5; ++i) {
      g[i] = r.try_reserve(sizes[i]);
      ASSERT_TRUE(g[i]);
      fill(g[i].span(), base_seq + i);
      EXPECT_EQ(r.in_flight(), i + 1);
    }
    std::array<bool, 5> done{};
    std::size_t delivered = 0;
    for (std::size_t step = 0; step < 5; ++step) {
      const auto i = static_cast<std::size_t>(order[step]);
      g[i].commit();
      done[i] = true;
      EXPECT_EQ(r.in_flight(), 4 - step);
      std::size_t prefix = 0;
      while (prefix < 5 && done[prefix]) ++prefix;
      auto b = r.try_read();
      if (prefix == delivered) {
        EXPECT_FALSE(b);
        continue;
      }
      const auto recs = records_of(b);
      ASSERT_EQ(recs.size(), prefix - delivered);
      for (std::size_t j = 0; j < recs.size(); ++j)
        EXPECT_TRUE(holds(recs[j], base_seq + delivered + j, sizes[delivered + j]));
      b.release();
      delivered = prefix;
    }
    EXPECT_EQ(delivered, 5u);
    base_seq += 5;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_DRAINED(r);
}

// A reserved-but-uncommitted record holds back the records reserved after it, and only those.
TYPED_TEST(RecordRing, InFlightHoldsBackOnlyLaterRecords) {
  TypeParam r(256);
  auto a = r.try_reserve(4);
  fill(a.span(), 1);
  a.commit();
  auto b = r.try_reserve(5);  // stays in flight
  fill(b.span(), 2);
  auto c = r.try_reserve(6);
  fill(c.span(), 3);
  c.commit();
  EXPECT_EQ(r.in_flight(), 1u);
  {
    auto batch = r.try_read();
    const auto recs = records_of(batch);
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_TRUE(holds(recs[0], 1, 4));
    batch.release();
  }
  EXPECT_FALSE(r.try_read());  // c is held back by b
  EXPECT_EQ(r.size_approx(), footprint_of(5) + footprint_of(6));
  b.commit();
  {
    auto batch = r.try_read();
    const auto recs = records_of(batch);
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_TRUE(holds(recs[0], 2, 5));
    EXPECT_TRUE(holds(recs[1], 3, 6));
    batch.release();
  }
  EXPECT_DRAINED(r);
}

// Reserve A, B, C; discard B; commit C, then A: the batch is A, C.
TYPED_TEST(RecordRing, DiscardInTheMiddleOfInFlightRecords) {
  TypeParam r(128);
  auto a = r.try_reserve(10);
  auto b = r.try_reserve(20);
  auto c = r.try_reserve(30);
  ASSERT_TRUE(a && b && c);
  fill(a.span(), 1);
  fill(b.span(), 2);
  fill(c.span(), 3);
  EXPECT_EQ(r.in_flight(), 3u);
  b.discard();
  EXPECT_EQ(r.in_flight(), 2u);
  EXPECT_FALSE(r.try_read());
  c.commit();
  EXPECT_FALSE(r.try_read());  // A still holds everything back
  a.commit();
  auto batch = r.try_read();
  const auto recs = records_of(batch);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(holds(recs[0], 1, 10));
  EXPECT_TRUE(holds(recs[1], 3, 30));
  batch.release();
  EXPECT_DRAINED(r);
}

// ============================================================================ the wrap

// Sizes 0..40 in sequence, lap after lap, through small rings (capacities 96 and 128): every
// record is one contiguous, 8-aligned span inside the storage at the predicted place, and every
// byte arrives. Once with one record at a time, once keeping up to three grants in flight and
// committing them newest first.
TYPED_TEST(RecordRing, EveryAlignmentOffsetAcrossTheWrap) {
  for (std::size_t cap : {96, 128}) {
    for (bool several : {false, true}) {
      SCOPED_TRACE("capacity " + std::to_string(cap) + (several ? " several" : " one"));
      harness<TypeParam> h(cap);
      const std::size_t max = h.ring().max_record_size();
      ASSERT_GE(max, 40u);
      std::vector<bool> seen(cap / 8);  // a record header was at offset [i * 8]
      std::size_t at_end = 0;           // records whose footprint ends exactly at the storage end
      for (int lap = 0; lap < 40; ++lap) {
        // A lap-dependent number of 8-byte records first shifts the phase of the sweep.
        for (int i = 0; i < lap % 13; ++i) {
          if (!h.reserve(0)) {
            while (h.held_count() != 0) h.commit(h.held_count() - 1);
            h.read();
            if (h.batch_open()) h.release_all();
            ASSERT_TRUE(h.reserve(0));
          }
          seen[h.last_at() / 8] = true;
          if (h.last_at() + 8 == cap) ++at_end;
          h.commit(h.held_count() - 1);
        }
        for (std::size_t n = 0; n <= 40; ++n) {
          if (!h.reserve(n)) {
            // Full: commit what is held, read everything; then it must fit.
            while (h.held_count() != 0) h.commit(h.held_count() - 1);
            h.read();
            if (h.batch_open()) h.release_all();
            h.check();
            ASSERT_TRUE(h.reserve(n)) << "lap " << lap << " n " << n;
          }
          seen[h.last_at() / 8] = true;
          if (h.last_at() + footprint_of(n) == cap) ++at_end;
          if (!several || h.held_count() == 3) {
            while (h.held_count() != 0) h.commit(h.held_count() - 1);
          }
          if (n % 3 == 0) {
            h.read();
            if (h.batch_open()) h.release_all();
          }
          h.check();
          if (::testing::Test::HasFailure()) return;
        }
      }
      // Every 8-byte offset of the storage held a record header; records ended exactly at the
      // storage end, and others skipped the tail (padding).
      for (std::size_t at = 0; at < cap / 8; ++at) EXPECT_TRUE(seen[at]) << "no record at offset " << at * 8;
      EXPECT_GT(at_end, 0u);
      EXPECT_GT(h.pads(), 0u);
      h.drain();
    }
  }
}

// The same sweep on owned storage: all grants and records are 8-aligned and intact.
template <class Ring>
void alignment_sweep(Ring& r, int laps) {
  std::deque<std::pair<std::uint64_t, std::size_t>> expected;
  std::uint64_t seq = 0;
  auto read_all = [&] {
    auto b = r.try_read();
    for (auto rec : b) {
      ASSERT_FALSE(expected.empty());
      EXPECT_TRUE(aligned8(rec.data()));
      EXPECT_TRUE(holds(rec, expected.front().first, expected.front().second));
      expected.pop_front();
    }
    b.release();
  };
  for (int lap = 0; lap < laps; ++lap) {
    for (std::size_t n = 0; n <= 40; ++n) {
      auto g = r.try_reserve(n);
      if (!g) {
        read_all();
        g = r.try_reserve(n);
      }
      ASSERT_TRUE(g);
      EXPECT_TRUE(aligned8(g.data()));
      fill(g.span(), seq);
      g.commit();
      expected.emplace_back(seq++, n);
    }
  }
  read_all();
  EXPECT_TRUE(expected.empty());
  EXPECT_DRAINED(r);
}

TYPED_TEST(RecordRing, OwnedStorageAlignmentAcrossTheWrap) {
  TypeParam r(96);
  alignment_sweep(r, 10);
}

// And over mirrored storage (one page), for about 30 laps of it: records that run past the end
// of the storage are aligned and intact too.
TYPED_TEST(RecordRing, MirroredStorageAlignmentAcrossTheSeam) {
  TypeParam r(sluice::mirrored, 96);
  ASSERT_TRUE(r.mirrored());
  alignment_sweep(r, 100);
}

// ============================================================================ batches

// A batch iterates (range-for, repeatedly, and with the iterator directly) over the same records;
// size() counts them; release() frees all of them.
TYPED_TEST(RecordRing, BatchIterationAndReleaseAll) {
  TypeParam r(256);
  const std::array<std::size_t, 4> sizes{5, 0, 16, 33};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto g = r.try_reserve(sizes[i]);
    fill(g.span(), i);
    g.commit();
  }
  const std::size_t used = r.size_approx();
  EXPECT_EQ(used, 16u + 8u + 24u + 48u);
  auto b = r.try_read();
  ASSERT_TRUE(b);
  EXPECT_FALSE(b.empty());
  ASSERT_EQ(b.size(), 4u);
  const auto first = records_of(b);
  const auto second = records_of(b);
  ASSERT_EQ(first.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(holds(first[i], i, sizes[i]));
    EXPECT_EQ(first[i].data(), second[i].data());
    EXPECT_EQ(first[i].size(), second[i].size());
  }
  EXPECT_EQ(std::distance(b.begin(), b.end()), 4);
  auto it = b.begin();
  auto old = it++;
  EXPECT_EQ((*old).data(), first[0].data());
  EXPECT_EQ((*it).data(), first[1].data());
  EXPECT_EQ(r.size_approx(), used);  // reading frees nothing
  b.release();
  EXPECT_FALSE(b);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.begin(), b.end());
  EXPECT_EQ(r.size_approx(), 0u);
  b.release();  // a second release does nothing
  EXPECT_DRAINED(r);
}

// release(k) frees the first k records; the rest come again, in place, in the next try_read.
// release(0) frees nothing.
TYPED_TEST(RecordRing, BatchReleaseK) {
  TypeParam r(256);
  for (std::uint64_t i = 0; i < 6; ++i) {
    auto g = r.try_reserve(i * 3);
    fill(g.span(), i);
    g.commit();
  }
  std::vector<std::span<const std::byte>> all;
  {
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 6u);
    all = records_of(b);
    b.release(0);
    EXPECT_FALSE(b);
  }
  EXPECT_EQ(r.size_approx(), 8u + 16u + 16u + 24u + 24u + 24u);
  {
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 6u);
    b.release(2);
    EXPECT_FALSE(b);
    EXPECT_EQ(b.size(), 0u);
  }
  EXPECT_EQ(r.size_approx(), 16u + 24u + 24u + 24u);
  {
    auto b = r.try_read();
    const auto recs = records_of(b);
    ASSERT_EQ(recs.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(recs[i].data(), all[i + 2].data());
      EXPECT_TRUE(holds(recs[i], i + 2, (i + 2) * 3));
    }
    b.release(3);
  }
  {
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 1u);
    EXPECT_TRUE(holds(*b.begin(), 5, 15));
    b.release(1);  // == size(): same as release()
  }
  EXPECT_DRAINED(r);
}

// release(k) with discarded records between the released ones and the rest: the withdrawn
// record after the k-th is not lost track of, and the rest arrive intact.
TYPED_TEST(RecordRing, BatchReleaseKAcrossDiscardsAndTheWrap) {
  harness<TypeParam> h(128);
  for (int round = 0; round < 30; ++round) {
    ASSERT_TRUE(h.reserve(5));
    ASSERT_TRUE(h.reserve(9));
    ASSERT_TRUE(h.reserve(2));
    ASSERT_TRUE(h.reserve(static_cast<std::size_t>(round % 17)));
    h.commit(3);
    h.discard(1);  // the 9-byte one
    h.commit(1);
    h.commit(0);
    h.check();
    h.read();
    ASSERT_TRUE(h.batch_open());
    h.release(static_cast<std::size_t>(round % 3));
    h.check();
    h.read();
    if (h.batch_open()) h.release_all();
    h.check();
    if (::testing::Test::HasFailure()) return;
  }
  h.drain();
}

// release(k > size()) throws std::out_of_range and leaves the batch whole and outstanding.
TYPED_TEST(RecordRing, BatchReleaseTooManyThrows) {
  TypeParam r(128);
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto g = r.try_reserve(4);
    fill(g.span(), i);
    g.commit();
  }
  auto b = r.try_read();
  ASSERT_EQ(b.size(), 3u);
  const auto before = records_of(b);
  EXPECT_THROW(b.release(4), std::out_of_range);
  EXPECT_THROW(b.release(std::numeric_limits<std::size_t>::max()), std::out_of_range);
  EXPECT_TRUE(b);
  EXPECT_EQ(b.size(), 3u);
  const auto after = records_of(b);
  ASSERT_EQ(after.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(after[i].data(), before[i].data());
    EXPECT_TRUE(holds(after[i], i, 4));
  }
  EXPECT_EQ(r.size_approx(), 48u);
  EXPECT_THROW((void)r.try_read(), std::logic_error);  // still outstanding
  b.release();
  // An empty batch has no records to release.
  typename TypeParam::batch none;
  EXPECT_FALSE(none);
  EXPECT_THROW(none.release(1), std::out_of_range);
  none.release(0);
  none.release();
  EXPECT_DRAINED(r);
}

// A batch dropped without release frees nothing: the next try_read returns the same records in
// the same place.
TYPED_TEST(RecordRing, DroppedBatchFreesNothing) {
  TypeParam r(128);
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto g = r.try_reserve(i + 1);
    fill(g.span(), i);
    g.commit();
  }
  std::vector<std::span<const std::byte>> first;
  {
    auto b = r.try_read();
    first = records_of(b);
    ASSERT_EQ(first.size(), 3u);
  }
  EXPECT_EQ(r.size_approx(), 48u);
  // New records committed meanwhile join the next batch after the old ones.
  {
    auto g = r.try_reserve(7);
    fill(g.span(), 3);
    g.commit();
  }
  auto b = r.try_read();
  const auto again = records_of(b);
  ASSERT_EQ(again.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(again[i].data(), first[i].data());
    EXPECT_TRUE(holds(again[i], i, i + 1));
  }
  EXPECT_TRUE(holds(again[3], 3, 7));
  b.release();
  EXPECT_DRAINED(r);
}

// A second try_read while a batch is outstanding throws std::logic_error (the batch stays
// valid); once it is released, dropped or moved away and destroyed, try_read works again. An
// empty batch is contextually false and does not count as outstanding.
TYPED_TEST(RecordRing, OneBatchAtATime) {
  TypeParam r(128);
  {
    auto e1 = r.try_read();
    EXPECT_FALSE(e1);
    EXPECT_TRUE(e1.empty());
    EXPECT_EQ(e1.size(), 0u);
    EXPECT_EQ(e1.begin(), e1.end());
    auto e2 = r.try_read();  // must not throw
    EXPECT_FALSE(e2);
  }
  {
    auto g = r.try_reserve(3);
    fill(g.span(), 1);
    g.commit();
  }
  {
    auto b = r.try_read();
    ASSERT_TRUE(b);
    EXPECT_THROW((void)r.try_read(), std::logic_error);
    EXPECT_THROW((void)r.try_read(), std::logic_error);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_TRUE(holds(*b.begin(), 1, 3));
    // Producers keep working meanwhile.
    auto g = r.try_reserve(2);
    fill(g.span(), 2);
    g.commit();
    b.release();
  }
  {
    auto b = r.try_read();
    ASSERT_EQ(b.size(), 1u);
    EXPECT_TRUE(holds(*b.begin(), 2, 2));
  }  // dropped
  {
    auto b = r.try_read();  // works again after the drop
    ASSERT_EQ(b.size(), 1u);
    b.release();
  }
  EXPECT_DRAINED(r);
}

// Moving a batch moves the ownership (moved-from is empty and false, releasing it does nothing);
// move-assigning onto a live batch drops that batch (its ring can read again, the same records).
TYPED_TEST(RecordRing, BatchMoves) {
  TypeParam r1(128), r2(128);
  for (auto* r : {&r1, &r2}) {
    auto g = r->try_reserve(6);
    fill(g.span(), r == &r1 ? 1 : 2);
    g.commit();
  }
  auto b1 = r1.try_read();
  ASSERT_TRUE(b1);
  typename TypeParam::batch m(std::move(b1));
  EXPECT_FALSE(b1);
  EXPECT_EQ(b1.size(), 0u);
  EXPECT_EQ(b1.begin(), b1.end());
  b1.release();  // nothing: m still owns the batch
  EXPECT_EQ(r1.size_approx(), 16u);
  EXPECT_THROW((void)r1.try_read(), std::logic_error);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(holds(*m.begin(), 1, 6));

  auto b2 = r2.try_read();
  ASSERT_TRUE(b2);
  m = std::move(b2);  // drops r1's batch
  EXPECT_FALSE(b2);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(holds(*m.begin(), 2, 6));
  EXPECT_EQ(r1.size_approx(), 16u);
  {
    auto again = r1.try_read();  // r1's batch was dropped, not released
    ASSERT_EQ(again.size(), 1u);
    EXPECT_TRUE(holds(*again.begin(), 1, 6));
    again.release();
  }
  assign_from(m, m);  // self-move-assignment keeps the batch
  ASSERT_EQ(m.size(), 1u);
  EXPECT_THROW((void)r2.try_read(), std::logic_error);
  m.release();
  EXPECT_DRAINED(r1);
  EXPECT_DRAINED(r2);
}

// ============================================================================ padding and discards

// A ring holding only withdrawn records: try_read returns an empty batch and frees their space,
// so a max-size reservation then succeeds.
TYPED_TEST(RecordRing, OnlyDiscardedRecordsAreFreedByTryRead) {
  TypeParam r(64);
  for (int i = 0; i < 4; ++i) {
    auto g = r.try_reserve(8);  // 16 bytes each: fills the ring
    ASSERT_TRUE(g) << i;
  }  // all withdrawn
  EXPECT_EQ(r.size_approx(), 64u);
  EXPECT_EQ(r.in_flight(), 0u);
  EXPECT_FALSE(r.try_reserve(0));
  {
    auto b = r.try_read();
    EXPECT_FALSE(b);
    EXPECT_EQ(b.size(), 0u);
  }
  EXPECT_EQ(r.size_approx(), 0u);
  auto g = r.try_reserve(r.max_record_size());
  ASSERT_TRUE(g);
  g.discard();
  EXPECT_DRAINED(r);
}

// Padding: a record that does not fit in the tail skips it (PAD) and goes to 0; the PAD is
// counted by size_approx(); a ring holding only a PAD and a withdrawn record reads empty and is
// freed; a PAD in front of an in-flight record is freed at once, the record is not.
TYPED_TEST(RecordRing, PaddingOnlyIsFreedByTryRead) {
  caller_storage store(64);
  TypeParam r(store.span());
  // Move the cursors to 48.
  for (int i = 0; i < 2; ++i) {
    auto g = r.try_reserve(16);
    g.commit();
  }
  r.try_read().release();
  EXPECT_EQ(r.size_approx(), 0u);
  // 24 bytes (footprint 32) do not fit in the 16-byte tail: PAD 16 + record at 0.
  {
    auto g = r.try_reserve(24);
    ASSERT_TRUE(g);
    EXPECT_EQ(g.data(), store.base() + 8);
    EXPECT_EQ(r.size_approx(), 16u + 32u);
    EXPECT_EQ(store.word_at(48), (std::uint64_t{2} << 32) | pad_flag);
    EXPECT_EQ(store.word_at(0), 0u);
    // The PAD in front of the in-flight record is freed by try_read; the record is not.
    EXPECT_FALSE(r.try_read());
    EXPECT_EQ(r.size_approx(), 32u);
    EXPECT_EQ(store.word_at(48), 0u);
  }  // withdrawn
  EXPECT_EQ(store.word_at(0) & discard_flag, discard_flag);
  EXPECT_FALSE(r.try_read());
  EXPECT_EQ(r.size_approx(), 0u);
  // Cursors at 32: a 24-byte record fits exactly in the tail (no PAD); then from 0 again.
  {
    auto g = r.try_reserve(24);
    ASSERT_TRUE(g);
    EXPECT_EQ(g.data(), store.base() + 40);
    EXPECT_EQ(r.size_approx(), 32u);
  }
  EXPECT_FALSE(r.try_read());
  // Cursors at 0; step to 56, then PAD 8 + withdrawn record: only padding and discards.
  for (int i = 0; i < 7; ++i) {
    auto g = r.try_reserve(0);
    g.commit();
  }
  r.try_read().release();
  {
    auto g = r.try_reserve(r.max_record_size());
    ASSERT_TRUE(g);
    EXPECT_EQ(g.data(), store.base() + 8);
    EXPECT_EQ(r.size_approx(), 8u + 32u);
  }
  {
    auto b = r.try_read();
    EXPECT_FALSE(b);
  }
  EXPECT_EQ(r.size_approx(), 0u);
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(store.base()[i], std::byte{0}) << i;
  auto g = r.try_reserve(r.max_record_size());
  ASSERT_TRUE(g);
  g.commit();
  r.try_read().release();
  EXPECT_DRAINED(r);
}

// size_approx() counts bytes reserved and not released: 8-byte headers, payloads rounded up to
// 8; it does not change on commit or read, falls as the consumer releases, and reaches
// capacity() when full.
TYPED_TEST(RecordRing, SizeApproxCountsHeaders) {
  TypeParam r(256);
  std::vector<typename TypeParam::grant> held;
  std::size_t expect = 0;
  for (std::size_t n : {0, 1, 7, 8, 9, 16, 17}) {
    held.push_back(r.try_reserve(n));
    ASSERT_TRUE(held.back());
    expect += 8 + (n + 7) / 8 * 8;
    EXPECT_EQ(r.size_approx(), expect) << n;
  }
  EXPECT_EQ(expect, 8u + 16u + 16u + 16u + 24u + 24u + 32u);
  for (auto& g : held) g.commit();
  EXPECT_EQ(r.size_approx(), expect);
  {
    auto b = r.try_read();
    EXPECT_EQ(r.size_approx(), expect);
    b.release(3);
  }
  expect -= 8 + 16 + 16;
  EXPECT_EQ(r.size_approx(), expect);
  // Fill to the brim with zero-length records.
  std::size_t extra = 0;
  for (;;) {
    auto g = r.try_reserve(0);
    if (!g) break;
    g.commit();
    ++extra;
  }
  EXPECT_EQ(extra, (256 - expect) / 8);
  EXPECT_EQ(r.size_approx(), r.capacity());
  auto b = r.try_read();
  EXPECT_EQ(b.size(), 4 + extra);
  b.release();
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_DRAINED(r);
}

// ============================================================================ randomized model

// 200k random operations per capacity against the reference model (harness): reservations of
// random sizes (failures predicted exactly), commit / commit(k) / commit(k > size) / discard /
// destruction / move-assignment of random outstanding grants in random order, try_read with
// release() / release(k) / release(k > size) / drop, batches left open while producers go on,
// and try_read while a batch is open. Every batch's records are compared exactly (address,
// length, bytes), and after every operation size_approx(), in_flight(), the header words and the
// zeroed free space. Capacities 32, 40, 64, 200 and 1024; fixed seeds, printed on failure.
template <class Ring>
void randomized_against_model(harness<Ring>& h, std::uint64_t seed, int ops) {
  const std::size_t cap = h.capacity();
  std::mt19937_64 rng(seed);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const std::size_t max = h.ring().max_record_size();
  std::size_t reads = 0, records_seen = 0, failures = 0;
  for (int op = 0; op < ops; ++op) {
    const std::size_t what = below(100);
    if (what < 34) {
      if (h.held_count() < 6) {
        const std::size_t n = below(2) ? below(max + 1) : below(std::min<std::size_t>(max, 24) + 1);
        if (!h.reserve(n)) ++failures;
      }
    } else if (what < 64) {
      if (h.held_count() != 0) {
        const std::size_t i = below(h.held_count());
        const std::size_t how = below(20);
        if (how < 9) {
          h.commit(i);
        } else if (how < 13) {
          h.commit(i, below(h.held_size(i) + 1));
        } else if (how < 15) {
          h.discard(i);
        } else if (how < 17) {
          h.destroy(i);
        } else if (how < 18) {
          h.commit_too_much(i, 1 + below(9));
        } else if (h.held_count() >= 2) {
          std::size_t j = below(h.held_count() - 1);
          if (j >= i) ++j;
          h.move_assign(i, j);
        }
      }
    } else if (what < 94) {
      if (!h.batch_open()) {
        h.read();
        ++reads;
      }
      if (h.batch_open()) {
        records_seen += h.batch_size();
        const std::size_t how = below(20);
        if (how < 8) {
          h.release_all();
        } else if (how < 13) {
          h.release(below(h.batch_size() + 1));
        } else if (how < 15) {
          h.drop();
        } else if (how < 16) {
          h.release_too_many(1 + below(4));
        } else if (how < 17) {
          h.expect_read_throws();
        } else {
          h.verify_batch();  // stays open while producers go on
        }
      }
    } else {
      if (h.batch_open()) h.verify_batch();
    }
    h.check();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "randomized test failed: seed " << seed << " capacity " << cap << " operation " << op;
      return;
    }
  }
  h.drain();
  if (::testing::Test::HasFailure()) {
    ADD_FAILURE() << "randomized test failed while draining: seed " << seed << " capacity " << cap;
    return;
  }
  // The run exercised what it should have.
  EXPECT_GT(reads, static_cast<std::size_t>(ops / 10));
  EXPECT_GT(records_seen, static_cast<std::size_t>(ops / 20));
  EXPECT_GT(failures, 0u);
}

TYPED_TEST(RecordRing, RandomizedAgainstModel) {
  for (std::size_t cap : {32, 40, 64, 200, 1024}) {
    harness<TypeParam> h(cap);
    randomized_against_model(h, 0x511CE0000ull + cap, 200000);
    if (::testing::Test::HasFailure()) return;
  }
}

// The same over mirrored storage of one page, 100k operations: records run past the end of the
// storage (checked through both mappings) instead of skipping its tail.
TYPED_TEST(RecordRing, MirroredRandomizedAgainstModel) {
  harness<TypeParam> h(sluice::mirrored, 32);
  ASSERT_EQ(h.capacity(), sluice::mirrored_storage::page_size());
  ASSERT_EQ(h.ring().max_record_size(), h.capacity() - 8);
  randomized_against_model(h, 0x511CE0001ull, 100000);
  EXPECT_EQ(h.pads(), 0u);
  EXPECT_GT(h.seam_records(), 500u);
}

}  // namespace
