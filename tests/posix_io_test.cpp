// sluice::posix: iovec arrays over ring views for readv()/writev(), and mmsghdr batches for
// recvmmsg()/sendmmsg(), over real socket pairs and pipes. Every byte is checked against the
// stream that was sent.
#include <sluice/posix_io.hpp>
#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using byte_ring = sluice::spsc_ring<std::byte>;

// Byte i of the test stream: a cheap function of i that does not repeat with the ring's period.
std::byte stream_byte(std::uint64_t i) {
  return static_cast<std::byte>((i * 2654435761u) >> 13);
}

struct fd_pair {
  int read_end = -1;
  int write_end = -1;
  ~fd_pair() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
};

fd_pair make_pipe() {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0) << std::strerror(errno);
  return {fds[0], fds[1]};
}

fd_pair make_stream_socketpair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0) << std::strerror(errno);
  return {fds[0], fds[1]};
}

// Writes bytes [0, total) of the stream to fd in pieces of varying size.
void send_stream(int fd, std::uint64_t total) {
  std::vector<std::byte> piece(7919);
  for (std::uint64_t sent = 0; sent < total;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(1 + sent % piece.size(), total - sent));
    for (std::size_t i = 0; i < n; ++i) piece[i] = stream_byte(sent + i);
    for (std::size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, piece.data() + done, n - done);
      ASSERT_GT(w, 0) << std::strerror(errno);
      done += static_cast<std::size_t>(w);
    }
    sent += n;
  }
}

// Reads fd to its end; returns how many bytes arrived and whether each was the stream's.
struct received {
  std::uint64_t bytes = 0;
  std::uint64_t mismatches = 0;
};
received receive_stream(int fd) {
  received r;
  std::vector<std::byte> buffer(6007);
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got == 0) return r;
    if (got < 0) {
      ADD_FAILURE() << "read: " << std::strerror(errno);
      return r;
    }
    for (ssize_t i = 0; i < got; ++i) r.mismatches += buffer[static_cast<std::size_t>(i)] != stream_byte(r.bytes + static_cast<std::uint64_t>(i));
    r.bytes += static_cast<std::uint64_t>(got);
  }
}

// Moves the stream from `in` to `out` through a ring of `capacity` bytes: a producer thread
// readv()s from `in` straight into split write grants (or, when none is free, into a contiguous
// grant it sleeps for), a consumer thread writev()s split read grants straight to `out`. Counts
// the calls that used two iovec entries (a wrapped region).
struct pump_result {
  std::uint64_t split_reads = 0;
  std::uint64_t split_writes = 0;
};
void pump(int in, int out, std::size_t capacity, pump_result& result) {
  byte_ring ring(capacity);
  // readv() into a grant and commit what arrived; false at the end of the stream.
  auto fill = [&](auto& g) {
    const auto iov = sluice::posix::iovecs(g);
    EXPECT_EQ(iov.bytes(), g.size());
    result.split_reads += iov.size() == 2;
    const ssize_t got = ::readv(in, iov.data(), iov.size());
    EXPECT_GE(got, 0) << std::strerror(errno);
    if (got <= 0) return false;  // g withdraws itself
    g.commit(static_cast<std::size_t>(got));
    return true;
  };
  std::thread producer([&] {
    const std::size_t chunk = capacity / 3 + 1;
    for (bool more = true; more;) {
      if (auto g = ring.try_reserve_split(chunk)) {
        more = fill(g);
      } else {
        auto c = ring.reserve_up_to(chunk);  // sleeps until some space is free
        more = fill(c);
      }
    }
    ring.close();
  });
  for (;;) {
    auto v = ring.try_read_split();
    if (!v) {
      if (!ring.read()) break;  // sleeps until bytes are committed; empty once closed and drained
      continue;                 // (that read grant ends unreleased: nothing is released)
    }
    const auto iov = sluice::posix::iovecs(v);
    ASSERT_EQ(iov.bytes(), v.size());
    result.split_writes += iov.size() == 2;
    const ssize_t put = ::writev(out, iov.data(), iov.size());
    ASSERT_GT(put, 0) << std::strerror(errno);
    v.release(static_cast<std::size_t>(put));
  }
  producer.join();
}

TEST(PosixIovecs, EntriesFollowTheViewsRegions) {
  byte_ring ring(16);
  EXPECT_TRUE(sluice::posix::iovecs(ring.try_read_split()).empty());

  auto g = ring.try_reserve_split(10);
  auto iov = sluice::posix::iovecs(g);
  ASSERT_EQ(iov.size(), 1);
  EXPECT_EQ(iov.data()[0].iov_base, static_cast<void*>(g.first().data()));
  EXPECT_EQ(iov.data()[0].iov_len, 10u);
  g.commit();
  ring.try_read_split().release(10);

  // The next 10 bytes start at index 10: 6 at the end, 4 at the start.
  auto wrapped = ring.try_reserve_split(10);
  iov = sluice::posix::iovecs(wrapped);
  ASSERT_EQ(iov.size(), 2);
  EXPECT_EQ(iov.data()[0].iov_base, static_cast<void*>(wrapped.first().data()));
  EXPECT_EQ(iov.data()[0].iov_len, 6u);
  EXPECT_EQ(iov.data()[1].iov_base, static_cast<void*>(wrapped.second().data()));
  EXPECT_EQ(iov.data()[1].iov_len, 4u);
  EXPECT_EQ(iov.bytes(), 10u);
  wrapped.commit();

  auto v = ring.try_read_split();
  const auto read_iov = sluice::posix::iovecs(v);
  ASSERT_EQ(read_iov.size(), 2);
  EXPECT_EQ(read_iov.bytes(), 10u);
  EXPECT_EQ(std::distance(read_iov.begin(), read_iov.end()), 2);
}

TEST(PosixIovecs, ContiguousGrantsAndSpansGiveOneEntryInBytes) {
  sluice::spsc_ring<std::uint32_t> ring(8);
  auto g = ring.try_reserve(3);
  const auto iov = sluice::posix::iovecs(g);
  ASSERT_EQ(iov.size(), 1);
  EXPECT_EQ(iov.bytes(), 3 * sizeof(std::uint32_t));  // sizes are in bytes

  sluice::spsc_record_ring records(256);
  auto r = records.try_reserve(40);
  EXPECT_EQ(sluice::posix::iovecs(r).bytes(), 40u);

  std::array<double, 5> values{};
  EXPECT_EQ(sluice::posix::iovecs(std::span<const double>(values)).bytes(), sizeof values);
  EXPECT_TRUE(sluice::posix::iovecs(std::span<const double>()).empty());
}

// The wider-element ring: a wrapped split of uint32_t gives the bytes of each region.
TEST(PosixIovecs, WrappedElementsCountInBytes) {
  sluice::spsc_ring<std::uint32_t> ring(8);
  ring.try_reserve_split(6).commit();
  ring.try_read_split().release(6);
  auto g = ring.try_reserve_split(5);  // 2 at the end, 3 at the start
  const auto iov = sluice::posix::iovecs(g);
  ASSERT_EQ(iov.size(), 2);
  EXPECT_EQ(iov.data()[0].iov_len, 2 * sizeof(std::uint32_t));
  EXPECT_EQ(iov.data()[1].iov_len, 3 * sizeof(std::uint32_t));
}

// 4 MiB from a socket into the ring with readv(), out of it to a pipe with writev().
TEST(PosixIo, SocketToPipeThroughTheRing) {
  constexpr std::uint64_t total = 4u << 20;
  auto source = make_stream_socketpair();
  auto sink = make_pipe();
  std::thread sender([&] {
    send_stream(source.write_end, total);
    ::shutdown(source.write_end, SHUT_WR);
  });
  received got;
  std::thread receiver([&] { got = receive_stream(sink.read_end); });
  pump_result result;
  pump(source.read_end, sink.write_end, 4093, result);
  ::close(sink.write_end);
  sink.write_end = -1;
  sender.join();
  receiver.join();
  EXPECT_EQ(got.bytes, total);
  EXPECT_EQ(got.mismatches, 0u);
  EXPECT_GT(result.split_reads, 0u) << "readv never filled a wrapped region";
  EXPECT_GT(result.split_writes, 0u) << "writev never sent a wrapped region";
}

// And back: 4 MiB from a pipe into the ring, out of it to a socket.
TEST(PosixIo, PipeToSocketThroughTheRing) {
  constexpr std::uint64_t total = 4u << 20;
  auto source = make_pipe();
  auto sink = make_stream_socketpair();
  std::thread sender([&] {
    send_stream(source.write_end, total);
    ::close(source.write_end);
    source.write_end = -1;
  });
  received got;
  std::thread receiver([&] { got = receive_stream(sink.read_end); });
  pump_result result;
  pump(source.read_end, sink.write_end, 1021, result);
  ::shutdown(sink.write_end, SHUT_WR);
  sender.join();
  receiver.join();
  EXPECT_EQ(got.bytes, total);
  EXPECT_EQ(got.mismatches, 0u);
  EXPECT_GT(result.split_reads, 0u);
  EXPECT_GT(result.split_writes, 0u);
}

// A datagram's content: its sequence number, then bytes derived from it; sizes vary.
std::size_t datagram_size(std::uint32_t seq) { return sizeof(std::uint32_t) + seq * 37 % 700; }
void fill_datagram(std::span<std::byte> out, std::uint32_t seq) {
  std::memcpy(out.data(), &seq, sizeof seq);
  for (std::size_t i = sizeof seq; i < out.size(); ++i) out[i] = stream_byte(seq * 1000003ull + i);
}
bool datagram_ok(std::span<const std::byte> in, std::uint32_t seq) {
  if (in.size() != datagram_size(seq)) return false;
  std::uint32_t got;
  std::memcpy(&got, in.data(), sizeof got);
  if (got != seq) return false;
  for (std::size_t i = sizeof seq; i < in.size(); ++i)
    if (in[i] != stream_byte(seq * 1000003ull + i)) return false;
  return true;
}

// 20,000 datagrams: sent with sendmmsg() from the records of one ring (one record per
// datagram), received with recvmmsg() into reservations of another (one per datagram), each
// checked by sequence number and content.
TEST(PosixMmsg, DatagramsBetweenRecordRings) {
  constexpr std::uint32_t count = 20'000;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0) << std::strerror(errno);
  fd_pair socket{fds[0], fds[1]};

  sluice::spsc_record_ring outgoing(64 * 1024);
  sluice::mpsc_record_ring incoming(64 * 1024);
  std::atomic<bool> receiver_done{false};

  std::thread sender([&] {
    std::uint32_t next = 0;
    sluice::posix::mmsg_batch<16> batch;
    while (next < count || outgoing.size_approx() != 0) {
      // Produce a few records, then send what is committed in one call.
      for (int i = 0; i < 8 && next < count; ++i) {
        auto g = outgoing.try_reserve(datagram_size(next));
        if (!g) break;
        fill_datagram(g.span(), next++);
        g.commit();
      }
      auto records = outgoing.try_read();
      if (!records) continue;
      batch.clear();
      for (std::span<const std::byte> record : records)
        if (!batch.add(record)) break;
      EXPECT_TRUE(batch.full() || batch.size() == records.size());
      const int sent = ::sendmmsg(socket.write_end, batch.data(), batch.size(), 0);
      ASSERT_GT(sent, 0) << std::strerror(errno);
      for (int i = 0; i < sent; ++i) EXPECT_EQ(batch.length(static_cast<std::size_t>(i)), batch.capacity(static_cast<std::size_t>(i)));
      records.release(static_cast<std::size_t>(sent));
    }
  });

  std::thread receiver([&] {
    std::uint32_t received = 0;
    sluice::posix::mmsg_batch<16> batch;
    std::array<sluice::mpsc_record_ring::grant, 16> grants;
    while (received < count) {
      batch.clear();
      std::size_t n = 0;
      for (; n < grants.size(); ++n) {
        grants[n] = incoming.try_reserve(1024);  // room for the largest datagram
        if (!grants[n] || !batch.add(grants[n])) break;
      }
      if (n == 0) {
        std::this_thread::yield();
        continue;
      }
      const int got = ::recvmmsg(socket.read_end, batch.data(), batch.size(), MSG_WAITFORONE, nullptr);
      ASSERT_GT(got, 0) << std::strerror(errno);
      for (int i = 0; i < got; ++i) {
        EXPECT_EQ(batch.header(static_cast<std::size_t>(i)).msg_flags & MSG_TRUNC, 0);
        grants[static_cast<std::size_t>(i)].commit(batch.length(static_cast<std::size_t>(i)));
      }
      for (std::size_t i = static_cast<std::size_t>(got); i < n; ++i) grants[i].discard();
      received += static_cast<std::uint32_t>(got);
    }
    receiver_done.store(true, std::memory_order_release);  // pairs with the acquire load below
  });

  std::uint32_t expected = 0;
  std::uint32_t bad = 0;
  while (expected < count) {
    auto records = incoming.try_read();
    if (!records) {
      if (receiver_done.load(std::memory_order_acquire) && incoming.size_approx() == 0) break;
      std::this_thread::yield();
      continue;
    }
    for (std::span<const std::byte> record : records) bad += !datagram_ok(record, expected++);
    records.release();
  }
  sender.join();
  receiver.join();
  EXPECT_EQ(expected, count);
  EXPECT_EQ(bad, 0u);
}

TEST(PosixMmsg, AFullBatchRefusesAndChangesNothing) {
  sluice::mpsc_record_ring ring(1024);
  sluice::posix::mmsg_batch<2> batch;
  auto a = ring.try_reserve(10);
  auto b = ring.try_reserve(20);
  EXPECT_TRUE(batch.add(a));
  EXPECT_TRUE(batch.add(b));
  EXPECT_TRUE(batch.full());
  EXPECT_FALSE(batch.add(a));
  EXPECT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch.capacity(0), 10u);
  EXPECT_EQ(batch.capacity(1), 20u);
  EXPECT_EQ(batch.header(1).msg_iovlen, 1u);
  batch.clear();
  EXPECT_TRUE(batch.empty());
}

}  // namespace
