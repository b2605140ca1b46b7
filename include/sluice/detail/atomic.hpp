// The atomic operations the rings are built from, named in one place so that a model checker
// can stand in for them.
//
// The rings' control blocks, wait slots and record headers use detail::atomic,
// detail::atomic_ref and detail::thread_fence, never std:: directly. In a normal build these
// are the standard types and std::atomic_thread_fence, with nothing in between. A build that
// defines SLUICE_MODEL_CHECK (the model-checked tests in tests/model, never a user's build)
// gets the same names from <sluice_model/atomic.hpp>, over Relacy's atomics: the scheduler
// then explores interleavings and weak-memory outcomes of the very code that ships, and the
// futex and membarrier calls of detail/wait.hpp become Relacy's model of them.
//
// Shared segments' process tables (detail/segment.hpp) use detail::atomic too, so that the
// model can run a shared ring's processes as threads over one segment, mapped once by each.
// What stays std::atomic: a segment header's `ready` flag, which the creator stores before any
// other process (or model thread) can open the segment.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>

#if defined(SLUICE_MODEL_CHECK)
#include <sluice_model/atomic.hpp>
#else
namespace sluice::detail {

inline constexpr bool model_checked = false;

template <class T>
using atomic = std::atomic<T>;

template <class T>
using atomic_ref = std::atomic_ref<T>;

inline void thread_fence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }

// Plain zeroing of ring storage that other threads later read through atomic_ref (a record
// ring's consumer clearing what it releases). The model checker also zeroes its atomics there.
inline void zero_storage(void* p, std::size_t n) noexcept { std::memset(p, 0, n); }

}  // namespace sluice::detail
#endif
