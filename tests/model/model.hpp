// Shared pieces of the model-checked suites: the payload shadow that lets Relacy see data
// races on ring storage, and the runner.
#pragma once

#include <sluice/detail/atomic.hpp>  // Relacy, through <sluice_model/atomic.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <string_view>

namespace sluice::detail {
// The rings' storage, for registering its words and mapping grants to cells of the shadow.
struct test_access {
  template <class Ring>
  static auto* data(Ring& ring) {
    return ring.data_;
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
    }
    storage_words::attach(data, Bytes / 8, cells_, writes_);
  }
  ~registered_storage() {
    storage_words::detach();
    for (std::size_t i = 0; i < Bytes / 8; ++i) std::destroy_at(cells_[i]);
  }
  registered_storage(const registered_storage&) = delete;
  registered_storage& operator=(const registered_storage&) = delete;

 private:
  alignas(storage_words::word) unsigned char storage_[Bytes / 8][sizeof(storage_words::word)];
  storage_words::word* cells_[Bytes / 8] = {};
  rl::var<int> writes_[Bytes / 8];  // see storage_words::note_write()
};

struct run_options {
  rl::iteration_t iterations = 20000;
  std::string only;   // run only the suite of this name (empty: all)
  bool stop_at_failure = false;
};

// Runs one suite under Relacy's random scheduler (with its weak-memory model), once in each
// fence mode of the rings (see <sluice_model/atomic.hpp>). Counts the runs that failed; Relacy
// prints what failed, with the history of the failing execution.
template <class Suite>
void run(std::string_view name, const run_options& options, int& failures) {
  if (!options.only.empty() && options.only != name) return;
  for (const bool asymmetric : {true, false}) {
    if (options.stop_at_failure && failures != 0) return;
    asymmetric_fences() = asymmetric;
    rl::test_params params;
    params.iteration_count = options.iterations;
    params.search_type = rl::random_scheduler_type;
    params.execution_depth_limit = 20000;
    const char* mode = asymmetric ? "asymmetric fences" : "full fences";
    std::cout << "=== " << name << ", " << mode << " (" << options.iterations << " random schedules)" << std::endl;
    if (!rl::simulate<Suite>(params)) {
      ++failures;
      std::cout << "FAILED: " << name << ", " << mode << std::endl;
    }
  }
}

inline run_options parse_options(int argc, char** argv) {
  run_options o;
  if (const char* n = std::getenv("SLUICE_MODEL_ITERATIONS"); n && *n) o.iterations = std::strtoull(n, nullptr, 10);
  if (const char* s = std::getenv("SLUICE_MODEL_STOP_AT_FAILURE"); s && *s && *s != '0') o.stop_at_failure = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a.starts_with("--iterations=")) {
      o.iterations = std::strtoull(argv[i] + 13, nullptr, 10);
    } else if (a == "--stop-at-failure") {
      o.stop_at_failure = true;
    } else {
      o.only = std::string(a);
    }
  }
  return o;
}

}  // namespace sluice_model
