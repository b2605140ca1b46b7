// A consumer's program: moves data through each kind of ring between two threads and checks it,
// so that a build that compiles but links or runs wrongly fails. Exits 0 when everything arrived.
#include <sluice/sluice.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: FAILED: %s\n", what);
    ++failures;
  }
}

// 100,000 integers through a 64-element spsc_ring, with the blocking calls.
void elements() {
  constexpr std::uint32_t count = 100'000;
  sluice::spsc_ring<std::uint32_t> ring(64);
  std::thread producer([&] {
    for (std::uint32_t i = 0; i < count;) {
      auto g = ring.reserve_up_to(16);
      std::size_t n = 0;
      for (; n < g.size() && i < count; ++n) g.span()[n] = i++;
      g.commit(n);
    }
    ring.close();
  });
  std::uint32_t expected = 0;
  bool in_order = true;
  while (auto view = ring.read()) {
    for (std::uint32_t v : view.span()) in_order &= v == expected++;
    view.release();
  }
  producer.join();
  check(in_order && expected == count, "spsc_ring: every integer once, in order");
}

// 10,000 records of 1 to 64 bytes from two producers through an mpsc_record_ring.
void records() {
  constexpr std::uint32_t per_producer = 5'000;
  sluice::mpsc_record_ring ring(4096);
  auto produce = [&](std::uint8_t id) {
    for (std::uint32_t i = 0; i < per_producer; ++i) {
      const std::size_t size = 1 + i % 64;
      auto g = ring.reserve(size);
      std::memset(g.data(), id, size);
      g.data()[0] = static_cast<std::byte>(id);
      g.commit();
    }
  };
  std::thread a(produce, std::uint8_t{1});
  std::thread b(produce, std::uint8_t{2});
  std::uint32_t seen[3] = {};
  bool well_formed = true;
  while (seen[1] + seen[2] < 2 * per_producer) {
    auto batch = ring.read();
    for (std::span<const std::byte> record : batch) {
      const auto id = static_cast<std::uint8_t>(record[0]);
      well_formed &= (id == 1 || id == 2) && record.size() == 1 + seen[id] % 64;
      if (id == 1 || id == 2) ++seen[id];
    }
    batch.release();
  }
  a.join();
  b.join();
  check(well_formed && seen[1] == per_producer && seen[2] == per_producer,
        "mpsc_record_ring: every record once, in each producer's order");
}

}  // namespace

int main() {
  check(std::strcmp(sluice::version(), SLUICE_EXPECTED_VERSION) == 0, "sluice::version() is the expected one");
  elements();
  records();
  if (failures != 0) return 1;
  std::printf("consumer: sluice %s: every element and record arrived\n", sluice::version());
  return 0;
}
