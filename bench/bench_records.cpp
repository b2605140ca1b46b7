// Records of 16 to 1500 bytes from 1, 2 and 4 producer threads to one consumer, on however many
// cores the machine has (two here: four producers oversubscribe it). One family per (producers,
// size); each moves the same total of records. Every producer writes each record from a
// source buffer and stamps it with (producer, sequence); the consumer reads the stamp of each.
//   boost_queue           boost::lockfree::queue of fixed-size payloads (the baseline: the
//                         multi-producer queue a user would take from Boost);
//   sluice_mpsc_record_ring  reserve, write in place, commit; read batches in place, release;
//   mutex_queue           a std::deque of payloads behind one mutex, bounded alike;
//   sluice_spsc_record_ring  (one producer only).
// Targets (docs/benchmarks.md): at least 3x the baseline with 1 and 2 producers; with 4 on 2
// cores, no collapse: at least half the 2-producer rate.
#include <sluice/record_ring.hpp>

#include "rounds.hpp"
#include "two_threads.hpp"

#include <benchmark/benchmark.h>
#include <boost/lockfree/queue.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace {

constexpr std::size_t ring_bytes = 1 << 20;
constexpr std::uint64_t records_per_run = 1 << 19;

template <std::size_t N>
struct payload {
  std::array<std::byte, N> bytes;
};

struct stamp {
  std::uint32_t producer;
  std::uint32_t seq;
};

template <std::size_t N>
payload<N> source_payload() {
  payload<N> p;
  for (std::size_t i = 0; i < N; ++i) p.bytes[i] = static_cast<std::byte>(i * 131 + 7);
  return p;
}

template <class Ring, std::size_t N>
void sluice_ring(benchmark::State& state, unsigned producers) {
  auto ring = std::make_unique<Ring>(ring_bytes);
  const payload<N> src = source_payload<N>();
  sluice_bench::run_fixed(
      state, producers, sluice_bench::scaled(records_per_run) / producers,
      [&](unsigned id, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) {
          for (;;) {
            if (auto g = ring->try_reserve(N)) {
              std::memcpy(g.data(), src.bytes.data(), N);
              const stamp s{id, static_cast<std::uint32_t>(i)};
              std::memcpy(g.data(), &s, sizeof s);
              g.commit();
              break;
            }
            std::this_thread::yield();  // full: let the consumer (maybe on this core) run
          }
        }
      },
      [&](std::uint64_t expected) {
        std::uint64_t got = 0, sum = 0;
        while (got < expected) {
          auto b = ring->try_read();
          for (auto rec : b) {
            stamp s;
            std::memcpy(&s, rec.data(), sizeof s);
            sum += s.seq;
          }
          got += b.size();
          b.release();
          if (!b) std::this_thread::yield();
        }
        benchmark::DoNotOptimize(sum);
      },
      N);
}

// Pushes payloads by value through a queue with push(const T&) and pop(T&).
template <class Queue, std::size_t N>
void value_queue(benchmark::State& state, unsigned producers, Queue& queue) {
  const payload<N> src = source_payload<N>();
  sluice_bench::run_fixed(
      state, producers, sluice_bench::scaled(records_per_run) / producers,
      [&](unsigned id, std::uint64_t count) {
        payload<N> p = src;
        for (std::uint64_t i = 0; i < count; ++i) {
          std::memcpy(p.bytes.data(), src.bytes.data(), N);
          const stamp s{id, static_cast<std::uint32_t>(i)};
          std::memcpy(p.bytes.data(), &s, sizeof s);
          while (!queue.push(p)) std::this_thread::yield();
        }
      },
      [&](std::uint64_t expected) {
        std::uint64_t got = 0, sum = 0;
        payload<N> p;
        while (got < expected) {
          if (queue.pop(p)) {
            stamp s;
            std::memcpy(&s, p.bytes.data(), sizeof s);
            sum += s.seq;
            ++got;
          } else {
            std::this_thread::yield();
          }
        }
        benchmark::DoNotOptimize(sum);
      },
      N);
}

// As many payloads as the sluice ring holds records of this size.
template <std::size_t N>
constexpr std::size_t queue_capacity() {
  return ring_bytes / (8 + (N + 7) / 8 * 8);
}

template <std::size_t N>
void boost_queue(benchmark::State& state, unsigned producers) {
  // Its nodes are allocated up front (fixed_sized would cap it at 65535 nodes).
  auto queue = std::make_unique<boost::lockfree::queue<payload<N>>>(queue_capacity<N>());
  value_queue<boost::lockfree::queue<payload<N>>, N>(state, producers, *queue);
}

template <std::size_t N>
class locked_queue {
 public:
  bool push(const payload<N>& p) {
    std::lock_guard lock(mutex_);
    if (items_.size() >= queue_capacity<N>()) return false;
    items_.push_back(p);
    return true;
  }
  bool pop(payload<N>& p) {
    std::lock_guard lock(mutex_);
    if (items_.empty()) return false;
    p = items_.front();
    items_.pop_front();
    return true;
  }

 private:
  std::mutex mutex_;
  std::deque<payload<N>> items_;
};

template <std::size_t N>
void mutex_queue(benchmark::State& state, unsigned producers) {
  locked_queue<N> queue;
  value_queue<locked_queue<N>, N>(state, producers, queue);
}

template <std::size_t N>
void sizes(unsigned producers) {
  using sluice_bench::contender;
  using sluice_bench::timing;
  const std::string family = "records_" + std::to_string(producers) + "p_" + std::to_string(N) + "B";
  sluice_bench::family(family, "boost_queue");
  contender(family, "boost_queue", [producers](benchmark::State& s) { boost_queue<N>(s, producers); }, timing::manual);
  contender(family, "sluice_mpsc_record_ring",
            [producers](benchmark::State& s) { sluice_ring<sluice::mpsc_record_ring, N>(s, producers); },
            timing::manual);
  contender(family, "mutex_queue", [producers](benchmark::State& s) { mutex_queue<N>(s, producers); }, timing::manual);
  if (producers == 1)
    contender(family, "sluice_spsc_record_ring",
              [](benchmark::State& s) { sluice_ring<sluice::spsc_record_ring, N>(s, 1); }, timing::manual);
}

const int registered = [] {
  for (unsigned producers : {1u, 2u, 4u}) {
    sizes<16>(producers);
    sizes<64>(producers);
    sizes<256>(producers);
    sizes<1500>(producers);
  }
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
