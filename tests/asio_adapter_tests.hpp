// The Asio adapter tests, written once for standalone Asio and Boost.Asio: the including file
// defines the namespace aliases `net` (the Asio namespace) and `adapter` (sluice::asio or
// sluice::boost_asio) and the type `error_code`, then includes this. Every stream is checked
// byte for byte against the bytes that were sent.
#pragma once

#include <sluice/spsc_ring.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace asio_adapter_tests {

using byte_ring = sluice::spsc_ring<std::byte>;
using dynamic_buffer_type = adapter::dynamic_ring_buffer<>;

// Byte i of a test stream named by `salt`.
inline std::byte stream_byte(std::uint64_t i, std::uint64_t salt) {
  return static_cast<std::byte>(((i + salt) * 2654435761u) >> 11);
}

// The adapters' types meet Asio's own requirements.
using write_split = byte_ring::split_write_grant;
using read_split = byte_ring::split_read_grant;
static_assert(net::is_mutable_buffer_sequence<decltype(adapter::buffer(std::declval<const write_split&>()))>::value);
static_assert(net::is_const_buffer_sequence<decltype(adapter::buffer(std::declval<const read_split&>()))>::value);
static_assert(!net::is_mutable_buffer_sequence<decltype(adapter::buffer(std::declval<const read_split&>()))>::value);
static_assert(std::is_same_v<decltype(adapter::buffer(std::declval<const byte_ring::write_grant&>())), net::mutable_buffer>);
static_assert(std::is_same_v<decltype(adapter::buffer(std::declval<const byte_ring::read_grant&>())), net::const_buffer>);
static_assert(net::is_dynamic_buffer_v1<dynamic_buffer_type>::value);

TEST(AsioBuffers, SplitViewsBecomeOneOrTwoBuffersInTheRing) {
  byte_ring ring(16);
  auto g = ring.try_reserve_split(10);
  auto buffers = adapter::buffer(g);
  ASSERT_EQ(buffers.count(), 1u);
  EXPECT_EQ(net::buffer_size(buffers), 10u);
  EXPECT_EQ(net::buffer_sequence_begin(buffers)->data(), static_cast<void*>(g.first().data()));
  g.commit();
  ring.try_read_split().release();

  auto wrapped = ring.try_reserve_split(10);  // 6 at the end of the storage, 4 at its start
  buffers = adapter::buffer(wrapped);
  ASSERT_EQ(buffers.count(), 2u);
  EXPECT_EQ(net::buffer_size(buffers), 10u);
  auto it = net::buffer_sequence_begin(buffers);
  EXPECT_EQ(it->data(), static_cast<void*>(wrapped.first().data()));
  EXPECT_EQ(it->size(), 6u);
  ++it;
  EXPECT_EQ(it->data(), static_cast<void*>(wrapped.second().data()));
  EXPECT_EQ(it->size(), 4u);
  // Asio copies into the two regions in order.
  const std::string text = "0123456789";
  EXPECT_EQ(net::buffer_copy(buffers, net::buffer(text)), 10u);
  wrapped.commit();

  auto view = ring.try_read_split();
  const auto out = adapter::buffer(view);
  std::string back(10, '\0');
  EXPECT_EQ(net::buffer_copy(net::buffer(back), out), 10u);
  EXPECT_EQ(back, text);
  view.release();
  EXPECT_EQ(adapter::buffer(ring.try_read_split()).count(), 0u) << "an empty ring: no buffers";
}

TEST(AsioBuffers, ContiguousGrantsAndSpansInBytes) {
  sluice::spsc_ring<std::uint32_t> ring(8);
  auto g = ring.try_reserve(3);
  const net::mutable_buffer b = adapter::buffer(g);
  EXPECT_EQ(b.data(), static_cast<void*>(g.span().data()));
  EXPECT_EQ(b.size(), 3 * sizeof(std::uint32_t));
  const double values[4] = {};
  const net::const_buffer c = adapter::buffer(std::span<const double>(values));
  EXPECT_EQ(c.size(), sizeof values);
}

// A local stream socket pair on one io_context, and a ring per direction and side.
struct socket_pair {
  net::io_context io;
  net::local::stream_protocol::socket a{io};
  net::local::stream_protocol::socket b{io};
  socket_pair() { net::local::connect_pair(a, b); }
};

// Sends `total` bytes of stream `salt` over `socket` with async_write straight from the ring's
// split read views; the producer side fills the ring in place between writes.
class ring_sender {
 public:
  ring_sender(net::local::stream_protocol::socket& socket, std::uint64_t total, std::uint64_t salt)
      : socket_(socket), total_(total), salt_(salt) {}

  void start() { step(); }
  std::uint64_t wrapped_writes() const { return wrapped_writes_; }

 private:
  void fill() {
    // Varying amounts, so the regions start anywhere in the storage and some wrap.
    const auto free = ring_.capacity() - ring_.size_approx();
    const std::uint64_t amount = 1 + (++fills_ * 1237) % ring_.capacity();
    const auto n = static_cast<std::size_t>(std::min({std::uint64_t{free}, total_ - produced_, amount}));
    if (n == 0) return;
    auto g = ring_.try_reserve_split(n);
    ASSERT_TRUE(g);
    for (auto part : {g.first(), g.second()})
      for (auto& b : part) b = stream_byte(produced_++, salt_);
    g.commit();
  }

  void step() {
    fill();
    view_ = ring_.try_read_split();
    if (!view_) return;  // everything was sent
    const auto buffers = adapter::buffer(view_);
    wrapped_writes_ += buffers.count() == 2;
    net::async_write(socket_, buffers, [this](const error_code& ec, std::size_t n) {
      ASSERT_FALSE(ec) << ec.message();
      ASSERT_EQ(n, view_.size());  // async_write sends the whole sequence
      view_.release(n);
      step();
    });
  }

  net::local::stream_protocol::socket& socket_;
  std::uint64_t total_, salt_;
  std::uint64_t produced_ = 0, wrapped_writes_ = 0, fills_ = 0;
  byte_ring ring_{4093};
  byte_ring::split_read_grant view_;
};

// Receives `total` bytes with async_read_some straight into the ring's grants (a contiguous
// write_grant and a split_write_grant in turn), then checks them from the consumer side.
class ring_receiver {
 public:
  ring_receiver(net::local::stream_protocol::socket& socket, std::uint64_t total, std::uint64_t salt)
      : socket_(socket), total_(total), salt_(salt) {}

  void start() { step(); }
  std::uint64_t received() const { return received_; }
  std::uint64_t mismatches() const { return mismatches_; }

 private:
  void consume() {
    auto v = ring_.try_read_split();
    for (auto part : {v.first(), v.second()})
      for (auto b : part) mismatches_ += b != stream_byte(received_++, salt_);
    v.release();
  }

  void step() {
    consume();
    if (received_ == total_) return;
    const std::size_t want = 1 + (turn_ * 977) % 3000;
    if (turn_++ % 2 == 0) {
      grant_ = ring_.try_reserve_up_to(want);
      ASSERT_TRUE(grant_);
      socket_.async_read_some(adapter::buffer(grant_), [this](const error_code& ec, std::size_t n) {
        ASSERT_FALSE(ec) << ec.message();
        grant_.commit(n);
        step();
      });
    } else {
      split_ = ring_.try_reserve_split(want);
      ASSERT_TRUE(split_);
      socket_.async_read_some(adapter::buffer(split_), [this](const error_code& ec, std::size_t n) {
        ASSERT_FALSE(ec) << ec.message();
        split_.commit(n);
        step();
      });
    }
  }

  net::local::stream_protocol::socket& socket_;
  std::uint64_t total_, salt_;
  std::uint64_t received_ = 0, mismatches_ = 0, turn_ = 0;
  byte_ring ring_{3001};
  byte_ring::write_grant grant_;
  byte_ring::split_write_grant split_;
};

// 1 MiB each way at once, both directions from one io_context.
TEST(AsioSockets, OneMebibyteEachWayWithoutCopies) {
  constexpr std::uint64_t total = 1u << 20;
  socket_pair sockets;
  ring_sender a_to_b(sockets.a, total, 1), b_to_a(sockets.b, total, 2);
  ring_receiver at_b(sockets.b, total, 1), at_a(sockets.a, total, 2);
  a_to_b.start();
  b_to_a.start();
  at_b.start();
  at_a.start();
  sockets.io.run();
  EXPECT_EQ(at_b.received(), total);
  EXPECT_EQ(at_a.received(), total);
  EXPECT_EQ(at_b.mismatches(), 0u);
  EXPECT_EQ(at_a.mismatches(), 0u);
  EXPECT_GT(a_to_b.wrapped_writes(), 0u) << "no write sent a wrapped region";
}

// Line i of the line test: its number, then letters, 1 to 900 characters long in all.
inline std::string line_text(std::uint32_t i) {
  std::string s = std::to_string(i) + ':';
  s.resize(s.size() + (i * 131u) % 890, static_cast<char>('a' + i % 26));
  return s;
}

// async_read_until straight into the ring through the DynamicBuffer: over 1 MiB of lines of up
// to 900 bytes through a 2 KiB ring, each line read in place from the ring and checked.
TEST(AsioDynamicBuffer, ReadUntilDelimiterInTheRing) {
  socket_pair sockets;
  std::string sent;
  std::uint32_t lines = 0;
  while (sent.size() < (1u << 20)) sent += line_text(lines++) + '\n';
  net::async_write(sockets.a, net::buffer(sent), [&](const error_code& ec, std::size_t) {
    ASSERT_FALSE(ec);
    sockets.a.shutdown(net::socket_base::shutdown_send);
  });

  byte_ring ring(2048);
  std::uint32_t next = 0, bad = 0, wrapped = 0;
  std::function<void()> read_line = [&] {
    net::async_read_until(sockets.b, adapter::dynamic_buffer(ring), '\n',
                          [&](const error_code& ec, std::size_t length) {
                            if (ec == net::error::eof) return;
                            ASSERT_FALSE(ec) << ec.message();
                            auto view = ring.try_read_split();
                            ASSERT_GE(view.size(), length);
                            wrapped += !view.second().empty();
                            std::string line(length - 1, '\0');
                            for (std::size_t i = 0; i + 1 < length; ++i)
                              line[i] = static_cast<char>(i < view.first().size() ? view.first()[i] : view.second()[i - view.first().size()]);
                            bad += line != line_text(next++);
                            view.release(length);
                            read_line();
                          });
  };
  read_line();
  sockets.io.run();
  EXPECT_EQ(next, lines);
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(wrapped, 0u) << "no line wrapped around the ring's end";
  EXPECT_EQ(ring.size_approx(), 0u);
}

// A line longer than the adapter's max_size: read_until reports not_found, as for any
// DynamicBuffer that is full, and the ring keeps what arrived.
TEST(AsioDynamicBuffer, LineLongerThanMaxSizeIsNotFound) {
  socket_pair sockets;
  const std::string sent(300, 'x');
  net::write(sockets.a, net::buffer(sent));
  byte_ring ring(1024);
  error_code ec;
  net::read_until(sockets.b, adapter::dynamic_buffer(ring, 256), '\n', ec);
  EXPECT_EQ(ec, net::error::not_found);
  EXPECT_EQ(ring.size_approx(), 256u);
}

// async_read with transfer_exactly through a producer-only adapter, the consumer reading the
// ring with its own calls.
TEST(AsioDynamicBuffer, AsyncReadExactlyFillsTheRing) {
  socket_pair sockets;
  std::string sent(1500, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(stream_byte(i, 3));
  net::write(sockets.a, net::buffer(sent));
  byte_ring ring(4096);
  std::size_t got = 0;
  net::async_read(sockets.b, adapter::dynamic_buffer(ring), net::transfer_exactly(sent.size()),
                  [&](const error_code& ec, std::size_t n) {
                    ASSERT_FALSE(ec) << ec.message();
                    got = n;
                  });
  sockets.io.run();
  EXPECT_EQ(got, sent.size());
  auto view = ring.try_read();
  ASSERT_EQ(view.size(), sent.size());
  EXPECT_EQ(std::memcmp(view.span().data(), sent.data(), sent.size()), 0);
}

// The DynamicBuffer calls on their own: what they return and how they fail.
TEST(AsioDynamicBuffer, CallsMapOntoTheRing) {
  byte_ring ring(16);
  auto buffer = adapter::dynamic_buffer(ring, 12);
  EXPECT_EQ(buffer.max_size(), 12u);
  EXPECT_EQ(buffer.capacity(), 16u);
  EXPECT_EQ(adapter::dynamic_buffer(ring, 100).max_size(), 16u) << "clamped to the capacity";
  EXPECT_EQ(net::buffer_size(buffer.prepare(0)), 0u);

  auto space = buffer.prepare(10);
  EXPECT_EQ(net::buffer_size(space), 10u);
  EXPECT_EQ(net::buffer_copy(space, net::buffer(std::string("abcdefghij"))), 10u);
  buffer.commit(100);  // more than prepared: commits the whole prepare()
  EXPECT_EQ(buffer.size(), 10u);
  EXPECT_THROW((void)buffer.prepare(3), std::length_error) << "10 + 3 > max_size() 12";
  EXPECT_EQ(buffer.size(), 10u) << "a failed prepare() changes nothing";

  buffer.consume(8);
  EXPECT_EQ(buffer.size(), 2u);
  auto more = buffer.prepare(10);  // from index 10: 6 at the end, 4 at the start
  EXPECT_EQ(more.count(), 2u);
  EXPECT_EQ(net::buffer_copy(more, net::buffer(std::string("KLMNOPQRST"))), 10u);
  buffer.commit(7);  // the first 7 only
  EXPECT_EQ(buffer.size(), 9u);
  const auto data = buffer.data();
  EXPECT_EQ(data.count(), 2u);
  std::string all(9, '\0');
  EXPECT_EQ(net::buffer_copy(net::buffer(all), data), 9u);
  EXPECT_EQ(all, "ijKLMNOPQ");
  buffer.consume(1000);  // more than there is: everything
  EXPECT_EQ(buffer.size(), 0u);

  // Holding the ring's own write grant, prepare() cannot take one.
  auto held = ring.try_reserve(1);
  EXPECT_THROW((void)buffer.prepare(1), std::logic_error);
  held.discard();
  ring.close();
  EXPECT_THROW((void)buffer.prepare(1), std::length_error) << "a closed ring grants nothing";
}

}  // namespace asio_adapter_tests
