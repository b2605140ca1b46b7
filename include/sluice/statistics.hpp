// sluice::ring_statistics: counters every ring keeps, readable at any time from any thread.
#pragma once

#include <cstdint>

namespace sluice {

/// A snapshot of a ring's counters, taken by the ring's statistics() without disturbing either
/// side: each counter is written by one side only, with a plain store to a line that side owns,
/// and read here with relaxed loads. The fields are read one after another while the ring runs,
/// so they are each exact but not taken at one instant; at rest they agree exactly.
///
/// Units: elements for spsc_ring<T>; records (counts) and bytes (fill) for the record rings.
struct ring_statistics {
  /// Elements or records published by commits (a partial commit counts what it published).
  std::uint64_t committed = 0;
  /// Elements or records the consumer has released.
  std::uint64_t released = 0;
  /// Reservations refused because the ring had no room: calls that returned an empty grant,
  /// false or 0 for want of space (the producer's "dropped" count when it cannot wait), and
  /// timed reservations that ran out of time. Calls refused because the ring is closed are not
  /// counted.
  std::uint64_t refused = 0;
  /// Record rings only: reservations withdrawn by discard() or by dropping the grant.
  std::uint64_t discarded = 0;
  /// The most the consumer ever found waiting for it at once: elements for spsc_ring (a skipped
  /// tail included), bytes of ring space (headers and padding included) for the record rings.
  std::uint64_t high_water = 0;
  /// Shared record rings only: reservations of dead (or stalled) producer processes that the
  /// consumer reclaimed with recover(); each lost whatever its producer had written.
  std::uint64_t lost = 0;
  /// Wake-ups issued to sleeping threads, by either side or by close(): each is one futex wake
  /// system call. Stays 0 while nobody sleeps: the non-blocking paths never issue one.
  std::uint64_t wakeups = 0;
};

}  // namespace sluice
