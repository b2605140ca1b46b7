// Multi-threaded stress for sluice::spsc_record_ring and sluice::mpsc_record_ring.
//
// Every record is a deterministic function of (seed, producer id, sequence number): its
// reservation size, the length it commits (commit(k) with k < size on some), and whether it is
// discarded. Sequence numbers are assigned at reservation, so per producer the reservation
// order (the order the ring promises) is the sequence order, whatever order the grants are
// committed in. The consumer therefore knows exactly which record of each producer must come
// next, and checks every one: producer id, sequence number, committed length, and a checksum
// of the body (or the exact bytes, for records too short to hold the 24-byte self-description).
// A lost, duplicated, reordered, torn or withdrawn-but-delivered record fails the test.
// After the join, what each producer says it committed and discarded is compared with what the
// consumer received.
//
// SLUICE_STRESS_CHUNKS sets the record count of the big MPSC test (at least 10^6 records
// delivered uninstrumented); a ThreadSanitizer build divides the counts by 4 to stay fast. Nothing here
// asserts a timing: every wait is bounded by a 120 s deadline after which the test fails.
//
// The Mirrored tests run the same scenarios over mirrored storage, where records never skip the
// tail of the storage but run past its end into the second mapping: random sizes through 16 KiB
// (a record in eight or so crosses the seam), zero-length and maximum records (capacity() - 8
// bytes, so every maximum record fills the ring and crosses the seam unless it starts at 0)
// through one page, and the stalled producer with its record across the seam. (The PAD tests
// have no mirrored counterpart: nothing is ever padded there.)
#include <sluice/record_ring.hpp>

#include "random_seed.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef SLUICE_STRESS_CHUNKS
#define SLUICE_STRESS_CHUNKS 1000000
#endif

#if defined(__SANITIZE_THREAD__)
#define SLUICE_RRST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLUICE_RRST_TSAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::uint64_t chunks = SLUICE_STRESS_CHUNKS;
#if defined(SLUICE_RRST_TSAN)
constexpr std::uint64_t slowdown = 4;  // ~6 s on 2 cores; ASan runs the full count in ~5 s
#else
constexpr std::uint64_t slowdown = 1;
#endif
constexpr std::uint64_t scaled(std::uint64_t n, std::uint64_t floor) { return std::max(n / slowdown, floor); }

constexpr auto time_limit = 120s;

// ------------------------------------------------------------------------------------ helpers

using sluice_test::mix;
using sluice_test::test_seed;

// Record layout, for a committed length L >= meta_size:
//   [0] producer id   [1..4) 0xC3   [4..8) L (u32)   [8..16) seq (u64)   [16..24) checksum
//   [24..L) body: a stream derived from (id, seq)
// For 1 <= L < meta_size, the first L bytes of: [0] id, [1..9) seq, [9..24) bytes from (id, seq).
constexpr std::size_t meta_size = 24;

std::uint64_t record_key(unsigned id, std::uint64_t seq) noexcept {
  return mix((std::uint64_t{id} << 56) ^ seq);
}

void fill_body(std::byte* out, std::size_t n, unsigned id, std::uint64_t seq) noexcept {
  std::uint64_t x = record_key(id, seq) | 1u;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out + i, &x, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<std::byte>(x >> (8 * (i % 8)) ^ i);
}

// FNV-1a over 8-byte words (then bytes), folded, seeded with the record's identity.
std::uint64_t checksum(unsigned id, std::uint64_t seq, std::size_t length, const std::byte* body,
                       std::size_t n) noexcept {
  constexpr std::uint64_t prime = 0x100000001b3ull;
  std::uint64_t h = 0xcbf29ce484222325ull ^ mix(record_key(id, seq) ^ length);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, body + i, 8);
    h = (h ^ w) * prime;
    h ^= h >> 32;
  }
  for (; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(body[i])) * prime;
  return h;
}

std::array<std::byte, meta_size> short_record(unsigned id, std::uint64_t seq) noexcept {
  std::array<std::byte, meta_size> r{};
  r[0] = static_cast<std::byte>(id);
  std::memcpy(r.data() + 1, &seq, 8);
  const std::uint64_t k = record_key(id, seq);
  for (std::size_t i = 9; i < meta_size; ++i) r[i] = static_cast<std::byte>((k >> (8 * (i % 8))) + i);
  return r;
}

// Writes record (id, seq) committing `length` bytes into a grant of out.size() >= length bytes;
// the bytes past `length` get junk the consumer must never see.
void write_record(std::span<std::byte> out, unsigned id, std::uint64_t seq, std::size_t length) {
  if (length >= meta_size) {
    std::byte* p = out.data();
    fill_body(p + meta_size, length - meta_size, id, seq);
    const auto len32 = static_cast<std::uint32_t>(length);
    const std::uint64_t sum = checksum(id, seq, length, p + meta_size, length - meta_size);
    p[0] = static_cast<std::byte>(id);
    p[1] = p[2] = p[3] = std::byte{0xC3};
    std::memcpy(p + 4, &len32, 4);
    std::memcpy(p + 8, &seq, 8);
    std::memcpy(p + 16, &sum, 8);
  } else if (length != 0) {
    const auto r = short_record(id, seq);
    std::memcpy(out.data(), r.data(), length);
  }
  if (out.size() > length) std::memset(out.data() + length, 0xA5, out.size() - length);
}

struct decoded {
  unsigned id;
  std::uint64_t seq;
};

// Decodes and checks a self-describing record (length >= meta_size). Empty string if intact.
std::string decode_full(std::span<const std::byte> rec, decoded& d) {
  if (rec.size() < meta_size) return "record of " + std::to_string(rec.size()) + " bytes is too short to decode";
  const std::byte* p = rec.data();
  std::uint32_t len32;
  std::uint64_t sum;
  d.id = static_cast<std::uint8_t>(p[0]);
  std::memcpy(&len32, p + 4, 4);
  std::memcpy(&d.seq, p + 8, 8);
  std::memcpy(&sum, p + 16, 8);
  const std::string who = "record (producer " + std::to_string(d.id) + ", seq " + std::to_string(d.seq) + ")";
  if (p[1] != std::byte{0xC3} || p[2] != std::byte{0xC3} || p[3] != std::byte{0xC3})
    return who + ": corrupt marker bytes";
  if (len32 != rec.size())
    return who + ": span is " + std::to_string(rec.size()) + " bytes but the record says " + std::to_string(len32);
  if (checksum(d.id, d.seq, rec.size(), p + meta_size, rec.size() - meta_size) != sum) return who + ": checksum mismatch";
  return {};
}

// ------------------------------------------------------------------------------- the plan

struct plan {
  std::size_t reserve;  // try_reserve(reserve)
  std::size_t length;   // committed bytes (== reserve: commit(), else commit(length))
  bool discard;
};

enum class shape { uniform, zero_and_max };

struct profile {
  std::uint64_t seed;
  shape kind;
  std::size_t max_size;  // uniform: sizes 1..max_size; zero_and_max: the ring's max_record_size()
  unsigned producers;
  std::uint64_t per_producer;  // reservations per producer (committed or discarded)

  plan at(unsigned id, std::uint64_t seq) const noexcept {
    const std::uint64_t h = mix(seed ^ record_key(id, seq));
    const std::uint64_t h2 = mix(h);
    plan p{};
    p.discard = h % 100 < 5;
    if (kind == shape::uniform) {
      p.reserve = 1 + h2 % max_size;
      p.length = p.reserve;
      if (p.reserve > meta_size && (h >> 8) % 8 == 0) p.length = meta_size + (h >> 16) % (p.reserve - meta_size);
    } else {
      const std::uint64_t pick = (h >> 8) % 100;
      if (pick < 35) {  // zero-length reservation
        p.reserve = 0;
        p.length = 0;
      } else if (pick < 45) {  // commit(0) of a non-empty reservation
        p.reserve = 1 + h2 % max_size;
        p.length = 0;
      } else if (pick < 85) {  // the largest record, sometimes cut short
        p.reserve = max_size;
        p.length = (h >> 16) % 4 == 0 ? meta_size + h2 % (max_size - meta_size) : max_size;
      } else {
        p.reserve = 1 + h2 % 64;
        p.length = p.reserve;
      }
    }
    return p;
  }

  std::uint64_t expected_committed() const noexcept {
    std::uint64_t n = 0;
    for (unsigned id = 0; id < producers; ++id)
      for (std::uint64_t s = 0; s < per_producer; ++s) n += at(id, s).discard ? 0 : 1;
    return n;
  }
};

// ---------------------------------------------------------------------------- the consumer

// Checks each record against the next one its producer must have committed. Zero-length
// records carry no identity: they are counted, and each producer's expected zero-length records
// must have arrived (in total, across producers) before that producer's next non-empty record.
class verifier {
 public:
  explicit verifier(const profile& prof)
      : prof_(prof), next_(prof.producers, 0), received_(prof.producers), expected_(prof.expected_committed()) {}

  bool accept(std::span<const std::byte> rec) {
    if (reinterpret_cast<std::uintptr_t>(rec.data()) % 8 != 0) return fail("a record's payload is not 8-byte aligned");
    ++total_;
    if (rec.empty()) {
      ++zeros_received_;
      std::uint64_t possible = 0;
      for (unsigned id = 0; id < prof_.producers; ++id) possible += zeros_ahead(id);
      if (zeros_received_ - zeros_attributed_ > possible)
        return fail("more zero-length records arrived than the producers could have committed so far (" +
                    std::to_string(zeros_received_ - zeros_attributed_) + " unattributed, at most " +
                    std::to_string(possible) + " possible)");
      return true;
    }
    const unsigned id = static_cast<std::uint8_t>(rec[0]);
    if (id >= prof_.producers) return fail("a record names producer " + std::to_string(id) + ", which does not exist");
    const std::uint64_t prev = next_[id];
    const std::uint64_t s = next_nonempty(id);
    if (!error_.empty()) return false;
    const std::string who = "producer " + std::to_string(id) + " seq " + std::to_string(s);
    if (s == prof_.per_producer)
      return fail("producer " + std::to_string(id) + " delivered a record after all of its records (duplicate?)");
    const plan p = prof_.at(id, s);
    if (rec.size() >= meta_size) {
      decoded d{};
      if (std::string e = decode_full(rec, d); !e.empty()) return fail(e + " (expected " + who + ")");
      if (d.seq != s) {
        if (d.seq < prof_.per_producer && prof_.at(id, d.seq).discard && d.seq >= prev)
          return fail(who + " expected, got seq " + std::to_string(d.seq) + ", a DISCARDED record");
        if (d.seq < s) return fail(who + " expected, got seq " + std::to_string(d.seq) + ": duplicated or reordered");
        return fail(who + " (committed) was lost: the next record is seq " + std::to_string(d.seq));
      }
    }
    if (p.length != rec.size())
      return fail(who + ": expected " + std::to_string(p.length) + " committed bytes, got " + std::to_string(rec.size()));
    if (rec.size() < meta_size) {
      const auto want = short_record(id, s);
      if (std::memcmp(want.data(), rec.data(), rec.size()) != 0) return fail(who + ": short record corrupt or not the expected one");
    }
    received_[id].push_back(s);
    next_[id] = s + 1;
    return true;
  }

  // After the last record: every producer's remaining plan must be discards or zero-length
  // records already received.
  bool finish() {
    for (unsigned id = 0; id < prof_.producers; ++id) {
      if (next_nonempty(id) != prof_.per_producer)
        return fail("producer " + std::to_string(id) + " seq " + std::to_string(next_[id]) + " was never received");
      if (!error_.empty()) return false;
    }
    if (zeros_attributed_ != zeros_received_)
      return fail(std::to_string(zeros_received_ - zeros_attributed_) + " zero-length records too many");
    return true;
  }

  std::uint64_t total() const noexcept { return total_; }
  std::uint64_t expected() const noexcept { return expected_; }
  const std::string& error() const noexcept { return error_; }
  const std::vector<std::uint64_t>& received(unsigned id) const { return received_[id]; }
  std::string progress() const {
    std::string s = "received " + std::to_string(total_) + " of " + std::to_string(expected_) + " records; next seq per producer:";
    for (auto n : next_) s += " " + std::to_string(n);
    return s;
  }

 private:
  bool fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }
  // Steps producer id past discarded records and zero-length ones (which must have arrived
  // already) to its next non-empty committed record, or per_producer.
  std::uint64_t next_nonempty(unsigned id) {
    std::uint64_t s = next_[id];
    for (; s < prof_.per_producer; ++s) {
      const plan p = prof_.at(id, s);
      if (p.discard) continue;
      if (p.length != 0) break;
      if (zeros_attributed_ == zeros_received_) {
        fail("zero-length record (producer " + std::to_string(id) + ", seq " + std::to_string(s) +
             ") did not arrive before the producer's later records");
        return s;
      }
      ++zeros_attributed_;
      received_[id].push_back(s);
    }
    next_[id] = s;
    return s;
  }
  std::uint64_t zeros_ahead(unsigned id) const {
    std::uint64_t n = 0;
    for (std::uint64_t s = next_[id]; s < prof_.per_producer; ++s) {
      const plan p = prof_.at(id, s);
      if (p.discard) continue;
      if (p.length != 0) break;
      ++n;
    }
    return n;
  }

  const profile& prof_;
  std::vector<std::uint64_t> next_;
  std::vector<std::vector<std::uint64_t>> received_;
  std::uint64_t expected_;
  std::uint64_t total_ = 0;
  std::uint64_t zeros_received_ = 0, zeros_attributed_ = 0;
  std::string error_;
};

// Reads until every committed record arrived. Releases everything, a prefix (release(k), k
// possibly 0), or nothing (a peek: the batch is dropped), and checks the next batch starts
// where the previous one left off. Returns an error message, empty on success.
template <class Ring>
std::string consume(Ring& ring, verifier& v, std::atomic<bool>& stop, std::uint64_t seed, steady::time_point deadline) {
  std::mt19937_64 rng(mix(seed ^ 0xc0ffee));
  const std::byte* front = nullptr;  // where the next batch must start, after a peek or release(k)
  std::size_t front_size = 0;
  std::uint32_t idle = 0;
  while (v.total() < v.expected()) {
    if (stop.load(std::memory_order_relaxed)) return "stopped by a producer's failure; " + v.progress();
    if ((++idle & 63) == 0 && steady::now() > deadline)
      return "deadline passed: " + v.progress() + "; in_flight()=" + std::to_string(ring.in_flight()) +
             ", size_approx()=" + std::to_string(ring.size_approx());
    auto b = ring.try_read();
    if (!b) {
      if (front) return "records read before (peeked or not released) vanished from the ring";
      std::this_thread::yield();
      continue;
    }
    if (ring.size_approx() > ring.capacity()) return "size_approx() exceeds capacity()";
    std::size_t n = 0;
    for (auto rec : b) {
      if (n == 0 && front && (rec.data() != front || rec.size() != front_size))
        return "the next batch does not start with the record left unreleased";
      ++n;
    }
    if (n != b.size()) return "batch iterates over " + std::to_string(n) + " records, size() is " + std::to_string(b.size());
    front = nullptr;
    const std::uint64_t action = rng() % 16;
    if (action == 0) {  // peek: drop the batch unreleased, read it again next time
      front = (*b.begin()).data();
      front_size = (*b.begin()).size();
      continue;
    }
    const std::size_t k = action <= 3 ? static_cast<std::size_t>(rng() % n) : n;
    std::size_t i = 0;
    for (auto rec : b) {
      if (i == k) {
        front = rec.data();
        front_size = rec.size();
        break;
      }
      if (!v.accept(rec)) return v.error();
      ++i;
    }
    if (k < n || action == 4)
      b.release(k);
    else
      b.release();
    if (b) return "a batch is still non-empty after release";
    idle = 0;
  }
  return {};
}

// ---------------------------------------------------------------------------- the producers

struct producer_log {
  std::vector<std::uint64_t> committed, discarded;
  std::string error;
};

// Reserves the producer's records in sequence order, holding up to max_held grants at once
// and finishing a random one of them (commit, commit(k), or discard by discard(), by
// move-assignment or by destruction). When the ring is full it finishes a held grant, or, with
// none held, yields and retries.
template <class Ring>
void produce(Ring& ring, const profile& prof, unsigned id, std::size_t max_held, producer_log& log,
             std::atomic<bool>& stop, steady::time_point deadline) {
  using grant = typename Ring::grant;
  struct held_grant {
    grant g;
    std::uint64_t seq;
    plan p;
  };
  std::mt19937_64 rng(mix(prof.seed + id + 1));
  std::vector<held_grant> held;
  held.reserve(max_held);
  const std::size_t in_flight_bound = prof.producers * max_held;
  auto failed = [&](std::string e) {
    log.error = "producer " + std::to_string(id) + ": " + std::move(e);
    stop.store(true, std::memory_order_relaxed);
  };
  std::uint64_t next = 0;
  std::uint32_t spins = 0;
  while (next < prof.per_producer || !held.empty()) {
    if (stop.load(std::memory_order_relaxed)) return;
    const bool want = next < prof.per_producer && held.size() < max_held && (held.empty() || rng() % 3 != 0);
    if (want) {
      const plan p = prof.at(id, next);
      grant g = ring.try_reserve(p.reserve);
      if (g) {
        if (g.size() != p.reserve) return failed("grant of " + std::to_string(g.size()) + " bytes for " + std::to_string(p.reserve));
        if (reinterpret_cast<std::uintptr_t>(g.data()) % 8 != 0) return failed("grant not 8-byte aligned");
        write_record(g.span(), id, next, p.length);
        held.push_back({std::move(g), next, p});
        ++next;
        spins = 0;
        continue;
      }
      if (held.empty()) {
        if ((++spins & 63) == 0 && steady::now() > deadline) return failed("the ring stayed full past the deadline");
        std::this_thread::yield();
        continue;
      }
    }
    if (ring.in_flight() > in_flight_bound) return failed("in_flight() = " + std::to_string(ring.in_flight()));
    const std::size_t i = static_cast<std::size_t>(rng() % held.size());
    held_grant h = std::move(held[i]);
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    if (h.p.discard) {
      switch (rng() % 3) {
        case 0: h.g.discard(); break;
        case 1: h.g = grant{}; break;  // move-assignment discards the old reservation
        default: break;                // the destructor discards
      }
      log.discarded.push_back(h.seq);
    } else {
      if (h.p.length == h.p.reserve && rng() % 2 == 0)
        h.g.commit();
      else
        h.g.commit(h.p.length);
      if (h.g) return failed("a grant is still non-empty after commit");
      log.committed.push_back(h.seq);
    }
  }
}

template <class Ring>
void run_stress(Ring& ring, const profile& prof, std::size_t max_held) {
  SCOPED_TRACE("seed " + std::to_string(prof.seed) + " (set SLUICE_STRESS_SEED to reuse)");
  std::atomic<bool> stop{false};
  const auto deadline = steady::now() + time_limit;
  std::vector<producer_log> logs(prof.producers);
  verifier v(prof);
  std::string consumer_error;
  {
    std::vector<std::jthread> threads;
    for (unsigned id = 0; id < prof.producers; ++id)
      threads.emplace_back([&, id] { produce(ring, prof, id, max_held, logs[id], stop, deadline); });
    consumer_error = consume(ring, v, stop, prof.seed, deadline);
    if (!consumer_error.empty()) stop.store(true, std::memory_order_relaxed);
  }  // joined
  for (const auto& log : logs) EXPECT_EQ(log.error, "");
  ASSERT_EQ(consumer_error, "");
  ASSERT_TRUE(v.finish()) << v.error();
  {
    auto b = ring.try_read();
    EXPECT_FALSE(b) << b.size() << " records left in the ring after every committed record was received";
  }
  EXPECT_EQ(ring.in_flight(), 0u);
  EXPECT_EQ(ring.size_approx(), 0u);
  for (unsigned id = 0; id < prof.producers; ++id) {
    auto& log = logs[id];
    std::sort(log.committed.begin(), log.committed.end());
    std::sort(log.discarded.begin(), log.discarded.end());
    EXPECT_EQ(log.committed.size() + log.discarded.size(), prof.per_producer) << "producer " << id;
    EXPECT_EQ(log.committed.size(), v.received(id).size()) << "producer " << id << ": committed vs received count";
    EXPECT_TRUE(log.committed == v.received(id)) << "producer " << id << ": committed and received seqs differ";
    std::vector<std::uint64_t> planned;
    for (std::uint64_t s = 0; s < prof.per_producer; ++s)
      if (prof.at(id, s).discard) planned.push_back(s);
    EXPECT_TRUE(log.discarded == planned) << "producer " << id << ": discarded seqs differ from the plan";
    // Gaps in what was received are exactly the discarded seqs.
    std::vector<std::uint64_t> all = v.received(id);
    all.insert(all.end(), log.discarded.begin(), log.discarded.end());
    std::sort(all.begin(), all.end());
    EXPECT_TRUE(std::adjacent_find(all.begin(), all.end()) == all.end()) << "producer " << id << ": a discarded seq was received";
  }
}

// ------------------------------------------------------------------------------------ tests

TEST(RecordRingStress, MpscFourProducersRandomSizes) {
  sluice::mpsc_record_ring ring(64 * 1024);
  ASSERT_GE(ring.max_record_size(), 4096u);
  // A little over chunks/4 per producer, so that at least `chunks` records are delivered
  // despite ~5% discards.
  const std::uint64_t total = scaled(chunks, 4000);
  const profile prof{test_seed(), shape::uniform, 4096, 4, total / 4 + total / 4 / 16};
  run_stress(ring, prof, 3);
  EXPECT_GE(prof.expected_committed(), total) << "the MPSC test must deliver at least " << total << " records";
}

TEST(RecordRingStress, SpscOneProducerRandomSizes) {
  sluice::spsc_record_ring ring(64 * 1024);
  const profile prof{test_seed(), shape::uniform, 4096, 1, scaled(chunks / 4, 2000)};
  run_stress(ring, prof, 3);
}

TEST(RecordRingStress, MpscZeroLengthAndMaximumRecords) {
  sluice::mpsc_record_ring ring(64 * 1024);
  const profile prof{test_seed(), shape::zero_and_max, ring.max_record_size(), 2, scaled(chunks / 50, 1000)};
  run_stress(ring, prof, 3);
}

TEST(RecordRingStress, SpscZeroLengthAndMaximumRecords) {
  sluice::spsc_record_ring ring(16 * 1024);
  const profile prof{test_seed(), shape::zero_and_max, ring.max_record_size(), 1, scaled(chunks / 50, 1000)};
  run_stress(ring, prof, 2);
}

TEST(RecordRingStress, MirroredMpscFourProducersRandomSizes) {
  sluice::mpsc_record_ring ring(sluice::mirrored, 16 * 1024);
  ASSERT_TRUE(ring.mirrored());
  ASSERT_GE(ring.max_record_size(), 4096u);
  const std::uint64_t total = scaled(chunks, 4000);
  const profile prof{test_seed(), shape::uniform, 4096, 4, total / 4 + total / 4 / 16};
  run_stress(ring, prof, 3);
  EXPECT_GE(prof.expected_committed(), total);
}

TEST(RecordRingStress, MirroredSpscOneProducerRandomSizes) {
  sluice::spsc_record_ring ring(sluice::mirrored, 16 * 1024);
  ASSERT_TRUE(ring.mirrored());
  const profile prof{test_seed(), shape::uniform, 4096, 1, scaled(chunks / 4, 2000)};
  run_stress(ring, prof, 3);
}

TEST(RecordRingStress, MirroredMpscZeroLengthAndMaximumRecords) {
  sluice::mpsc_record_ring ring(sluice::mirrored, 4096);
  ASSERT_EQ(ring.max_record_size(), ring.capacity() - 8);
  const profile prof{test_seed(), shape::zero_and_max, ring.max_record_size(), 2, scaled(chunks / 50, 1000)};
  run_stress(ring, prof, 3);
}

TEST(RecordRingStress, MirroredSpscZeroLengthAndMaximumRecords) {
  sluice::spsc_record_ring ring(sluice::mirrored, 4096);
  ASSERT_EQ(ring.max_record_size(), ring.capacity() - 8);
  const profile prof{test_seed(), shape::zero_and_max, ring.max_record_size(), 1, scaled(chunks / 50, 1000)};
  run_stress(ring, prof, 2);
}

// ---------------------------------------------------------------------- the stalled producer

bool wait_for(const std::atomic<bool>& flag, steady::time_point deadline) {
  while (!flag.load(std::memory_order_acquire)) {
    if (steady::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Producer A (id 0) reserves a record and stalls before committing it. Producer B (id 1)
// commits records before it, one of which it reserved before A and commits only after A
// reserved; then B and C (id 2) commit records reserved after A's. While A stalls the consumer
// must get exactly B's earlier records and nothing reserved after A's; once A commits, A's
// record and then all the later ones. One round puts A's record at the end of the storage so
// that it wraps, leaving a PAD in front of it (over mirrored storage: crosses the seam).
enum class storage { caller, mirrored };

void stalled_producer_holds_back_later_records_only(storage kind) {
  constexpr std::size_t cap = 64 * 1024;
  std::unique_ptr<std::uint64_t[]> words;
  std::unique_ptr<sluice::mpsc_record_ring> made;  // on the heap: rings do not move
  std::byte* base = nullptr;
  std::size_t tail = 0;  // storage index of the next reservation, per the documented layout
  if (kind == storage::caller) {
    words = std::make_unique<std::uint64_t[]>(cap / 8);
    base = reinterpret_cast<std::byte*>(words.get());
    made = std::make_unique<sluice::mpsc_record_ring>(std::span<std::byte>(base, cap));
  } else {
    // The ring's own storage, found with a first reservation (withdrawn, and stepped over by a
    // read, which leaves the cursors at 8).
    made = std::make_unique<sluice::mpsc_record_ring>(sluice::mirrored, cap);
    auto g = made->try_reserve(0);
    base = g.data() - 8;
    g.discard();
    auto b = made->try_read();
    ASSERT_FALSE(b);
    tail = 8;
  }
  sluice::mpsc_record_ring& ring = *made;
  ASSERT_EQ(ring.capacity(), cap);
  ASSERT_EQ(ring.mirrored(), kind == storage::mirrored);
  const auto deadline = steady::now() + time_limit;

  constexpr std::size_t small = 100, small_fp = 8 + 104;
  constexpr std::uint64_t before = 20, after_b = 20, after_c = 20;  // B's before-records include the held one

  // Moves the (empty) ring's cursors to `goal` with records the main thread commits and reads.
  auto move_to = [&](std::size_t goal) {
    while (tail != goal) {
      const std::size_t room = goal > tail ? goal - tail : cap - tail;
      const std::size_t fp = std::min(room, ring.max_record_size() + 8);
      auto g = ring.try_reserve(fp - 8);
      ASSERT_TRUE(g);
      ASSERT_EQ(g.data(), base + tail + 8);
      g.commit();
      auto b = ring.try_read();
      ASSERT_EQ(b.size(), 1u);
      b.release();
      tail = (tail + fp) % cap;
    }
  };

  struct round_config {
    std::size_t a_header;  // where A's reservation starts (before any padding)
    std::size_t a_size, a_commit;
  };
  const round_config rounds[] = {{cap / 4, 200, 200}, {cap - 1024, 4000, 1500}, {cap / 2, 32, 24}};
  std::uint64_t round_no = 0;
  for (const auto& rc : rounds) {
    SCOPED_TRACE("round " + std::to_string(round_no));
    const std::uint64_t seq0 = 1000 * round_no++;
    move_to((rc.a_header - before * small_fp + cap) % cap);
    if (::testing::Test::HasFatalFailure()) return;
    std::atomic<bool> b_ready{false}, a_reserved{false}, go{false}, b_done{false}, c_done{false}, fail{false};
    std::string a_err, b_err, c_err;
    std::string main_err;
    const std::byte* a_data = nullptr;

    // A producer's error: the message (read after the join) and the flag (read by the others).
    auto bad = [&](std::string& err, const char* e) {
      err = e;
      fail.store(true);
    };
    auto put = [&](unsigned id, std::uint64_t seq, std::size_t n, std::size_t k, std::string& err) {
      for (std::uint32_t spins = 0;; ++spins) {
        if (auto g = ring.try_reserve(n)) {
          write_record(g.span(), id, seq, k);
          g.commit(k);
          return true;
        }
        if (fail.load() || ((spins & 63) == 0 && steady::now() > deadline)) {
          bad(err, "could not reserve");
          return false;
        }
        std::this_thread::yield();
      }
    };
    {
      std::jthread a([&] {
        if (!wait_for(b_ready, deadline)) return bad(a_err, "B never got ready");
        auto g = ring.try_reserve(rc.a_size);
        if (!g) return bad(a_err, "A could not reserve");
        a_data = g.data();
        write_record(g.span(), 0, seq0, rc.a_commit);
        a_reserved.store(true, std::memory_order_release);
        if (!wait_for(go, deadline)) return bad(a_err, "never released");  // g is discarded then
        g.commit(rc.a_commit);
      });
      std::jthread b([&] {
        for (std::uint64_t s = 0; s + 1 < before; ++s)
          if (!put(1, seq0 + s, small, small, b_err)) return;
        auto held = ring.try_reserve(small);  // reserved before A's record, committed after A reserved
        if (!held) return bad(b_err, "B could not reserve its held record");
        write_record(held.span(), 1, seq0 + before - 1, small);
        b_ready.store(true, std::memory_order_release);
        if (!wait_for(a_reserved, deadline)) return bad(b_err, "A never reserved");
        held.commit();
        for (std::uint64_t s = before; s < before + after_b; ++s)
          if (!put(1, seq0 + s, small, small, b_err)) return;
        b_done.store(true, std::memory_order_release);
      });
      std::jthread c([&] {
        if (!wait_for(a_reserved, deadline)) return bad(c_err, "A never reserved");
        for (std::uint64_t s = 0; s < after_c; ++s)
          if (!put(2, seq0 + s, small, small, c_err)) return;
        c_done.store(true, std::memory_order_release);
      });

      // The consumer: while A stalls, exactly B's `before` records, in order.
      auto read_stalled = [&]() -> std::string {
        if (!wait_for(a_reserved, deadline)) return "A never reserved";
        std::uint64_t next_b = 0;
        steady::time_point quiet_since{};
        bool others_done = false;
        for (;;) {
          if (steady::now() > deadline) return "deadline passed while A stalled";
          if (fail.load()) return "a producer failed";
          if (!others_done && b_done.load(std::memory_order_acquire) && c_done.load(std::memory_order_acquire)) {
            others_done = true;
            quiet_since = steady::now();
          }
          if (others_done && steady::now() - quiet_since > 100ms) break;
          if (ring.in_flight() < 1) return "in_flight() is 0 while A holds its grant";
          auto batch = ring.try_read();
          for (auto rec : batch) {
            decoded d{};
            if (auto e = decode_full(rec, d); !e.empty()) return e;
            if (d.id != 1 || d.seq != seq0 + next_b)
              return "while A stalled, got (producer " + std::to_string(d.id) + ", seq " + std::to_string(d.seq - seq0) +
                     ") but expected B's record " + std::to_string(next_b) + " reserved before A's";
            if (++next_b > before) return "too many records while A stalled";
          }
          if (batch) {
            if (next_b % 2 == 0) batch.release();
            else batch.release(batch.size());
          } else {
            std::this_thread::yield();
          }
        }
        if (next_b != before) return "while A stalled, got " + std::to_string(next_b) + " of B's earlier records";
        if (ring.in_flight() < 1) return "in_flight() is 0 while A holds its grant";
        if (ring.size_approx() < (after_b + after_c) * small_fp) return "size_approx() is below what waits behind A";
        return {};
      };
      main_err = read_stalled();
      if (!main_err.empty()) fail.store(true);
      go.store(true, std::memory_order_release);

      if (main_err.empty()) {  // then A's record first, and every later one in per-producer order
        std::uint64_t got = 0, next_b = before, next_c = 0;
        const std::uint64_t want = 1 + after_b + after_c;
        while (got < want && main_err.empty()) {
          if (steady::now() > deadline) {
            main_err = "deadline passed after A committed; got " + std::to_string(got);
            break;
          }
          auto batch = ring.try_read();
          if (!batch) {
            std::this_thread::yield();
            continue;
          }
          for (auto rec : batch) {
            decoded d{};
            if (auto e = decode_full(rec, d); !e.empty()) {
              main_err = e;
              break;
            }
            const std::uint64_t s = d.seq - seq0;
            bool ok;
            if (got == 0) ok = d.id == 0 && s == 0 && rec.size() == rc.a_commit && rec.data() == a_data;
            else if (d.id == 1) ok = s == next_b++;
            else if (d.id == 2) ok = s == next_c++;
            else ok = false;
            if (!ok) {
              main_err = "after A committed, record " + std::to_string(got) + " is (producer " + std::to_string(d.id) +
                         ", seq " + std::to_string(s) + ")";
              break;
            }
            ++got;
          }
          batch.release();
        }
      }
    }  // joined
    ASSERT_EQ(a_err, "");
    ASSERT_EQ(b_err, "");
    ASSERT_EQ(c_err, "");
    ASSERT_EQ(main_err, "");
    if (kind == storage::caller && rc.a_header + 8 + rc.a_size > cap) {
      EXPECT_EQ(a_data, base + 8) << "A's record should have wrapped to the start of the storage";
    } else {
      EXPECT_EQ(a_data, base + rc.a_header + 8);  // over mirrored storage, across the seam if it must
    }
    {
      auto b = ring.try_read();
      EXPECT_FALSE(b);
    }
    EXPECT_EQ(ring.in_flight(), 0u);
    EXPECT_EQ(ring.size_approx(), 0u);
    // Where the cursors stand now: after A's record and the 40 later small ones.
    const std::size_t a_at = static_cast<std::size_t>(a_data - base) - 8;
    tail = (a_at + 8 + (rc.a_size + 7) / 8 * 8 + (after_b + after_c) * small_fp) % cap;
  }
}

TEST(RecordRingStress, StalledProducerHoldsBackLaterRecordsOnly) {
  stalled_producer_holds_back_later_records_only(storage::caller);
}

TEST(RecordRingStress, MirroredStalledProducerHoldsBackLaterRecordsOnly) {
  stalled_producer_holds_back_later_records_only(storage::mirrored);
}

// ------------------------------------------------------- a PAD in front of an in-flight record

// The producer's reservation wraps, leaving a PAD in the tail of the storage, and stays in
// flight while the consumer reads: the consumer must step over (and free) the PAD, deliver
// nothing, and deliver the record from the start of the storage once it is committed. The two
// threads signal each other only with relaxed flags, so all the synchronization the consumer
// gets is the ring's own (what ThreadSanitizer checks here).
template <class Ring>
void pad_before_in_flight_record() {
  constexpr std::size_t cap = 4096;
  auto storage = std::make_unique<std::uint64_t[]>(cap / 8);
  std::byte* const base = reinterpret_cast<std::byte*>(storage.get());
  Ring ring(std::span<std::byte>(base, cap));
  const auto deadline = steady::now() + time_limit;
  constexpr std::size_t filler = 2016 - 8, wrapped = 200;  // two fillers leave a 64-byte tail
  std::atomic<bool> reserved{false}, stepped{false}, fail{false};
  std::string producer_err, consumer_err;
  const std::byte* wrapped_at = nullptr;
  {
    std::jthread producer([&] {
      auto bad = [&](const char* e) {
        producer_err = e;
        fail.store(true, std::memory_order_relaxed);
      };
      for (std::uint64_t s = 0; s < 2; ++s) {
        auto g = ring.try_reserve(filler);
        if (!g) return bad("could not reserve a filler");
        write_record(g.span(), 0, s, filler);
        g.commit();
      }
      typename Ring::grant g;
      for (std::uint32_t spins = 0; !(g = ring.try_reserve(wrapped)); ++spins) {  // until the fillers are freed
        if (fail.load(std::memory_order_relaxed) || ((spins & 63) == 0 && steady::now() > deadline))
          return bad("the wrapped record could not be reserved");
        std::this_thread::yield();
      }
      if (g.data() != base + 8) return bad("the wrapped record is not at the start of the storage");
      write_record(g.span(), 0, 2, wrapped);
      reserved.store(true, std::memory_order_relaxed);
      for (std::uint32_t spins = 0; !stepped.load(std::memory_order_relaxed); ++spins) {
        if (fail.load(std::memory_order_relaxed) || ((spins & 63) == 0 && steady::now() > deadline))
          return bad("the consumer never stepped over the PAD");
        std::this_thread::yield();
      }
      g.commit();
    });
    consumer_err = [&]() -> std::string {
      std::uint64_t next = 0;
      bool pad_checked = false;
      for (std::uint32_t spins = 0; next < 3; ++spins) {
        if (fail.load(std::memory_order_relaxed)) return "the producer failed";
        if ((spins & 63) == 0 && steady::now() > deadline) return "deadline passed; got " + std::to_string(next) + " of 3 records";
        if (next == 2 && !pad_checked && reserved.load(std::memory_order_relaxed)) {
          // The PAD is written, the record behind it is in flight: nothing to read, the PAD is freed.
          if (auto b = ring.try_read()) return "a record was delivered while the wrapped one is in flight";
          if (ring.size_approx() != 8 + wrapped) return "size_approx() is " + std::to_string(ring.size_approx()) + " after the PAD was stepped over, expected " + std::to_string(8 + wrapped);
          pad_checked = true;
          stepped.store(true, std::memory_order_relaxed);
          continue;
        }
        auto b = ring.try_read();
        if (!b) {
          std::this_thread::yield();
          continue;
        }
        for (auto rec : b) {
          decoded d{};
          if (auto e = decode_full(rec, d); !e.empty()) return e;
          if (d.seq != next) return "got seq " + std::to_string(d.seq) + ", expected " + std::to_string(next);
          if (next == 2) wrapped_at = rec.data();
          ++next;
        }
        b.release();
      }
      return {};
    }();
    if (!consumer_err.empty()) fail.store(true, std::memory_order_relaxed);
  }  // joined
  ASSERT_EQ(producer_err, "");
  ASSERT_EQ(consumer_err, "");
  EXPECT_EQ(wrapped_at, base + 8);
  EXPECT_EQ(ring.size_approx(), 0u);
}

TEST(RecordRingStress, MpscPadBeforeInFlightRecord) { pad_before_in_flight_record<sluice::mpsc_record_ring>(); }
TEST(RecordRingStress, SpscPadBeforeInFlightRecord) { pad_before_in_flight_record<sluice::spsc_record_ring>(); }

}  // namespace
