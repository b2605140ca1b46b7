// The platform layer under detail/wait.hpp: futex waits and wakes, and the expedited membarrier
// that lets the progress side of a ring skip its fence. Linux calls the kernel directly; other
// systems fall back to std::atomic::wait (untimed) and to a full fence on both sides.
//
// Why not std::atomic::wait everywhere: C++20 gives it no timeout, and the timed calls
// (try_read_for, try_reserve_until, ...) must sleep on the same word as the untimed ones so
// that one wake reaches both. On Linux std::atomic<uint32_t>::wait is this same futex.
#include <sluice/detail/wait.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

#if defined(__linux__)
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#else
#include <algorithm>
#include <chrono>
#include <thread>
#endif

namespace sluice::detail {
namespace {

// Relaxed: a count for tests, read after the threads that bump it are joined.
std::atomic<std::uint64_t> calls{0};
void count_call() noexcept { calls.fetch_add(1, std::memory_order_relaxed); }

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the futex word must be a plain 32-bit integer in memory");

#if defined(__linux__)
// Registers for the expedited membarrier `command` (with its registration `registration`), or
// returns false if the kernel lacks it, a filter refuses it or SLUICE_NO_MEMBARRIER is set.
bool register_membarrier(int command, int registration) noexcept {
  const char* off = std::getenv("SLUICE_NO_MEMBARRIER");
  if (off && *off && *off != '0') return false;
  const long supported = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || !(supported & command) || !(supported & registration)) return false;
  return syscall(__NR_membarrier, registration, 0, 0) == 0;
}
#endif

}  // namespace

bool enable_asymmetric_fences() noexcept {
#if defined(__linux__)
  // Once per process (thread-safe static).
  static const bool enabled =
      register_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
  return enabled;
#else
  return false;
#endif
}

bool enable_global_fences() noexcept {
#if defined(__linux__)
  static const bool enabled =
      register_membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
  return enabled;
#else
  return false;
#endif
}

void heavy_fence(bool asymmetric, bool process_shared) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
#if defined(__linux__)
  if (asymmetric) {
    count_call();
    // Cannot fail once registered: a ring passes asymmetric == true only after its process
    // registered (enable_asymmetric_fences(), or enable_global_fences() for a shared ring,
    // whose every process registers before it attaches).
    syscall(__NR_membarrier, process_shared ? MEMBARRIER_CMD_GLOBAL_EXPEDITED : MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  }
#else
  (void)asymmetric;
  (void)process_shared;
#endif
}

void futex_wait(detail::atomic<std::uint32_t>& word, std::uint32_t expected, std::int64_t timeout_ns,
                bool process_shared) noexcept {
  count_call();
#if defined(__linux__)
  timespec rel{};
  timespec* timeout = nullptr;
  if (timeout_ns >= 0) {
    rel.tv_sec = static_cast<time_t>(timeout_ns / 1000000000);
    rel.tv_nsec = static_cast<long>(timeout_ns % 1000000000);
    timeout = &rel;
  }
  // FUTEX_WAIT's timeout is relative, on CLOCK_MONOTONIC. EAGAIN (the word changed), EINTR and
  // ETIMEDOUT all return to the caller, which re-checks.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), process_shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE,
          expected, timeout, nullptr, 0);
#else
  (void)process_shared;
  if (timeout_ns < 0) {
    word.wait(expected, std::memory_order_seq_cst);
  } else {
    // No portable timed wait: poll in short sleeps (only off Linux).
    const auto nap = std::chrono::nanoseconds(std::min<std::int64_t>(timeout_ns, 200000));
    if (word.load(std::memory_order_seq_cst) == expected) std::this_thread::sleep_for(nap);
  }
#endif
}

void futex_wake_all(detail::atomic<std::uint32_t>& word, bool process_shared) noexcept {
  count_call();
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), process_shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE,
          INT32_MAX, nullptr, nullptr, 0);
#else
  (void)process_shared;
  word.notify_all();
#endif
}

std::uint64_t kernel_calls() noexcept { return calls.load(std::memory_order_relaxed); }

}  // namespace sluice::detail
