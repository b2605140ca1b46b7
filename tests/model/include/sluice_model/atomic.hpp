// detail::atomic, detail::atomic_ref, detail::thread_fence and the futex layer of
// detail/wait.hpp, over Relacy (relacy-dev), for the model-checked tests only. Included by
// <sluice/detail/atomic.hpp> when SLUICE_MODEL_CHECK is defined; see docs/testing.md.
//
// Every operation passes its std::memory_order through unchanged, with its call site (file,
// line, function), so Relacy's histories name the ring's own lines. Mutation testing reuses
// the call site: SLUICE_MUTANT=<file>:<line> (a header's file name, a line number)
// weakens every acquire, release or acq_rel operation issued from that line to relaxed, and
// SLUICE_MODEL_SITES=<path> appends each such line that ran to <path> as the process exits.
//
// Record headers live in the ring's storage and are reached through atomic_ref. Relacy needs
// one of its own atomics for each, so the test registers the storage (registered_storage in
// tests/model/model.hpp) once the ring is built: every 8-byte word gets a Relacy atomic
// holding the word's value, and atomic_ref finds it by address. Stores through atomic_ref also write the plain word, and
// detail::zero_storage() (the consumer zeroing what it releases) stores zero to the atomics.
#pragma once

// Relacy's headers define macros over the C library's threading names (sem_init, errno...):
// the standard headers that use them come first, so that their guards keep them from being
// read again under those macros by whatever the rings' sources include later.
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <pthread.h>
#include <semaphore.h>
#include <thread>

#include <relacy/relacy.hpp>
// Relacy's convenience macros would rename the standard library's own identifiers.
#undef VAR_T
#undef TLS_T
#undef VAR
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef assert
#undef errno
#define errno (*__errno_location())  // glibc's own definition, which Relacy's replaced

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice_model {

// The caller's file, line and function, taken as a default argument (std::source_location
// would do, but clang 14 with libstdc++ 12 lacks it).
class call_site {
 public:
  static call_site here(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE(),
                        const char* function = __builtin_FUNCTION()) {
    return call_site(file, line, function);
  }
  const char* file_name() const { return file_; }
  unsigned line() const { return line_; }
  const char* function_name() const { return function_; }

 private:
  call_site(const char* file, unsigned line, const char* function) : file_(file), line_(line), function_(function) {}
  const char* file_;
  unsigned line_;
  const char* function_;
};

inline rl::debug_info info_of(const call_site& where) {
  return rl::debug_info(where.function_name(), where.file_name(), where.line());
}

inline const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// The mutation switch and the record of the sites that ran, read from the environment on first
// use (main() makes that use before any simulation). No heap: inside a simulation Relacy's
// operator new allocates from the execution's own heap and checks it for leaks.
class mutation {
 public:
  static mutation& get() {
    static mutation m;
    return m;
  }

  std::memory_order apply(std::memory_order order, const call_site& where) {
    if (order == std::memory_order_relaxed || order == std::memory_order_seq_cst) return order;
    if (recording_) note(where);
    if (line_ != 0 && where.line() == line_ && std::strcmp(file_, base_name(where.file_name())) == 0) {
      ++hits_;
      return std::memory_order_relaxed;
    }
    return order;
  }

  // Times the mutated operation ran: a mutant that never runs proves nothing.
  std::uint64_t hits() const { return hits_; }
  bool active() const { return line_ != 0; }

 private:
  struct site {
    const char* file;  // a string literal of __builtin_FILE()
    unsigned line;
  };

  mutation() {
    if (const char* m = std::getenv("SLUICE_MUTANT"); m && *m) {
      const char* colon = std::strrchr(m, ':');
      const std::size_t n = colon ? static_cast<std::size_t>(colon - m) : 0;
      if (!colon || n == 0 || n >= sizeof file_) {
        std::fprintf(stderr, "SLUICE_MUTANT=%s: expected <file>:<line>\n", m);
        std::exit(2);
      }
      std::memcpy(file_, m, n);
      file_[n] = 0;
      line_ = static_cast<unsigned>(std::strtoul(colon + 1, nullptr, 10));
    }
    if (const char* s = std::getenv("SLUICE_MODEL_SITES"); s && *s) {
      recording_ = true;
      std::snprintf(sites_path_, sizeof sites_path_, "%s", s);
    }
  }
  ~mutation() {
    if (!recording_) return;
    if (std::FILE* f = std::fopen(sites_path_, "a")) {
      for (std::size_t i = 0; i < sites_count_; ++i) std::fprintf(f, "%s:%u\n", base_name(sites_[i].file), sites_[i].line);
      std::fclose(f);
    }
  }
  void note(const call_site& where) {
    for (std::size_t i = 0; i < sites_count_; ++i)
      if (sites_[i].line == where.line() && std::strcmp(sites_[i].file, where.file_name()) == 0) return;
    if (sites_count_ < max_sites) sites_[sites_count_++] = {where.file_name(), where.line()};
  }

  static constexpr std::size_t max_sites = 512;
  char file_[256] = {};
  unsigned line_ = 0;
  std::uint64_t hits_ = 0;
  bool recording_ = false;
  char sites_path_[4096] = {};
  site sites_[max_sites] = {};
  std::size_t sites_count_ = 0;
};

// The fence mode of the rings built next (see the platform layer below).
inline bool& asymmetric_fences() {
  static bool asymmetric = true;
  return asymmetric;
}

inline rl::memory_order rl_order(std::memory_order order, const call_site& where) {
  switch (mutation::get().apply(order, where)) {
    case std::memory_order_relaxed: return rl::mo_relaxed;
    case std::memory_order_consume: return rl::mo_consume;
    case std::memory_order_acquire: return rl::mo_acquire;
    case std::memory_order_release: return rl::mo_release;
    case std::memory_order_acq_rel: return rl::mo_acq_rel;
    case std::memory_order_seq_cst: return rl::mo_seq_cst;
  }
  return rl::mo_seq_cst;
}

}  // namespace sluice_model

namespace sluice::detail {

inline constexpr bool model_checked = true;
using sluice_model::call_site;

template <class T>
class atomic {
 public:
  static constexpr bool is_always_lock_free = true;

  atomic() : atomic(T{}) {}
  atomic(T value) : a_(value) {}  // Relacy: a relaxed store by the constructing thread
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst,
         call_site where = call_site::here()) const {
    return a_.load(sluice_model::rl_order(order, where), sluice_model::info_of(where));
  }
  void store(T value, std::memory_order order = std::memory_order_seq_cst,
             call_site where = call_site::here()) {
    a_.store(value, sluice_model::rl_order(order, where), sluice_model::info_of(where));
  }
  T fetch_add(T value, std::memory_order order = std::memory_order_seq_cst,
              call_site where = call_site::here()) {
    return a_.fetch_add(value, sluice_model::rl_order(order, where), sluice_model::info_of(where));
  }
  T fetch_sub(T value, std::memory_order order = std::memory_order_seq_cst,
              call_site where = call_site::here()) {
    return a_.fetch_sub(value, sluice_model::rl_order(order, where), sluice_model::info_of(where));
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order order = std::memory_order_seq_cst,
                             call_site where = call_site::here()) {
    return cas<true>(expected, desired, order, failure_order_of(order), where);
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success, std::memory_order failure,
                             call_site where = call_site::here()) {
    return cas<true>(expected, desired, success, failure, where);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order order = std::memory_order_seq_cst,
                               call_site where = call_site::here()) {
    return cas<false>(expected, desired, order, failure_order_of(order), where);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success, std::memory_order failure,
                               call_site where = call_site::here()) {
    return cas<false>(expected, desired, success, failure, where);
  }

  // The futex model: sleeps while the value is `expected` (Relacy reports a deadlock if nobody
  // ever wakes it); a timed wait may also time out, and any wait may wake spuriously.
  void futex_wait(T expected, bool timed, call_site where = call_site::here()) {
    rl::context& c = rl::ctx();
    c.sched();
    if (a_.load(rl::mo_seq_cst, sluice_model::info_of(where)) != expected) return;
    a_.wait(c, timed, true, sluice_model::info_of(where));
  }
  void futex_wake_all(call_site where = call_site::here()) {
    rl::context& c = rl::ctx();
    c.sched();
    a_.wake(c, rl::thread_id_t(-1) >> 1, sluice_model::info_of(where));
  }

 private:
  static std::memory_order failure_order_of(std::memory_order order) {
    if (order == std::memory_order_acq_rel) return std::memory_order_acquire;
    if (order == std::memory_order_release) return std::memory_order_relaxed;
    return order;
  }
  template <bool weak>
  bool cas(T& expected, T desired, std::memory_order success, std::memory_order failure,
           const call_site& where) {
    const rl::debug_info info = sluice_model::info_of(where);
    const rl::memory_order s = sluice_model::rl_order(success, where);
    rl::memory_order f = sluice_model::rl_order(failure, where);
    if (s == rl::mo_relaxed || s == rl::mo_release) f = rl::mo_relaxed;  // never stronger than success
    if constexpr (weak) {
      return a_.compare_exchange_weak(expected, desired, s, info, f, info);
    } else {
      return a_.compare_exchange_strong(expected, desired, s, info, f, info);
    }
  }

  mutable rl::atomic<T> a_;
};

}  // namespace sluice::detail

namespace sluice_model {

// The Relacy atomics standing for the words of a ring's storage (see the top of the file):
// owned by the test (registered_storage in tests/model/model.hpp), found here by address.
class storage_words {
 public:
  static constexpr std::size_t max_words = 32;
  using word = sluice::detail::atomic<std::uint64_t>;

  static constexpr std::size_t max_aliases = 4;

  static void attach(const void* base, std::size_t words, word* const* cells, rl::var<int>* writes) {
    auto& w = get();
    w.bases_[0] = static_cast<const unsigned char*>(base);
    w.base_count_ = 1;
    w.words_ = words;
    w.cells_ = cells;
    w.writes_ = writes;
  }
  // Another address of the same storage: a shared ring's segment mapped again by another ring
  // object (each process maps it where it likes; the model runs them as threads of one).
  static void alias(const void* base) {
    auto& w = get();
    if (w.base_count_ == max_aliases) {
      std::fprintf(stderr, "sluice model: more than %zu mappings of one storage\n", max_aliases);
      std::abort();
    }
    w.bases_[w.base_count_++] = static_cast<const unsigned char*>(base);
  }
  static void detach() { get() = storage_words(); }

  static std::size_t index_of(const void* p) {
    auto& w = get();
    const auto* at = static_cast<const unsigned char*>(p);
    for (std::size_t b = 0; b < w.base_count_; ++b) {
      const unsigned char* base = w.bases_[b];
      if (at >= base && at < base + 8 * w.words_ && (at - base) % 8 == 0) return static_cast<std::size_t>(at - base) / 8;
    }
    return w.words_;
  }
  static word* find(const void* p) {
    const std::size_t i = index_of(p);
    return i < get().words_ ? get().cells_[i] : nullptr;
  }

  // The consumer zeroes what it releases with a plain memset; everything else writes the
  // storage's words atomically (headers stored or swapped). A plain write races with any access
  // not ordered with it, an atomic write only with plain ones: so the memset is a plain write
  // of the word's rl::var, and each atomic write (or swap, successful or not: it accesses the
  // word either way) a read of it. In a correct ring each pair is ordered by happens-before
  // (the consumer zeroes a header only after acquiring it, a producer claims the space only
  // after acquiring the head that freed it), and Relacy reports a data race where it is not,
  // as the real memset would be one.
  static void note_plain_write(const void* p, const call_site& where) {
    const std::size_t i = index_of(p);
    if (i < get().words_) get().writes_[i](info_of(where)) = 1;
  }
  static void note_atomic_write(const void* p, const call_site& where) {
    const std::size_t i = index_of(p);
    if (i < get().words_) (void)static_cast<int>(get().writes_[i](info_of(where)));
  }

  // Stores zero to each registered word in [p, p + n) (the plain bytes are zeroed by the caller).
  static void zeroed(const void* p, std::size_t n, const call_site& where) {
    const auto* at = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; i += 8) {
      if (word* cell = find(at + i)) {
        note_plain_write(at + i, where);
        cell->store(0, std::memory_order_relaxed, where);
      }
    }
  }

 private:
  static storage_words& get() {
    static storage_words w;
    return w;
  }
  const unsigned char* bases_[max_aliases] = {};
  std::size_t base_count_ = 0;
  std::size_t words_ = 0;
  word* const* cells_ = nullptr;
  rl::var<int>* writes_ = nullptr;
};

}  // namespace sluice_model

namespace sluice::detail {

template <class T>
class atomic_ref {
  static_assert(sizeof(T) == 8, "the model registers storage in 8-byte words");

 public:
  explicit atomic_ref(T& object) : plain_(&object), a_(sluice_model::storage_words::find(&object)) {
    if (!a_) {
      std::fprintf(stderr, "sluice model: atomic_ref on an unregistered word %p\n", static_cast<void*>(&object));
      std::abort();
    }
  }

  T load(std::memory_order order = std::memory_order_seq_cst,
         call_site where = call_site::here()) const {
    return a_->load(order, where);
  }
  void store(T value, std::memory_order order = std::memory_order_seq_cst,
             call_site where = call_site::here()) const {
    sluice_model::storage_words::note_atomic_write(plain_, where);
    a_->store(value, order, where);
    *plain_ = value;
  }
  // A swap is noted before it is made, as a store is, so that its own release orders the note
  // for whoever acquires the new value (see storage_words::note_atomic_write()).
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success, std::memory_order failure,
                               call_site where = call_site::here()) const {
    sluice_model::storage_words::note_atomic_write(plain_, where);
    const bool swapped = a_->compare_exchange_strong(expected, desired, success, failure, where);
    if (swapped) *plain_ = desired;
    return swapped;
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success, std::memory_order failure,
                             call_site where = call_site::here()) const {
    sluice_model::storage_words::note_atomic_write(plain_, where);
    const bool swapped = a_->compare_exchange_weak(expected, desired, success, failure, where);
    if (swapped) *plain_ = desired;
    return swapped;
  }

 private:
  T* plain_;
  atomic<T>* a_;
};

inline void thread_fence(std::memory_order order, call_site where = call_site::here()) {
  rl::atomic_thread_fence(sluice_model::rl_order(order, where), sluice_model::info_of(where));
}

inline void zero_storage(void* p, std::size_t n, call_site where = call_site::here()) {
  std::memset(p, 0, n);
  sluice_model::storage_words::zeroed(p, n, where);
}

// The platform layer of detail/wait.hpp. The model runs the rings in either fence mode, chosen
// by the runner before each simulation (sluice_model::asymmetric_fences()): asymmetric, where
// the sleeper's membarrier is Relacy's system-wide fence (its model of a barrier forced into
// every running thread) and the progress side has only a compiler barrier, as shipped on Linux;
// or full fences on both sides, the fallback where membarrier is missing.
inline std::uint64_t& model_kernel_calls() {
  static std::uint64_t calls = 0;
  return calls;
}
inline bool enable_asymmetric_fences() noexcept { return sluice_model::asymmetric_fences(); }
// Shared rings pair membarrier's global form the same way; to the model's threads it is the
// same system-wide fence.
inline bool enable_global_fences() noexcept { return sluice_model::asymmetric_fences(); }
inline void heavy_fence(bool asymmetric, bool, call_site where = call_site::here()) noexcept {
  thread_fence(std::memory_order_seq_cst, where);
  if (asymmetric) rl::systemwide_fence(sluice_model::info_of(where));
}
inline void futex_wait(atomic<std::uint32_t>& word, std::uint32_t expected, std::int64_t timeout_ns, bool) noexcept {
  ++model_kernel_calls();
  word.futex_wait(expected, timeout_ns >= 0);
}
inline void futex_wake_all(atomic<std::uint32_t>& word, bool) noexcept {
  ++model_kernel_calls();
  word.futex_wake_all();
}
inline std::uint64_t kernel_calls() noexcept { return model_kernel_calls(); }

}  // namespace sluice::detail
