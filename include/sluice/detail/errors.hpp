// Error helpers shared by the rings. Out of the hot path on purpose: every function here throws,
// so the calls that need them keep a single predictable branch.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace sluice::detail {

// A size that can never be granted: `what` of `requested` is larger than `limit_name` (`limit`).
[[noreturn]] inline void throw_too_large(const char* what, std::size_t requested, const char* limit_name,
                                         std::size_t limit) {
  throw std::length_error(std::string("sluice: ") + what + " of " + std::to_string(requested) +
                          " exceeds " + limit_name + " (" + std::to_string(limit) + ")");
}

// `verb(k)` reaches past the end of a grant of `size` elements (or of what `limit_name` names).
[[noreturn]] inline void throw_beyond_grant(const char* verb, std::size_t k, std::size_t size,
                                            const char* limit_name = "the grant's size") {
  throw std::out_of_range(std::string("sluice: ") + verb + "(" + std::to_string(k) + ") exceeds " +
                          limit_name + " (" + std::to_string(size) + ")");
}

// A second grant (or a copying call) on a side that already holds one.
[[noreturn]] inline void throw_grant_outstanding(const char* side) {
  throw std::logic_error(std::string("sluice: a ") + side +
                         " grant is still outstanding; at most one per side (commit, release or "
                         "drop it first)");
}

// A second batch while the consumer still holds one.
[[noreturn]] inline void throw_batch_outstanding() {
  throw std::logic_error(
      "sluice: a batch is still outstanding; the consumer holds at most one (release or drop it first)");
}

// A call of the role this process did not attach to a shared ring in.
[[noreturn]] inline void throw_wrong_role(const char* verb, const char* role) {
  throw std::logic_error(std::string("sluice: this process attached to the shared ring as its ") + role +
                         "; it may not " + verb);
}

[[noreturn]] inline void throw_bad_capacity(const char* why) {
  throw std::invalid_argument(std::string("sluice: ") + why);
}

}  // namespace sluice::detail
