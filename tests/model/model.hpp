// Shared pieces of the model-checked suites: the payload shadow that lets Relacy see data
// races on ring storage, and the runner.
#pragma once

#include <sluice/detail/atomic.hpp>  // Relacy, through <sluice_model/atomic.hpp>
#include <sluice/detail/segment.hpp>
#include <sluice/shared_memory.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <string_view>

namespace sluice::detail {
struct test_access {
  // The rings' storage, for registering its words and mapping grants to cells of the shadow.
  template <class Ring>
  static auto* data(Ring& ring) {
    return ring.data_;
  }
  // A shared ring's control block, as its creator constructs it in the segment.
  template <class Ring>
  using control = typename Ring::control;
  template <class Ring>
  static auto& control_of(Ring& ring) {
    return *ring.ctl_;
  }
  // As if this ring object's process died now: its role slot stays held by this process (the
  // model's threads are one process, so a successor here may take it over) and nothing of its
  // role is undone when the object is destroyed.
  template <class Ring>
  static void abandon(Ring& ring) {
    forget_slot(ring.segment_, *ring.role_slot_);
    ring.role_slot_ = nullptr;
  }
  template <class Ring>
  static process_slot& slot(Ring& ring) {
    return *ring.role_slot_;
  }
  template <class Ring>
  static process_table& processes(Ring& ring) {
    return ring.segment_.processes();
  }
};
}  // namespace sluice::detail

namespace sluice_model {

// Relacy runs the threads of a test one at a time, so plain memory never shows it a stale
// value: it finds a missing happens-before only on its own variables. The shadow holds one
// rl::var per element (or byte) of a ring's storage: the producer writes the cell of each
// element it fills, the consumer reads the cell of each element it is given, and Relacy
// reports a data race wherever the ring's orderings fail to put the write before the read, or
// the consumer's read before the producer's next write to that place one lap later.
template <std::size_t Cells>
class shadow {
 public:
  void write(std::size_t cell, unsigned value) {
    RL_ASSERT(cell < Cells);
    cells_[cell](RL_INFO) = value;
  }
  unsigned read(std::size_t cell) const {
    RL_ASSERT(cell < Cells);
    return cells_[cell](RL_INFO);
  }

 private:
  rl::var<unsigned> cells_[Cells];
};

// A record ring's storage, one Relacy atomic per 8-byte word, for the life of one execution
// (Relacy's atomics must be made and destroyed inside it): declare it right after the ring.
template <std::size_t Bytes>
class registered_storage {
  static_assert(Bytes % 8 == 0 && Bytes / 8 <= storage_words::max_words);

 public:
  explicit registered_storage(void* data) {
    auto* p = static_cast<unsigned char*>(data);
    for (std::size_t i = 0; i < Bytes / 8; ++i) {
      std::uint64_t value;
      std::memcpy(&value, p + 8 * i, 8);
      cells_[i] = new (&storage_[i]) storage_words::word(value);
      writes_[i](RL_INFO) = 0;  // initialised: atomic writes read it
    }
    storage_words::attach(data, Bytes / 8, cells_, writes_);
  }
  // Shared rings: each ring object on a segment maps the storage at its own address.
  registered_storage(void* data, void* another) : registered_storage(data) { alias(another); }
  void alias(void* another) { storage_words::alias(another); }
  ~registered_storage() {
    storage_words::detach();
    for (std::size_t i = 0; i < Bytes / 8; ++i) std::destroy_at(cells_[i]);
  }
  registered_storage(const registered_storage&) = delete;
  registered_storage& operator=(const registered_storage&) = delete;

 private:
  alignas(storage_words::word) unsigned char storage_[Bytes / 8][sizeof(storage_words::word)];
  storage_words::word* cells_[Bytes / 8] = {};
  rl::var<int> writes_[Bytes / 8];  // see storage_words::note_plain_write()
};

// The shared-memory segment of one execution's shared rings (declare it before them): removes
// a leftover of its name first, and once the rings are destroyed, destroys the model's atomics
// that the creator constructed in the segment (its control block and process table: Relacy
// counts atomics it never saw destroyed as leaks), then removes the name.
template <class Ring>
class shared_segment {
 public:
  shared_segment() { (void)sluice::remove_shared(name()); }
  ~shared_segment() {
    const int fd = ::shm_open(name(), O_RDWR, 0);
    if (fd < 0) return;  // no ring was created
    constexpr std::size_t front = sluice::detail::control_offset + sizeof(control);
    void* p = ::mmap(nullptr, front, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) {
      auto* base = static_cast<unsigned char*>(p);
      std::destroy_at(std::launder(reinterpret_cast<control*>(base + sluice::detail::control_offset)));
      std::destroy_at(std::launder(reinterpret_cast<sluice::detail::process_table*>(base + sluice::detail::header_size)));
      ::munmap(p, front);
    }
    ::shm_unlink(name());
  }
  shared_segment(const shared_segment&) = delete;
  shared_segment& operator=(const shared_segment&) = delete;

  // "/sluice-model-<pid>": one per process, so that model runs side by side do not meet.
  static const char* name() {
    static char buffer[40] = {};
    if (buffer[0] == 0) std::snprintf(buffer, sizeof buffer, "/sluice-model-%ld", static_cast<long>(::getpid()));
    return buffer;
  }

 private:
  using control = sluice::detail::test_access::control<Ring>;
};

struct run_options {
  rl::iteration_t iterations = 20000;
  // For the suites over shared-memory segments, which create and map one per execution (tens
  // of microseconds of system calls, ten times an in-process suite's execution); 0: iterations.
  rl::iteration_t shared_iterations = 0;
  std::string only;   // run only the suite of this name (empty: all)
  bool stop_at_failure = false;
};

// Runs one suite under Relacy's random scheduler (with its weak-memory model), once in each
// fence mode of the rings (see <sluice_model/atomic.hpp>). Counts the runs that failed; Relacy
// prints what failed, with the history of the failing execution.
enum class suite_kind { in_process, shared };

template <class Suite>
void run(std::string_view name, const run_options& options, int& failures, suite_kind kind = suite_kind::in_process) {
  if (!options.only.empty() && options.only != name) return;
  const rl::iteration_t iterations =
      kind == suite_kind::shared && options.shared_iterations != 0 ? options.shared_iterations : options.iterations;
  for (const bool asymmetric : {true, false}) {
    if (options.stop_at_failure && failures != 0) return;
    asymmetric_fences() = asymmetric;
    sluice::detail::forget_all_slots_for_model();  // what a failed simulation before left
    rl::test_params params;
    params.iteration_count = iterations;
    params.search_type = rl::random_scheduler_type;
    params.execution_depth_limit = 20000;
    const char* mode = asymmetric ? "asymmetric fences" : "full fences";
    std::cout << "=== " << name << ", " << mode << " (" << iterations << " random schedules)" << std::endl;
    if (!rl::simulate<Suite>(params)) {
      ++failures;
      std::cout << "FAILED: " << name << ", " << mode << std::endl;
    }
  }
}

inline run_options parse_options(int argc, char** argv) {
  run_options o;
  if (const char* n = std::getenv("SLUICE_MODEL_ITERATIONS"); n && *n) o.iterations = std::strtoull(n, nullptr, 10);
  if (const char* n = std::getenv("SLUICE_MODEL_SHARED_ITERATIONS"); n && *n)
    o.shared_iterations = std::strtoull(n, nullptr, 10);
  if (const char* s = std::getenv("SLUICE_MODEL_STOP_AT_FAILURE"); s && *s && *s != '0') o.stop_at_failure = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a.starts_with("--iterations=")) {
      o.iterations = std::strtoull(argv[i] + 13, nullptr, 10);
    } else if (a.starts_with("--shared-iterations=")) {
      o.shared_iterations = std::strtoull(argv[i] + 20, nullptr, 10);
    } else if (a == "--stop-at-failure") {
      o.stop_at_failure = true;
    } else {
      o.only = std::string(a);
    }
  }
  return o;
}

}  // namespace sluice_model
