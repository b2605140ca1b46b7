// The two ways of moving uint64_t items through an spsc_ring that several suites race: one item
// per call, and zero-copy batches of up to 64. Two threads (two_threads.hpp).
#pragma once

#include "two_threads.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>

namespace sluice_bench {

inline constexpr std::uint64_t items_per_iteration = 1 << 16;

// try_push / try_pop: one item per commit and per release, where bookkeeping weighs most.
template <class Ring>
void push_pop(benchmark::State& state, Ring& ring) {
  run(
      state, items_per_iteration, [&](std::uint64_t i) { while (!ring.try_push(i)) {} },
      [&]() -> std::uint64_t {
        auto x = ring.try_pop();
        if (x) benchmark::DoNotOptimize(*x);
        return x ? 1 : 0;
      });
}

// Reserve up to 64 items, fill them in place, commit once; read everything, release once.
template <class Ring>
void batches_of_64(benchmark::State& state, Ring& ring) {
  std::uint64_t pending = 0, next = 0;
  run(
      state, items_per_iteration,
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

}  // namespace sluice_bench
