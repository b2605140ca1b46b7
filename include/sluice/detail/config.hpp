// Layout constants shared by the rings.
#pragma once

#include <cstddef>

namespace sluice::detail {

// Fields written by different threads live this far apart. 128 rather than 64 bytes: the
// adjacent-line prefetchers of current x86 cores fetch lines in pairs, so two 64-byte lines
// written by different cores still ping-pong as one.
inline constexpr std::size_t cache_line = 128;

// Tests reach private cursors through this friend (defined only in tests/).
struct test_access;

}  // namespace sluice::detail
