// Two processes sharing one sluice::spsc_record_ring through a named POSIX shared-memory
// segment, and what happens when either of them dies.
//
//   ipc_pipeline consumer --name /x   attaches to /x (creating it if absent), reads and checks
//                                     records until the ring is closed and drained, then
//                                     removes the segment
//   ipc_pipeline producer --name /x   attaches to /x, writes records for --seconds, then closes
//                                     the ring
//   ipc_pipeline demo                 (the default) the whole story in one command: creates a
//                                     segment, forks a producer and a consumer that attach by
//                                     name, kills the consumer with SIGKILL while it holds a
//                                     batch it has read but not released, starts another that
//                                     reads that batch again, kills the producer while it holds
//                                     a reservation, starts another, and checks every record
//
// Every record carries its sequence number and a checksum over its bytes. A producer numbers
// on from the ring's own count of committed records (statistics().committed, kept in the
// segment), so a successor continues where a killed producer stopped. The consumer checks that
// the numbers follow each other without a gap; what it saw twice is the batch its predecessor
// read but never released ("at least once" for that batch, exactly once for the rest). A
// reservation left by a dead producer holds up the records behind it until the consumer's
// recover() reclaims it, counted in statistics().lost.
#include <sluice/record_ring.hpp>
#include <sluice/version.hpp>

#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using seconds_d = std::chrono::duration<double>;
using ring_type = sluice::spsc_record_ring;

struct options {
  std::string name;  // demo default: /sluice-ipc-<pid>
  double seconds = 4;
  std::size_t ring_bytes = 1 << 16;
  std::size_t record_size = 64;
};

// ------------------------------------------------------------------ records

// A record: its sequence number, a checksum, then filler derived from the sequence number. Its
// length is the record's own (the ring frames it), so a consumer checks records of any size.
constexpr std::size_t min_record_size = 16;

std::uint64_t checksum(std::uint64_t seq, std::span<const std::byte> filler) {
  std::uint64_t h = 0xcbf29ce484222325u ^ seq;  // FNV-1a, seeded with the sequence number
  for (const std::byte b : filler) h = (h ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3u;
  return h;
}

void write_record(std::span<std::byte> out, std::uint64_t seq) {
  const std::span<std::byte> filler = out.subspan(min_record_size);
  for (std::size_t i = 0; i < filler.size(); ++i) filler[i] = static_cast<std::byte>(seq * 31 + i);
  const std::uint64_t sum = checksum(seq, filler);
  std::memcpy(out.data(), &seq, 8);
  std::memcpy(out.data() + 8, &sum, 8);
}

// The record's sequence number if it is intact, else nothing.
std::optional<std::uint64_t> check_record(std::span<const std::byte> in) {
  if (in.size() < min_record_size) return std::nullopt;
  std::uint64_t seq, sum;
  std::memcpy(&seq, in.data(), 8);
  std::memcpy(&sum, in.data() + 8, 8);
  if (sum != checksum(seq, in.subspan(min_record_size))) return std::nullopt;
  return seq;
}

// ------------------------------------------------------------------ reports

// What one child process of the demo tells its parent, in a page both map (MAP_SHARED, mapped
// before fork). Each field has one writer. The child stores every field with release and the
// parent loads with acquire, so a field the parent waits on publishes the fields stored before
// it: the flags `attached`, `holding` and `done`, and `records` (the consumer stores it last in
// each update). The parent's requests (`hold`, `stop`) carry no data: relaxed both ways.
struct child_report {
  std::atomic<std::uint32_t> hold{0};      // parent: stop mid-work, hold what you have, wait to be killed
  std::atomic<std::uint32_t> stop{0};      // parent: producer, finish and close the ring
  std::atomic<std::uint32_t> attached{0};  // child: attached to the ring by name
  std::atomic<std::uint32_t> holding{0};   // child: holding (a batch, or a reservation) now
  std::atomic<std::uint32_t> done{0};      // child: finished, every figure final
  std::atomic<std::uint64_t> records{0};   // records committed (producer) or checked (consumer)
  std::atomic<std::uint64_t> first_seq{0}; // the first sequence number written or read
  std::atomic<std::uint64_t> next_seq{0};  // the one after the last written or read
  std::atomic<std::uint64_t> released{0};  // consumer: the sequence number after its last release
  std::atomic<std::uint64_t> held{0};      // records of the held batch, or the held reservation's number
  std::atomic<std::uint64_t> errors{0};    // consumer: corrupt or out-of-order records
  std::atomic<std::uint64_t> lost{0};      // consumer: statistics().lost
  std::atomic<std::uint64_t> committed{0}; // consumer, at the end: statistics().committed
};

// Release: publishes the fields stored before it; pairs with the acquire in get() and flag().
void put(std::atomic<std::uint64_t>& f, std::uint64_t v) { f.store(v, std::memory_order_release); }
void raise_flag(std::atomic<std::uint32_t>& f) { f.store(1, std::memory_order_release); }
// Acquire: pairs with put() and raise_flag(); what the child stored before is visible after.
std::uint64_t get(const std::atomic<std::uint64_t>& f) { return f.load(std::memory_order_acquire); }
bool flag(const std::atomic<std::uint32_t>& f) { return f.load(std::memory_order_acquire) != 0; }

// Waits to be killed: the parent sends SIGKILL once it sees `holding`.
[[noreturn]] void hold_until_killed(child_report& rep) {
  raise_flag(rep.holding);
  for (;;) ::pause();
}

// ------------------------------------------------------------------ producer

// Writes records until `seconds` pass (standalone) or the parent says stop (demo), then closes
// the ring. Returns the process exit code.
int run_producer(const options& opt, child_report* rep) {
  ring_type ring(sluice::open_shared, opt.name, {.role = sluice::role::producer, .attach_timeout = 5000ms});
  // Number on from what the ring has committed: a predecessor killed while holding a
  // reservation never committed that number, so it is issued again here, and the consumer sees
  // no gap.
  std::uint64_t seq = ring.statistics().committed;
  const std::uint64_t first = seq;
  if (rep) {
    put(rep->first_seq, seq);
    put(rep->next_seq, seq);
    raise_flag(rep->attached);
  } else {
    std::printf("producer %d attached to %s, numbering from %llu\n", ::getpid(), opt.name.c_str(),
                static_cast<unsigned long long>(seq));
    std::fflush(stdout);  // a producer may well be killed: say it now
  }
  const auto end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(seconds_d(opt.seconds));
  for (;;) {
    // Relaxed: a request, carries no data.
    if (rep ? rep->stop.load(std::memory_order_relaxed) != 0 : clock_type::now() >= end) break;
    auto grant = ring.try_reserve_for(opt.record_size, 50ms);  // timed, so `stop` is seen while full
    if (!grant) {
      if (ring.closed()) break;
      continue;
    }
    write_record(grant.span(), seq);
    if (rep && rep->hold.load(std::memory_order_relaxed) != 0) {  // relaxed: a request
      put(rep->held, seq);  // written, never committed: lost with this process
      put(rep->records, seq - first);
      put(rep->next_seq, seq);
      hold_until_killed(*rep);
    }
    // False only if the consumer reclaimed it as hung (recover() with a timeout, while this
    // process was descheduled that long): nothing published, so the number is issued again.
    if (!grant.commit()) continue;
    ++seq;
    if (rep && (seq & 255) == 0) {
      put(rep->records, seq - first);
      put(rep->next_seq, seq);
    }
  }
  ring.close();  // the consumer drains what is committed, then stops
  if (rep) {
    put(rep->records, seq - first);
    put(rep->next_seq, seq);
    raise_flag(rep->done);
  } else {
    std::printf("producer %d: %llu records committed (numbers %llu to %llu), ring closed\n", ::getpid(),
                static_cast<unsigned long long>(seq - first), static_cast<unsigned long long>(first),
                static_cast<unsigned long long>(seq) - 1);
  }
  return 0;
}

// ------------------------------------------------------------------ consumer

bool segment_exists(const std::string& name) { return ::access(("/dev/shm" + name).c_str(), F_OK) == 0; }

// Reads and checks records until the ring is closed and drained. Returns the exit code.
int run_consumer(const options& opt, child_report* rep) {
  std::optional<ring_type> opened;
  if (rep || segment_exists(opt.name))
    opened.emplace(sluice::open_shared, opt.name, sluice::shared_options{.role = sluice::role::consumer});
  else
    opened.emplace(sluice::create_shared, opt.name, opt.ring_bytes, sluice::shared_options{.role = sluice::role::consumer});
  ring_type& ring = *opened;
  if (rep) raise_flag(rep->attached);
  else {
    std::printf("consumer %d attached to %s (%zu bytes)\n", ::getpid(), opt.name.c_str(), ring.capacity());
    std::fflush(stdout);
  }

  std::optional<std::uint64_t> expected;  // the number after the last one read; none yet
  std::uint64_t first = 0, records = 0, errors = 0;
  for (;;) {
    // Relaxed: a request, carries no data.
    const bool hold = rep && rep->hold.load(std::memory_order_relaxed) != 0;
    // The batch to die holding should show at-least-once plainly: wait for half a ring of it.
    auto batch = hold ? ring.try_read_for(1s, ring.capacity() / 2) : ring.try_read_for(50ms);
    if (!batch) {
      // Nothing ready: perhaps a dead producer's reservation holds up the head. recover()
      // reclaims it at once; the records behind it follow. No timeout for live producers: one
      // merely descheduled for a while would go on writing into space given to later records.
      if (ring.recover() != 0) {
        if (rep) put(rep->lost, ring.statistics().lost);
        continue;
      }
      if (!ring.closed()) continue;
      // Closed: the producer committed everything before closing, so one more read drains it.
      batch = ring.try_read();
      if (!batch) break;
    }
    for (const std::span<const std::byte> record : batch) {
      const std::optional<std::uint64_t> seq = check_record(record);
      if (!seq || (expected && *seq != *expected)) {
        ++errors;  // corrupt, missing or out of order
        if (!rep) std::fprintf(stderr, "consumer: record %llu: %s\n", static_cast<unsigned long long>(records),
                               seq ? "out of sequence" : "corrupt");
      }
      if (!expected) first = seq.value_or(0);
      if (seq) expected = *seq + 1;
      ++records;
    }
    if (rep) {
      put(rep->first_seq, first);
      put(rep->next_seq, expected.value_or(0));
      put(rep->errors, errors);
      put(rep->records, records);  // last: the parent waits on it, then reads the others
      if (hold) {
        put(rep->held, batch.size());  // read and checked, not released: the successor reads them again
        hold_until_killed(*rep);
      }
    }
    batch.release();
    if (rep) put(rep->released, expected.value_or(0));
  }

  const sluice::ring_statistics s = ring.statistics();
  if (rep) {
    put(rep->lost, s.lost);
    put(rep->committed, s.committed);
    raise_flag(rep->done);
  } else {
    std::printf("consumer %d: %llu records checked (numbers %llu to %llu), %llu bad; ring: %llu committed, %llu lost\n",
                ::getpid(), static_cast<unsigned long long>(records), static_cast<unsigned long long>(first),
                static_cast<unsigned long long>(expected.value_or(1) - 1), static_cast<unsigned long long>(errors),
                static_cast<unsigned long long>(s.committed), static_cast<unsigned long long>(s.lost));
    sluice::remove_shared(opt.name);  // a closed ring is finished: nobody can use it again
    std::printf("consumer: the ring was closed and drained; removed %s\n", opt.name.c_str());
  }
  return errors == 0 ? 0 : 1;
}

// ------------------------------------------------------------------ demo

// Runs `body` in a child process; its return value (or 2 for an exception) is the exit code.
pid_t spawn(const std::function<int()>& body) {
  std::fflush(stdout);  // or the child would print the parent's buffered lines again
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid != 0) return pid;
  int rc = 2;
  try {
    rc = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipc_pipeline child %d: %s\n", ::getpid(), e.what());
  }
  std::fflush(stdout);
  ::_exit(rc);  // not exit(): the parent's atexit handlers and buffers are not this process's
}

// Polls `ready` every millisecond for up to `limit`. Generous limits: the machine may be loaded.
bool await(const std::function<bool()>& ready, std::chrono::seconds limit = 30s) {
  const auto until = clock_type::now() + limit;
  while (!ready()) {
    if (clock_type::now() >= until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

int exit_code(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct demo_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class demo {
 public:
  explicit demo(options opt) : opt_(std::move(opt)) {
    void* page = ::mmap(nullptr, sizeof(reports), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    rep_ = new (page) reports;
  }
  ~demo() {
    // After a failure: no child outlives the demo.
    for (pid_t& pid : live_) {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        exit_code(pid);
      }
    }
    if (created_) sluice::remove_shared(opt_.name);
    ::munmap(rep_, sizeof(reports));
  }

  int run() {
    {
      // The segment outlives this object: it only lays the ring out, then gives up its role.
      ring_type creator(sluice::create_shared, opt_.name, opt_.ring_bytes);
      created_ = true;
      if (opt_.record_size > creator.max_record_size())
        throw demo_failure("--record-size " + std::to_string(opt_.record_size) + " exceeds the ring's maximum of " +
                           std::to_string(creator.max_record_size()));
      std::printf("sluice %s ipc_pipeline demo: spsc_record_ring in shared memory %s, %zu bytes, %zu-byte records\n",
                  sluice::version(), opt_.name.c_str(), creator.capacity(), opt_.record_size);
    }
    start_ = clock_type::now();
    child_report &c1 = rep_->consumer[0], &c2 = rep_->consumer[1], &p1 = rep_->producer[0], &p2 = rep_->producer[1];

    start_consumer(0);
    start_producer(0);
    run_until(0.3);

    // The consumer dies holding a batch it has read and checked but not released.
    c1.hold.store(1, std::memory_order_relaxed);  // relaxed: a request, carries no data
    expect(await([&] { return flag(c1.holding); }), "consumer #1 never held a batch");
    kill_child(live_[consumer_slot(0)]);
    const std::uint64_t held = get(c1.held);
    say("consumer #1 killed (SIGKILL) holding a batch it had read and checked but not released: %llu records, "
        "numbers %llu to %llu",
        u(held), u(get(c1.next_seq) - held), u(get(c1.next_seq) - 1));
    start_consumer(1);
    expect(await([&] { return get(c2.records) > 0; }), "consumer #2 read nothing");
    say("consumer #2 continues from the last release: its first record is number %llu, so it reads those %llu again",
        u(get(c2.first_seq)), u(get(c1.next_seq) - get(c2.first_seq)));
    run_until(0.6);

    // The producer dies holding a reservation: written, never committed.
    p1.hold.store(1, std::memory_order_relaxed);  // relaxed: a request
    expect(await([&] { return flag(p1.holding); }), "producer #1 never held a reservation");
    kill_child(live_[producer_slot(0)]);
    say("producer #1 killed (SIGKILL) holding a reservation for record %llu (written, not committed)", u(get(p1.held)));
    start_producer(1);
    say("producer #2 numbers on from the ring's committed count: %llu", u(get(p2.first_seq)));
    expect(await([&] { return get(c2.lost) > 0; }), "consumer #2 never reclaimed the dead producer's reservation");
    say("consumer #2: recover() reclaimed the dead producer's reservation (statistics().lost = %llu)", u(get(c2.lost)));
    run_until(1.0);

    p2.stop.store(1, std::memory_order_relaxed);  // relaxed: a request
    expect(exit_code(std::exchange(live_[producer_slot(1)], 0)) == 0, "producer #2 failed");
    expect(exit_code(std::exchange(live_[consumer_slot(1)], 0)) == 0, "consumer #2 failed (see its errors)");
    expect(flag(p2.done) && flag(c2.done), "a child ended without its final report");
    const double elapsed = seconds_d(clock_type::now() - start_).count();
    return summary(elapsed);
  }

 private:
  struct reports {
    child_report producer[2];
    child_report consumer[2];
  };
  static std::size_t producer_slot(int i) { return static_cast<std::size_t>(i); }
  static std::size_t consumer_slot(int i) { return 2 + static_cast<std::size_t>(i); }

  void start_producer(int i) {
    child_report& r = rep_->producer[i];
    live_[producer_slot(i)] = spawn([&] { return run_producer(opt_, &r); });
    expect(await([&] { return flag(r.attached); }), "a producer did not attach");
    say("producer #%d (pid %d) attached to %s by name", i + 1, live_[producer_slot(i)], opt_.name.c_str());
  }
  void start_consumer(int i) {
    child_report& r = rep_->consumer[i];
    live_[consumer_slot(i)] = spawn([&] { return run_consumer(opt_, &r); });
    expect(await([&] { return flag(r.attached); }), "a consumer did not attach");
    say("consumer #%d (pid %d) attached to %s by name", i + 1, live_[consumer_slot(i)], opt_.name.c_str());
  }
  void kill_child(pid_t& pid) {
    ::kill(pid, SIGKILL);
    exit_code(std::exchange(pid, 0));  // reaped: its role slot now reads as a dead process's
  }

  // Lets the pipeline run until `fraction` of --seconds, reporting progress every half second.
  void run_until(double fraction) {
    const auto until = start_ + std::chrono::duration_cast<clock_type::duration>(seconds_d(opt_.seconds * fraction));
    while (clock_type::now() < until) {
      std::this_thread::sleep_until(std::min(until, clock_type::now() + 500ms));
      // The consumer's count: the producers report theirs only every 256 records.
      const std::uint64_t through = std::max(get(rep_->consumer[0].next_seq), get(rep_->consumer[1].next_seq));
      const double t = seconds_d(clock_type::now() - start_).count();
      say("%llu records through the ring so far: %.3f M records/s", u(through), double(through) / t / 1e6);
    }
  }

  // One line of the story, stamped with the time since the start.
  [[gnu::format(printf, 2, 3)]] void say(const char* format, ...) {
    std::printf("[%6.2f s] ", seconds_d(clock_type::now() - start_).count());
    va_list args;
    va_start(args, format);
    std::vprintf(format, args);
    va_end(args);
    std::printf("\n");
    std::fflush(stdout);
  }
  static unsigned long long u(std::uint64_t v) { return v; }
  static void expect(bool ok, const char* what) {
    if (!ok) throw demo_failure(what);
  }

  int summary(double elapsed) {
    const child_report &c1 = rep_->consumer[0], &c2 = rep_->consumer[1], &p1 = rep_->producer[0], &p2 = rep_->producer[1];
    const std::uint64_t produced = get(p1.records) + get(p2.records);
    const std::uint64_t deliveries = get(c1.records) + get(c2.records);
    const std::uint64_t again = get(c1.next_seq) - get(c2.first_seq);
    const std::uint64_t unique = get(c2.next_seq);  // numbers 0 .. next_seq - 1 arrived
    std::printf("produced: %llu records (producer #1: %llu, producer #2: %llu)\n", u(produced), u(get(p1.records)),
                u(get(p2.records)));
    std::printf("consumed: %llu records (consumer #1 checked %llu, consumer #2 %llu: %llu of them twice)\n", u(unique),
                u(get(c1.records)), u(get(c2.records)), u(again));
    std::printf("delivered again after the consumer restart: %llu records\n", u(again));
    std::printf("lost reservations after the producer kill: %llu (statistics().lost; predicted: 1, the one producer #1 "
                "held)\n",
                u(get(c2.lost)));
    std::printf("throughput: %.3f M records/s, %.1f MB/s over %.2f s\n", double(unique) / elapsed / 1e6,
                double(unique * opt_.record_size) / elapsed / 1e6, elapsed);

    std::string failure;
    const auto check = [&](bool ok, std::string what) {
      if (!ok && failure.empty()) failure = std::move(what);
    };
    check(get(c1.errors) + get(c2.errors) == 0, "records corrupt, missing or out of order");
    check(get(c1.first_seq) == 0, "consumer #1 did not start at record 0");
    check(get(c2.first_seq) == get(c1.released), "consumer #2 did not continue from consumer #1's last release");
    check(again == get(c1.held), "the records delivered again are not the batch consumer #1 held");
    check(get(p2.first_seq) == get(p1.next_seq), "producer #2 did not number on from producer #1's last commit");
    check(get(p1.held) == get(p1.next_seq), "the held reservation is not the record after producer #1's last commit");
    check(unique == produced && get(c2.committed) == produced, "not every committed record arrived");
    check(deliveries == unique + again, "deliveries do not add up");
    // recover() reclaims dead producers' reservations only, and producer #1 died holding one.
    check(get(c2.lost) == 1, "recover() reclaimed " + std::to_string(get(c2.lost)) + " reservations, not the one held");
    if (!failure.empty()) {
      std::printf("verified: FAILED, %s\n", failure.c_str());
      return 1;
    }
    std::printf("verified: every committed record arrived, in order; %llu delivered again after the consumer restart "
                "(read, not released); %llu reservation lost with the killed producer (written, never committed)\n",
                u(again), u(get(c2.lost)));
    return 0;
  }

  options opt_;
  reports* rep_ = nullptr;
  pid_t live_[4] = {0, 0, 0, 0};  // producers #1, #2, consumers #1, #2 (0: not running)
  bool created_ = false;
  clock_type::time_point start_ = clock_type::now();
};

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Two processes share a sluice::spsc_record_ring through a named shared-memory segment.\n"
               "Without a mode, runs the demo: both sides are killed and restarted, every record checked."};
  app.require_subcommand(0, 1);
  const auto common = [&](CLI::App* a, bool demo_mode) {
    a->add_option("--name", opt.name, demo_mode ? "segment name (default /sluice-ipc-<pid>)" : "segment name, e.g. /x")
        ->required(!demo_mode);
    a->add_option("--seconds", opt.seconds, "how long to run")->capture_default_str()->check(CLI::PositiveNumber);
    a->add_option("--ring-bytes", opt.ring_bytes, "ring capacity in bytes (when creating)")->capture_default_str();
    a->add_option("--record-size", opt.record_size, "bytes per record (at least 16)")
        ->capture_default_str()
        ->check(CLI::Range(min_record_size, std::size_t{1} << 20));
  };
  common(&app, true);
  CLI::App* producer = app.add_subcommand("producer", "attach to --name and write records for --seconds, then close the ring");
  CLI::App* consumer = app.add_subcommand("consumer", "attach to --name (create it if absent), read and check until closed");
  CLI::App* demo_cmd = app.add_subcommand("demo", "the whole story in one command (the default)");
  common(producer, false);
  common(consumer, false);
  common(demo_cmd, true);
  CLI11_PARSE(app, argc, argv);

  try {
    if (producer->parsed()) return run_producer(opt, nullptr);
    if (consumer->parsed()) return run_consumer(opt, nullptr);
    if (opt.name.empty()) opt.name = "/sluice-ipc-" + std::to_string(::getpid());
    return demo(opt).run();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ipc_pipeline: %s\n", e.what());
    return 2;
  }
}
