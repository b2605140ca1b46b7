// What the Python bindings of every ring share: argument conversion, the per-side guard that keeps
// Python threads to the rings' thread rules, and the exported views of a region (the buffer
// protocol, with every exported view counted).
//
// The lifetime rule
// -----------------
// A grant or a batch lends Python a region of the ring. Python code can keep a memoryview or a
// NumPy array of it for as long as it likes, and nothing in the buffer protocol lets the lender
// take it back. So the lender counts its exported views (bf_getbuffer increments, and
// bf_releasebuffer, which CPython calls when the memoryview is released or its last user dies,
// decrements), and refuses to end the loan (commit, release, discard) while the count is not 0:
// a view kept past a commit would let Python write into records the consumer is reading, or into
// space the next reservation hands out. A view holds a reference to its lender, and the lender
// holds one to its ring, so no view ever outlives the memory it shows.
//
// The GIL and the thread rules
// ----------------------------
// Every call checks and changes the bindings' own state (side_guard below) with the GIL held, so
// those checks never race. A call that waits (reserve, read, and long copies) marks its side busy
// and then releases the GIL; while a side is busy every other call on that side raises
// ValueError instead of running the ring's single-thread code concurrently, and grants of that
// side that die meanwhile are finished when the waiting call returns.
#pragma once

#include <sluice/shared_memory.hpp>

#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice::python {

namespace py = pybind11;

// ------------------------------------------------------------------ arguments

// A size argument: any object with __index__ (int, numpy integers); bool and float are
// TypeErrors, a negative value a ValueError. Values beyond size_t clamp to its maximum, which
// every limit refuses with its own message (or, for up-to reservations, means "as much as
// there is").
inline std::size_t count_arg(py::handle obj, const char* name) {
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw py::type_error(std::string("sluice: ") + name + " must be an integer, not " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow < 0 || (overflow == 0 && v < 0))
    throw py::value_error(std::string("sluice: ") + name + " must be 0 or more, not " + std::string(py::str(index)));
  if (overflow > 0) {
    const unsigned long long u = PyLong_AsUnsignedLongLong(index.ptr());
    if (u == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      PyErr_Clear();
      return std::numeric_limits<std::size_t>::max();
    }
    return static_cast<std::size_t>(u);
  }
  return static_cast<std::size_t>(v);
}

// An optional size argument: None means `otherwise`.
inline std::size_t count_arg_or(py::handle obj, const char* name, std::size_t otherwise) {
  return obj.is_none() ? otherwise : count_arg(obj, name);
}

// A capacity: as count_arg, and at least 1 (a negative one names the same limit as 0).
inline std::size_t capacity_arg(py::handle obj) {
  std::size_t c = 0;
  try {
    c = count_arg(obj, "capacity");
  } catch (py::value_error&) {
    throw py::value_error("sluice: capacity must be at least 1, not " + std::string(py::str(obj)));
  }
  if (c == 0) throw py::value_error("sluice: capacity must be at least 1, not 0");
  return c;
}

// A timeout in seconds: None (wait for ever), or a number (int or float; negative means "do not
// wait"; infinity means None). NaN is a ValueError, anything else a TypeError.
inline std::optional<std::chrono::duration<double>> timeout_arg(py::handle obj) {
  if (obj.is_none()) return std::nullopt;
  if (PyBool_Check(obj.ptr()) || !(PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr()) || PyIndex_Check(obj.ptr()) ||
                                   py::hasattr(obj, "__float__")))
    throw py::type_error("sluice: timeout must be a number of seconds or None, not " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const double s = PyFloat_AsDouble(obj.ptr());
  if (s == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  if (std::isnan(s)) throw py::value_error("sluice: timeout must be a number of seconds, not NaN");
  if (std::isinf(s) && s > 0) return std::nullopt;
  return std::chrono::duration<double>(s < 0 ? 0.0 : s);
}

using steady = std::chrono::steady_clock;

// A timeout as a steady-clock deadline; none for None (and beyond about 30 years): for ever.
inline std::optional<steady::time_point> deadline_of(const std::optional<std::chrono::duration<double>>& timeout) {
  if (!timeout || timeout->count() > 1e9) return std::nullopt;
  return steady::now() + std::chrono::ceil<steady::duration>(*timeout);
}

// Waiting reads wait in slices of this length, so that signals (KeyboardInterrupt) are handled
// while they wait. A slice that ends empty consumes nothing and counts in no statistic, so the
// slicing changes no result. (Reservations wait in one piece: a timed reservation that runs out
// counts as refused.)
inline constexpr std::chrono::milliseconds read_slice{50};

// A shared ring's role: "producer" or "consumer".
inline sluice::role role_arg(const std::string& role) {
  if (role == "consumer") return sluice::role::consumer;
  if (role == "producer") return sluice::role::producer;
  throw py::value_error("sluice: role must be \"producer\" or \"consumer\", not \"" + role + "\"");
}

// How long open_shared waits for a creator still laying the segment out (seconds; None: for ever).
inline std::chrono::milliseconds attach_timeout_arg(py::handle timeout) {
  const std::optional<std::chrono::duration<double>> t = timeout_arg(timeout);
  if (!t || t->count() > 1e9) return std::chrono::milliseconds(std::int64_t{1000000000000});  // about 30 years
  return std::chrono::ceil<std::chrono::milliseconds>(*t);
}

// Runs `f` (which ends a loan: commit(k), release(k)), raising the std::out_of_range of a k past
// the loan's end, which pybind11 would make an IndexError, as the ValueError every other limit
// raises. The C++ rings check k before changing anything, so the loan is unchanged then.
template <class F>
decltype(auto) within_loan(F&& f) {
  try {
    return f();
  } catch (const std::out_of_range& e) {
    throw py::value_error(e.what());
  }
}

// ------------------------------------------------------------------ the side guard

// One side (producer or consumer) of a ring as the bindings see it. Touched only with the GIL.
struct side_state {
  const char* name;                         // "producer" or "consumer"
  const char* waiter = nullptr;             // the call that made the side busy, or nullptr
  std::size_t outstanding = 0;              // grants or batches of this side alive and not ended
  std::vector<std::function<void()>> deferred;  // ends of grants that died while busy

  explicit side_state(const char* side) : name(side) {}

  bool busy() const noexcept { return waiter != nullptr; }

  // Raises ValueError if another thread is inside a waiting call of this side.
  void check_idle() const {
    if (waiter)
      throw py::value_error(std::string("sluice: another thread is in ") + waiter + " on the " + name +
                            " side; one " + name + " at a time (the ring is single-" + name + ")");
  }

  // Raises ValueError (`message`, naming the limit) if a grant or batch of this side is alive and
  // not ended: the C++ rings allow one per side (and no copying call beside it), and would
  // otherwise refuse with std::logic_error, which pybind11 makes a RuntimeError.
  void check_none_outstanding(const char* message) const {
    if (outstanding != 0) throw py::value_error(message);
  }

  // Runs `end` now, or when the waiting call returns if the side is busy. For grant destructors,
  // which must not raise.
  void finish_or_defer(std::function<void()> end) {
    if (waiter)
      deferred.push_back(std::move(end));
    else
      end();
  }
};

// Marks a side busy for a waiting call. Built with the GIL held, before the GIL is released, and
// destroyed after it is taken back (declare it before the py::gil_scoped_release); then it runs
// the grant ends deferred meanwhile.
class busy_side {
 public:
  busy_side(side_state& side, const char* call) : side_(side) {
    side_.check_idle();
    side_.waiter = call;
  }
  busy_side(const busy_side&) = delete;
  busy_side& operator=(const busy_side&) = delete;
  ~busy_side() {
    side_.waiter = nullptr;
    std::vector<std::function<void()>> ends = std::move(side_.deferred);
    side_.deferred.clear();
    for (auto& end : ends) end();
  }

 private:
  side_state& side_;
};

// ------------------------------------------------------------------ exported views

// A region lent to Python (a grant, or one record of a batch), as the buffer protocol shows it.
struct region {
  void* data = nullptr;
  Py_ssize_t length = 0;    // elements
  Py_ssize_t itemsize = 1;  // bytes per element
  const char* format = "B";
  bool readonly = false;
};

// The export counter of a lender. `shape` and `stride` are what exported Py_buffers point to:
// they live as long as the lender, and cannot change while a view exists (nothing that ends the
// loan runs while exports != 0).
struct export_counter {
  Py_ssize_t exports = 0;
  Py_ssize_t shape = 0;
  Py_ssize_t stride = 1;

  // Fills `view` for region `r` of the lender `owner` (which the view keeps alive), or raises
  // BufferError. Returns 0 or -1, as bf_getbuffer does.
  int fill(PyObject* owner, const region& r, Py_buffer* view, int flags) noexcept {
    if ((flags & PyBUF_WRITABLE) && r.readonly) {
      PyErr_SetString(PyExc_BufferError, "sluice: a read view is read-only; ask for a read-only buffer");
      view->obj = nullptr;
      return -1;
    }
    static char empty_region = 0;
    shape = r.length;
    stride = r.itemsize;
    view->buf = r.data ? r.data : &empty_region;
    view->obj = Py_NewRef(owner);
    view->len = r.length * r.itemsize;
    view->itemsize = r.itemsize;
    view->readonly = r.readonly ? 1 : 0;
    view->ndim = 1;
    view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(r.format) : nullptr;
    view->shape = (flags & PyBUF_ND) ? &shape : nullptr;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? &stride : nullptr;
    view->suboffsets = nullptr;
    view->internal = nullptr;
    ++exports;
    return 0;
  }

  // The BufferError of a call that would end the loan while views are alive, or nothing.
  void check_no_views(const char* call, const char* lender) const {
    if (exports == 0) return;
    throw py::buffer_error(std::string("sluice: cannot ") + call + ": " + std::to_string(exports) + " view" +
                           (exports == 1 ? "" : "s") + " (memoryview or NumPy array) of the " + lender +
                           " still alive; release " + (exports == 1 ? "it" : "them") +
                           " first (del the array, or memoryview.release())");
  }
};

// Installs bf_getbuffer/bf_releasebuffer on a pybind11 type whose C++ type `Lender` has
//   int get_buffer(PyObject* self, Py_buffer* view, int flags) noexcept;
//   void release_buffer() noexcept;
// Use as py::class_<Lender>(m, "Name", lends_buffers<Lender>()).
template <class Lender>
py::custom_type_setup lends_buffers() {
  return py::custom_type_setup([](PyHeapTypeObject* heap_type) {
    heap_type->ht_type.tp_as_buffer = &heap_type->as_buffer;
    heap_type->as_buffer.bf_getbuffer = [](PyObject* obj, Py_buffer* view, int flags) -> int {
      Lender* lender = nullptr;
      try {
        lender = py::handle(obj).cast<Lender*>();
      } catch (...) {
        lender = nullptr;
      }
      if (!lender) {
        PyErr_SetString(PyExc_BufferError, "sluice: this object lends no buffer");
        view->obj = nullptr;
        return -1;
      }
      return lender->get_buffer(obj, view, flags);
    };
    heap_type->as_buffer.bf_releasebuffer = [](PyObject* obj, Py_buffer*) {
      // The view's owner is `obj`, kept alive by the view until after this call.
      Lender* lender = nullptr;
      try {
        lender = py::handle(obj).cast<Lender*>();
      } catch (...) {
        lender = nullptr;
      }
      if (lender) lender->release_buffer();
    };
  });
}

// The BufferError a lender raises for a view of a loan that has ended.
inline int refuse_ended(Py_buffer* view, const char* what) noexcept {
  PyErr_SetString(PyExc_BufferError, what);
  view->obj = nullptr;
  return -1;
}

}  // namespace sluice::python
