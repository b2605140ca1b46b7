// Single items and zero-copy batches of uint64_t between two threads: spsc_ring against
// boost::lockfree::spsc_queue (runtime and compile-time capacity) and a std::mutex-protected
// std::deque of the same bound, in interleaved rounds (bench/rounds.hpp). The family's
// baseline is boost::lockfree::spsc_queue with a runtime capacity, the one a user would reach
// for; bench/ratios.py divides every contender by it round by round.
//
// Targets (docs/benchmarks.md): single items at least 2x the baseline; zero-copy batches of up
// to 64 items at least 10x the baseline's single-item rate.
#include <sluice/spsc_ring.hpp>

#include "item_bodies.hpp"
#include "rounds.hpp"

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <cstdint>
#include <deque>
#include <mutex>

namespace {

constexpr std::size_t capacity = 4096;

// Pushes until it succeeds; the consumer pops what is there.
template <class Queue>
void queue_push_pop(benchmark::State& state, Queue& queue) {
  sluice_bench::run(
      state, sluice_bench::items_per_iteration, [&](std::uint64_t i) { while (!queue.push(i)) {} },
      [&]() -> std::uint64_t {
        std::uint64_t x;
        if (!queue.pop(x)) return 0;
        benchmark::DoNotOptimize(x);
        return 1;
      });
}

void sluice_single(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(capacity);
  sluice_bench::push_pop(state, ring);
}

void sluice_batch64(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(capacity);
  sluice_bench::batches_of_64(state, ring);
}

void boost_runtime(benchmark::State& state) {
  boost::lockfree::spsc_queue<std::uint64_t> queue(capacity);
  queue_push_pop(state, queue);
}

void boost_fixed(benchmark::State& state) {
  boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<capacity>> queue;
  queue_push_pop(state, queue);
}

// The lock-based baseline a user might write first: a bounded deque behind one mutex.
class mutex_deque {
 public:
  bool push(std::uint64_t x) {
    std::lock_guard lock(mutex_);
    if (items_.size() >= capacity) return false;
    items_.push_back(x);
    return true;
  }
  bool pop(std::uint64_t& x) {
    std::lock_guard lock(mutex_);
    if (items_.empty()) return false;
    x = items_.front();
    items_.pop_front();
    return true;
  }

 private:
  std::mutex mutex_;
  std::deque<std::uint64_t> items_;
};

void mutex_queue(benchmark::State& state) {
  mutex_deque queue;
  queue_push_pop(state, queue);
}

const int registered = [] {
  using sluice_bench::contender;
  sluice_bench::family("items", "boost_spsc_queue");
  contender("items", "boost_spsc_queue", boost_runtime);
  contender("items", "sluice_spsc_ring", sluice_single);
  contender("items", "boost_spsc_queue_fixed", boost_fixed);
  contender("items", "mutex_deque", mutex_queue);
  contender("items", "sluice_batches_of_64", sluice_batch64);
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
