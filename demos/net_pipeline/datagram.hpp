// The datagrams net_pipeline sends: a fixed header, then payload bytes that depend only on
// (sender, sequence), so the consumer can check every byte without being told what was sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace net_pipeline {

// Host byte order: the datagrams never leave the machine.
struct datagram_header {
  std::uint32_t sender = 0;          // 0 .. senders-1; byte 0 also steers it to a receiver
  std::uint32_t payload_length = 0;  // bytes after the header
  std::uint64_t sequence = 0;        // per sender, from 0, +1 per datagram
  std::uint64_t sent_ns = 0;         // steady_clock, just before send()
};
static_assert(sizeof(datagram_header) == 24, "no padding: the header is sent as it is laid out");

inline constexpr std::size_t header_size = sizeof(datagram_header);
// The largest UDP payload over IPv4.
inline constexpr std::size_t max_datagram = 65507;

// A 64-bit mix (splitmix64's finaliser): neighbouring (sender, sequence) pairs give unrelated
// sizes and payloads, so a record shown at the wrong place or length does not verify by chance.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

constexpr std::uint64_t seed_of(std::uint32_t sender, std::uint64_t sequence) noexcept {
  return mix((std::uint64_t{sender} << 48) ^ sequence ^ 0x6e65745f70697065u);
}

// The whole datagram's size (header included), in [min_size, max_size].
constexpr std::size_t datagram_size(std::uint32_t sender, std::uint64_t sequence, std::size_t min_size,
                                    std::size_t max_size) noexcept {
  return min_size + static_cast<std::size_t>(seed_of(sender, sequence) % (max_size - min_size + 1));
}

constexpr std::byte payload_byte(std::uint64_t seed, std::size_t i) noexcept {
  return static_cast<std::byte>((seed >> (8 * (i % 8))) + i / 8);
}

// Writes header and payload into `out`, whose size is the datagram's size.
inline void fill(std::span<std::byte> out, const datagram_header& h) noexcept {
  std::memcpy(out.data(), &h, header_size);
  const std::uint64_t seed = seed_of(h.sender, h.sequence);
  for (std::size_t i = 0; i < h.payload_length; ++i) out[header_size + i] = payload_byte(seed, i);
}

// The header of `record` if the record is a whole, intact datagram of one of `senders` senders
// sized as sent with [min_size, max_size]; nothing otherwise.
inline std::optional<datagram_header> verify(std::span<const std::byte> record, std::uint32_t senders,
                                             std::size_t min_size, std::size_t max_size) noexcept {
  if (record.size() < header_size) return std::nullopt;
  datagram_header h;
  std::memcpy(&h, record.data(), header_size);
  if (h.sender >= senders || h.payload_length != record.size() - header_size ||
      record.size() != datagram_size(h.sender, h.sequence, min_size, max_size))
    return std::nullopt;
  const std::uint64_t seed = seed_of(h.sender, h.sequence);
  for (std::size_t i = 0; i < h.payload_length; ++i)
    if (record[header_size + i] != payload_byte(seed, i)) return std::nullopt;
  return h;
}

}  // namespace net_pipeline
