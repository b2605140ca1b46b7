// Whether a ring supports waiting: the blocking and timed calls, and the wake-ups behind them.
#pragma once

namespace sluice {

/// Waiting policy (the default): the ring has blocking and timed calls, and each commit and
/// release looks, with one plain load, for a sleeping other side to wake.
///
/// A policy is any type with `static constexpr bool enabled` and, when enabled,
/// `static constexpr bool asymmetric_fences`: false makes both sides use full fences even where
/// membarrier is available (what a waiting ring costs without it; the benchmark measures it).
struct waitable {
  /// True: the ring has blocking and timed calls.
  static constexpr bool enabled = true;
  /// True: where membarrier is available, a thread about to sleep issues it, so that the other
  /// side's commits and releases need only a compiler barrier before they look for sleepers.
  /// Elsewhere both sides use full fences.
  static constexpr bool asymmetric_fences = true;
};

/// Waiting policy: non-blocking calls only. Commits and releases never look for sleepers;
/// close() and the statistics still work. For a ring whose both sides poll.
struct no_waiting {
  /// False: the ring has non-blocking calls only.
  static constexpr bool enabled = false;
};

}  // namespace sluice
