// What waiting support costs the non-blocking paths. Each ring runs the same non-blocking
// traffic under three waiting policies, in one run:
//   no_waiting   commits and releases never look for sleepers (the floor);
//   waitable     the default: a compiler barrier and one plain load per commit and release,
//                paired with the sleeper's membarrier (see include/sluice/detail/wait.hpp);
//   full_fence   the classic design: a full fence per commit and release.
// Nobody ever sleeps here; the figures isolate the bookkeeping. The two-thread runs are what a
// user sees; the one-thread runs are the bookkeeping's instruction cost alone. The policies run
// in interleaved rounds; bench/ratios.py turns the JSON output into medians of the ratios
// against no_waiting within each round. Two controls run beside them: the baseline again (the
// method's noise) and its twin, compiled a second time (what code placement alone does).
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "item_bodies.hpp"
#include "one_thread_bodies.hpp"
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

// The baseline's twin: the same policy under another name, so the ring's code is compiled a
// second time and lands elsewhere in the binary. Its ratio to the baseline is what code
// placement alone does to a rate (0.9 or 1.1 is common with two threads), the floor under which
// no difference between the policies means anything.
struct no_waiting_twin {
  static constexpr bool enabled = false;
};

constexpr std::uint64_t per_iteration = sluice_bench::items_per_iteration;

template <class Wait>
void spsc_ring_push_pop(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(4096);
  sluice_bench::push_pop(state, ring);
}

template <class Wait>
void spsc_ring_grants64(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(4096);
  sluice_bench::batches_of_64(state, ring);
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
  sluice::spsc_ring<std::uint64_t, Wait> ring(sluice_bench::fill_count);
  std::uint64_t sum = 0;
  for (auto _ : state) sum += sluice_bench::push_then_pop(ring);
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * sluice_bench::fill_count));
}

template <class Policy, class Wait>
void record_ring_16B_one_thread(benchmark::State& state) {
  sluice::basic_record_ring<Policy, Wait> ring(8192);
  std::uint64_t sum = 0;
  for (auto _ : state) sum += sluice_bench::write_then_read_16B(ring);
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * sluice_bench::fill_count));
}

// Each family races the three policies in interleaved rounds (bench/rounds.hpp).
template <template <class> class Body>
void policies(const std::string& family, sluice_bench::timing time) {
  sluice_bench::family(family, "no_waiting");
  sluice_bench::contender(family, "no_waiting", Body<sluice::no_waiting>::run, time);
  sluice_bench::contender(family, "waitable", Body<sluice::waitable>::run, time);
  sluice_bench::contender(family, "full_fence", Body<full_fence>::run, time);
  // The control: the baseline again, after the others. Its ratio to the baseline is the noise
  // floor of the method on this machine (1 with no noise).
  sluice_bench::contender(family, "no_waiting_again", Body<sluice::no_waiting>::run, time);
  sluice_bench::contender(family, "no_waiting_twin", Body<no_waiting_twin>::run, time);
}

template <class W> struct push_pop { static void run(benchmark::State& s) { spsc_ring_push_pop<W>(s); } };
template <class W> struct grants64 { static void run(benchmark::State& s) { spsc_ring_grants64<W>(s); } };
template <class W> struct spsc_records { static void run(benchmark::State& s) { record_ring_16B<sluice::single_producer, W>(s); } };
template <class W> struct mpsc_records { static void run(benchmark::State& s) { record_ring_16B<sluice::multi_producer, W>(s); } };
template <class W> struct push_pop_1t { static void run(benchmark::State& s) { spsc_ring_push_pop_one_thread<W>(s); } };
template <class W> struct spsc_records_1t { static void run(benchmark::State& s) { record_ring_16B_one_thread<sluice::single_producer, W>(s); } };
template <class W> struct mpsc_records_1t { static void run(benchmark::State& s) { record_ring_16B_one_thread<sluice::multi_producer, W>(s); } };

const int registered = [] {
  policies<push_pop>("spsc_ring_push_pop", sluice_bench::timing::real);
  policies<grants64>("spsc_ring_grants64", sluice_bench::timing::real);
  policies<spsc_records>("spsc_record_ring_16B", sluice_bench::timing::real);
  policies<mpsc_records>("mpsc_record_ring_16B", sluice_bench::timing::real);
  policies<push_pop_1t>("spsc_ring_push_pop_one_thread", sluice_bench::timing::cpu);
  policies<spsc_records_1t>("spsc_record_ring_16B_one_thread", sluice_bench::timing::cpu);
  policies<mpsc_records_1t>("mpsc_record_ring_16B_one_thread", sluice_bench::timing::cpu);
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
