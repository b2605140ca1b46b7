// Seeds and hashing shared by the randomized tests: every run draws a fresh seed and prints it,
// and SLUICE_STRESS_SEED replays one.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>

namespace sluice_test {

// The splitmix64 finalizer: a cheap bijective hash, used to derive record contents and plans
// from (seed, producer, sequence) so that the consumer can recompute what it must receive.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// SLUICE_STRESS_SEED if set (decimal or 0x hex), else a fresh random seed.
inline std::uint64_t test_seed() {
  if (const char* s = std::getenv("SLUICE_STRESS_SEED")) return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (std::uint64_t{rd()} << 32) ^ rd();
}

}  // namespace sluice_test
