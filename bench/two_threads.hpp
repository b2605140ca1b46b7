// The harnesses the throughput benchmarks share: the benchmark thread produces, other threads
// consume (or produce too), each pinned to its own core where the machine has two.
#pragma once

#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace sluice_bench {

inline void pin_to(int cpu) {
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  if (cpus < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
}

// What the benchmark thread tells a thread it runs beside, on a line of its own (two, for the
// adjacent-line prefetcher): the other thread polls it all the time, and a hot local of the
// benchmark thread sharing its line would move between the cores at every poll. That false
// sharing once slowed one two-thread body five-fold, by where the compiler spilled a register.
struct alignas(128) pacing {
  std::atomic<std::uint64_t> target{0};  // items sent, once the benchmark thread is done
  std::atomic<bool> stop{false};         // the benchmark thread is done
};

// Runs `produce(i)` `per_iteration` times per benchmark iteration on this thread and
// `consume()` on a pinned consumer thread until all items arrived; `consume()` returns how many
// it took. Reports items/s (and bytes/s if `bytes_per_item` is given).
template <class Produce, class Consume>
void run(benchmark::State& state, std::uint64_t per_iteration, Produce produce, Consume consume,
         std::uint64_t bytes_per_item = 0) {
  pacing pace;
  std::thread consumer([&] {
    pin_to(1);
    std::uint64_t got = 0;
    // Relaxed loads: the counts only pace the loop; the data travel through the ring.
    while (!pace.stop.load(std::memory_order_relaxed) || got < pace.target.load(std::memory_order_relaxed))
      got += consume();
  });
  pin_to(0);
  std::uint64_t sent = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < per_iteration; ++i) produce(sent++);
  }
  pace.target.store(sent, std::memory_order_relaxed);
  pace.stop.store(true, std::memory_order_relaxed);
  consumer.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
  if (bytes_per_item != 0) state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration * bytes_per_item));
}

// Several producers and one consumer, for a fixed total: `produce(id, count)` runs on each of
// `producers` threads (the first on this one), `consume(expected)` on another until it has
// taken `expected` items. The wall time from start to the consumer's last item is the
// benchmark's manual time; the threads share the machine's cores round robin.
inline void run_fixed(benchmark::State& state, unsigned producers, std::uint64_t per_producer,
                      const std::function<void(unsigned, std::uint64_t)>& produce,
                      const std::function<void(std::uint64_t)>& consume, std::uint64_t bytes_per_item = 0) {
  for (auto _ : state) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    auto wait_go = [&] {
      ready.fetch_add(1, std::memory_order_relaxed);  // a count only
      while (!go.load(std::memory_order_acquire)) {}   // pairs with the store below
    };
    std::thread consumer([&] {
      pin_to(1);
      wait_go();
      consume(per_producer * producers);
    });
    std::vector<std::thread> others;
    for (unsigned id = 1; id < producers; ++id)
      others.emplace_back([&, id] {
        pin_to(static_cast<int>(id) * 2);  // spread over the cores (even ones first)
        wait_go();
        produce(id, per_producer);
      });
    pin_to(0);
    while (ready.load(std::memory_order_relaxed) != producers) {}
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    produce(0, per_producer);
    consumer.join();
    const auto took = std::chrono::steady_clock::now() - start;
    for (auto& t : others) t.join();
    state.SetIterationTime(std::chrono::duration<double>(took).count());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_producer * producers));
  if (bytes_per_item != 0)
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * per_producer * producers * bytes_per_item));
}

}  // namespace sluice_bench
