// A fast producer and a slow consumer through one sluice::spsc_ring.
//
// The producer stands for a device that never waits (an audio callback, a NIC): it reserves as
// much as is free, writes numbered items in place and commits; when the ring is full it counts
// it and moves on. The consumer stands for a slower stage (a disk writer): it reads whatever is
// there in place, checks every number, releases, and pauses after each block.
//
//   fast_slow [--items N] [--capacity N] [--consumer-pause-us N]
#include <sluice/spsc_ring.hpp>
#include <sluice/version.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

struct options {
  std::uint64_t items = 5'000'000;
  std::size_t capacity = 4096;
  long consumer_pause_us = 20;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: fast_slow [--items N] [--capacity N] [--consumer-pause-us N]\n"
               "  Moves N numbered items from a fast producer thread to a slow consumer thread\n"
               "  through a sluice::spsc_ring and reports what it measured.\n");
  std::exit(code);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(0);
    if (i + 1 >= argc) usage(2);
    const unsigned long long v = std::strtoull(argv[++i], nullptr, 10);
    if (arg == "--items") o.items = v;
    else if (arg == "--capacity") o.capacity = static_cast<std::size_t>(v);
    else if (arg == "--consumer-pause-us") o.consumer_pause_us = static_cast<long>(v);
    else usage(2);
  }
  if (o.capacity == 0 || o.items == 0) usage(2);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  sluice::spsc_ring<std::uint64_t> ring(opt.capacity);

  std::uint64_t full = 0, produced = 0;
  const auto start = std::chrono::steady_clock::now();
  std::thread producer([&] {
    while (produced < opt.items) {
      auto grant = ring.try_reserve_up_to(opt.items - produced);
      if (!grant) {  // full: a device would drop or retry later; we count and retry
        ++full;
        std::this_thread::yield();
        continue;
      }
      for (auto& item : grant) item = produced++;
      grant.commit();
    }
  });

  std::uint64_t consumed = 0, out_of_order = 0, blocks = 0, empty_polls = 0, largest_block = 0;
  while (consumed < opt.items) {
    auto block = ring.try_read();
    if (!block) {
      ++empty_polls;
      std::this_thread::yield();
      continue;
    }
    for (std::uint64_t item : block) out_of_order += (item != consumed++);
    largest_block = std::max<std::uint64_t>(largest_block, block.size());
    ++blocks;
    block.release();
    if (opt.consumer_pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(opt.consumer_pause_us));
  }
  producer.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("sluice %s fast/slow demo: spsc_ring<uint64_t> of %zu items\n", sluice::version(), opt.capacity);
  std::printf("produced: %llu items\n", static_cast<unsigned long long>(produced));
  std::printf("consumed: %llu items in %llu blocks (largest %llu, mean %.1f)\n",
              static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(blocks),
              static_cast<unsigned long long>(largest_block), double(consumed) / double(blocks));
  std::printf("producer found the ring full: %llu times\n", static_cast<unsigned long long>(full));
  std::printf("consumer found the ring empty: %llu times\n", static_cast<unsigned long long>(empty_polls));
  std::printf("elapsed: %.3f s, %.1f M items/s, consumer paused %ld us per block\n", seconds,
              double(consumed) / seconds / 1e6, opt.consumer_pause_us);
  if (out_of_order != 0) {
    std::printf("verified: FAILED, %llu items out of sequence\n", static_cast<unsigned long long>(out_of_order));
    return 1;
  }
  std::printf("verified: every item in order, none lost or duplicated\n");
  return 0;
}
