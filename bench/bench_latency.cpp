// Latency between two threads.
//
// round_trip: one item bounced A -> B -> A through two rings, against the same through two
// boost::lockfree::spsc_queue and against the raw limit, two threads bouncing one
// std::atomic counter (the baseline: nothing can hand a value over faster). Target
// (docs/benchmarks.md): sluice within 1.3x the raw limit. The `_sampled` contenders time every
// round trip with the steady clock (its cost included) and report percentiles as counters, for
// the latency distribution; the plain ones are what to compare.
//
// wake_up: a consumer asleep in a blocking read, and a producer that hands it one item every
// 50 microseconds: the time from the commit to the consumer holding the item, against a
// std::condition_variable hand-off of the same item (the baseline). Reported as the mean
// latency (manual time per item) and percentiles.
#include <sluice/spsc_ring.hpp>

#include "rounds.hpp"
#include "two_threads.hpp"

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

// p50, p90, p99, p99.9 of `ns` as counters.
void report_percentiles(benchmark::State& state, std::vector<std::int64_t>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) { return static_cast<double>(ns[static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1))]); };
  state.counters["p50_ns"] = at(0.50);
  state.counters["p90_ns"] = at(0.90);
  state.counters["p99_ns"] = at(0.99);
  state.counters["p999_ns"] = at(0.999);
}

// A -> B -> A: `ping(i)` sends item i and waits for its echo; `echo(stop)` runs on the other
// thread, returning items until `stop`.
template <class Ping, class Echo>
void bounce(benchmark::State& state, Ping ping, Echo echo, bool sampled) {
  sluice_bench::pacing pace;  // the echo loop polls its stop flag: a line of its own
  std::thread other([&] {
    sluice_bench::pin_to(1);
    echo(pace.stop);
  });
  sluice_bench::pin_to(0);
  std::vector<std::int64_t> samples;
  if (sampled) samples.reserve(1 << 20);
  std::uint64_t i = 0;
  for (auto _ : state) {
    if (sampled) {
      const auto t0 = steady::now();
      ping(i++);
      if (samples.size() < samples.capacity()) samples.push_back((steady::now() - t0).count());
    } else {
      ping(i++);
    }
  }
  pace.stop.store(true, std::memory_order_relaxed);  // the echo loop polls it; nothing else rides on it
  other.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  report_percentiles(state, samples);
}

void sluice_rings(benchmark::State& state, bool sampled) {
  sluice::spsc_ring<std::uint64_t> there(64), back(64);
  bounce(
      state,
      [&](std::uint64_t i) {
        while (!there.try_push(i)) {}
        for (;;)
          if (auto x = back.try_pop()) return benchmark::DoNotOptimize(*x);
      },
      [&](std::atomic<bool>& stop) {
        while (!stop.load(std::memory_order_relaxed))
          if (auto x = there.try_pop()) while (!back.try_push(*x)) {}
      },
      sampled);
}

void boost_queues(benchmark::State& state, bool sampled) {
  boost::lockfree::spsc_queue<std::uint64_t> there(64), back(64);
  bounce(
      state,
      [&](std::uint64_t i) {
        while (!there.push(i)) {}
        std::uint64_t x;
        while (!back.pop(x)) {}
        benchmark::DoNotOptimize(x);
      },
      [&](std::atomic<bool>& stop) {
        std::uint64_t x;
        while (!stop.load(std::memory_order_relaxed))
          if (there.pop(x)) while (!back.push(x)) {}
      },
      sampled);
}

// The raw limit: odd values go there, even ones come back.
void atomic_flag(benchmark::State& state, bool sampled) {
  alignas(128) std::atomic<std::uint64_t> word{0};
  bounce(
      state,
      [&](std::uint64_t i) {
        // Release/acquire: the value is the message; the pairs are each side's store and load.
        word.store(2 * i + 1, std::memory_order_release);
        while (word.load(std::memory_order_acquire) != 2 * i + 2) {}
      },
      [&](std::atomic<bool>& stop) {
        while (!stop.load(std::memory_order_relaxed)) {
          const std::uint64_t v = word.load(std::memory_order_acquire);
          if (v & 1) word.store(v + 1, std::memory_order_release);
        }
      },
      sampled);
}

// ------------------------------------------------------------------------------------ wake_up

const int wake_items = static_cast<int>(sluice_bench::scaled(2048));
constexpr auto wake_gap = std::chrono::microseconds(50);

// The producer hands over one item every wake_gap, stamped with the time it hands it over;
// `hand_over(stamp)` delivers it and `take()` (on the consumer, asleep in between) returns the
// stamp. The manual time is the sum of the latencies from hand-over to the consumer holding it.
template <class HandOver, class Take>
void wake_run(benchmark::State& state, HandOver hand_over, Take take) {
  std::vector<std::int64_t> latencies(static_cast<std::size_t>(wake_items));
  for (auto _ : state) {
    std::thread consumer([&] {
      sluice_bench::pin_to(1);
      for (auto& latency : latencies) {
        const std::int64_t stamp = take();
        latency = steady::now().time_since_epoch().count() - stamp;
      }
    });
    sluice_bench::pin_to(0);
    for (int i = 0; i < wake_items; ++i) {
      const auto until = steady::now() + wake_gap;
      while (steady::now() < until) {}  // busy: the producer stays awake, the consumer sleeps
      hand_over();
    }
    consumer.join();
    double total = 0;
    for (auto l : latencies) total += static_cast<double>(l);
    state.SetIterationTime(total * 1e-9);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * wake_items);
  report_percentiles(state, latencies);
}

std::int64_t stamp_now() { return steady::now().time_since_epoch().count(); }

// Capacity 1: as with the condition variable, an item is handed over only once the previous
// one was taken, so a consumer slow to wake delays one item, not a queue of them.
void sluice_blocking_read(benchmark::State& state) {
  sluice::spsc_ring<std::int64_t> ring(1);
  wake_run(
      state, [&] { while (!ring.try_push(stamp_now())) {} },
      [&] {
        auto g = ring.read();
        const std::int64_t stamp = g[0];
        g.release(1);
        return stamp;
      });
}

void condvar_hand_off(benchmark::State& state) {
  std::mutex m;
  std::condition_variable cv;
  std::int64_t slot = 0;
  bool full = false;
  wake_run(
      state,
      [&] {
        {
          std::unique_lock lock(m);
          while (full) {  // not taken yet (the consumer was slow to wake): wait, never overwrite
            lock.unlock();
            std::this_thread::yield();
            lock.lock();
          }
          slot = stamp_now();
          full = true;
        }
        cv.notify_one();
      },
      [&] {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return full; });
        full = false;
        return slot;
      });
}

const int registered = [] {
  using sluice_bench::contender;
  sluice_bench::family("round_trip", "atomic_flag");
  contender("round_trip", "atomic_flag", [](benchmark::State& s) { atomic_flag(s, false); });
  contender("round_trip", "sluice_spsc_ring", [](benchmark::State& s) { sluice_rings(s, false); });
  contender("round_trip", "boost_spsc_queue", [](benchmark::State& s) { boost_queues(s, false); });
  sluice_bench::family("round_trip_sampled", "atomic_flag");
  contender("round_trip_sampled", "atomic_flag", [](benchmark::State& s) { atomic_flag(s, true); });
  contender("round_trip_sampled", "sluice_spsc_ring", [](benchmark::State& s) { sluice_rings(s, true); });
  contender("round_trip_sampled", "boost_spsc_queue", [](benchmark::State& s) { boost_queues(s, true); });
  sluice_bench::family("wake_up", "condition_variable");
  contender("wake_up", "condition_variable", condvar_hand_off, sluice_bench::timing::manual);
  contender("wake_up", "sluice_blocking_read", sluice_blocking_read, sluice_bench::timing::manual);
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
