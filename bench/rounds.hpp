// Interleaved rounds: the way every sluice benchmark compares contenders on a noisy machine.
//
// A virtual machine's two cores are sometimes near and sometimes far apart, and a neighbour may
// take a core for seconds: the same binary's rate can change several-fold between two runs a
// minute apart. Medians measured separately for each contender then compare regimes, not code.
// So each family of contenders runs in rounds, A B C A B C ..., each run short (a few tens of
// milliseconds), and the figure to quote is the median over rounds of the ratio within a round
// (bench/ratios.py): the two runs of a pair shared the regime of their moment.
//
//   sluice_bench::family(family, baseline)     declares a family and the contender it divides by
//   sluice_bench::contender(family, name, fn)  adds a contender (fn(benchmark::State&))
//   SLUICE_BENCH_ROUNDS_MAIN()                 main(): --rounds=N (default 15), --round_time=S
//                                              (default 0.05) and Google Benchmark's own flags
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sluice_bench {

// How a contender's time is taken: the wall clock (every run with a second thread, whose work
// the benchmark thread's CPU time does not include), the benchmark thread's CPU time (one
// thread), or the body's own SetIterationTime().
enum class timing { real, cpu, manual };

struct contender_entry {
  std::string family;
  std::string name;
  std::function<void(benchmark::State&)> body;
  timing time;
};

inline std::vector<contender_entry>& contenders() {
  static std::vector<contender_entry> all;
  return all;
}

inline std::vector<std::pair<std::string, std::string>>& baselines() {
  static std::vector<std::pair<std::string, std::string>> all;
  return all;
}

// A smoke run (SLUICE_BENCH_SMOKE set, as ctest does): bodies that move a fixed amount move
// `n / 256` of it instead, so that every suite runs in seconds even in a debug build.
inline std::uint64_t scaled(std::uint64_t n) {
  static const bool smoke = std::getenv("SLUICE_BENCH_SMOKE") != nullptr;
  return smoke ? std::max<std::uint64_t>(n / 256, 1) : n;
}

// Declares `family` and the contender every other one of it is divided by.
inline int family(const std::string& family, const std::string& baseline) {
  baselines().emplace_back(family, baseline);
  return 0;
}

// Adds a contender to `family`.
inline int contender(const std::string& family, const std::string& name, std::function<void(benchmark::State&)> body,
                     timing time = timing::real) {
  contenders().push_back({family, name, std::move(body), time});
  return 0;
}

// Registers `rounds` rounds, each running every contender once in declaration order, so that
// a family's contenders alternate. Names: "<family>/<contender>/round:<k>".
inline void register_rounds(int rounds, double min_time) {
  for (const auto& [family, baseline] : baselines()) benchmark::AddCustomContext("baseline:" + family, baseline);
  benchmark::AddCustomContext("rounds", std::to_string(rounds));
  for (int round = 0; round < rounds; ++round) {
    for (const auto& c : contenders()) {
      const std::string name = c.family + "/" + c.name + "/round:" + std::to_string(round);
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [body = c.body](benchmark::State& s) { body(s); });
      b->Unit(benchmark::kNanosecond);
      if (c.time == timing::manual)
        b->UseManualTime()->Iterations(1);  // the body moves a fixed amount and times it
      else
        b->MinTime(min_time);
      if (c.time == timing::real) b->UseRealTime();
    }
  }
}

// Takes --rounds=N and --round_time=S (seconds per run) off the command line.
inline int rounds_main(int argc, char** argv) {
  int rounds = 15;
  double min_time = 0.05;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--rounds=", 9) == 0)
      rounds = std::atoi(argv[i] + 9);
    else if (std::strncmp(argv[i], "--round_time=", 13) == 0)
      min_time = std::atof(argv[i] + 13);
    else
      rest.push_back(argv[i]);
  }
  register_rounds(rounds < 1 ? 1 : rounds, min_time);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace sluice_bench

#define SLUICE_BENCH_ROUNDS_MAIN() \
  int main(int argc, char** argv) { return sluice_bench::rounds_main(argc, argv); }
