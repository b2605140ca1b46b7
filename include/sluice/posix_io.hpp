// POSIX scatter/gather I/O over ring views: iovec arrays for readv/writev, and message batches for
// recvmmsg/sendmmsg, built over the views in place (no copy).
#pragma once

#include <sluice/detail/regions.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <span>

/// POSIX I/O helpers: ring views as `iovec` arrays and `mmsghdr` batches.
namespace sluice::posix {

/// At most two `iovec` entries over a view's regions, in the view's order, for readv(),
/// writev(), preadv(), pwritev(), or a `msghdr`'s `msg_iov`. Only non-empty regions get an entry,
/// so a contiguous view gives one entry and an empty one none. The entries point into the ring:
/// valid while the view's grant is neither committed nor released. A plain value: any thread.
class iovec_pair {
 public:
  /// No entries.
  iovec_pair() noexcept = default;

  /// Entries over `first`, then `second`; empty regions are left out.
  iovec_pair(std::span<const std::byte> first, std::span<const std::byte> second) noexcept {
    add(first);
    add(second);
  }

  /// The entries, for readv(fd, data(), size()).
  [[nodiscard]] const ::iovec* data() const noexcept { return iov_.data(); }
  /// The entries, mutable (a `msghdr`'s `msg_iov` is not const).
  [[nodiscard]] ::iovec* data() noexcept { return iov_.data(); }
  /// Number of entries: 0, 1 or 2 (an `int`, as readv()'s `iovcnt`).
  [[nodiscard]] int size() const noexcept { return count_; }
  /// True when there are no entries.
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// Total bytes over the entries.
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t total = 0;
    for (int i = 0; i < count_; ++i) total += iov_[static_cast<std::size_t>(i)].iov_len;
    return total;
  }
  /// The first entry.
  [[nodiscard]] const ::iovec* begin() const noexcept { return iov_.data(); }
  /// One past the last entry.
  [[nodiscard]] const ::iovec* end() const noexcept { return iov_.data() + count_; }

 private:
  void add(std::span<const std::byte> region) noexcept {
    if (region.empty()) return;
    // iovec's base is not const even for writev(); the kernel only reads through it there.
    iov_[static_cast<std::size_t>(count_++)] = {const_cast<std::byte*>(region.data()), region.size()};
  }

  std::array<::iovec, 2> iov_{};  // the first count_ are used
  int count_ = 0;                 // in [0, 2]
};

/// The `iovec` entries over a view: a split grant of spsc_ring (split_write_grant for readv(),
/// split_read_grant for writev(), one entry or two), a contiguous grant (write_grant,
/// read_grant, a record ring's grant: one entry) or a std::span of trivially copyable elements.
/// Sizes are in bytes. Any thread (the one holding the grant uses it).
///
/// \code
/// // producer: fill the free space from a socket or pipe, in one system call
/// if (auto g = ring.try_reserve_split(want)) {
///   const auto iov = sluice::posix::iovecs(g);
///   const ssize_t got = ::readv(fd, iov.data(), iov.size());
///   g.commit(got > 0 ? static_cast<std::size_t>(got) : 0);
/// }
/// // consumer: write everything committed, wrapped or not, in one system call
/// if (auto v = ring.try_read_split()) {
///   const auto iov = sluice::posix::iovecs(v);
///   const ssize_t put = ::writev(fd, iov.data(), iov.size());
///   v.release(put > 0 ? static_cast<std::size_t>(put) : 0);
/// }
/// \endcode
///
/// For an spsc_ring of elements wider than a byte, commit and release whole elements: a
/// readv() or writev() may transfer part of one.
template <detail::byte_view View>
[[nodiscard]] iovec_pair iovecs(const View& view) noexcept {
  const auto r = detail::regions_of(view);
  return iovec_pair(r.first, r.second);
}

/// Up to `N` messages for one sendmmsg() or recvmmsg() call, each over a view (its one or two
/// regions become the message's `msg_iov`), with an optional peer address. It owns the
/// `mmsghdr` and `iovec` arrays (on its own storage, so it is neither copied nor moved) and
/// never allocates. A plain object: use it from one thread at a time.
///
/// \code
/// // producer: up to 16 datagrams, each into its own record, in one system call
/// sluice::posix::mmsg_batch<16> batch;
/// std::array<sluice::mpsc_record_ring::grant, 16> grants;
/// std::size_t n = 0;
/// for (; n < grants.size(); ++n) {
///   grants[n] = ring.try_reserve(2048);
///   if (!grants[n] || !batch.add(grants[n])) break;
/// }
/// const int got = ::recvmmsg(fd, batch.data(), batch.size(), MSG_DONTWAIT, nullptr);
/// for (int i = 0; i < got; ++i) grants[i].commit(batch.length(i));  // the rest are withdrawn
///
/// // consumer: one datagram per record of a batch
/// if (auto records = ring.try_read()) {
///   sluice::posix::mmsg_batch<64> out;
///   for (std::span<const std::byte> record : records)
///     if (!out.add(record)) break;                           // the first 64 records
///   const int sent = ::sendmmsg(fd, out.data(), out.size(), 0);
///   records.release(sent > 0 ? static_cast<std::size_t>(sent) : 0);
/// }
/// \endcode
template <std::size_t N>
class mmsg_batch {
  static_assert(N >= 1, "mmsg_batch<N> needs N >= 1");

 public:
  /// The most messages a batch holds.
  static constexpr std::size_t max_messages = N;

  /// An empty batch.
  mmsg_batch() noexcept = default;
  mmsg_batch(const mmsg_batch&) = delete;
  mmsg_batch& operator=(const mmsg_batch&) = delete;

  /// Appends a message over `view` (any view iovecs() accepts; for recvmmsg() a writable one),
  /// with peer address `name` of `name_length` bytes (for sendmmsg() on an unconnected socket,
  /// or a sockaddr_storage that recvmmsg() fills; nullptr for none). Returns false, changing
  /// nothing, when the batch already holds N messages. The view's grant must stay open until
  /// the system call has returned.
  template <detail::byte_view View>
  bool add(const View& view, void* name = nullptr, ::socklen_t name_length = 0) noexcept {
    if (count_ == N) return false;
    const auto r = detail::regions_of(view);
    const iovec_pair iov(r.first, r.second);
    iov_[2 * count_] = iov.data()[0];
    iov_[2 * count_ + 1] = iov.data()[1];
    ::mmsghdr& m = msgs_[count_];
    m = {};
    m.msg_hdr.msg_iov = &iov_[2 * count_];
    m.msg_hdr.msg_iovlen = static_cast<decltype(m.msg_hdr.msg_iovlen)>(iov.size());
    m.msg_hdr.msg_name = name;
    m.msg_hdr.msg_namelen = name_length;
    ++count_;
    return true;
  }

  /// The messages, for sendmmsg(fd, data(), size(), flags) and recvmmsg().
  [[nodiscard]] ::mmsghdr* data() noexcept { return msgs_.data(); }
  /// Number of messages (an `unsigned int`, as sendmmsg()'s `vlen`).
  [[nodiscard]] unsigned int size() const noexcept { return static_cast<unsigned int>(count_); }
  /// True when the batch holds no message.
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// True when the batch holds N messages.
  [[nodiscard]] bool full() const noexcept { return count_ == N; }

  /// Bytes the last call transferred for message `i` (its `msg_len`): after recvmmsg(), the
  /// datagram's length (for i below the call's result). Unchecked: `i < size()`.
  [[nodiscard]] std::size_t length(std::size_t i) const noexcept { return msgs_[i].msg_len; }
  /// Bytes of message `i`'s regions: what sendmmsg() would send, what recvmmsg() may receive.
  /// Unchecked: `i < size()`.
  [[nodiscard]] std::size_t capacity(std::size_t i) const noexcept {
    std::size_t total = 0;
    for (std::size_t k = 0; k < msgs_[i].msg_hdr.msg_iovlen; ++k) total += msgs_[i].msg_hdr.msg_iov[k].iov_len;
    return total;
  }
  /// Message `i`'s header, to set or read `msg_control` or `msg_flags` (`MSG_TRUNC` after
  /// recvmmsg()). Unchecked: `i < size()`.
  [[nodiscard]] ::msghdr& header(std::size_t i) noexcept { return msgs_[i].msg_hdr; }

  /// Removes every message (the views are not touched).
  void clear() noexcept { count_ = 0; }

 private:
  std::array<::mmsghdr, N> msgs_{};    // the first count_ are used
  std::array<::iovec, 2 * N> iov_{};   // message i's entries are 2i and 2i + 1
  std::size_t count_ = 0;              // in [0, N]
};

}  // namespace sluice::posix
