// Rings shared between processes: the options, the tags of the constructors that create or open
// a named segment, and the errors they report. The rings' own headers declare the constructors;
// docs/shared_memory.md describes the layout, the roles and what survives which crash.
#pragma once

#include <sluice/mirrored_storage.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice {

/// What this process does with a shared ring. A ring refuses the calls of the other role.
enum class role {
  producer,  ///< reserves and commits (one process for the spsc rings, up to 64 for mpsc)
  consumer,  ///< reads and releases (one process at a time)
};

/// Options of a shared ring.
struct shared_options {
  /// Creating and opening: the role this process takes in the ring (the consumer by default).
  sluice::role role = sluice::role::consumer;
  /// Creating: map the data twice (see mirrored_storage); the capacity rounds up to whole pages.
  bool mirrored = false;
  /// Creating: the segment's file mode (as for open(2)).
  unsigned permissions = 0600;
  /// Opening: how long to wait for a creator that has made the segment but not finished
  /// laying it out, before giving up with attach_error.
  std::chrono::milliseconds attach_timeout{1000};
};

/// Tag for the ring constructors that create a new named segment (it must not exist yet).
struct create_shared_t {
  /// Explicit, so that `{}` never selects a tagged constructor.
  explicit create_shared_t() = default;
};
/// Selects the ring constructors that create a new named segment, as in
/// `sluice::spsc_record_ring ring(sluice::create_shared, "/telemetry", 1 << 20);`.
inline constexpr create_shared_t create_shared{};

/// Tag for the ring constructors that open an existing named segment.
struct open_shared_t {
  /// Explicit, so that `{}` never selects a tagged constructor.
  explicit open_shared_t() = default;
};
/// Selects the ring constructors that open an existing named segment, as in
/// `sluice::spsc_record_ring ring(sluice::open_shared, "/telemetry", {.role = sluice::role::producer});`.
inline constexpr open_shared_t open_shared{};

/// A segment that cannot be used as asked: not a sluice ring, another layout version, another
/// kind of ring or element size, a header that fails its checks, a role already held by a
/// live process. what() names the segment and the mismatch; nothing stays mapped.
class attach_error : public std::runtime_error {
 public:
  /// The constructors of std::runtime_error: the message is what() returns.
  using std::runtime_error::runtime_error;
};

/// State read from shared memory that no correct peer can have written (a cursor beyond the
/// capacity, a record header that leaves the storage). The call that found it changes nothing
/// and throws; the ring should be abandoned.
class corrupt_ring : public std::runtime_error {
 public:
  /// The constructors of std::runtime_error: the message is what() returns.
  using std::runtime_error::runtime_error;
};

/// Removes the name of a shared segment (shm_unlink); processes attached keep their mapping.
/// Returns false if no segment had that name. Throws std::invalid_argument for a malformed name.
bool remove_shared(std::string_view name);

}  // namespace sluice
