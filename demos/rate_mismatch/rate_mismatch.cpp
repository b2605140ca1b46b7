// A fast producer thread and a slow consumer thread through one sluice::spsc_ring, watched live.
//
// The producer numbers every item it makes. With --policy wait it applies backpressure: when the
// ring is full it sleeps in a blocking reserve until the consumer frees room, so nothing is lost
// and the producer runs at the consumer's pace. With --policy drop it never waits (an audio
// callback, a NIC): try_reserve, and when the ring is full it counts the chunk as dropped and
// moves on to the next numbers. The consumer sleeps in read() until a water mark of items is
// ready, checks that every number follows the previous one, and paces itself: a steady rate, a
// pause after every block, bursts and pauses (fixed or random lengths), so the ring fills up.
//
// What is verified: the consumer sees numbers in increasing order, never one twice. Under wait
// nothing is missing; under drop every missing number is a gap, and the gaps add up to exactly
// the items dropped, which is the ring's own count of refused reservations times the chunk.
//
// On a terminal a view refreshes in place about ten times a second: the fill level, each
// side's rate, drops and wake-ups. Otherwise (a pipe, a file) only the summary is printed.
#include <sluice/spsc_ring.hpp>
#include <sluice/version.hpp>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

namespace {

using clock_type = std::chrono::steady_clock;
using seconds_d = std::chrono::duration<double>;
using millis_d = std::chrono::duration<double, std::milli>;

struct options {
  double seconds = 3;
  std::string policy = "wait";
  std::size_t capacity = 4096;
  std::size_t chunk = 64;
  double producer_rate = 5e6;      // items/s; 0 = flat out
  double consumer_rate = 2e6;      // items/s within a burst; 0 = flat out
  double block_pause_us = 0;       // the consumer's pause after every block
  std::size_t water_mark = 0;      // 0 = capacity / 4
  double burst_ms = 0;             // consumer reads for this long...
  double pause_ms = 0;             // ...then reads nothing for this long (0 = never pauses)
  bool random = false;             // burst and pause lengths drawn between 0 and twice those
  unsigned seed = 1;
};

using ring_type = sluice::spsc_ring<std::uint64_t>;
auto to_duration(auto d) { return std::chrono::duration_cast<clock_type::duration>(d); }

// Counters the view reads while the threads run. Each has one writer; relaxed everywhere: they
// are statistics for display, nothing is read through them, and the final figures are read
// after join(), which orders every store before.
struct live_counters {
  std::atomic<std::uint64_t> issued{0};    // producer: numbers made (committed + dropped)
  std::atomic<std::uint64_t> dropped{0};   // producer: items counted as dropped (drop policy)
  std::atomic<std::uint64_t> waited{0};    // producer: times it found the ring full and slept (wait policy)
  std::atomic<std::uint64_t> consumed{0};  // consumer: items read and checked
  std::atomic<std::uint64_t> errors{0};    // consumer: items out of order or repeated
};

void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) {
  // One writer per counter: a load and a store, not a read-modify-write. Relaxed: see above.
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
std::uint64_t peek(const std::atomic<std::uint64_t>& c) {
  return c.load(std::memory_order_relaxed);  // relaxed: a display figure, pairs with nothing
}

// Set by SIGINT: the run ends early, and the terminal gets its cursor back.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "stored from a signal handler");
void on_interrupt(int) {
  interrupted.store(true, std::memory_order_relaxed);  // relaxed: a request, carries no data
}

// Sleeps until `done` items are due at `rate` items/s since `start` (no-op for rate 0).
void pace(clock_type::time_point start, std::uint64_t done, double rate) {
  if (rate <= 0) return;
  std::this_thread::sleep_until(start + to_duration(seconds_d(double(done) / rate)));
}

void produce(ring_type& ring, const options& opt, live_counters& live, clock_type::time_point start) {
  const bool drop = opt.policy == "drop";
  const std::size_t chunk = std::min(opt.chunk, ring.capacity());
  std::uint64_t next = 0;
  std::uint64_t refused = 0;  // statistics().refused as of our last refusal
  for (;;) {
    pace(start, next, opt.producer_rate);
    auto grant = ring.try_reserve(chunk);  // refused for room: counted in statistics().refused
    if (!grant) {
      // Refused for room (counted) or because the ring is closed (not counted): the count,
      // which only this thread writes, tells which. (closed() cannot: the ring may close just
      // after refusing us for room.)
      const std::uint64_t now_refused = ring.statistics().refused;
      if (now_refused == refused) return;  // closed
      refused = now_refused;
      if (drop) {
        // Never waits: these numbers are gone, and the consumer will see the gap.
        next += chunk;
        bump(live.dropped, chunk);
        bump(live.issued, chunk);
        continue;
      }
      bump(live.waited, 1);
      grant = ring.reserve(chunk);  // backpressure: sleeps until room, or until close()
      if (!grant) return;           // closed
    }
    for (auto& item : grant) item = next++;
    grant.commit();
    bump(live.issued, chunk);
  }
}

// When the consumer reads. Within a burst it keeps to --consumer-rate (counted from the start
// of the burst, so it does not race to catch up after a pause) and pauses --block-pause-us after
// every block; between bursts it reads nothing for --pause-ms.
class consumer_schedule {
 public:
  explicit consumer_schedule(const options& opt) : opt_(opt), rng_(opt.seed) { start_burst(); }

  // Before each read: sleeps through a pause if the burst is over.
  void before_read() {
    if (opt_.pause_ms <= 0 || clock_type::now() < burst_end_) return;
    std::this_thread::sleep_for(to_duration(draw(opt_.pause_ms)));
    start_burst();
  }

  // After each block of `n` items.
  void after_block(std::uint64_t n) {
    done_ += n;
    pace(burst_start_, done_, opt_.consumer_rate);
    if (opt_.block_pause_us > 0) std::this_thread::sleep_for(to_duration(millis_d(opt_.block_pause_us / 1e3)));
  }

 private:
  void start_burst() {
    burst_start_ = clock_type::now();
    burst_end_ = burst_start_ + to_duration(draw(opt_.burst_ms));
    done_ = 0;
  }
  millis_d draw(double mean_ms) {
    if (!opt_.random) return millis_d(mean_ms);
    return millis_d(std::uniform_real_distribution<double>(0, 2 * mean_ms)(rng_));
  }

  const options& opt_;
  std::mt19937 rng_;
  clock_type::time_point burst_start_, burst_end_;
  std::uint64_t done_ = 0;  // items read in this burst
};

struct consumer_result {
  std::uint64_t expected = 0;  // the number after the last one seen
  std::uint64_t gaps = 0;      // missing runs
  std::uint64_t missing = 0;   // numbers in them
  double seconds = 0;
};

consumer_result consume(ring_type& ring, const options& opt, live_counters& live, clock_type::time_point start) {
  const std::size_t mark = opt.water_mark ? std::min(opt.water_mark, ring.capacity()) : std::max<std::size_t>(1, ring.capacity() / 4);
  consumer_schedule schedule(opt);
  consumer_result r;
  for (;;) {
    schedule.before_read();
    auto block = ring.read(mark);  // sleeps until `mark` items are ready, or the producer is stuck
    if (!block) break;             // closed and drained
    for (const std::uint64_t item : block) {
      if (item < r.expected) {
        bump(live.errors, 1);  // out of order or repeated
        continue;
      }
      if (item > r.expected) {
        ++r.gaps;
        r.missing += item - r.expected;
      }
      r.expected = item + 1;
    }
    bump(live.consumed, block.size());
    const std::size_t n = block.size();
    block.release();
    schedule.after_block(n);
  }
  r.seconds = seconds_d(clock_type::now() - start).count();
  return r;
}

std::string bar(std::size_t fill, std::size_t capacity, int width) {
  const int full = static_cast<int>(double(fill) / double(capacity) * width + 0.5);
  std::string s(static_cast<std::size_t>(width), '.');
  std::fill_n(s.begin(), std::clamp(full, 0, width), '#');
  return s;
}

// The live view: a fixed block of lines, redrawn in place. The first draw prints them; each
// later one moves the cursor up over them and clears each line before writing it again.
class live_view {
 public:
  static constexpr int lines = 5;

  explicit live_view(std::string policy) : policy_(std::move(policy)) {}

  void draw(const ring_type& ring, const live_counters& live, double t) {
    const sluice::ring_statistics s = ring.statistics();
    const std::uint64_t produced = s.committed, consumed = s.released;
    const double dt = t - last_t_;
    const double prate = dt > 0 ? double(produced - last_produced_) / dt : 0;
    const double crate = dt > 0 ? double(consumed - last_consumed_) / dt : 0;
    last_t_ = t, last_produced_ = produced, last_consumed_ = consumed;

    const std::size_t fill = ring.size_approx();
    if (drawn_) std::printf("\x1b[%dA", lines);  // back to the first line of the block
    drawn_ = true;
    std::printf("\x1b[2K  %s  t %5.1f s   fill [%s] %5zu / %zu\n", policy_.c_str(), t,
                bar(fill, ring.capacity(), 40).c_str(), fill, ring.capacity());
    std::printf("\x1b[2K  producer %9.3f M items/s   committed %12llu\n", prate / 1e6,
                static_cast<unsigned long long>(produced));
    std::printf("\x1b[2K  consumer %9.3f M items/s   released  %12llu\n", crate / 1e6,
                static_cast<unsigned long long>(consumed));
    const std::uint64_t issued = peek(live.issued), dropped = peek(live.dropped);
    std::printf("\x1b[2K  dropped  %12llu items (%4.1f%%)   producer waited %llu times\n",
                static_cast<unsigned long long>(dropped), issued ? 100.0 * double(dropped) / double(issued) : 0.0,
                static_cast<unsigned long long>(peek(live.waited)));
    std::printf("\x1b[2K  wake-ups %11llu   high-water %8llu   out of order %llu\n",
                static_cast<unsigned long long>(s.wakeups), static_cast<unsigned long long>(s.high_water),
                static_cast<unsigned long long>(peek(live.errors)));
    std::fflush(stdout);
  }

 private:
  std::string policy_;
  bool drawn_ = false;
  double last_t_ = 0;
  std::uint64_t last_produced_ = 0, last_consumed_ = 0;
};

// The consumer's pattern, for the summary's first line.
std::string describe_consumer(const options& opt) {
  char text[160];
  int n = opt.consumer_rate > 0 ? std::snprintf(text, sizeof text, "%.3g M items/s", opt.consumer_rate / 1e6)
                                : std::snprintf(text, sizeof text, "flat out");
  if (opt.block_pause_us > 0)
    n += std::snprintf(text + n, sizeof text - std::size_t(n), ", %.0f us pause per block", opt.block_pause_us);
  if (opt.pause_ms > 0)
    std::snprintf(text + n, sizeof text - std::size_t(n),
                  opt.random ? ", bursts and pauses of random length (%.0f ms and %.0f ms on average)"
                             : ", bursts of %.0f ms and pauses of %.0f ms",
                  opt.burst_ms, opt.pause_ms);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"A fast producer and a slow consumer thread through a sluice::spsc_ring of numbered items;\n"
               "every item is verified. Live view on a terminal, a summary at the end."};
  app.add_option("--seconds", opt.seconds, "how long the producer runs")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--policy", opt.policy, "wait: the producer blocks when full (backpressure); drop: it never waits and drops")
      ->capture_default_str()
      ->check(CLI::IsMember({"wait", "drop"}));
  app.add_option("--capacity", opt.capacity, "ring capacity in items")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--chunk", opt.chunk, "items per producer reservation")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--producer-rate", opt.producer_rate, "producer items/s (0: flat out)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--consumer-rate", opt.consumer_rate, "consumer items/s within a burst (0: flat out)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--block-pause-us", opt.block_pause_us, "the consumer's pause after every block")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--water-mark", opt.water_mark, "items the consumer waits for in read() (0: capacity / 4)")->capture_default_str();
  app.add_option("--burst-ms", opt.burst_ms, "bursty consumer: reads for this long...")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--pause-ms", opt.pause_ms, "...then pauses this long (0: never pauses)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--random", opt.random, "draw each burst and pause length at random, between 0 and twice the above "
                                       "(50 ms each if not given)");
  app.add_option("--seed", opt.seed, "seed of --random")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (opt.random && opt.pause_ms <= 0) opt.pause_ms = 50;
  if (opt.pause_ms > 0 && opt.burst_ms <= 0) opt.burst_ms = opt.random ? 50 : opt.pause_ms;  // a pause needs a burst between

  ring_type ring(opt.capacity);
  live_counters live;
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  std::signal(SIGINT, on_interrupt);

  const auto start = clock_type::now();
  std::thread producer([&] { produce(ring, opt, live, start); });
  consumer_result cr;
  std::thread consumer([&] { cr = consume(ring, opt, live, start); });

  // The main thread only watches, and ends the run: close() wakes a producer asleep for room,
  // stops it at its next reservation, and lets the consumer drain what was committed.
  const auto deadline = start + to_duration(seconds_d(opt.seconds));
  live_view view(opt.policy);
  if (terminal) std::printf("\x1b[?25l");  // hide the cursor while redrawing
  // Relaxed: a request from the signal handler, carries no data.
  for (auto next = start; clock_type::now() < deadline && !interrupted.load(std::memory_order_relaxed);) {
    next += std::chrono::milliseconds(100);
    std::this_thread::sleep_until(std::min(next, deadline));
    if (terminal) view.draw(ring, live, seconds_d(clock_type::now() - start).count());
  }
  ring.close();
  const double producer_seconds = seconds_d(clock_type::now() - start).count();
  producer.join();
  consumer.join();
  if (terminal) {
    view.draw(ring, live, seconds_d(clock_type::now() - start).count());
    std::printf("\x1b[?25h\n");  // the cursor back
  }

  // After join() every counter is final.
  const sluice::ring_statistics s = ring.statistics();
  const std::uint64_t produced = peek(live.issued), dropped = peek(live.dropped), consumed = peek(live.consumed);
  const std::uint64_t chunk = std::min(opt.chunk, ring.capacity());
  // Numbers dropped after the last item the consumer saw leave no gap behind them.
  const std::uint64_t trailing = produced - cr.expected;
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };

  std::printf("sluice %s rate_mismatch: spsc_ring<uint64_t>, policy %s, %.1f s, consumer %s\n", sluice::version(),
              opt.policy.c_str(), producer_seconds, describe_consumer(opt).c_str());
  std::printf("produced: %llu items\n", u(produced));
  std::printf("consumed: %llu items\n", u(consumed));
  std::printf("dropped: %llu items\n", u(dropped));
  std::printf("capacity: %zu items\n", ring.capacity());
  std::printf("high-water mark: %llu items\n", u(s.high_water));
  std::printf("wake-ups: %llu\n", u(s.wakeups));
  std::printf("producer found the ring full: %llu times (%s)\n", u(s.refused),
              opt.policy == "drop" ? "dropped a chunk" : "waited");
  std::printf("producer rate: %.3f M items/s (%.3f M committed)\n", double(produced) / producer_seconds / 1e6,
              double(s.committed) / producer_seconds / 1e6);
  std::printf("consumer rate: %.3f M items/s\n", double(consumed) / cr.seconds / 1e6);

  // Under drop, every refusal the ring counted dropped one chunk; under wait, each was followed
  // by a blocking reserve, which never counts one.
  const std::uint64_t refused_items = opt.policy == "drop" ? s.refused * chunk : 0;
  std::string failure;
  if (peek(live.errors) != 0) failure = std::to_string(peek(live.errors)) + " items out of order or repeated";
  else if (dropped != refused_items)
    failure = std::to_string(dropped) + " items dropped, but the ring refused " + std::to_string(refused_items);
  else if (opt.policy == "wait" && s.refused != peek(live.waited))
    failure = "the ring refused " + std::to_string(s.refused) + " reservations, the producer waited " +
              std::to_string(peek(live.waited)) + " times";
  else if (cr.missing + trailing != dropped)
    failure = std::to_string(cr.missing + trailing) + " items missing, but the producer dropped " + std::to_string(dropped);
  else if (consumed + dropped != produced)
    failure = "consumed + dropped = " + std::to_string(consumed + dropped) + ", produced " + std::to_string(produced);
  else if (s.committed != consumed || s.released != consumed)
    failure = "the ring committed " + std::to_string(s.committed) + " and released " + std::to_string(s.released);
  if (!failure.empty()) {
    std::printf("verified: FAILED, %s\n", failure.c_str());
    return 1;
  }
  if (dropped == 0)
    std::printf("verified: every item in order, none lost or duplicated\n");
  else
    std::printf("verified: every item in order, none duplicated; %llu gaps hold exactly the %llu dropped items "
                "(%llu refused reservations of %llu)\n",
                u(cr.gaps + (trailing != 0)), u(dropped), u(s.refused), u(chunk));
  return 0;
}
