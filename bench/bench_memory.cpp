// What the memory options cost: mirrored storage against plain storage, and a ring in a
// shared-memory segment (consumer in another process) against the same ring in-process.
//
//   storage_items     spsc_ring<uint64_t> try_push/try_pop, plain (baseline) and mirrored;
//   storage_chunks    1500-byte chunks through an spsc_ring<std::byte> written and read in
//                     place: plain (baseline) must split a chunk at the end of the storage
//                     (try_reserve_split), mirrored never does;
//   storage_records   64 to 1500-byte records through an spsc_record_ring, plain (baseline: a
//                     record that does not fit before the end skips the tail) and mirrored;
//   process_items     a fixed count of uint64_t through an spsc_ring: in-process (baseline),
//                     in a shared segment with the consumer a thread of this process, and in
//                     a shared segment with the consumer a child process;
//   process_records   the same for 64-byte records through an spsc_record_ring.
// No targets: docs/benchmarks.md reports the ratios.
#include <sluice/record_ring.hpp>
#include <sluice/shared_memory.hpp>
#include <sluice/spsc_ring.hpp>

#include "item_bodies.hpp"
#include "rounds.hpp"
#include "two_threads.hpp"

#include <benchmark/benchmark.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace {

constexpr std::size_t item_capacity = 4096;  // a whole number of pages: mirrored keeps it
constexpr std::size_t chunk = 1500;
constexpr std::size_t byte_capacity = 1 << 16;
constexpr std::uint64_t items_per_run = 1 << 22;
constexpr std::uint64_t records_per_run = 1 << 20;

// ------------------------------------------------------------------------------ storage

template <class Ring>
void items(benchmark::State& state, Ring& ring) {
  sluice_bench::push_pop(state, ring);
}

void items_plain(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(item_capacity);
  items(state, ring);
}

void items_mirrored(benchmark::State& state) {
  sluice::spsc_ring<std::uint64_t> ring(sluice::mirrored, item_capacity);
  items(state, ring);
}

// The consumer reads what is there in place and adds up one byte in 64 (so that every line of
// the chunk is touched); the producer fills each chunk with memset.
std::uint64_t touch(std::span<const std::byte> view) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < view.size(); i += 64) sum += static_cast<std::uint8_t>(view[i]);
  return sum;
}

// run() paces the consumer by items: it counts whole chunks read, a read may end inside one.
struct chunk_counter {
  std::size_t bytes = 0;
  std::uint64_t operator()(std::size_t n) {
    bytes += n;
    const std::uint64_t whole = bytes / chunk;
    bytes -= whole * chunk;
    return whole;
  }
};

void chunks_plain(benchmark::State& state) {
  sluice::spsc_ring<std::byte> ring(byte_capacity);
  chunk_counter chunks;
  sluice_bench::run(
      state, 1,
      [&](std::uint64_t i) {
        for (;;) {
          if (auto g = ring.try_reserve_split(chunk)) {
            std::memset(g.first().data(), static_cast<int>(i), g.first().size());
            if (!g.second().empty()) std::memset(g.second().data(), static_cast<int>(i), g.second().size());
            g.commit();
            return;
          }
        }
      },
      [&]() -> std::uint64_t {
        auto g = ring.try_read_split();
        const std::size_t n = g.size();
        if (n == 0) return 0;
        benchmark::DoNotOptimize(touch(g.first()) + touch(g.second()));
        g.release();
        return chunks(n);
      },
      chunk);
}

void chunks_mirrored(benchmark::State& state) {
  sluice::spsc_ring<std::byte> ring(sluice::mirrored, byte_capacity);
  chunk_counter chunks;
  sluice_bench::run(
      state, 1,
      [&](std::uint64_t i) {
        for (;;) {
          if (auto g = ring.try_reserve(chunk)) {
            std::memset(g.data(), static_cast<int>(i), g.size());
            g.commit();
            return;
          }
        }
      },
      [&]() -> std::uint64_t {
        auto g = ring.try_read();
        const std::size_t n = g.size();
        if (n == 0) return 0;
        benchmark::DoNotOptimize(touch(g));
        g.release();
        return chunks(n);
      },
      chunk);
}

// Record lengths cycle through 64..1500 bytes, so that records end at every alignment.
constexpr std::size_t record_length(std::uint64_t i) { return 64 + (i * 97) % (1500 - 64 + 1); }

template <class Ring>
void records(benchmark::State& state, Ring& ring) {
  std::byte src[1500];
  std::memset(src, 0x5a, sizeof src);
  std::uint64_t bytes = 0;
  sluice_bench::run(
      state, 1,
      [&](std::uint64_t i) {
        const std::size_t n = record_length(i);
        for (;;) {
          if (auto g = ring.try_reserve(n)) {
            std::memcpy(g.data(), src, n);
            g.commit();
            bytes += n;
            return;
          }
        }
      },
      [&]() -> std::uint64_t {
        auto b = ring.try_read();
        std::uint64_t sum = 0;
        for (auto rec : b) sum += touch(rec);
        benchmark::DoNotOptimize(sum);
        const std::uint64_t n = b.size();
        b.release();
        return n;
      });
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void records_plain(benchmark::State& state) {
  sluice::spsc_record_ring ring(byte_capacity);
  records(state, ring);
}

void records_mirrored(benchmark::State& state) {
  sluice::spsc_record_ring ring(sluice::mirrored, byte_capacity);
  records(state, ring);
}

// ------------------------------------------------------------------------------ processes

// A segment name of this process, removed again before and after.
std::string segment_name(const char* what) {
  static int counter = 0;
  std::string name = "/sluice-bench-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(counter++);
  sluice::remove_shared(name);
  return name;
}

// Forks a consumer process that runs `body()` (which attaches and consumes until the ring
// closes and is empty); returns its pid once `attached` says it is in place.
template <class Body>
pid_t fork_consumer(Body body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    sluice_bench::pin_to(1);
    int rc = 1;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_memory consumer: %s\n", e.what());
    }
    ::_exit(rc);
  }
  return pid;
}

void reap(pid_t pid, benchmark::State& state) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("the consumer process failed");
}

using item_ring = sluice::spsc_ring<std::uint64_t>;

// Pops until the ring is closed and empty; checks the sequence.
int pop_items(item_ring& ring) {
  std::uint64_t expected = 0;
  for (;;) {
    if (auto x = ring.try_pop()) {
      if (*x != expected++) return 2;
    } else if (ring.closed() && ring.size_approx() == 0) {
      return ring.try_pop() ? 2 : 0;
    }
  }
}

void push_items(item_ring& ring, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i)
    while (!ring.try_push(i)) {
    }
}

// Waits until the consumer has released `count` (the statistic is its own release counter).
template <class Ring>
void wait_released(const Ring& ring, std::uint64_t count) {
  while (ring.statistics().released < count) {
  }
}

// Pushes `count` items per iteration, timed from the first push to the consumer's release of
// the last (manual time: setting up, forking and attaching are not counted).
void timed_items(benchmark::State& state, item_ring& producer, std::uint64_t& sent, std::uint64_t count) {
  for (auto _ : state) {
    sluice_bench::pin_to(0);
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = sent; i < sent + count; ++i)
      while (!producer.try_push(i)) {
      }
    sent += count;
    wait_released(producer, sent);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * count));
}

void process_items_in_process(benchmark::State& state) {
  item_ring ring(item_capacity);
  std::thread t([&] {
    sluice_bench::pin_to(1);
    if (pop_items(ring) != 0) std::fprintf(stderr, "bench_memory: sequence broken\n");
  });
  std::uint64_t sent = 0;
  timed_items(state, ring, sent, sluice_bench::scaled(items_per_run));
  ring.close();
  t.join();
}

void process_items_shared_thread(benchmark::State& state) {
  const std::string name = segment_name("items");
  item_ring producer(sluice::create_shared, name, item_capacity, {sluice::role::producer});
  item_ring consumer(sluice::open_shared, name, {sluice::role::consumer});
  sluice::remove_shared(name);  // both are mapped: the name may go
  std::thread t([&] {
    sluice_bench::pin_to(1);
    if (pop_items(consumer) != 0) std::fprintf(stderr, "bench_memory: sequence broken\n");
  });
  std::uint64_t sent = 0;
  timed_items(state, producer, sent, sluice_bench::scaled(items_per_run));
  producer.close();
  t.join();
}

void process_items_shared_process(benchmark::State& state) {
  const std::string name = segment_name("items");
  item_ring producer(sluice::create_shared, name, item_capacity, {sluice::role::producer});
  const pid_t child = fork_consumer([&] {
    item_ring consumer(sluice::open_shared, name, {sluice::role::consumer});
    return pop_items(consumer);
  });
  // A warm-up item, not timed: released once the child has attached.
  std::uint64_t sent = 0;
  push_items(producer, 1);
  sent = 1;
  wait_released(producer, sent);
  sluice::remove_shared(name);
  timed_items(state, producer, sent, sluice_bench::scaled(items_per_run));
  producer.close();
  reap(child, state);
}

// Records: 64 bytes each, stamped with a sequence number the consumer checks.
constexpr std::size_t record_bytes = 64;

template <class Ring>
int read_records(Ring& ring) {
  std::uint64_t expected = 0;
  for (;;) {
    auto b = ring.try_read();
    if (!b) {
      if (ring.closed() && !ring.try_read()) return 0;
      continue;
    }
    for (auto rec : b) {
      std::uint64_t seq;
      std::memcpy(&seq, rec.data(), sizeof seq);
      if (seq != expected++ || rec.size() != record_bytes) return 2;
    }
    b.release();
  }
}

template <class Ring>
void write_records(Ring& ring, std::uint64_t from, std::uint64_t count) {
  std::byte src[record_bytes]{};
  for (std::uint64_t i = from; i < from + count; ++i) {
    std::memcpy(src, &i, sizeof i);
    for (;;) {
      if (auto g = ring.try_reserve(record_bytes)) {
        std::memcpy(g.data(), src, record_bytes);
        g.commit();
        break;
      }
    }
  }
}

template <class Ring>
void timed_records(benchmark::State& state, Ring& producer, std::uint64_t& sent, std::uint64_t count) {
  for (auto _ : state) {
    sluice_bench::pin_to(0);
    const auto start = std::chrono::steady_clock::now();
    write_records(producer, sent, count);
    sent += count;
    wait_released(producer, sent);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * count));
}

void process_records_in_process(benchmark::State& state) {
  const std::uint64_t count = sluice_bench::scaled(records_per_run);
  sluice::spsc_record_ring ring(byte_capacity);
  std::thread t([&] {
    sluice_bench::pin_to(1);
    if (read_records(ring) != 0) std::fprintf(stderr, "bench_memory: sequence broken\n");
  });
  std::uint64_t sent = 0;
  timed_records(state, ring, sent, count);
  ring.close();
  t.join();
}

void process_records_shared_thread(benchmark::State& state) {
  const std::uint64_t count = sluice_bench::scaled(records_per_run);
  const std::string name = segment_name("records");
  sluice::spsc_record_ring producer(sluice::create_shared, name, byte_capacity, {sluice::role::producer});
  sluice::spsc_record_ring consumer(sluice::open_shared, name, {sluice::role::consumer});
  sluice::remove_shared(name);
  std::thread t([&] {
    sluice_bench::pin_to(1);
    if (read_records(consumer) != 0) std::fprintf(stderr, "bench_memory: sequence broken\n");
  });
  std::uint64_t sent = 0;
  timed_records(state, producer, sent, count);
  producer.close();
  t.join();
}

void process_records_shared_process(benchmark::State& state) {
  const std::uint64_t count = sluice_bench::scaled(records_per_run);
  const std::string name = segment_name("records");
  sluice::spsc_record_ring producer(sluice::create_shared, name, byte_capacity, {sluice::role::producer});
  const pid_t child = fork_consumer([&] {
    sluice::spsc_record_ring consumer(sluice::open_shared, name, {sluice::role::consumer});
    return read_records(consumer);
  });
  write_records(producer, 0, 1);  // warm-up: returns once the child has attached and read it
  wait_released(producer, 1);
  sluice::remove_shared(name);
  std::uint64_t sent = 1;
  timed_records(state, producer, sent, count);
  producer.close();
  reap(child, state);
}

const int registered = [] {
  using sluice_bench::contender;
  using sluice_bench::timing;
  sluice_bench::family("storage_items", "plain");
  contender("storage_items", "plain", items_plain);
  contender("storage_items", "mirrored", items_mirrored);
  sluice_bench::family("storage_chunks", "plain");
  contender("storage_chunks", "plain", chunks_plain);
  contender("storage_chunks", "mirrored", chunks_mirrored);
  sluice_bench::family("storage_records", "plain");
  contender("storage_records", "plain", records_plain);
  contender("storage_records", "mirrored", records_mirrored);
  sluice_bench::family("process_items", "in_process");
  contender("process_items", "in_process", process_items_in_process, timing::manual);
  contender("process_items", "shared_thread", process_items_shared_thread, timing::manual);
  contender("process_items", "shared_process", process_items_shared_process, timing::manual);
  sluice_bench::family("process_records", "in_process");
  contender("process_records", "in_process", process_records_in_process, timing::manual);
  contender("process_records", "shared_thread", process_records_shared_thread, timing::manual);
  contender("process_records", "shared_process", process_records_shared_process, timing::manual);
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
