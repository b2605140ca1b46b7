// Bulk bytes between two threads, in chunks of 8 B to 64 KiB. One family per chunk size, each
// contender moving the same bytes the same way: the producer copies each chunk from a source
// buffer (as a recv() would write it), the consumer folds every 8-byte word of it (as a parser
// would read it). Contenders:
//   boost_range            boost::lockfree::spsc_queue<char>: push(ptr, n), pop(ptr, n) into a
//                          buffer the consumer then folds (the baseline);
//   sluice_zero_copy       spsc_ring<std::byte>: try_reserve(n), copy in place, commit; try_read,
//                          fold in place, release;
//   sluice_zero_copy_mirrored  the same over mirrored storage (no skipped tails);
//   sluice_write_some      write_some(chunk) / read_some(buffer), then fold;
//   memcpy_limit           one thread copying each chunk into a ring-sized buffer: what one
//                          copy of the data costs, with no second thread and no ring.
// Targets (docs/benchmarks.md): sluice_zero_copy at least 3x the baseline up to 256 B, never
// below it.
#include <sluice/spsc_ring.hpp>

#include "rounds.hpp"
#include "two_threads.hpp"

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr std::size_t ring_bytes = 256 * 1024;
constexpr std::size_t bytes_per_iteration = 1 << 20;

// The consumer's work per chunk: every 8-byte word read once.
std::uint64_t fold(const std::byte* p, std::size_t n) noexcept {
  std::uint64_t acc = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc ^= w;
  }
  for (; i < n; ++i) acc += static_cast<std::uint64_t>(p[i]);
  return acc;
}

std::vector<std::byte> source_data(std::size_t n) {
  std::vector<std::byte> src(n);
  for (std::size_t i = 0; i < n; ++i) src[i] = static_cast<std::byte>(i * 131 + 7);
  return src;
}

void boost_range(benchmark::State& state, std::size_t chunk) {
  boost::lockfree::spsc_queue<std::byte> queue(ring_bytes);
  const auto src = source_data(chunk);
  std::vector<std::byte> dst(chunk);
  sluice_bench::run(
      state, bytes_per_iteration / chunk,
      [&](std::uint64_t) {
        for (std::size_t done = 0; done < chunk;) done += queue.push(src.data() + done, chunk - done);
      },
      [&]() -> std::uint64_t {
        // Pops whole chunks (a consumer wants records of known size), folds each.
        std::size_t got = 0;
        while (got < chunk) {
          const std::size_t n = queue.pop(dst.data() + got, chunk - got);
          if (n == 0 && got == 0) return 0;
          got += n;
        }
        benchmark::DoNotOptimize(fold(dst.data(), chunk));
        return 1;
      },
      chunk);
}

template <class Ring>
void zero_copy(benchmark::State& state, Ring& ring, std::size_t chunk) {
  const auto src = source_data(chunk);
  sluice_bench::run(
      state, bytes_per_iteration / chunk,
      [&](std::uint64_t) {
        for (;;) {
          if (auto g = ring.try_reserve(chunk)) {
            std::memcpy(g.data(), src.data(), chunk);
            g.commit();
            return;
          }
        }
      },
      [&]() -> std::uint64_t {
        auto g = ring.try_read();
        const std::size_t n = g.size() / chunk;  // whole chunks only (commits are whole chunks)
        for (std::size_t i = 0; i < n; ++i) benchmark::DoNotOptimize(fold(g.data() + i * chunk, chunk));
        g.release(n * chunk);
        return n;
      },
      chunk);
}

void sluice_zero_copy(benchmark::State& state, std::size_t chunk) {
  sluice::spsc_ring<std::byte> ring(ring_bytes);
  zero_copy(state, ring, chunk);
}

void sluice_zero_copy_mirrored(benchmark::State& state, std::size_t chunk) {
  sluice::spsc_ring<std::byte> ring(sluice::mirrored, ring_bytes);
  zero_copy(state, ring, chunk);
}

void sluice_write_some(benchmark::State& state, std::size_t chunk) {
  sluice::spsc_ring<std::byte> ring(ring_bytes);
  const auto src = source_data(chunk);
  std::vector<std::byte> dst(chunk);
  std::size_t have = 0;  // bytes of the current chunk in dst
  sluice_bench::run(
      state, bytes_per_iteration / chunk,
      [&](std::uint64_t) {
        for (std::size_t done = 0; done < chunk;)
          done += ring.write_some(std::span<const std::byte>(src.data() + done, chunk - done));
      },
      [&]() -> std::uint64_t {
        have += ring.read_some(std::span<std::byte>(dst.data() + have, chunk - have));
        if (have < chunk) return 0;
        have = 0;
        benchmark::DoNotOptimize(fold(dst.data(), chunk));
        return 1;
      },
      chunk);
}

// One copy per chunk, one thread, no ring: the physical floor of moving the bytes once.
void memcpy_limit(benchmark::State& state, std::size_t chunk) {
  const auto src = source_data(chunk);
  std::vector<std::byte> ring(ring_bytes + chunk);
  std::size_t at = 0;
  const std::uint64_t chunks = bytes_per_iteration / chunk;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < chunks; ++i) {
      std::memcpy(ring.data() + at, src.data(), chunk);
      benchmark::DoNotOptimize(ring.data() + at);
      at += chunk;
      if (at >= ring_bytes) at = 0;
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * chunks));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * chunks * chunk));
}

const int registered = [] {
  using sluice_bench::contender;
  for (std::size_t chunk : {8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536}) {
    const std::string family = "bytes_" + std::to_string(chunk);
    sluice_bench::family(family, "boost_range");
    contender(family, "boost_range", [chunk](benchmark::State& s) { boost_range(s, chunk); });
    contender(family, "sluice_zero_copy", [chunk](benchmark::State& s) { sluice_zero_copy(s, chunk); });
    contender(family, "sluice_zero_copy_mirrored", [chunk](benchmark::State& s) { sluice_zero_copy_mirrored(s, chunk); });
    contender(family, "sluice_write_some", [chunk](benchmark::State& s) { sluice_write_some(s, chunk); });
    contender(family, "memcpy_limit", [chunk](benchmark::State& s) { memcpy_limit(s, chunk); }, sluice_bench::timing::cpu);
  }
  return 0;
}();

}  // namespace

SLUICE_BENCH_ROUNDS_MAIN()
