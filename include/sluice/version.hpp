// The library's version, as compiled into sluice::sluice.
#pragma once

namespace sluice {

/// "MAJOR.MINOR.PATCH" of the compiled library (which may differ from the headers' if a program
/// mixes installs). Any thread.
[[nodiscard]] const char* version() noexcept;

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;

}  // namespace sluice
