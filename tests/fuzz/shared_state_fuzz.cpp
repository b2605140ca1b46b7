// libFuzzer target: arbitrary bytes as the shared state of a ring, as a hostile or corrupt peer
// process could leave it.
//
// Six rings (spsc_ring<uint32_t>, spsc_record_ring, mpsc_record_ring; plain and mirrored) live
// in shared-memory segments made once per process. For each input, the first byte picks a ring;
// the rest is cut in two: the first part is an operation script, the second is written over the
// segment's process table, control block and data (repeated to fill them). Then a consumer and
// a producer attach (each may refuse with attach_error or corrupt_ring) and run the script.
//
// What must hold, whatever the bytes: no crash and no access outside a mapping (ASan, UBSan);
// every view a ring hands out lies inside its data region; the records of one batch never
// overlap; the only exceptions are the documented ones (corrupt_ring, attach_error, and the
// logic errors of misuse the script commits on purpose). Anything else aborts.
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice::detail {
struct test_access {
  template <class Ring>
  static const std::byte* data(Ring& r) {
    return reinterpret_cast<const std::byte*>(r.data_);
  }
  template <class Ring>
  static std::size_t reach(Ring& r) {  // bytes a view may span from data(): the end index
    return r.end_ * sizeof(*r.data_);
  }
  template <class Ring>
  static std::span<std::byte> shared_state(Ring& r) {
    auto* front = static_cast<std::byte*>(r.segment_.control()) - control_offset;
    return {front + header_size, control_offset - header_size + sizeof(*r.ctl_)};
  }
  // Lets the ring objects the script opens take this creator's role slot, as a successor of a
  // crashed creator would.
  template <class Ring>
  static void forget_role(Ring& r) {
    forget_slot(r.segment_, *r.role_slot_);
    r.role_slot_ = nullptr;
  }
  template <class Ring>
  static std::span<std::byte> data_region(Ring& r) {
    return {reinterpret_cast<std::byte*>(r.data_), r.capacity_ * sizeof(*r.data_)};
  }
};
}  // namespace sluice::detail

namespace {

using ta = sluice::detail::test_access;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "shared_state_fuzz: %s\n", what);
  std::abort();
}

// A view must lie inside [base, base + reach).
void check_inside(const void* p, std::size_t bytes, const std::byte* base, std::size_t reach) {
  const auto* b = static_cast<const std::byte*>(p);
  if (bytes == 0) return;
  if (b < base || b + bytes > base + reach) {
    std::fprintf(stderr, "shared_state_fuzz: view at offset %td, %zu bytes, reach %zu\n", b - base, bytes, reach);
    violated("a view outside the ring's data");
  }
}

// Reads the script.
class script {
 public:
  explicit script(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  bool more() const { return at_ < bytes_.size(); }
  std::uint8_t byte() { return more() ? bytes_[at_++] : 0; }
  std::size_t number() { return byte() | (std::size_t{byte()} << 8); }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
};

std::string name_of(int which) { return "/sluice-fuzz-" + std::to_string(::getpid()) + "-" + std::to_string(which); }

// Writes `blob` repeatedly over `target`.
void overwrite(std::span<std::byte> target, std::span<const std::uint8_t> blob) {
  if (blob.empty()) return;
  for (std::size_t i = 0; i < target.size(); i += blob.size())
    std::memcpy(target.data() + i, blob.data(), std::min(blob.size(), target.size() - i));
}

template <class Call>
void tolerate(Call&& call) {
  try {
    call();
  } catch (const sluice::corrupt_ring&) {
  } catch (const sluice::attach_error&) {
  } catch (const std::logic_error&) {  // misuse the script commits: a second grant, k > size, ...
  }
}

// ---------------------------------------------------------------------------- spsc_ring<uint32_t>

using item_ring = sluice::spsc_ring<std::uint32_t>;

void run_items(const std::string& name, script& s) {
  std::unique_ptr<item_ring> consumer, producer;
  tolerate([&] { consumer = std::make_unique<item_ring>(sluice::open_shared, name, sluice::shared_options{sluice::role::consumer}); });
  tolerate([&] { producer = std::make_unique<item_ring>(sluice::open_shared, name, sluice::shared_options{sluice::role::producer}); });
  if (!consumer || !producer) return;
  // Each ring object maps the segment for itself: a view is checked against its own ring's.
  const std::byte* base = ta::data(*consumer);
  const std::byte* pbase = ta::data(*producer);
  const std::size_t reach = ta::reach(*consumer);
  const std::size_t capacity = consumer->capacity();
  std::vector<std::uint32_t> buffer(capacity + 8);
  for (int step = 0; step < 64 && s.more(); ++step) {
    const std::uint8_t op = s.byte();
    const std::size_t n = s.number();
    tolerate([&] {
      switch (op % 10) {
        case 0: {
          auto g = consumer->try_read();
          check_inside(g.data(), g.size() * 4, base, reach);
          std::uint32_t sum = 0;
          for (auto x : g) sum += x;
          if (g.size() > capacity) violated("a read longer than the capacity");
          g.release(n % (g.size() + 1));
          (void)sum;
          break;
        }
        case 1: {
          auto g = consumer->try_read_split();
          check_inside(g.first().data(), g.first().size() * 4, base, reach);
          check_inside(g.second().data(), g.second().size() * 4, base, reach);
          if (!g.second().empty() && g.second().data() + g.second().size() > g.first().data()) violated("split views overlap");
          g.release();
          break;
        }
        case 2: (void)consumer->read_some(std::span<std::uint32_t>(buffer.data(), n % buffer.size())); break;
        case 3: (void)consumer->try_pop(); break;
        case 4: {
          auto g = producer->try_reserve(n % (capacity + 1));
          check_inside(g.data(), g.size() * 4, pbase, reach);
          std::fill(g.begin(), g.end(), 0x5a5a5a5au);
          g.commit(n % (g.size() + 1));
          break;
        }
        case 5: {
          auto g = producer->try_reserve_up_to(n);
          check_inside(g.data(), g.size() * 4, pbase, reach);
          std::fill(g.begin(), g.end(), 0xa5a5a5a5u);
          g.commit();
          break;
        }
        case 6: {
          auto g = producer->try_reserve_split(n % (capacity + 1));
          check_inside(g.first().data(), g.first().size() * 4, pbase, reach);
          check_inside(g.second().data(), g.second().size() * 4, pbase, reach);
          std::fill(g.first().begin(), g.first().end(), 1u);
          std::fill(g.second().begin(), g.second().end(), 2u);
          g.commit();
          break;
        }
        case 7: (void)producer->write_some(std::span<const std::uint32_t>(buffer.data(), n % buffer.size())); break;
        case 8: (void)producer->try_push(static_cast<std::uint32_t>(n)); break;
        default: (void)consumer->try_read_for(std::chrono::nanoseconds(0), 1 + n % capacity); break;
      }
    });
  }
}

// ------------------------------------------------------------------------------- record rings

template <class Ring>
void run_records(const std::string& name, script& s) {
  std::unique_ptr<Ring> consumer, producer;
  tolerate([&] { consumer = std::make_unique<Ring>(sluice::open_shared, name, sluice::shared_options{sluice::role::consumer}); });
  tolerate([&] { producer = std::make_unique<Ring>(sluice::open_shared, name, sluice::shared_options{sluice::role::producer}); });
  if (!consumer || !producer) return;
  // Each ring object maps the segment for itself: a view is checked against its own ring's.
  const std::byte* base = ta::data(*consumer);
  const std::byte* pbase = ta::data(*producer);
  const std::size_t reach = ta::reach(*consumer);
  std::vector<typename Ring::grant> held;
  for (int step = 0; step < 64 && s.more(); ++step) {
    const std::uint8_t op = s.byte();
    const std::size_t n = s.number();
    tolerate([&] {
      switch (op % 6) {
        case 0:
        case 1: {
          auto b = consumer->try_read();
          std::vector<std::pair<const std::byte*, std::size_t>> views;
          for (auto rec : b) {
            check_inside(rec.data(), rec.size(), base, reach);
            views.emplace_back(rec.data(), rec.size());
            if (views.size() > consumer->capacity() / 8) violated("more records than the ring can hold");
          }
          std::sort(views.begin(), views.end());
          for (std::size_t i = 1; i < views.size(); ++i)
            if (views[i - 1].first + views[i - 1].second > views[i].first) violated("records of a batch overlap");
          if (op % 6 == 0)
            b.release();
          else
            b.release(n % (b.size() + 1));
          break;
        }
        case 2: (void)consumer->recover(std::chrono::nanoseconds(n % 2 == 0 ? 0 : 1000000000)); break;
        case 3: {
          auto g = producer->try_reserve(n % (producer->max_record_size() + 1));
          if (!g) break;
          check_inside(g.data(), g.size(), pbase, reach);
          std::memset(g.data(), 0x5a, g.size());
          if (held.size() < 4 && n % 3 == 0)
            held.push_back(std::move(g));
          else
            (void)g.commit(n % (g.size() + 1));
          break;
        }
        case 4:
          if (!held.empty()) {
            if (n % 2 == 0)
              (void)held.back().commit();
            else
              held.back().discard();
            held.pop_back();
          }
          break;
        default: (void)consumer->try_read_for(std::chrono::nanoseconds(0), 1 + n % consumer->capacity()); break;
      }
    });
  }
}

// ------------------------------------------------------------------------------------ segments

struct segments {
  item_ring items_plain{sluice::create_shared, name_of(0), 64, {sluice::role::consumer}};
  item_ring items_mirrored{sluice::create_shared, name_of(1), 1024, {sluice::role::consumer, true}};
  sluice::spsc_record_ring spsc_plain{sluice::create_shared, name_of(2), 512, {sluice::role::consumer}};
  sluice::spsc_record_ring spsc_mirrored{sluice::create_shared, name_of(3), 4096, {sluice::role::consumer, true}};
  sluice::mpsc_record_ring mpsc_plain{sluice::create_shared, name_of(4), 512, {sluice::role::consumer}};
  sluice::mpsc_record_ring mpsc_mirrored{sluice::create_shared, name_of(5), 4096, {sluice::role::consumer, true}};
  segments() {
    ta::forget_role(items_plain);
    ta::forget_role(items_mirrored);
    ta::forget_role(spsc_plain);
    ta::forget_role(spsc_mirrored);
    ta::forget_role(mpsc_plain);
    ta::forget_role(mpsc_mirrored);
    // The names may go at once: every ring attaches by name below, but the creator's mapping
    // keeps the memory, and a fresh name per process avoids clashes. Remove them at exit.
    std::atexit([] {
      for (int i = 0; i < 6; ++i) sluice::remove_shared(name_of(i));
    });
  }
};

template <class Ring>
void fill(Ring& ring, std::span<const std::uint8_t> blob) {
  overwrite(ta::shared_state(ring), blob);
  overwrite(ta::data_region(ring), blob);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static segments rings;
  if (size < 2) return 0;
  const int which = data[0] % 6;
  const std::size_t script_bytes = std::min<std::size_t>(size - 1, 1 + data[1] % 128);
  const std::span<const std::uint8_t> ops(data + 1, script_bytes);
  const std::span<const std::uint8_t> blob(data + 1 + script_bytes, size - 1 - script_bytes);
  script s(ops);
  switch (which) {
    case 0: fill(rings.items_plain, blob); run_items(name_of(0), s); break;
    case 1: fill(rings.items_mirrored, blob); run_items(name_of(1), s); break;
    case 2: fill(rings.spsc_plain, blob); run_records<sluice::spsc_record_ring>(name_of(2), s); break;
    case 3: fill(rings.spsc_mirrored, blob); run_records<sluice::spsc_record_ring>(name_of(3), s); break;
    case 4: fill(rings.mpsc_plain, blob); run_records<sluice::mpsc_record_ring>(name_of(4), s); break;
    default: fill(rings.mpsc_mirrored, blob); run_records<sluice::mpsc_record_ring>(name_of(5), s); break;
  }
  return 0;
}
