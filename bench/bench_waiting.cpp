// What waiting support costs the non-blocking paths. Each ring runs the same non-blocking
// traffic under three waiting policies, in one run:
//   no_waiting   commits and releases never look for sleepers (the floor);
//   waitable     the default: a compiler barrier and one plain load per commit and release,
//                paired with the sleeper's membarrier (see include/sluice/detail/wait.hpp);
//   full_fence   the classic design: a full fence per commit and release.
// Nobody ever sleeps here; the figures isolate the bookkeeping. The two-thread runs are what a
// user sees; the one-thread runs are the bookkeeping's instruction cost alone. The policies run
// in interleaved rounds; bench/ratios.py turns the JSON output into medians of the ratios
// against no_waiting within each round.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "rounds.hpp"
#include "two_threads.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace {

// Waiting with full fences on both sides, as if membarrier were unavailable.
struct full_fence {
  static constexpr bool enabled = true;
  static constexpr bool asymmetric_fences = false;
};

constexpr std::uint64_t per_iteration = 1 << 16;

// One item per commit and per release: where bookkeeping weighs most.
template <class Wait>
void spsc_ring_push_pop(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(4096);
  sluice_bench::run(
      state, per_iteration, [&](std::uint64_t i) { while (!ring.try_push(i)) {} },
      [&]() -> std::uint64_t {
        auto x = ring.try_pop();
        if (x) benchmark::DoNotOptimize(*x);
        return x ? 1 : 0;
      });
}

// Zero-copy grants of up to 64 items: one commit and one release per block.
template <class Wait>
void spsc_ring_grants64(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(4096);
  std::uint64_t pending = 0, next = 0;
  sluice_bench::run(
      state, per_iteration,
      [&](std::uint64_t) {
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

// 16-byte records, one per reservation; the consumer releases whole batches.
template <class Policy, class Wait>
void record_ring_16B(benchmark::State& state) {
  sluice::basic_record_ring<Policy, Wait> ring(1 << 16);
  sluice_bench::run(
      state, per_iteration,
      [&](std::uint64_t i) {
        for (;;) {
          if (auto g = ring.try_reserve(16)) {
            std::memcpy(g.data(), &i, sizeof i);
            g.commit();
            return;
          }
        }
      },
      [&]() -> std::uint64_t {
        auto b = ring.try_read();
        std::uint64_t sum = 0;
        for (auto record : b) {
          std::uint64_t x;
          std::memcpy(&x, record.data(), sizeof x);
          sum += x;
        }
        benchmark::DoNotOptimize(sum);
        const std::uint64_t n = b.size();
        b.release();
        return n;
      });
}

// One thread fills 256 items and drains them: no cache line moves between cores, so this is the
// pure instruction cost of each policy's bookkeeping, free of the two-thread runs' regime swings
// (a ring that runs near empty moves a cache line per item; near full, one per refill).
template <class Wait>
void spsc_ring_push_pop_one_thread(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(256);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < 256; ++i) (void)ring.try_push(i);
    for (int i = 0; i < 256; ++i) sum += *ring.try_pop();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 256));
}

template <class Policy, class Wait>
void record_ring_16B_one_thread(benchmark::State& state) {
  sluice::basic_record_ring<Policy, Wait> ring(8192);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < 256; ++i) {
      auto g = ring.try_reserve(16);
      std::memcpy(g.data(), &i, sizeof i);
      g.commit();
    }
    auto b = ring.try_read();
    for (auto record : b) sum += static_cast<std::uint64_t>(record[0]);
    b.release();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 256));
}

// Each family races the three policies in interleaved rounds (bench/rounds.hpp).
template <template <class> class Body>
void policies(const std::string& family, bool real_time) {
  sluice_bench::family(family, "no_waiting");
  sluice_bench::contender(family, "no_waiting", Body<sluice::no_waiting>::run, real_time);
  sluice_bench::contender(family, "waitable", Body<sluice::waitable>::run, real_time);
  sluice_bench::contender(family, "full_fence", Body<full_fence>::run, real_time);
  // The control: the baseline again, after the others. Its ratio to the baseline is the noise
  // floor of the method on this machine (1 with no noise).
  sluice_bench::contender(family, "no_waiting_again", Body<sluice::no_waiting>::run, real_time);
}

template <class W> struct push_pop { static void run(benchmark::State& s) { spsc_ring_push_pop<W>(s); } };
template <class W> struct grants64 { static void run(benchmark::State& s) { spsc_ring_grants64<W>(s); } };
template <class W> struct spsc_records { static void run(benchmark::State& s) { record_ring_16B<sluice::single_producer, W>(s); } };
template <class W> struct mpsc_records { static void run(benchmark::State& s) { record_ring_16B<sluice::multi_producer, W>(s); } };
template <class W> struct push_pop_1t { static void run(benchmark::State& s) { spsc_ring_push_pop_one_thread<W>(s); } };
template <class W> struct spsc_records_1t { static void run(benchmark::State& s) { record_ring_16B_one_thread<sluice::single_producer, W>(s); } };
template <class W> struct mpsc_records_1t { static void run(benchmark::State& s) { record_ring_16B_one_thread<sluice::multi_producer, W>(s); } };

const int registered = [] {
  policies<push_pop>("spsc_ring_push_pop", true);
  policies<grants64>("spsc_ring_grants64", true);
  policies<spsc_records>("spsc_record_ring_16B", true);
  policies<mpsc_records>("mpsc_record_ring_16B", true);
  policies<push_pop_1t>("spsc_ring_push_pop_one_thread", false);
  policies<spsc_records_1t>("spsc_record_ring_16B_one_thread", false);
  policies<mpsc_records_1t>("mpsc_record_ring_16B_one_thread", false);
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
