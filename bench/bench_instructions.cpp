// Instructions per operation, one thread, for callgrind (which counts instructions, not
// seconds: the same binary gives the same count on a busy machine). Each body fills a ring and
// drains it `rounds` times; run two round counts and divide the difference:
//
//   valgrind --tool=callgrind ./build/release/bench/bench_instructions spsc_ring_waitable 1000
//
// and again with 2000 (bench/instructions.sh does that for every body). Bodies: spsc_ring_{no_waiting,
// waitable} (try_push then try_pop of uint64_t, 256 at a time), spsc_record_ring_* and
// mpsc_record_ring_* (16-byte records: reserve, write, commit; one batch read and release),
// boost_spsc_queue (push then pop) and boost_queue (16-byte payloads).
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include "one_thread_bodies.hpp"

#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>

namespace {

constexpr std::uint64_t batch = sluice_bench::fill_count;

template <class Wait>
std::uint64_t spsc_ring(int rounds) {
  sluice::spsc_ring<std::uint64_t, Wait> ring(batch);
  std::uint64_t sum = 0;
  for (int r = 0; r < rounds; ++r) sum += sluice_bench::push_then_pop(ring);
  return sum;
}

template <class Policy, class Wait>
std::uint64_t record_ring(int rounds) {
  sluice::basic_record_ring<Policy, Wait> ring(8192);
  std::uint64_t sum = 0;
  for (int r = 0; r < rounds; ++r) sum += sluice_bench::write_then_read_16B(ring);
  return sum;
}

std::uint64_t boost_spsc_queue(int rounds) {
  boost::lockfree::spsc_queue<std::uint64_t> queue(batch);
  std::uint64_t sum = 0, x = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::uint64_t i = 0; i < batch; ++i) (void)queue.push(i);
    for (std::uint64_t i = 0; i < batch; ++i) sum += queue.pop(x) ? x : 0;
  }
  return sum;
}

struct payload16 {
  std::array<std::byte, 16> bytes;
};

std::uint64_t boost_queue(int rounds) {
  boost::lockfree::queue<payload16> queue(2 * batch);
  std::uint64_t sum = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::uint64_t i = 0; i < batch; ++i) {
      payload16 p{};
      std::memcpy(p.bytes.data(), &i, sizeof i);
      (void)queue.push(p);
    }
    payload16 p{};
    for (std::uint64_t i = 0; i < batch; ++i) sum += queue.pop(p) ? static_cast<std::uint64_t>(p.bytes[0]) : 0;
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<std::uint64_t(int)>> bodies{
      {"spsc_ring_no_waiting", spsc_ring<sluice::no_waiting>},
      {"spsc_ring_waitable", spsc_ring<sluice::waitable>},
      {"spsc_record_ring_no_waiting", record_ring<sluice::single_producer, sluice::no_waiting>},
      {"spsc_record_ring_waitable", record_ring<sluice::single_producer, sluice::waitable>},
      {"mpsc_record_ring_no_waiting", record_ring<sluice::multi_producer, sluice::no_waiting>},
      {"mpsc_record_ring_waitable", record_ring<sluice::multi_producer, sluice::waitable>},
      {"boost_spsc_queue", boost_spsc_queue},
      {"boost_queue", boost_queue},
  };
  const auto body = argc == 3 ? bodies.find(argv[1]) : bodies.end();
  if (body == bodies.end()) {
    std::fprintf(stderr, "usage: bench_instructions BODY ROUNDS\nbodies:");
    for (const auto& [name, _] : bodies) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  std::printf("%llu\n", static_cast<unsigned long long>(body->second(std::atoi(argv[2]))));
  return 0;
}
