// Proves the hot paths never allocate: the global operator new is replaced by one that counts
// calls while counting is armed. The ring is built first (its only allocation), then every
// producer and consumer call runs, in one thread and in two, with counting armed.
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

}  // namespace
