// Two-thread stress: chunks of random sizes move through the ring by every producer and
// consumer path, each element carrying its sequence number. The consumer checks every element
// against the next expected number, so a lost, duplicated, reordered or torn element fails.
// SLUICE_STRESS_CHUNKS sets the count (10^6 by default, lower under TSan).
//
// The Mirrored tests run the same over mirrored storage, where every grant and read is one span
// that may run past the end of the storage into its second mapping. Elements of 64 bytes (64 to
// a page) and of a whole page (so any capacity: 3 here) keep the rings small and the seam
// crossed hundreds of thousands of times; 8-byte elements and bytes fill a page with 512 and
// 4096. They move fewer chunks (a half to a 32nd, as noted at each; a quarter of that under
// ThreadSanitizer), since their elements or their chunks are larger: each still moves tens of
// millions of words, every one checked.
#include <sluice/spsc_ring.hpp>

#include "random_seed.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t chunks = SLUICE_STRESS_CHUNKS;

#if defined(__SANITIZE_THREAD__)
#define SLUICE_SRST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLUICE_SRST_TSAN 1
#endif
#endif
// The Mirrored tests check many more words per chunk; ThreadSanitizer instruments each one.
#if defined(SLUICE_SRST_TSAN)
constexpr std::uint64_t mirrored_slowdown = 4;
#else
constexpr std::uint64_t mirrored_slowdown = 1;
#endif

enum class storage { owned, mirrored };

// An element of Words 64-bit words, each derived from the sequence number, so a torn element
// (words of two different ones) fails the check.
template <std::size_t Words>
struct wide {
  std::uint64_t w[Words];
  static wide of(std::uint64_t i) noexcept {
    wide x;
    x.w[0] = i;
    const std::uint64_t h = sluice_test::mix(i);
    for (std::size_t k = 1; k < Words; ++k) x.w[k] = h + k;
    return x;
  }
  bool is(std::uint64_t i) const noexcept {
    if (w[0] != i) return false;
    const std::uint64_t h = sluice_test::mix(i);
    for (std::size_t k = 1; k < Words; ++k)
      if (w[k] != h + k) return false;
    return true;
  }
};

// Producer side: writes sequence numbers `next, next+1, ...` in chunks of random size
// 1..capacity, choosing a random write path for each chunk. Retries (yielding) until the chunk
// is placed, so an exact reservation of the whole capacity must eventually succeed.
template <class Ring, class Make>
void produce(Ring& ring, std::uint64_t seed, std::uint64_t count, std::uint64_t& total_items, Make make) {
  using T = typename Ring::value_type;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> size_of(1, ring.capacity());
  std::vector<T> scratch(ring.capacity());
  std::uint64_t next = 0;
  for (std::uint64_t c = 0; c < count; ++c) {
    std::size_t n = size_of(rng);
    const int path = static_cast<int>(rng() % 5);
    while (n > 0) {
      std::size_t done = 0;
      switch (path) {
        case 0: {  // exact grant, all of it
          if (auto g = ring.try_reserve(n)) {
            for (auto& x : g) x = make(next + done++);
            g.commit();
          }
          break;
        }
        case 1: {  // exact grant, commit a prefix
          if (auto g = ring.try_reserve(n)) {
            const std::size_t k = 1 + rng() % n;
            for (std::size_t i = 0; i < g.size(); ++i) g[i] = make(next + i);
            g.commit(k);
            done = k;
          }
          break;
        }
        case 2: {  // up-to grant
          if (auto g = ring.try_reserve_up_to(n)) {
            for (auto& x : g) x = make(next + done++);
            g.commit();
          }
          break;
        }
        case 3: {  // split grant
          if (auto g = ring.try_reserve_split(n)) {
            for (auto& x : g.first()) x = make(next + done++);
            for (auto& x : g.second()) x = make(next + done++);
            g.commit();
          }
          break;
        }
        default: {  // copy in
          for (std::size_t i = 0; i < n; ++i) scratch[i] = make(next + i);
          done = ring.write_some(std::span<const T>(scratch.data(), n));
          if (done == 0 && ring.try_push(scratch[0])) done = 1;
          break;
        }
      }
      next += done;
      n -= done;
      if (done == 0) std::this_thread::yield();
    }
  }
  total_items = next;
}

// Consumer side: reads until `expected_total` items arrived (the producer publishes the total
// when done), through a random read path each time, checking every element.
template <class Ring, class Check>
std::uint64_t consume(Ring& ring, std::uint64_t seed, const std::atomic<std::uint64_t>& total, Check check) {
  using T = typename Ring::value_type;
  std::mt19937_64 rng(seed);
  std::vector<T> scratch(ring.capacity());
  std::uint64_t next = 0;
  std::uint64_t failures = 0;
  auto expect = [&](const T& x) {
    if (!check(x, next)) ++failures;
    ++next;
  };
  for (;;) {
    // Acquire pairs with the producer thread's release after its last chunk.
    const std::uint64_t want = total.load(std::memory_order_acquire);
    if (next == want) break;
    std::size_t got = 0;
    switch (rng() % 4) {
      case 0: {
        if (auto g = ring.try_read()) {
          const std::size_t k = (rng() % 2) ? g.size() : 1 + rng() % g.size();
          for (std::size_t i = 0; i < k; ++i) expect(g[i]);
          g.release(k);
          got = k;
        }
        break;
      }
      case 1: {
        if (auto g = ring.try_read_split()) {
          const std::size_t k = 1 + rng() % g.size();
          for (std::size_t i = 0; i < k; ++i) expect(i < g.first().size() ? g.first()[i] : g.second()[i - g.first().size()]);
          g.release(k);
          got = k;
        }
        break;
      }
      case 2: {
        const std::size_t want_n = 1 + rng() % scratch.size();
        got = ring.read_some(std::span<T>(scratch.data(), want_n));
        for (std::size_t i = 0; i < got; ++i) expect(scratch[i]);
        break;
      }
      default: {
        if (auto x = ring.try_pop()) {
          expect(*x);
          got = 1;
        }
        break;
      }
    }
    if (got == 0) std::this_thread::yield();
  }
  EXPECT_EQ(failures, 0u) << "elements out of sequence (seed " << seed << ")";
  return next;
}

// `count` chunks through a ring of `capacity` elements (over mirrored storage: at least that
// many, rounded up to whole pages).
template <class T, class Make, class Check>
void run_stress(std::size_t capacity, std::uint64_t seed, Make make, Check check, storage kind = storage::owned,
                std::uint64_t count = chunks) {
  // On the heap: rings do not move.
  const auto made = kind == storage::mirrored ? std::make_unique<sluice::spsc_ring<T>>(sluice::mirrored, capacity)
                                              : std::make_unique<sluice::spsc_ring<T>>(capacity);
  sluice::spsc_ring<T>& ring = *made;
  ASSERT_EQ(ring.mirrored(), kind == storage::mirrored);
  std::atomic<std::uint64_t> total{~std::uint64_t{0}};
  std::uint64_t produced = 0;
  std::thread producer([&] {
    produce(ring, seed, count, produced, make);
    total.store(produced, std::memory_order_release);  // pairs with consume()'s acquire
  });
  const std::uint64_t received = consume(ring, seed ^ 0x9e3779b97f4a7c15u, total, check);
  producer.join();
  EXPECT_EQ(received, produced);
  EXPECT_GE(produced, count);  // every chunk carried at least one element
  EXPECT_EQ(ring.size_approx(), 0u);
  EXPECT_FALSE(ring.try_read());
}

TEST(SpscRingStress, SequenceNumbersThroughEveryPath) {
  run_stress<std::uint64_t>(
      61, 1, [](std::uint64_t i) { return i; }, [](std::uint64_t x, std::uint64_t i) { return x == i; });
}

TEST(SpscRingStress, PowerOfTwoCapacity) {
  run_stress<std::uint64_t>(
      64, 2, [](std::uint64_t i) { return i; }, [](std::uint64_t x, std::uint64_t i) { return x == i; });
}

TEST(SpscRingStress, TinyRingWrapsConstantly) {
  run_stress<std::uint64_t>(
      3, 3, [](std::uint64_t i) { return i; }, [](std::uint64_t x, std::uint64_t i) { return x == i; });
}

// Bytes: each carries the low bits of a mixed sequence number, so a shifted stream mismatches.
TEST(SpscRingStress, Bytes) {
  auto byte_of = [](std::uint64_t i) { return static_cast<std::byte>((i * 0x9e3779b97f4a7c15u) >> 56); };
  run_stress<std::byte>(
      257, 4, byte_of, [byte_of](std::byte x, std::uint64_t i) { return x == byte_of(i); });
}

// ---------------------------------------------------------------------- over mirrored storage

template <std::size_t Words>
void run_wide(std::size_t capacity, std::uint64_t seed, std::uint64_t count) {
  using T = wide<Words>;
  run_stress<T>(
      capacity, seed, [](std::uint64_t i) { return T::of(i); }, [](const T& x, std::uint64_t i) { return x.is(i); },
      storage::mirrored, count / mirrored_slowdown);
}

// 64-byte elements, 64 to a page: chunks of 1..64 as in PowerOfTwoCapacity, across the seam.
// Half the chunks.
TEST(SpscRingStress, MirroredSmallRing) { run_wide<8>(61, 5, chunks / 2); }

// Elements of a whole page, 3 of them: chunks of 1..3, most across the seam. An eighth of the
// chunks: every element is 512 words to write and check.
TEST(SpscRingStress, MirroredTinyRingOfPages) { run_wide<512>(3, 6, chunks / 8); }

// Sequence numbers in a page of 512: chunks of 1..512. A quarter of the chunks.
TEST(SpscRingStress, MirroredSequenceNumbers) {
  run_stress<std::uint64_t>(
      61, 7, [](std::uint64_t i) { return i; }, [](std::uint64_t x, std::uint64_t i) { return x == i; },
      storage::mirrored, chunks / 4 / mirrored_slowdown);
}

// Bytes in a page of 4096: chunks of 1..4096. A 32nd of the chunks.
TEST(SpscRingStress, MirroredBytes) {
  auto byte_of = [](std::uint64_t i) { return static_cast<std::byte>((i * 0x9e3779b97f4a7c15u) >> 56); };
  run_stress<std::byte>(
      257, 8, byte_of, [byte_of](std::byte x, std::uint64_t i) { return x == byte_of(i); }, storage::mirrored,
      chunks / 32 / mirrored_slowdown);
}

}  // namespace
