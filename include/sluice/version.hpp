// The library's version, as compiled into sluice::sluice.
#pragma once

/// Lock-free producer-consumer ring buffers that hand out contiguous regions as views:
/// spsc_ring for elements of one type, spsc_record_ring and mpsc_record_ring for
/// variable-length records, within a process or between processes (create_shared,
/// open_shared).
namespace sluice {

/// "MAJOR.MINOR.PATCH" of the compiled library (which may differ from the headers' if a program
/// mixes installs). Any thread.
[[nodiscard]] const char* version() noexcept;

/// MAJOR of the headers' version (version() reports the compiled library's).
inline constexpr int version_major = 0;
/// MINOR of the headers' version.
inline constexpr int version_minor = 1;
/// PATCH of the headers' version.
inline constexpr int version_patch = 0;

}  // namespace sluice
