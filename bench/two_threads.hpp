// The harness every throughput benchmark shares: the benchmark thread produces, a second thread
// consumes, each pinned to its own core where the machine has two.
#pragma once

#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace sluice_bench {

inline void pin_to(int cpu) {
  if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
}

// Runs `produce(i)` `per_iteration` times per benchmark iteration on this thread and
// `consume()` on a pinned consumer thread until all items arrived; `consume()` returns how many
// it took. Reports items/s.
template <class Produce, class Consume>
void run(benchmark::State& state, std::uint64_t per_iteration, Produce produce, Consume consume) {
  std::atomic<std::uint64_t> target{0};
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    pin_to(1);
    std::uint64_t got = 0;
    // Relaxed loads: the counts only pace the loop; the data travel through the ring.
    while (!stop.load(std::memory_order_relaxed) || got < target.load(std::memory_order_relaxed)) got += consume();
  });
  pin_to(0);
  std::uint64_t sent = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < per_iteration; ++i) produce(sent++);
  }
  target.store(sent, std::memory_order_relaxed);
  stop.store(true, std::memory_order_relaxed);
  consumer.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
}

}  // namespace sluice_bench
