// Boost.Asio (the `boost::asio` namespace) adapters: ring views as buffer sequences, and a
// DynamicBuffer over spsc_ring<std::byte>. For standalone Asio include <sluice/asio.hpp>
// instead; the two Asios cannot share a translation unit.
#pragma once

#include <sluice/buffer_pair.hpp>
#include <sluice/detail/regions.hpp>
#include <sluice/dynamic_ring_buffer.hpp>
#include <sluice/spsc_ring.hpp>
#include <sluice/wait_policy.hpp>

// Boost.Asio 1.74's <boost/asio/awaitable.hpp> uses std::exchange without including <utility>,
// which g++ 12 in C++20 mode then rejects: include it first, then the whole of Boost.Asio, so
// that this header works alone and before any other Boost.Asio header.
#include <utility>

#include <boost/asio.hpp>

#include <cstddef>
#include <span>
#include <type_traits>

/// Adapters between sluice's rings and Boost.Asio (`boost::asio`).
///
/// `<sluice/boost_asio.hpp>` includes `<boost/asio.hpp>` (after `<utility>`, which Boost.Asio 1.74
/// needs under C++20 and does not include itself): include it in place of `<boost/asio.hpp>`, or
/// before it.
namespace sluice::boost_asio {

/// The Asio buffer over a contiguous view, without a copy: a `boost::asio::mutable_buffer`
/// over a write grant (spsc_ring's write_grant, a record ring's grant) or a span of non-const
/// elements; a `boost::asio::const_buffer` over a read grant or a span of const elements. Its
/// size is the view's size in bytes. The buffer points into the ring: it is valid while the view's
/// grant is neither committed nor released. Any thread (the thread holding the grant uses it).
///
/// \code
/// if (auto grant = ring.try_reserve_up_to(4096)) {           // a producer's grant
///   const auto buffer = sluice::boost_asio::buffer(grant);     // before the grant moves
///   socket.async_read_some(buffer, [g = std::move(grant)](boost::system::error_code ec,
///                                                         std::size_t n) mutable {
///     if (!ec) g.commit(n);                                  // publish what arrived
///   });
/// }
/// \endcode
template <class View>
  requires detail::one_region_view<View> || detail::is_span_v<View>
[[nodiscard]] auto buffer(const View& view) noexcept {
  return detail::one_buffer<::boost::asio::const_buffer, ::boost::asio::mutable_buffer>(view);
}

/// The Asio buffer sequence over a view in two regions (spsc_ring's split_write_grant or
/// split_read_grant), without a copy: a buffer_pair of one buffer, or two when the region wraps
/// around the end of the storage. `boost::asio::mutable_buffer`s over a split write grant (a
/// MutableBufferSequence, for `async_read_some`, `async_read`), `boost::asio::const_buffer`s
/// over a split read grant (a ConstBufferSequence, for `async_write`). Valid while the grant is neither
/// committed nor released. Any thread (the thread holding the grant uses it).
///
/// \code
/// if (auto view = ring.try_read_split()) {                   // the consumer's grant
///   const auto buffers = sluice::boost_asio::buffer(view);     // before the grant moves
///   boost::asio::async_write(socket, buffers, [v = std::move(view)](boost::system::error_code ec,
///                                                                   std::size_t n) mutable {
///     v.release(n);                                          // what was written
///   });
/// }
/// \endcode
template <detail::two_region_view View>
[[nodiscard]] auto buffer(const View& view) noexcept {
  return detail::two_buffers<::boost::asio::const_buffer, ::boost::asio::mutable_buffer>(view);
}

/// The DynamicBuffer (v1) adapter over an spsc_ring<std::byte, Wait> for Boost.Asio: see
/// sluice::basic_dynamic_ring_buffer for how its calls map onto the ring and which thread may
/// call what.
template <class Wait = waitable>
using dynamic_ring_buffer =
    basic_dynamic_ring_buffer<::boost::asio::const_buffer, ::boost::asio::mutable_buffer, Wait>;

/// A DynamicBuffer over `ring`, holding up to its capacity, to pass to Asio's dynamic-buffer
/// operations:
/// `boost::asio::async_read_until(socket, sluice::boost_asio::dynamic_buffer(ring), '\n', ...)`.
/// The ring must outlive the adapter. Any thread; allocates nothing.
template <class Wait>
[[nodiscard]] dynamic_ring_buffer<Wait> dynamic_buffer(spsc_ring<std::byte, Wait>& ring) noexcept {
  return dynamic_ring_buffer<Wait>(ring);
}

/// As dynamic_buffer(ring), holding at most `max_size` bytes (clamped to the ring's capacity):
/// `read_until` then fails with `boost::asio::error::not_found` when that many bytes hold no
/// delimiter, which bounds a line's length below the ring's capacity.
template <class Wait>
[[nodiscard]] dynamic_ring_buffer<Wait> dynamic_buffer(spsc_ring<std::byte, Wait>& ring,
                                                       std::size_t max_size) noexcept {
  return dynamic_ring_buffer<Wait>(ring, max_size);
}

}  // namespace sluice::boost_asio
