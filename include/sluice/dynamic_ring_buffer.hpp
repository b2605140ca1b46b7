// sluice::basic_dynamic_ring_buffer: an Asio DynamicBuffer (v1) over an spsc_ring<std::byte>,
// written against any buffer types, so that one definition serves standalone Asio and
// Boost.Asio. Use it through <sluice/asio.hpp> or <sluice/boost_asio.hpp>.
#pragma once

#include <sluice/buffer_pair.hpp>
#include <sluice/detail/errors.hpp>
#include <sluice/spsc_ring.hpp>
#include <sluice/wait_policy.hpp>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace sluice {

/// An Asio DynamicBuffer (version 1) over a sluice::spsc_ring<std::byte, Wait>, so that
/// `async_read_until(socket, buffer, delimiter)`, `async_read(socket, buffer, ...)` and the other
/// dynamic-buffer operations read straight into the ring. `ConstBuffer` and `MutableBuffer` are
/// the I/O library's buffer types: use the aliases sluice::asio::dynamic_ring_buffer (standalone
/// Asio, `<sluice/asio.hpp>`) or sluice::boost_asio::dynamic_ring_buffer (Boost.Asio,
/// `<sluice/boost_asio.hpp>`), made by their `dynamic_buffer(ring)`.
///
/// How the DynamicBuffer calls map onto the ring:
///
/// | call | ring side | what it does |
/// |---|---|---|
/// | `data()` | consumer | the committed bytes, as one or two buffers (a peek: try_read_split(), dropped) |
/// | `consume(n)` | consumer | releases the first `n` committed bytes (all of them if `n` is larger) |
/// | `prepare(n)` | producer | exactly `n` free bytes, as one or two buffers: a try_reserve_split(n) the adapter holds |
/// | `commit(n)` | producer | commits the first `n` bytes of the last prepare() (all of them if `n` is larger) |
/// | `size()`, `max_size()`, `capacity()` | any | ring.size_approx(), the limit given at construction, ring.capacity() |
///
/// The adapter keeps nothing but the outstanding prepare() grant and a pointer to the ring;
/// every other state is the ring's. So a new adapter made for each operation (as
/// `dynamic_buffer(ring)` in each call) continues where the last one stopped, and the bytes an
/// operation committed are read with the ring's own calls as well as with data().
///
/// **Threads.** The usual use is from one thread, which plays both of the ring's roles: that is
/// what `async_read_until` needs, since it calls data() as well as prepare() and commit(). The
/// roles may also be split between two threads, with one adapter each: the producer thread's
/// adapter serves an operation that only writes (`async_read(socket, buffer, completion)`,
/// `read`), calling prepare(), commit(), size(), max_size() and capacity(); the consumer thread
/// reads with data() and consume() on its own adapter, or with the ring's own calls
/// (`ring.read()` blocks until bytes arrive). size() is then stale as size_approx() is: from the
/// producer it may over-count, so an operation prepares less than is free, never more.
///
/// **Grants.** Between prepare() and the next commit() (or prepare(), or the adapter's
/// destruction) the adapter holds the ring's write grant, so the ring's other producer calls
/// throw std::logic_error meanwhile. data() and consume() take and end a read grant within the
/// call, and throw std::logic_error if the caller holds one.
///
/// **Sizes.** size() counts what the ring holds: exact from one thread, as long as the ring is
/// written through this adapter or by the ring's calls that never leave a skipped tail
/// (try_reserve_split(), write_some(), try_push()); a tail skipped by a wrapped try_reserve() or
/// try_reserve_up_to() counts as used until the consumer passes it (see spsc_ring::size_approx()).
/// prepare(n) throws std::length_error, as Asio requires, when size() + n exceeds max_size() or
/// when n bytes are not free now.
///
/// Example, from one thread:
/// \code
/// sluice::spsc_ring<std::byte> ring(64 * 1024);
/// asio::async_read_until(socket, sluice::asio::dynamic_buffer(ring), '\n',
///                        [&](asio::error_code ec, std::size_t line_length) {
///                          if (ec) return;
///                          auto line = ring.try_read_split();        // the line is its first line_length bytes
///                          handle(line.first(), line.second(), line_length);
///                          line.release(line_length);
///                        });
/// \endcode
template <class ConstBuffer, class MutableBuffer, class Wait = waitable>
class basic_dynamic_ring_buffer {
 public:
  /// The ring this adapter reads and writes.
  using ring_type = spsc_ring<std::byte, Wait>;
  /// What data() returns: the committed bytes as one or two buffers.
  using const_buffers_type = buffer_pair<ConstBuffer>;
  /// What prepare() returns: the free bytes granted, as one or two buffers.
  using mutable_buffers_type = buffer_pair<MutableBuffer>;

  /// An adapter over `ring` whose max_size() is the ring's capacity. The ring must outlive it.
  /// Any thread; allocates nothing.
  explicit basic_dynamic_ring_buffer(ring_type& ring) noexcept : ring_(&ring), max_size_(ring.capacity()) {}

  /// An adapter over `ring` that holds at most `max_size` bytes (clamped to the ring's capacity):
  /// prepare() refuses to go beyond it, and `read_until` reports `not_found` when that many bytes
  /// hold no delimiter. The ring must outlive it. Any thread; allocates nothing.
  basic_dynamic_ring_buffer(ring_type& ring, std::size_t max_size) noexcept
      : ring_(&ring), max_size_(std::min(max_size, ring.capacity())) {}

  /// Moves the adapter, with the grant of an outstanding prepare() (the moved-from adapter keeps
  /// the ring, and no grant). Asio moves the adapter into each operation.
  basic_dynamic_ring_buffer(basic_dynamic_ring_buffer&&) noexcept = default;
  /// As the move constructor; an outstanding prepare() of this adapter is withdrawn first.
  basic_dynamic_ring_buffer& operator=(basic_dynamic_ring_buffer&&) noexcept = default;
  basic_dynamic_ring_buffer(const basic_dynamic_ring_buffer&) = delete;
  basic_dynamic_ring_buffer& operator=(const basic_dynamic_ring_buffer&) = delete;
  /// Withdraws an outstanding prepare() (nothing of it is committed).
  ~basic_dynamic_ring_buffer() = default;

  /// Bytes committed and not yet consumed: ring().size_approx(). Any thread; stale as
  /// size_approx() is when the roles are split (see the class notes).
  [[nodiscard]] std::size_t size() const noexcept { return ring_->size_approx(); }

  /// The most the adapter holds: the ring's capacity, or the limit given at construction. Any
  /// thread.
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }

  /// The ring's capacity: what it holds without any allocation (a ring never grows). Any thread.
  [[nodiscard]] std::size_t capacity() const noexcept { return ring_->capacity(); }

  /// The committed bytes, oldest first, as one buffer, or two when they wrap around the end of
  /// the storage. The buffers stay valid until consume() releases their bytes. Consumer (or the
  /// thread that plays both roles). Throws std::logic_error if the caller holds a read grant
  /// on the ring.
  [[nodiscard]] const_buffers_type data() const {
    const auto view = ring_->try_read_split();  // dropped unreleased: a peek
    return {ConstBuffer(view.first().data(), view.first().size()),
            ConstBuffer(view.second().data(), view.second().size())};
  }

  /// Exactly `n` free bytes, as one buffer or two (the second at the start of the storage),
  /// held by the adapter until commit(); withdraws the grant of an earlier prepare() first.
  /// prepare(0) returns an empty sequence. Producer (or the thread that plays both roles).
  /// Throws std::length_error when size() + n exceeds max_size(), when fewer than `n` bytes are
  /// free now (the consumer has not released them yet), or when the ring is closed; and
  /// std::logic_error if the caller holds the ring's write grant itself.
  [[nodiscard]] mutable_buffers_type prepare(std::size_t n) {
    pending_.discard();
    const std::size_t used = std::min(size(), max_size_);
    if (n > max_size_ - used)
      throw std::length_error(
          detail::concat({"sluice: prepare(", n, ") exceeds max_size() (", max_size_, ") less size() (", used, ")"}));
    if (n == 0) return {};
    pending_ = ring_->try_reserve_split(n);
    if (!pending_)
      throw std::length_error(detail::concat({"sluice: prepare(", n, "): ",
                                              ring_->closed() ? "the ring is closed"
                                                              : "fewer bytes are free (not yet consumed)"}));
    return {MutableBuffer(pending_.first().data(), pending_.first().size()),
            MutableBuffer(pending_.second().data(), pending_.second().size())};
  }

  /// Commits the first `n` bytes of the last prepare() (all of them if `n` is larger: Asio
  /// passes what a read delivered) and ends that grant; the rest of it is withdrawn. Without an
  /// outstanding prepare() it does nothing. Producer (or the thread that plays both roles).
  void commit(std::size_t n) {
    if (pending_) pending_.commit(std::min(n, pending_.size()));
  }

  /// Releases the first `n` committed bytes (every committed byte if `n` is larger), giving
  /// their space back to the producer. Consumer (or the thread that plays both roles). Throws
  /// std::logic_error if the caller holds a read grant on the ring.
  void consume(std::size_t n) {
    auto view = ring_->try_read_split();
    view.release(std::min(n, view.size()));
  }

  /// The ring. Any thread.
  [[nodiscard]] ring_type& ring() const noexcept { return *ring_; }

 private:
  ring_type* ring_;                                 // never null
  std::size_t max_size_;                            // in [0, ring_->capacity()]
  typename ring_type::split_write_grant pending_;  // the last prepare(), until commit()
};

}  // namespace sluice
