// UDP datagrams received straight into a sluice::mpsc_record_ring, and a slower consumer.
//
//   senders --UDP, 127.0.0.1--> receivers --recvmmsg into grants--> mpsc_record_ring --> consumer
//
// Sender threads send numbered datagrams (datagram.hpp) at a chosen total rate. Receiver
// threads reserve records in the ring, point recvmmsg's buffers at them and commit each with
// the length that arrived: the kernel's copy into the ring is the only copy. The consumer reads
// the records in place, verifies every byte and every sequence number, and measures the
// latency from send() to the moment it reads the record.
//
// Two places can drop a datagram, and the demo tells them apart: the ring (full, so a receiver
// drains the socket into scratch space and counts it) and the kernel (the socket's receive
// buffer overflowed because the receivers fell behind). Everything sent is either consumed or
// one of those two, and nothing may arrive twice or out of per-sender order.
#include "datagram.hpp"
#include "latency_histogram.hpp"

#include <sluice/record_ring.hpp>
#include <sluice/version.hpp>

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace net_pipeline;
using clock_type = std::chrono::steady_clock;

struct options {
  double seconds = 2.0;
  unsigned senders = 2;
  double rate = 50'000;  // datagrams per second, all senders together; 0: as fast as possible
  std::size_t min_size = 64;
  std::size_t max_size = 1400;
  unsigned receivers = 2;
  std::size_t ring_bytes = std::size_t{1} << 20;
  unsigned consumer_delay_us = 20;
};

// Datagrams one recvmmsg call may take: each needs a reservation of max_size bytes first.
constexpr unsigned batch_datagrams = 16;
// How long a receiver waits for data before it looks whether the senders have finished.
constexpr int poll_timeout_ms = 20;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count());
}

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// Runs a thread's body; a system call that fails there ends the program with its message
// (rather than std::terminate's), since the account could not add up any more.
template <class F, class... Args>
std::thread start_thread(F f, Args&&... args) {
  return std::thread([f, ... args = std::forward<Args>(args)]() mutable {
    try {
      f(args...);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "net_pipeline: %s\n", e.what());
      std::fflush(stderr);
      std::_Exit(1);
    }
  });
}

// Each thread's counters live on their own cache line, written by that thread alone and read
// by main() after joining it (the join orders them), so none of them needs to be atomic.
struct alignas(64) sender_counts {
  std::uint64_t sent = 0;  // datagrams the kernel accepted: sequence numbers 0 .. sent-1
  std::uint64_t bytes = 0;
};
struct alignas(64) receiver_counts {
  std::uint64_t into_ring = 0;   // committed as records
  std::uint64_t ring_drops = 0;  // received into scratch space because the ring was full
  std::uint64_t truncated = 0;   // longer than max_size: a datagram nobody here sent
};

// --- sockets

// One socket per receiver, all bound to the same port with SO_REUSEPORT, rather than one
// socket shared by all receivers. With a shared socket, two receivers blocked in recvmmsg can
// take a sender's datagrams n and n+1 in either order while their reservations are already in
// ring order, so the consumer would see reordering that the network never made. With
// SO_REUSEPORT the kernel gives each flow (each sender's socket) to one receiving socket, read
// by one thread that reserves, receives and commits in order: per-sender order holds by
// construction, and the receivers never contend for a socket lock.
std::vector<int> open_receiver_sockets(unsigned count, std::uint16_t& port) {
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // the first bind picks a free port, the others join it
  for (unsigned i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) fail("setsockopt(SO_REUSEPORT)");
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
    // A backstop for the poll() below: recvmmsg never sleeps longer than this, so a receiver
    // always gets back to its stop check.
    const timeval timeout{0, poll_timeout_ms * 1000};
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) fail("setsockopt(SO_RCVTIMEO)");
    // Room for a few milliseconds of datagrams while a receiver is not scheduled; beyond that
    // the kernel drops. The kernel caps the request at net.core.rmem_max.
    const int request = 4 << 20;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &request, sizeof request) != 0) fail("setsockopt(SO_RCVBUF)");
    fds.push_back(fd);
  }
  port = ntohs(addr.sin_port);
  return fds;
}

// Replaces the kernel's flow hash with "receiver = sender id mod receivers" (the id's low byte
// is the datagram's first byte; the kernel runs the program on the UDP payload), so the
// senders spread evenly over the receivers and a run is the same every time. Returns false
// where the kernel refuses; the hash then decides, which keeps each flow on one socket just
// as well.
bool steer_by_sender(int any_fd, unsigned receivers) {
  std::array<sock_filter, 3> code{{
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),           // A = payload[0]
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, receivers),  // A %= receivers
      BPF_STMT(BPF_RET | BPF_A, 0),                    // the socket's index in the group
  }};
  const sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
  return ::setsockopt(any_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0;
}

// --- the threads

// Sends datagrams numbered from 0 at `rate` per second (0: flat out) until `stop`.
void run_sender(std::uint32_t id, std::uint16_t port, double rate, const options& opt,
                const std::atomic<bool>& stop, sender_counts& counts) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  // Connected: a fixed 4-tuple, so every datagram of this sender reaches the same receiver.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) fail("connect");

  std::vector<std::byte> buffer(opt.max_size);
  const auto start = clock_type::now();
  const std::chrono::duration<double> interval(rate > 0 ? 1.0 / rate : 0.0);
  // Relaxed: a plain request to stop; the sender publishes nothing through it.
  while (!stop.load(std::memory_order_relaxed)) {
    const std::uint64_t seq = counts.sent;
    if (rate > 0) {
      // Paced against the start, not the last send: sleeping late sends a short burst and the
      // mean rate stays right.
      const auto due = start + std::chrono::duration_cast<clock_type::duration>(interval * static_cast<double>(seq));
      if (due > clock_type::now()) {
        std::this_thread::sleep_until(due);
        continue;  // look at `stop` again after sleeping
      }
    }
    const std::size_t size = datagram_size(id, seq, opt.min_size, opt.max_size);
    fill({buffer.data(), size}, {id, static_cast<std::uint32_t>(size - header_size), seq, now_ns()});
    if (::send(fd, buffer.data(), size, 0) < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
        std::this_thread::yield();  // the local queue is full: the same datagram again
        continue;
      }
      fail("send");
    }
    ++counts.sent;
    counts.bytes += size;
  }
  ::close(fd);
}

// Receives from `fd` into the ring until the senders have finished and the socket is empty.
void run_receiver(int fd, sluice::mpsc_record_ring& ring, const options& opt,
                  const std::atomic<bool>& senders_done, receiver_counts& counts) {
  using grant = sluice::mpsc_record_ring::grant;
  std::array<grant, batch_datagrams> grants;
  std::array<iovec, batch_datagrams> iov{};
  std::array<mmsghdr, batch_datagrams> msgs{};
  std::vector<std::byte> scratch(std::size_t{batch_datagrams} * opt.max_size);  // for a full ring
  unsigned want = 1;  // reservations to make for the next call

  for (;;) {
    // Acquire pairs with main()'s release after joining the senders: seen true here, every
    // datagram was sent before the poll below starts, so a poll that then times out means
    // the socket is empty for good.
    const bool last_look = senders_done.load(std::memory_order_acquire);
    // Wait here, holding no reservation. A receiver asleep in recvmmsg on reserved records would
    // hold back every record reserved after them, the other receivers' too, until it woke.
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, poll_timeout_ms);
    if (ready < 0 && errno != EINTR) fail("poll");
    if (ready <= 0) {
      if (last_look) return;
      continue;
    }

    // One reservation of the largest datagram per buffer: a datagram's size is unknown until it
    // has arrived. Each stays its own record; the space beyond what arrives is padding until
    // the consumer releases it. How many datagrams wait is unknown too, and every unused
    // reservation occupies ring space until the consumer steps over it, so reserve twice what
    // the last call received: one spare at a trickle, the whole batch within a few calls of a
    // burst.
    unsigned reserved = 0;
    while (reserved < want) {
      grants[reserved] = ring.try_reserve(opt.max_size);
      if (!grants[reserved]) break;
      iov[reserved] = {grants[reserved].data(), grants[reserved].size()};
      ++reserved;
    }
    const bool ring_full = reserved == 0;
    const unsigned buffers = ring_full ? batch_datagrams : reserved;
    for (unsigned i = 0; i < buffers; ++i) {
      if (ring_full) iov[i] = {scratch.data() + std::size_t{i} * opt.max_size, opt.max_size};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }

    // MSG_WAITFORONE: wait for the first datagram only (poll says it is there, and no other
    // thread reads this socket), then take what else is queued without waiting.
    const int got = ::recvmmsg(fd, msgs.data(), buffers, MSG_WAITFORONE, nullptr);
    if (got < 0 && errno != EAGAIN && errno != EINTR) fail("recvmmsg");
    const unsigned received = got > 0 ? static_cast<unsigned>(got) : 0;
    want = std::clamp(2 * received, 1u, batch_datagrams);

    if (ring_full) {
      counts.ring_drops += received;  // the socket is drained all the same: it must not overflow
      continue;
    }
    for (unsigned i = 0; i < received; ++i) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        ++counts.truncated;
        grants[i].discard();
      } else {
        grants[i].commit(msgs[i].msg_len);  // publishes the first msg_len bytes: the datagram
        ++counts.into_ring;
      }
    }
    for (unsigned i = received; i < reserved; ++i) grants[i].discard();  // unused: withdrawn
  }
}

struct consumer_result {
  std::uint64_t consumed = 0;
  std::uint64_t bytes = 0;
  std::uint64_t malformed = 0;     // failed datagram.hpp's verify(): wrong size, header or payload
  std::uint64_t duplicates = 0;    // a sequence number seen before
  std::uint64_t out_of_order = 0;  // a sequence number below the highest seen, not seen before
  std::uint64_t gaps = 0;          // sequence numbers skipped over (some may still come late)
  std::vector<std::uint64_t> unique;  // per sender: distinct sequence numbers consumed
  latency_histogram latency;
};

// Reads and verifies records until the ring is closed and empty, pausing after every batch.
consumer_result run_consumer(sluice::mpsc_record_ring& ring, const options& opt) {
  consumer_result r;
  r.unique.assign(opt.senders, 0);
  std::vector<std::uint64_t> next(opt.senders, 0);       // per sender: highest sequence seen + 1
  std::vector<std::vector<bool>> seen(opt.senders);      // per sender: which sequences arrived

  for (;;) {
    // main() closes the ring after joining the receivers, and closed() is an acquire load that
    // pairs with close(): once it reads true every record is committed, and an empty read after
    // it means the end.
    const bool last_look = ring.closed();
    auto batch = ring.try_read_for(std::chrono::milliseconds(20));
    if (!batch) {
      if (last_look) return r;
      continue;
    }
    for (std::span<const std::byte> record : batch) {
      const std::uint64_t arrived = now_ns();
      const auto h = verify(record, opt.senders, opt.min_size, opt.max_size);
      ++r.consumed;
      r.bytes += record.size();
      if (!h) {
        ++r.malformed;
        continue;
      }
      r.latency.add(arrived > h->sent_ns ? arrived - h->sent_ns : 0);
      std::vector<bool>& mine = seen[h->sender];
      if (h->sequence >= mine.size()) mine.resize(std::max<std::size_t>(2 * mine.size(), h->sequence + 1));
      if (mine[h->sequence]) {
        ++r.duplicates;
        continue;
      }
      mine[h->sequence] = true;
      ++r.unique[h->sender];
      if (h->sequence < next[h->sender]) {
        ++r.out_of_order;
      } else {
        r.gaps += h->sequence - next[h->sender];
        next[h->sender] = h->sequence + 1;
      }
    }
    batch.release();
    if (opt.consumer_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(opt.consumer_delay_us));
  }
}

options parse(int argc, char** argv) {
  options o;
  CLI::App app{"UDP datagrams from sender threads to receiver threads on 127.0.0.1, received with recvmmsg\n"
               "straight into a sluice::mpsc_record_ring, verified and timed by one slower consumer."};
  app.add_option("--seconds", o.seconds, "How long the senders send")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--senders", o.senders, "Sender threads, each with its own id and sequence")
      ->check(CLI::Range(1u, 256u))->capture_default_str();
  app.add_option("--rate", o.rate, "Datagrams per second, all senders together (0: as fast as they can)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--min-size", o.min_size, "Smallest datagram in bytes, the 24-byte header included")
      ->check(CLI::Range(header_size, max_datagram))->capture_default_str();
  app.add_option("--max-size", o.max_size, "Largest datagram in bytes")
      ->check(CLI::Range(header_size, max_datagram))->capture_default_str();
  app.add_option("--receivers", o.receivers, "Receiver threads, each with its own SO_REUSEPORT socket")
      ->check(CLI::Range(1u, 64u))->capture_default_str();
  app.add_option("--ring-bytes", o.ring_bytes, "Capacity of the record ring")
      ->check(CLI::Range(sluice::mpsc_record_ring::min_capacity, sluice::mpsc_record_ring::max_capacity))
      ->capture_default_str();
  app.add_option("--consumer-delay-us", o.consumer_delay_us, "The consumer's pause after every batch")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
    if (o.min_size > o.max_size) throw CLI::ValidationError("--min-size", "must not exceed --max-size");
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return o;
}

double mb(std::uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }
double us(std::uint64_t ns) { return static_cast<double>(ns) / 1e3; }

}  // namespace

int main(int argc, char** argv) try {
  const options opt = parse(argc, argv);
  sluice::mpsc_record_ring ring(opt.ring_bytes);
  if (opt.max_size > ring.max_record_size()) {
    std::fprintf(stderr, "net_pipeline: --max-size %zu exceeds the ring's largest record (%zu bytes); "
                         "raise --ring-bytes\n", opt.max_size, ring.max_record_size());
    return 2;
  }

  std::uint16_t port = 0;
  const std::vector<int> fds = open_receiver_sockets(opt.receivers, port);
  const bool steered = opt.receivers > 1 && steer_by_sender(fds.front(), opt.receivers);
  int socket_buffer = 0;  // as the kernel reports it: twice the usable bytes
  socklen_t len = sizeof socket_buffer;
  if (::getsockopt(fds.front(), SOL_SOCKET, SO_RCVBUF, &socket_buffer, &len) != 0) fail("getsockopt(SO_RCVBUF)");
  std::printf("sluice %s net_pipeline: %u sender(s) -> 127.0.0.1:%u -> %u receiver(s) -> "
              "mpsc_record_ring of %zu bytes -> 1 consumer\n",
              sluice::version(), opt.senders, static_cast<unsigned>(port), opt.receivers, ring.capacity());
  std::printf("receivers: one SO_REUSEPORT socket each, chosen by %s, %d-byte receive buffers\n",
              steered ? "sender id mod receivers" : "the kernel's flow hash", socket_buffer);
  std::fflush(stdout);

  std::vector<sender_counts> sent(opt.senders);
  std::vector<receiver_counts> received(opt.receivers);
  consumer_result result;
  std::atomic<bool> stop_senders{false};
  std::atomic<bool> senders_done{false};

  const auto start = clock_type::now();
  std::thread consumer = start_thread([&] { result = run_consumer(ring, opt); });
  std::vector<std::thread> receivers;
  for (unsigned i = 0; i < opt.receivers; ++i)
    receivers.push_back(start_thread(run_receiver, fds[i], std::ref(ring), std::cref(opt), std::cref(senders_done),
                                     std::ref(received[i])));
  std::vector<std::thread> senders;
  for (unsigned i = 0; i < opt.senders; ++i)
    senders.push_back(start_thread(run_sender, i, port, opt.rate / opt.senders, std::cref(opt), std::cref(stop_senders),
                                   std::ref(sent[i])));

  std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
  stop_senders.store(true, std::memory_order_relaxed);  // relaxed: see run_sender()
  for (auto& t : senders) t.join();
  // Release pairs with the receivers' acquire: the sends (joined above) come before it.
  senders_done.store(true, std::memory_order_release);
  for (auto& t : receivers) t.join();
  ring.close();  // every commit is done (the joins above): the consumer drains what is left
  consumer.join();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  for (const int fd : fds) ::close(fd);

  // --- the account
  std::uint64_t packets_sent = 0, bytes_sent = 0, into_ring = 0, ring_drops = 0, truncated = 0, unique = 0;
  for (const auto& s : sent) packets_sent += s.sent, bytes_sent += s.bytes;
  for (const auto& r : received) into_ring += r.into_ring, ring_drops += r.ring_drops, truncated += r.truncated;
  for (const std::uint64_t u : result.unique) unique += u;
  // Every datagram sent was consumed once, dropped by a receiver for want of ring space, or
  // lost in the kernel (the socket buffer overflowed); the last is what remains.
  const bool accounted = unique <= packets_sent && ring_drops <= packets_sent - unique;
  const std::uint64_t missing = accounted ? packets_sent - unique : 0;
  const std::uint64_t kernel_drops = accounted ? missing - ring_drops : 0;
  const sluice::ring_statistics stats = ring.statistics();

  std::string spread;
  for (const auto& r : received) spread += (spread.empty() ? "" : ", ") + std::to_string(r.into_ring);
  std::printf("sent: %llu datagrams, %.1f MB in %.2f s\n", static_cast<unsigned long long>(packets_sent),
              mb(bytes_sent), opt.seconds);
  std::printf("received into the ring: %llu (per receiver: %s)\n", static_cast<unsigned long long>(into_ring),
              spread.c_str());
  std::printf("consumed: %llu datagrams, %.1f MB\n", static_cast<unsigned long long>(result.consumed),
              mb(result.bytes));
  std::printf("consumed rate: %.0f packets/s, %.1f MB/s\n", static_cast<double>(result.consumed) / elapsed,
              mb(result.bytes) / elapsed);
  std::printf("ring drops (full): %llu\n", static_cast<unsigned long long>(ring_drops));
  std::printf("kernel drops: %llu\n", static_cast<unsigned long long>(kernel_drops));
  std::printf("sequence gaps: %llu\n", static_cast<unsigned long long>(result.gaps));
  std::printf("duplicates: %llu\n", static_cast<unsigned long long>(result.duplicates));
  std::printf("out-of-order: %llu\n", static_cast<unsigned long long>(result.out_of_order));
  std::printf("malformed: %llu\n", static_cast<unsigned long long>(result.malformed + truncated));
  std::printf("latency send->consume: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
              us(result.latency.percentile(0.50)), us(result.latency.percentile(0.99)),
              us(result.latency.percentile(0.999)), us(result.latency.max()));
  std::printf("consumer paused %u us per batch; ring high-water mark %llu of %zu bytes\n", opt.consumer_delay_us,
              static_cast<unsigned long long>(stats.high_water), ring.capacity());

  const bool ok = accounted && result.consumed == into_ring && stats.committed == into_ring &&
                  result.duplicates == 0 && result.out_of_order == 0 && result.malformed == 0 && truncated == 0;
  if (ok) {
    std::printf("verified: every datagram that reached the ring arrived exactly once and in per-sender order");
    if (missing == 0) std::printf("; none was lost\n");
    else std::printf("; the %llu missing are the drops above\n", static_cast<unsigned long long>(missing));
    return 0;
  }
  std::printf("FAILED: %s\n", !accounted ? "the drops do not add up to what was sent"
                              : result.consumed != into_ring || stats.committed != into_ring
                                  ? "the consumer did not read exactly what the receivers committed"
                                  : "duplicated, reordered or corrupt datagrams reached the consumer");
  return 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "net_pipeline: %s\n", e.what());
  return 1;
}
