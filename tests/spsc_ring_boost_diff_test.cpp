// Differential test: one random sequence of writes and reads applied to sluice::spsc_ring and to
// boost::lockfree::spsc_queue of the same capacity must accept the same counts and give the
// same bytes out. Boost is the reference: a long-trusted queue with the same FIFO contract.
// Over mirrored storage the ring must also grant exactly n contiguous elements whenever the
// reference has room for n, and show everything the reference holds in one read grant.
#include <sluice/spsc_ring.hpp>

#include <boost/lockfree/spsc_queue.hpp>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

void run_differential(std::size_t capacity, std::uint64_t seed, int steps, bool mirrored = false) {
  using ring_type = sluice::spsc_ring<std::uint8_t>;
  const auto made =
      mirrored ? std::make_unique<ring_type>(sluice::mirrored, capacity) : std::make_unique<ring_type>(capacity);
  ring_type& ring = *made;
  capacity = ring.capacity();  // over mirrored storage, whole pages
  boost::lockfree::spsc_queue<std::uint8_t> reference(capacity);  // holds exactly `capacity`
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> in(2 * capacity + 2), out_ring(in.size()), out_ref(in.size());
  std::uint8_t next = 0;
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE(testing::Message() << "seed " << seed << ", step " << step);
    const std::size_t n = rng() % in.size();
    switch (rng() % 6) {
      case 0: {  // copy in
        for (std::size_t i = 0; i < n; ++i) in[i] = next++;
        const std::size_t a = ring.write_some({in.data(), n});
        const std::size_t b = reference.push(in.data(), n);
        ASSERT_EQ(a, b);
        next = static_cast<std::uint8_t>(next - (n - a));  // unaccepted values are reused
        break;
      }
      case 1: {  // zero-copy in, through a split grant of exactly n (it never skips a tail)
        const std::size_t k = 1 + n % capacity;
        if (mirrored && n % 2 == 0) {  // or, over mirrored storage, an exact contiguous grant
          if (auto g = ring.try_reserve(k)) {
            std::size_t i = 0;
            for (auto& x : g) in[i++] = x = next++;
            g.commit();
            ASSERT_EQ(reference.push(in.data(), k), k);
          } else {
            ASSERT_LT(reference.write_available(), k);  // refused only when the space is not there
          }
          break;
        }
        if (auto g = ring.try_reserve_split(k)) {
          if (mirrored) {
            ASSERT_TRUE(g.second().empty());
          }
          std::size_t i = 0;
          for (auto& x : g.first()) in[i++] = x = next++;
          for (auto& x : g.second()) in[i++] = x = next++;
          g.commit();
          ASSERT_EQ(reference.push(in.data(), k), k);
        } else {
          ASSERT_LT(reference.write_available(), k);  // refused only when the space is not there
        }
        break;
      }
      case 2: {  // one element
        const bool a = ring.try_push(next);
        const bool b = reference.push(next);
        ASSERT_EQ(a, b);
        if (a) ++next;
        break;
      }
      case 3: {  // copy out
        const std::size_t a = ring.read_some({out_ring.data(), n});
        const std::size_t b = reference.pop(out_ref.data(), n);
        ASSERT_EQ(a, b);
        ASSERT_TRUE(std::equal(out_ring.begin(), out_ring.begin() + static_cast<std::ptrdiff_t>(a), out_ref.begin()));
        break;
      }
      case 4: {  // zero-copy out, partial release
        if (auto g = ring.try_read()) {
          if (mirrored) {
            ASSERT_EQ(g.size(), reference.read_available());  // all of it, in one span
          }
          const std::size_t k = rng() % (g.size() + 1);
          ASSERT_EQ(reference.pop(out_ref.data(), k), k);
          ASSERT_TRUE(std::equal(g.begin(), g.begin() + k, out_ref.begin()));
          g.release(k);
        } else {
          ASSERT_EQ(reference.read_available(), 0u);
        }
        break;
      }
      default: {  // one element out
        const auto a = ring.try_pop();
        std::uint8_t b = 0;
        ASSERT_EQ(a.has_value(), reference.pop(b));
        if (a) {
          ASSERT_EQ(*a, b);
        }
        break;
      }
    }
    // The copying paths see every free and readable element, so the fill levels agree.
    ASSERT_EQ(ring.size_approx() == 0, reference.read_available() == 0);
  }
  // Drain both and compare the tails.
  const std::size_t a = ring.read_some({out_ring.data(), out_ring.size()});
  const std::size_t b = reference.pop(out_ref.data(), out_ref.size());
  ASSERT_EQ(a, b);
  ASSERT_TRUE(std::equal(out_ring.begin(), out_ring.begin() + static_cast<std::ptrdiff_t>(a), out_ref.begin()));
}

TEST(SpscRingVersusBoost, SameBytesOut) {
  for (std::size_t capacity : {1u, 2u, 3u, 7u, 16u, 100u, 1000u})
    for (std::uint64_t seed = 1; seed <= 4; ++seed) run_differential(capacity, seed * 7919 + capacity, 20000);
}

// Over mirrored storage of one page and of three (4096 and 12288 bytes).
TEST(SpscRingVersusBoost, MirroredSameBytesOut) {
  for (std::size_t capacity : {1u, 8193u})
    for (std::uint64_t seed = 1; seed <= 2; ++seed) run_differential(capacity, seed * 7919 + capacity, 20000, true);
}

}  // namespace
