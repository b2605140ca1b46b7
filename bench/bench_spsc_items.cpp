// Single-item and batched throughput of spsc_ring<uint64_t> against boost::lockfree::spsc_queue,
// producer and consumer on different cores where the machine allows. Each iteration moves
// `batch` items; items/s is the figure to compare (run with --benchmark_repetitions for medians).
#include <sluice/spsc_ring.hpp>

#include "two_threads.hpp"

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <cstdint>

namespace {

constexpr std::size_t capacity = 4096;
constexpr std::uint64_t batch = 1 << 16;

template <class Produce, class Consume>
void run(benchmark::State& state, Produce produce, Consume consume) {
  sluice_bench::run(state, batch, produce, consume);
}

void sluice_push_pop(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(capacity);
  run(
      state, [&](std::uint64_t i) { while (!ring.try_push(i)) {} },
      [&]() -> std::uint64_t {
        auto x = ring.try_pop();
        if (x) benchmark::DoNotOptimize(*x);
        return x ? 1 : 0;
      });
}

template <class Queue>
void boost_queue_push_pop(benchmark::State& state, Queue& queue) {
  run(
      state, [&](std::uint64_t i) { while (!queue.push(i)) {} },
      [&]() -> std::uint64_t {
        std::uint64_t x;
        if (!queue.pop(x)) return 0;
        benchmark::DoNotOptimize(x);
        return 1;
      });
}

void boost_push_pop(benchmark::State& state) {
  boost::lockfree::spsc_queue<std::uint64_t> queue(capacity);
  boost_queue_push_pop(state, queue);
}

void boost_fixed_push_pop(benchmark::State& state) {
  boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<capacity>> queue;
  boost_queue_push_pop(state, queue);
}

// Zero-copy batches: reserve up to 64 items, fill in place, commit once; read all, release once.
void sluice_batched(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(capacity);
  std::uint64_t pending = 0, next = 0;
  run(
      state,
      [&](std::uint64_t) {
        // Items are produced 64 at a time; `pending` counts those already written ahead.
        if (pending == 0) {
          for (;;) {
            if (auto g = ring.try_reserve_up_to(64)) {
              for (auto& x : g) x = next++;
              pending = g.size();
              g.commit();
              break;
            }
          }
        }
        --pending;
      },
      [&]() -> std::uint64_t {
        auto g = ring.try_read();
        std::uint64_t sum = 0;
        for (std::uint64_t x : g) sum += x;
        benchmark::DoNotOptimize(sum);
        const std::uint64_t n = g.size();
        g.release();
        return n;
      });
}

BENCHMARK(sluice_push_pop)->UseRealTime();
BENCHMARK(boost_push_pop)->UseRealTime();
BENCHMARK(boost_fixed_push_pop)->UseRealTime();
BENCHMARK(sluice_batched)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
