// A view's storage as at most two byte regions: what the Asio, Boost.Asio and POSIX I/O adapters
// turn into buffers and iovecs. Nothing here depends on any I/O library.
#pragma once

#include <sluice/buffer_pair.hpp>

#include <cstddef>
#include <span>
#include <type_traits>

namespace sluice::detail {

template <class S>
inline constexpr bool is_span_v = false;
template <class T, std::size_t E>
inline constexpr bool is_span_v<std::span<T, E>> = true;

// A view of one contiguous region: spsc_ring's write_grant and read_grant, a record ring's grant
// (anything whose span() returns a std::span).
template <class V>
concept one_region_view = requires(const V& v) {
  v.span();
  requires is_span_v<std::remove_cvref_t<decltype(v.span())>>;
};

// A view of two regions, the second following the first in the ring's order: spsc_ring's
// split_write_grant and split_read_grant (first() and second() return spans of one type).
template <class V>
concept two_region_view = requires(const V& v) {
  v.first();
  v.second();
  requires is_span_v<std::remove_cvref_t<decltype(v.first())>>;
  requires std::is_same_v<std::remove_cvref_t<decltype(v.first())>, std::remove_cvref_t<decltype(v.second())>>;
};

// std::byte or const std::byte, after the constness of T.
template <class T>
using byte_like_t = std::conditional_t<std::is_const_v<T>, const std::byte, std::byte>;

template <class T, std::size_t E>
std::span<byte_like_t<T>> bytes_of(std::span<T, E> s) noexcept {
  if constexpr (std::is_const_v<T>)
    return std::as_bytes(s);
  else
    return std::as_writable_bytes(s);
}

// Two byte regions, `first` then `second`; `second` is empty when the view is contiguous, and
// `first` is empty only when both are.
template <class B>
struct byte_regions {
  std::span<B> first;
  std::span<B> second;
};

template <class T, std::size_t E>
byte_regions<byte_like_t<T>> regions_of(std::span<T, E> s) noexcept {
  return {bytes_of(s), {}};
}

template <one_region_view V>
auto regions_of(const V& v) noexcept -> decltype(regions_of(v.span())) {
  return regions_of(v.span());
}

template <two_region_view V>
auto regions_of(const V& v) noexcept -> byte_regions<typename decltype(bytes_of(v.first()))::element_type> {
  auto first = bytes_of(v.first());
  auto second = bytes_of(v.second());
  if (first.empty()) return {second, {}};
  return {first, second};
}

// Any view regions_of() accepts.
template <class V>
concept byte_view = requires(const V& v) { regions_of(v); };

// What the Asio adapters share, for any Asio's buffer types (constructible from a pointer and a
// size in bytes).
template <class ConstBuffer, class MutableBuffer, class B>
using buffer_for_t = std::conditional_t<std::is_const_v<B>, ConstBuffer, MutableBuffer>;

template <class ConstBuffer, class MutableBuffer, class View>
auto one_buffer(const View& view) noexcept {
  const auto r = regions_of(view);
  using buffer = buffer_for_t<ConstBuffer, MutableBuffer, typename decltype(r.first)::element_type>;
  return buffer(r.first.data(), r.first.size());
}

template <class ConstBuffer, class MutableBuffer, class View>
auto two_buffers(const View& view) noexcept {
  const auto r = regions_of(view);
  using buffer = buffer_for_t<ConstBuffer, MutableBuffer, typename decltype(r.first)::element_type>;
  return buffer_pair<buffer>(buffer(r.first.data(), r.first.size()), buffer(r.second.data(), r.second.size()));
}

}  // namespace sluice::detail
