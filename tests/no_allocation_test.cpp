// Proves the hot paths never allocate: the global operator new is replaced by one that counts
// calls while counting is armed. The ring is built first (its only allocation), then every
// producer and consumer call runs, in one thread and in two, with counting armed.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

namespace {
std::atomic<bool> armed{false};
std::atomic<long> allocations{0};

// Out of line so the compiler does not pair the malloc/free inside with new/delete.
[[gnu::noinline]] void* counted(std::size_t n, std::size_t align) {
  // Relaxed: a counter read after the threads that bump it are joined.
  if (armed.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) { return counted(n, 0); }
void* operator new[](std::size_t n) { return counted(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }

namespace {

// One pass over every non-blocking call of both sides.
void exercise(sluice::spsc_ring<int>& ring, int rounds) {
  int buf[16] = {};
  for (int i = 0; i < rounds; ++i) {
    if (auto g = ring.try_reserve(5)) { for (auto& x : g) x = i; g.commit(); }
    if (auto g = ring.try_reserve_up_to(9)) g.commit(g.size() / 2);
    if (auto g = ring.try_reserve_split(3)) g.commit();
    if (auto g = ring.try_reserve(2)) g.discard();
    (void)ring.write_some(buf);
    (void)ring.try_push(i);
    (void)ring.size_approx();
    if (auto g = ring.try_read()) g.release(g.size() / 2);
    if (auto g = ring.try_read_split()) g.release();
    (void)ring.read_some(buf);
    (void)ring.try_pop();
  }
}

TEST(NoAllocation, HotPathsNeverAllocate) {
  sluice::spsc_ring<int> ring(37);
  armed.store(true, std::memory_order_relaxed);
  exercise(ring, 100000);
  armed.store(false, std::memory_order_relaxed);
  EXPECT_EQ(allocations.load(std::memory_order_relaxed), 0);
}

TEST(NoAllocation, CallerStorageNeverAllocatesAtAll) {
  alignas(128) static int storage[64];
  armed.store(true, std::memory_order_relaxed);
  {
    sluice::spsc_ring<int> ring{std::span<int>(storage)};
    exercise(ring, 1000);
  }
  armed.store(false, std::memory_order_relaxed);
  EXPECT_EQ(allocations.load(std::memory_order_relaxed), 0);
}

TEST(NoAllocation, TwoThreads) {
  sluice::spsc_ring<std::uint64_t> ring(100);
  std::atomic<bool> go{false};
  std::uint64_t received = 0;
  std::thread consumer([&] {
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with the store below
    while (received < 1000000)
      if (auto g = ring.try_read()) { received += g.size(); g.release(); }
  });
  armed.store(true, std::memory_order_relaxed);
  go.store(true, std::memory_order_release);
  for (std::uint64_t i = 0; i < 1000000;)
    if (auto g = ring.try_reserve_up_to(1000000 - i)) { for (auto& x : g) x = i++; g.commit(); }
  consumer.join();
  armed.store(false, std::memory_order_relaxed);
  EXPECT_EQ(received, 1000000u);
  EXPECT_EQ(allocations.load(std::memory_order_relaxed), 0);
}

// Every record-ring call: reserve, commit, partial commit, discard, read, iterate, release.
template <class Ring>
void exercise_records(Ring& ring, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto a = ring.try_reserve(static_cast<std::size_t>(i % 100));
    auto b = ring.try_reserve(17);
    auto c = ring.try_reserve(0);
    if (b) b.commit(3);
    if (a) a.commit();
    c.discard();
    (void)ring.size_approx();
    (void)ring.in_flight();
    if (auto batch = ring.try_read()) {
      std::size_t bytes = 0;
      for (auto record : batch) bytes += record.size();
      if (i % 2) batch.release(batch.size() / 2);
      else batch.release();
    }
  }
}

TEST(NoAllocation, RecordRingsNeverAllocate) {
  sluice::spsc_record_ring spsc(1024);
  sluice::mpsc_record_ring mpsc(1024);
  armed.store(true, std::memory_order_relaxed);
  exercise_records(spsc, 100000);
  exercise_records(mpsc, 100000);
  armed.store(false, std::memory_order_relaxed);
  EXPECT_EQ(allocations.load(std::memory_order_relaxed), 0);
}

TEST(NoAllocation, RecordRingsFromManyThreads) {
  sluice::mpsc_record_ring ring(4096);
  std::atomic<int> done{0};
  std::atomic<bool> go{false};
  std::thread producers[2];  // started before counting: starting a thread allocates
  for (auto& p : producers)
    p = std::thread([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with the store below
      for (int i = 0; i < 100000;)
        if (auto g = ring.try_reserve(static_cast<std::size_t>(i % 64))) { g.commit(); ++i; }
      done.fetch_add(1, std::memory_order_release);  // pairs with the acquire below
    });
  armed.store(true, std::memory_order_relaxed);
  go.store(true, std::memory_order_release);
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire) == 2;
    if (auto batch = ring.try_read()) batch.release();
    else if (finished) break;
  }
  for (auto& p : producers) p.join();
  armed.store(false, std::memory_order_relaxed);
  EXPECT_EQ(allocations.load(std::memory_order_relaxed), 0);
}

}  // namespace
