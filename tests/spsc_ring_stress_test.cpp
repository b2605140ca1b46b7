// Two-thread stress: chunks of random sizes move through the ring by every producer and
// consumer path, each element carrying its sequence number. The consumer checks every element
// against the next expected number, so a lost, duplicated, reordered or torn element fails.
// SLUICE_STRESS_CHUNKS sets the count (10^6 by default, lower under TSan).
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t chunks = SLUICE_STRESS_CHUNKS;

// Producer side: writes sequence numbers `next, next+1, ...` in chunks of random size
// 1..capacity, choosing a random write path for each chunk. Retries (yielding) until the chunk
// is placed, so an exact reservation of the whole capacity must eventually succeed.
template <class Ring, class Make>
void produce(Ring& ring, std::uint64_t seed, std::uint64_t& total_items, Make make) {
  using T = typename Ring::value_type;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> size_of(1, ring.capacity());
  std::vector<T> scratch(ring.capacity());
  std::uint64_t next = 0;
  for (std::uint64_t c = 0; c < chunks; ++c) {
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

template <class T, class Make, class Check>
void run_stress(std::size_t capacity, std::uint64_t seed, Make make, Check check) {
  sluice::spsc_ring<T> ring(capacity);
  std::atomic<std::uint64_t> total{~std::uint64_t{0}};
  std::uint64_t produced = 0;
  std::thread producer([&] {
    produce(ring, seed, produced, make);
    total.store(produced, std::memory_order_release);  // pairs with consume()'s acquire
  });
  const std::uint64_t received = consume(ring, seed ^ 0x9e3779b97f4a7c15u, total, check);
  producer.join();
  EXPECT_EQ(received, produced);
  EXPECT_GE(produced, chunks);  // every chunk carried at least one element
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

}  // namespace
