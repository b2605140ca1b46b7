// One-thread bodies that fill a ring and drain it: the bookkeeping's instruction cost with no
// cache line moving. bench_waiting times them; bench_instructions runs them under callgrind.
#pragma once

#include <cstdint>
#include <cstring>

namespace sluice_bench {

inline constexpr std::uint64_t fill_count = 256;

// try_push fill_count items, then try_pop them; returns their sum. The ring holds fill_count.
template <class Ring>
std::uint64_t push_then_pop(Ring& ring) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < fill_count; ++i) (void)ring.try_push(i);
  for (std::uint64_t i = 0; i < fill_count; ++i) sum += *ring.try_pop();
  return sum;
}

// Writes fill_count 16-byte records (reserve, write, commit), then reads and releases them in one
// batch; returns a sum of their first bytes. The ring holds them (8192 bytes do).
template <class Ring>
std::uint64_t write_then_read_16B(Ring& ring) {
  for (std::uint64_t i = 0; i < fill_count; ++i) {
    auto g = ring.try_reserve(16);
    std::memcpy(g.data(), &i, sizeof i);
    g.commit();
  }
  std::uint64_t sum = 0;
  auto b = ring.try_read();
  for (auto record : b) sum += static_cast<std::uint64_t>(record[0]);
  b.release();
  return sum;
}

}  // namespace sluice_bench
