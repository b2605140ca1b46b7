// sluice.Ring and sluice.ByteRing: spsc_ring<T> for the NumPy element types and for std::byte,
// their grants (WriteGrant, ReadGrant: the buffer protocol, every exported view counted), and
// _SequenceProducer, a C++ producer thread for tests and benchmarks.
#include "bindings.hpp"
#include "common.hpp"

#include <sluice/spsc_ring.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice::python {
namespace {

using namespace std::chrono_literals;

// ------------------------------------------------------------------ element types

template <class... T>
struct element_list {
  using rings = std::variant<std::unique_ptr<spsc_ring<T>>...>;
  using writes = std::variant<std::monostate, typename spsc_ring<T>::write_grant...>;
  using reads = std::variant<std::monostate, typename spsc_ring<T>::read_grant...>;
  static constexpr std::size_t count = sizeof...(T);
  static constexpr std::array<std::size_t, sizeof...(T)> sizes{sizeof(T)...};
};
// Index 0 is ByteRing's std::byte; the rest are Ring's dtypes, in element_infos' order.
using elements = element_list<std::byte, std::int8_t, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t,
                              std::uint32_t, std::int64_t, std::uint64_t, float, double>;
using ring_variant = elements::rings;
using write_variant = elements::writes;
using read_variant = elements::reads;

struct element_info {
  const char* name;    // the NumPy dtype name
  const char* format;  // the struct/PEP 3118 format of exported views
  char kind;           // 'i' signed, 'u' unsigned, 'f' floating point (as numpy.dtype.kind)
  Py_ssize_t itemsize;
};
constexpr std::size_t byte_index = 0;
constexpr std::array<element_info, elements::count> element_infos{{
    {"uint8", "B", 'u', 1},  // ByteRing: bytes
    {"int8", "b", 'i', 1},
    {"uint8", "B", 'u', 1},
    {"int16", "h", 'i', 2},
    {"uint16", "H", 'u', 2},
    {"int32", "i", 'i', 4},
    {"uint32", "I", 'u', 4},
    {"int64", "q", 'i', 8},
    {"uint64", "Q", 'u', 8},
    {"float32", "f", 'f', 4},
    {"float64", "d", 'f', 8},
}};
constexpr bool infos_match_types() {
  for (std::size_t i = 0; i < elements::count; ++i)
    if (static_cast<std::size_t>(element_infos[i].itemsize) != elements::sizes[i]) return false;
  return true;
}
static_assert(infos_match_types(), "element_infos must list elements' types in order");

constexpr const char* supported_dtypes = "int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64";

// The index of the element type `dtype` names: a string or anything numpy.dtype() accepts.
std::size_t element_index(py::handle dtype) {
  if (dtype.is_none()) throw py::type_error(std::string("sluice: a Ring needs a dtype: one of ") + supported_dtypes);
  if (py::isinstance<py::str>(dtype)) {
    const std::string name = dtype.cast<std::string>();
    for (std::size_t i = 1; i < elements::count; ++i)
      if (name == element_infos[i].name) return i;
  }
  py::object d;
  try {
    d = py::module_::import("numpy").attr("dtype")(dtype);
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_ImportError))
      throw py::type_error("sluice: unknown dtype " + std::string(py::repr(dtype)) + " (NumPy is not installed); use one of " +
                           supported_dtypes);
    throw;  // numpy's TypeError, naming what it could not understand
  }
  const std::string name = py::str(d.attr("name"));
  const std::string order = py::str(d.attr("byteorder"));
  for (std::size_t i = 1; i < elements::count; ++i) {
    if (name != element_infos[i].name) continue;
    const bool native = order == "=" || order == "|" ||
                        (order == "<") == (py::module_::import("sys").attr("byteorder").cast<std::string>() == "little");
    if (!native)
      throw py::value_error("sluice: dtype " + std::string(py::str(d.attr("str"))) +
                            " is not in the machine's byte order; use " + name);
    return i;
  }
  throw py::type_error("sluice: dtype " + name + " is not supported; use one of " + supported_dtypes);
}

template <std::size_t I>
using element_at = typename std::variant_alternative_t<I, ring_variant>::element_type::value_type;

// Builds the ring of element type `index` with make.template operator()<T>().
template <class Make, std::size_t... I>
ring_variant make_ring(std::size_t index, Make& make, std::index_sequence<I...>) {
  std::optional<ring_variant> out;
  ((index == I ? (void)out.emplace(std::in_place_index<I>, make.template operator()<element_at<I>>()) : void()), ...);
  return std::move(*out);
}
template <class Make>
ring_variant make_ring(std::size_t index, Make&& make) {
  return make_ring(index, make, std::make_index_sequence<elements::count>{});
}

// ------------------------------------------------------------------ buffers passed in

// A Py_buffer obtained from an argument, released when this goes (with the GIL).
class buffer_arg {
 public:
  buffer_arg(py::handle obj, int flags) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) throw py::error_already_set();
  }
  buffer_arg(const buffer_arg&) = delete;
  buffer_arg& operator=(const buffer_arg&) = delete;
  ~buffer_arg() { PyBuffer_Release(&view_); }
  const Py_buffer& view() const noexcept { return view_; }

 private:
  Py_buffer view_{};
};

// How many elements of `info` a buffer holds. Bytes ('B', 'b', 'c' of 1 byte, or no format) are
// taken as raw element bytes; any other format must be the ring's element type (same kind and
// size, machine byte order). A ByteRing takes every buffer as bytes.
std::size_t elements_in(const Py_buffer& view, const element_info& info, bool byte_ring) {
  const Py_ssize_t bytes = view.len;
  if (!byte_ring) {
    std::string_view format = view.format ? view.format : "B";
    bool foreign_order = false;
    if (!format.empty() && (format[0] == '@' || format[0] == '=' || format[0] == '<' || format[0] == '>' || format[0] == '!')) {
      const bool little = PY_LITTLE_ENDIAN != 0;
      foreign_order = format[0] == '>' || format[0] == '!' ? little : (format[0] == '<' && !little);
      format.remove_prefix(1);
    }
    const char code = format.size() == 1 ? format[0] : '\0';
    const bool raw = view.itemsize == 1 && (code == 'B' || code == 'b' || code == 'c');
    if (!raw) {
      char kind = '\0';
      if (code != '\0' && std::string_view("bhilqn").find(code) != std::string_view::npos) kind = 'i';
      if (code != '\0' && std::string_view("BHILQN").find(code) != std::string_view::npos) kind = 'u';
      if (code != '\0' && std::string_view("efd").find(code) != std::string_view::npos) kind = 'f';
      if (kind != info.kind || view.itemsize != info.itemsize || (foreign_order && view.itemsize > 1))
        throw py::type_error(std::string("sluice: a buffer of format '") + (view.format ? view.format : "B") + "' (" +
                             std::to_string(view.itemsize) + "-byte items) does not hold the ring's " + info.name +
                             " elements; pass bytes, or an array of dtype " + info.name);
    }
  }
  if (bytes % info.itemsize != 0)
    throw py::value_error("sluice: a buffer of " + std::to_string(bytes) + " bytes is not a whole number of " +
                          info.name + " elements (" + std::to_string(info.itemsize) + " bytes each)");
  return static_cast<std::size_t>(bytes / info.itemsize);
}

// Copies of at least this many bytes release the GIL.
constexpr Py_ssize_t copy_without_gil = 64 * 1024;

// ------------------------------------------------------------------ scalars

template <class T>
T scalar_arg(py::handle value, const char* dtype) {
  if constexpr (std::is_floating_point_v<T>) {
    const double d = PyFloat_AsDouble(value.ptr());
    if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return static_cast<T>(d);
  } else {
    using wide = std::conditional_t<std::is_same_v<T, std::byte>, unsigned char, T>;
    if (PyFloat_Check(value.ptr()) || !PyIndex_Check(value.ptr()))
      throw py::type_error(std::string("sluice: a ") + dtype + " element must be an integer, not " +
                           std::string(py::str(py::type::handle_of(value).attr("__name__"))));
    const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    bool fits = overflow == 0 && v >= static_cast<long long>(std::numeric_limits<wide>::min());
    if constexpr (std::is_same_v<wide, std::uint64_t>) {
      if (overflow > 0) {
        const unsigned long long u = PyLong_AsUnsignedLongLong(index.ptr());
        if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) return static_cast<T>(u);
        PyErr_Clear();
      }
    } else if (fits) {
      fits = v <= static_cast<long long>(std::numeric_limits<wide>::max());
    }
    if (!fits)
      throw py::value_error(std::string("sluice: ") + std::string(py::str(index)) + " does not fit in " + dtype);
    return static_cast<T>(static_cast<wide>(v));
  }
}

template <class T>
py::object scalar_object(T v) {
  if constexpr (std::is_same_v<T, std::byte>)
    return py::int_(std::to_integer<unsigned>(v));
  else if constexpr (std::is_floating_point_v<T>)
    return py::float_(static_cast<double>(v));
  else if constexpr (std::is_signed_v<T>)
    return py::reinterpret_steal<py::object>(PyLong_FromLongLong(v));
  else
    return py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(v));
}

// ------------------------------------------------------------------ the ring

// sluice.Ring (and its subclass sluice.ByteRing). Touched only with the GIL, but for the C++ ring
// inside a waiting call, which the side guards reserve for it.
class element_ring {
 public:
  element_ring(std::size_t index, ring_variant ring) : ring_(std::move(ring)), index_(index) {}
  element_ring(const element_ring&) = delete;
  element_ring& operator=(const element_ring&) = delete;
  virtual ~element_ring() = default;

  const element_info& info() const noexcept { return element_infos[index_]; }
  bool byte_ring() const noexcept { return index_ == byte_index; }

  // f(spsc_ring<T>&) for the ring's element type.
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit([&](auto& ring) -> decltype(auto) { return f(*ring); }, ring_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit([&](const auto& ring) -> decltype(auto) { return f(*ring); }, ring_);
  }

  ring_variant ring_;  // first: destroyed after the side states and the grants they defer
  std::size_t index_;
  side_state producer_{"producer"};
  side_state consumer_{"consumer"};
};

class byte_ring final : public element_ring {
 public:
  using element_ring::element_ring;
};

template <class V>
bool holds_grant(const V& grant) {
  return std::visit(
      [](const auto& g) {
        if constexpr (std::is_same_v<std::decay_t<decltype(g)>, std::monostate>)
          return false;
        else
          return static_cast<bool>(g);
      },
      grant);
}

// ------------------------------------------------------------------ grants

enum class grant_state { live, committed, released, withdrawn };

const char* ended_message(grant_state s) {
  switch (s) {
    case grant_state::committed: return "sluice: the grant has ended (committed); take views of a live grant only";
    case grant_state::released: return "sluice: the grant has ended (released); take views of a live grant only";
    case grant_state::withdrawn: return "sluice: the grant has ended (discarded); take views of a live grant only";
    case grant_state::live: break;
  }
  return "sluice: the grant is live";
}

// What WriteGrant and ReadGrant share: the owner, the region, the export counter, the state.
// `Variant` holds the C++ grant; `Reading` says which side it belongs to.
template <class Variant, bool Reading>
class element_grant {
 public:
  element_grant(py::object owner, element_ring& ring, Variant grant)
      : owner_(std::move(owner)), ring_(&ring), grant_(std::move(grant)) {
    std::visit(
        [&](auto& g) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(g)>, std::monostate>) {
            data_ = const_cast<void*>(static_cast<const void*>(g.data()));
            size_ = g.size();
          }
        },
        grant_);
    ++side().outstanding;
  }
  element_grant(const element_grant&) = delete;
  element_grant& operator=(const element_grant&) = delete;
  ~element_grant() {
    if (state_ != grant_state::live) return;
    --side().outstanding;
    // Dropping the C++ grant publishes or frees nothing; it runs the ring's side code, so not
    // while another thread waits on that side.
    auto grant = std::make_shared<Variant>(std::move(grant_));
    side().finish_or_defer([grant] { *grant = std::monostate{}; });
  }

  side_state& side() const noexcept { return Reading ? ring_->consumer_ : ring_->producer_; }
  bool live() const noexcept { return state_ == grant_state::live; }
  std::size_t size() const noexcept { return live() ? size_ : 0; }

  int get_buffer(PyObject* self, Py_buffer* view, int flags) noexcept {
    if (!live()) return refuse_ended(view, ended_message(state_));
    const element_info& info = ring_->info();
    return views_.fill(self, region{data_, static_cast<Py_ssize_t>(size_), info.itemsize, info.format, Reading}, view,
                       flags);
  }
  void release_buffer() noexcept { --views_.exports; }

  // commit(k) or release(k): `finish(g, n)` ends the C++ grant.
  template <class Finish>
  void end(py::handle k, const char* call, grant_state ending, Finish finish) {
    views_.check_no_views(call, "grant");
    if (!live())
      throw py::value_error(std::string("sluice: ") + call + "() of a grant that has ended (" +
                            (state_ == grant_state::withdrawn ? "discarded" : Reading ? "released" : "committed") + ")");
    const std::size_t n = count_arg_or(k, "k", size_);
    side().check_idle();
    within_loan([&] {
      std::visit(
          [&](auto& g) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(g)>, std::monostate>) finish(g, n);
          },
          grant_);
    });  // ValueError for n > size, the grant unchanged
    state_ = ending;
    grant_ = std::monostate{};
    --side().outstanding;
  }

  // Withdraws the grant: nothing is published or freed. Idempotent.
  void withdraw(const char* call) {
    views_.check_no_views(call, "grant");
    if (!live()) return;
    side().check_idle();
    grant_ = std::monostate{};
    state_ = grant_state::withdrawn;
    --side().outstanding;
  }

  std::string repr(const char* type) const {
    const element_info& info = ring_->info();
    std::string s = std::string("<sluice.") + type + " of " + std::to_string(size_) + " " +
                    (ring_->byte_ring() ? "bytes" : info.name);
    switch (state_) {
      case grant_state::live: s += ", live"; break;
      case grant_state::committed: s += ", committed"; break;
      case grant_state::released: s += ", released"; break;
      case grant_state::withdrawn: s += ", discarded"; break;
    }
    if (views_.exports != 0) s += ", " + std::to_string(views_.exports) + " view" + (views_.exports == 1 ? "" : "s");
    return s + ">";
  }

  Py_ssize_t exports() const noexcept { return views_.exports; }

 private:
  py::object owner_;  // the ring's Python object; first, so it is released last
  element_ring* ring_;
  Variant grant_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  export_counter views_;
  grant_state state_ = grant_state::live;
};

class write_grant_py final : public element_grant<write_variant, false> {
 public:
  using element_grant::element_grant;
  void commit(py::handle k) {
    end(k, "commit", grant_state::committed, [](auto& g, std::size_t n) { g.commit(n); });
  }
  void discard() { withdraw("discard"); }
};

class read_grant_py final : public element_grant<read_variant, true> {
 public:
  using element_grant::element_grant;
  void release(py::handle k) {
    end(k, "release", grant_state::released, [](auto& g, std::size_t n) { g.release(n); });
  }
  // A read grant dropped without release frees nothing: it was a peek.
  void drop() { withdraw("drop"); }
};

template <class Grant>
py::object wrap_grant(py::handle self, element_ring& ring, auto&& grant) {
  if (!grant) return py::none();
  using variant = std::conditional_t<std::is_same_v<Grant, write_grant_py>, write_variant, read_variant>;
  return py::cast(std::make_unique<Grant>(py::reinterpret_borrow<py::object>(self), ring, variant(std::move(grant))));
}

std::string grant_outstanding(const char* side) {
  return std::string("sluice: a ") + side +
         " grant is still outstanding; at most one per side (commit, release or drop it first)";
}

// A call that takes a grant or copies on a side: no other thread waiting there, and no grant of
// that side alive (one grant per side, and none beside a copy).
void check_free(const side_state& side, const char* grant) {
  side.check_idle();
  if (side.outstanding != 0) throw py::value_error(grant_outstanding(grant));
}

// ------------------------------------------------------------------ ring methods

element_ring& ring_of(py::handle self) { return self.cast<element_ring&>(); }

py::object try_reserve(py::handle self, py::handle n) {
  element_ring& r = ring_of(self);
  const std::size_t k = count_arg(n, "n");
  check_free(r.producer_, "write");
  return r.visit([&](auto& ring) { return wrap_grant<write_grant_py>(self, r, ring.try_reserve(k)); });
}

py::object try_reserve_up_to(py::handle self, py::handle n) {
  element_ring& r = ring_of(self);
  const std::size_t k = count_arg(n, "n");
  check_free(r.producer_, "write");
  return r.visit([&](auto& ring) { return wrap_grant<write_grant_py>(self, r, ring.try_reserve_up_to(k)); });
}

py::object reserve(py::handle self, py::handle n, py::handle timeout) {
  element_ring& r = ring_of(self);
  const std::size_t k = count_arg(n, "n");
  const std::optional<steady::time_point> deadline = deadline_of(timeout_arg(timeout));
  check_free(r.producer_, "write");
  write_variant g;
  {
    busy_side busy(r.producer_, "reserve()");
    py::gil_scoped_release nogil;
    r.visit([&](auto& ring) { g = deadline ? ring.try_reserve_until(k, *deadline) : ring.reserve(k); });
  }
  if (!holds_grant(g)) return py::none();
  return py::cast(std::make_unique<write_grant_py>(py::reinterpret_borrow<py::object>(self), r, std::move(g)));
}

py::object try_read(py::handle self) {
  element_ring& r = ring_of(self);
  check_free(r.consumer_, "read");
  return r.visit([&](auto& ring) { return wrap_grant<read_grant_py>(self, r, ring.try_read()); });
}

py::object read(py::handle self, py::handle timeout) {
  element_ring& r = ring_of(self);
  const std::optional<steady::time_point> deadline = deadline_of(timeout_arg(timeout));
  check_free(r.consumer_, "read");
  read_variant g;
  // Ready now: no wait, so the GIL stays (releasing it would hand it to another thread).
  r.visit([&](auto& ring) { g = ring.try_read(); });
  if (!holds_grant(g)) {
    busy_side busy(r.consumer_, "read()");
    for (;;) {
      const steady::time_point now = steady::now();
      const steady::time_point slice_end = deadline ? std::min(*deadline, now + read_slice) : now + read_slice;
      {
        py::gil_scoped_release nogil;
        r.visit([&](auto& ring) { g = ring.try_read_until(slice_end); });
      }
      if (holds_grant(g)) break;
      if (r.visit([](auto& ring) { return ring.closed(); })) {
        // Closed and drained, unless something was committed between that read and close().
        r.visit([&](auto& ring) { g = ring.try_read(); });
        break;
      }
      if (deadline && steady::now() >= *deadline) break;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }
  if (!holds_grant(g)) return py::none();
  return py::cast(std::make_unique<read_grant_py>(py::reinterpret_borrow<py::object>(self), r, std::move(g)));
}

std::size_t write(py::handle self, py::handle obj) {
  element_ring& r = ring_of(self);
  check_free(r.producer_, "write");
  buffer_arg src(obj, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT);
  const std::size_t n = elements_in(src.view(), r.info(), r.byte_ring());
  return r.visit([&](auto& ring) {
    using T = typename std::decay_t<decltype(ring)>::value_type;
    const std::span<const T> from(static_cast<const T*>(src.view().buf), n);
    if (src.view().len < copy_without_gil) return ring.write_some(from);
    busy_side busy(r.producer_, "write()");
    py::gil_scoped_release nogil;
    return ring.write_some(from);
  });
}

std::size_t read_into(py::handle self, py::handle obj) {
  element_ring& r = ring_of(self);
  check_free(r.consumer_, "read");
  buffer_arg dst(obj, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE);
  const std::size_t n = elements_in(dst.view(), r.info(), r.byte_ring());
  return r.visit([&](auto& ring) {
    using T = typename std::decay_t<decltype(ring)>::value_type;
    const std::span<T> to(static_cast<T*>(dst.view().buf), n);
    if (dst.view().len < copy_without_gil) return ring.read_some(to);
    busy_side busy(r.consumer_, "read_into()");
    py::gil_scoped_release nogil;
    return ring.read_some(to);
  });
}

bool push(py::handle self, py::handle value) {
  element_ring& r = ring_of(self);
  check_free(r.producer_, "write");
  return r.visit([&](auto& ring) {
    using T = typename std::decay_t<decltype(ring)>::value_type;
    return ring.try_push(scalar_arg<T>(value, r.byte_ring() ? "byte" : r.info().name));
  });
}

py::object pop(py::handle self) {
  element_ring& r = ring_of(self);
  check_free(r.consumer_, "read");
  return r.visit([&](auto& ring) -> py::object {
    const auto v = ring.try_pop();
    return v ? scalar_object(*v) : py::none();
  });
}

std::string ring_repr(const element_ring& r) {
  std::string s = r.byte_ring() ? "<sluice.ByteRing" : std::string("<sluice.Ring of ") + r.info().name;
  r.visit([&](const auto& ring) {
    s += " capacity=" + std::to_string(ring.capacity()) + " size_approx=" + std::to_string(ring.size_approx());
    if (ring.mirrored()) s += " mirrored";
    if (ring.shared()) s += " shared";
    if (ring.closed()) s += " closed";
  });
  return s + ">";
}

std::unique_ptr<element_ring> make_element_ring(std::size_t index, py::handle capacity, bool mirrored) {
  const std::size_t c = capacity_arg(capacity);
  ring_variant ring = make_ring(index, [&]<class T>() {
    return mirrored ? std::make_unique<spsc_ring<T>>(sluice::mirrored, c) : std::make_unique<spsc_ring<T>>(c);
  });
  if (index == byte_index) return std::make_unique<byte_ring>(index, std::move(ring));
  return std::make_unique<element_ring>(index, std::move(ring));
}

std::unique_ptr<element_ring> create_shared_ring(std::size_t index, const std::string& name, py::handle capacity,
                                                 const std::string& role, bool mirrored, unsigned permissions) {
  const std::size_t c = capacity_arg(capacity);
  const sluice::shared_options options{.role = role_arg(role), .mirrored = mirrored, .permissions = permissions};
  ring_variant ring = make_ring(index, [&]<class T>() {
    py::gil_scoped_release nogil;
    return std::make_unique<spsc_ring<T>>(sluice::create_shared, name, c, options);
  });
  if (index == byte_index) return std::make_unique<byte_ring>(index, std::move(ring));
  return std::make_unique<element_ring>(index, std::move(ring));
}

std::unique_ptr<element_ring> open_shared_ring(std::size_t index, const std::string& name, const std::string& role,
                                               py::handle attach_timeout) {
  const sluice::shared_options options{.role = role_arg(role), .attach_timeout = attach_timeout_arg(attach_timeout)};
  ring_variant ring = make_ring(index, [&]<class T>() {
    py::gil_scoped_release nogil;
    return std::make_unique<spsc_ring<T>>(sluice::open_shared, name, options);
  });
  if (index == byte_index) return std::make_unique<byte_ring>(index, std::move(ring));
  return std::make_unique<element_ring>(index, std::move(ring));
}

// ------------------------------------------------------------------ _SequenceProducer

// Element i of the known sequence: i modulo 2^bits for integers, i modulo 2^24 for floating point
// (exact in float32).
template <class T>
T sequence_value(std::uint64_t i) {
  if constexpr (std::is_same_v<T, std::byte>)
    return static_cast<std::byte>(i & 0xff);
  else if constexpr (std::is_floating_point_v<T>)
    return static_cast<T>(i & ((std::uint64_t{1} << 24) - 1));
  else
    return static_cast<T>(i);
}

// A C++ thread that produces `count` elements of the known sequence in chunks of random sizes
// (1..max_chunk, from a seeded generator), each reserved and committed in place, then (with
// close) closes the ring. It holds the producer side from construction until join() returns true
// (or the object dies): the ring's Python producer calls raise meanwhile. It never touches Python
// objects, so it runs while Python threads hold the GIL.
class sequence_producer {
 public:
  sequence_producer(py::object owner, std::uint64_t count, std::size_t max_chunk, std::uint64_t seed, bool close,
                    double start_delay)
      : owner_(std::move(owner)), ring_(&ring_of(owner_)), count_(count), max_chunk_(max_chunk), seed_(seed),
        close_(close), start_delay_(start_delay < 0 ? 0 : start_delay) {
    if (max_chunk_ == 0) throw py::value_error("sluice: max_chunk must be at least 1");
    if (ring_->producer_.outstanding != 0) throw py::value_error(grant_outstanding("write"));
    hold_.emplace(ring_->producer_, "a _SequenceProducer");
    thread_ = std::thread([this] { run(); });
  }
  sequence_producer(const sequence_producer&) = delete;
  sequence_producer& operator=(const sequence_producer&) = delete;
  ~sequence_producer() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
    hold_.reset();
  }

  // True once the thread has finished (then it is joined and the producer side is free again);
  // False if `timeout` passed first. Raises RuntimeError if the thread failed.
  bool join(py::handle timeout) {
    const std::optional<std::chrono::duration<double>> t = timeout_arg(timeout);
    {
      py::gil_scoped_release nogil;
      std::unique_lock lock(mutex_);
      if (t)
        done_cv_.wait_for(lock, *t, [&] { return done_; });
      else
        done_cv_.wait(lock, [&] { return done_; });
      if (!done_) return false;
    }
    if (thread_.joinable()) thread_.join();
    hold_.reset();
    if (!error_.empty()) throw std::runtime_error(error_);
    return true;
  }

  std::uint64_t produced() const noexcept { return produced_.load(std::memory_order_relaxed); }

 private:
  void run() noexcept {
    try {
      std::this_thread::sleep_for(std::chrono::duration<double>(start_delay_));
      ring_->visit([&](auto& ring) {
        using T = typename std::decay_t<decltype(ring)>::value_type;
        std::mt19937_64 random(seed_);
        const std::size_t largest = std::min(max_chunk_, ring.capacity());
        std::uniform_int_distribution<std::size_t> chunk(1, largest);
        std::uint64_t at = 0;
        while (at < count_ && !stop_.load(std::memory_order_relaxed)) {
          const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk(random), count_ - at));
          auto g = ring.try_reserve_for(n, 20ms);  // bounded, so that stop_ is seen
          if (!g) {
            if (ring.closed()) break;
            continue;
          }
          for (std::size_t i = 0; i < n; ++i) g[i] = sequence_value<T>(at + i);
          g.commit();
          at += n;
          // Relaxed: a progress figure; join() synchronises through the mutex.
          produced_.store(at, std::memory_order_relaxed);
        }
        if (close_) ring.close();
      });
    } catch (const std::exception& e) {
      error_ = std::string("sluice: the sequence producer failed: ") + e.what();
    }
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
  }

  py::object owner_;
  element_ring* ring_;
  std::uint64_t count_;
  std::size_t max_chunk_;
  std::uint64_t seed_;
  bool close_;
  double start_delay_;
  std::optional<busy_side> hold_;  // the producer side, while the thread may run
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> produced_{0};
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;   // guarded by mutex_
  std::string error_;   // written by the thread before done_, read after
  std::thread thread_;  // last: started once everything above is built
};

}  // namespace

// ------------------------------------------------------------------ bindings

void bind_element_rings(py::module_& m) {
  using namespace pybind11::literals;

  py::class_<write_grant_py>(m, "WriteGrant", py::is_final(), lends_buffers<write_grant_py>(), R"doc(
A producer's region of exactly len(g) free elements, from Ring.try_reserve() and friends.

The grant is a buffer: memoryview(g) is writable, numpy.asarray(g) a 1-D array of the ring's
dtype over the ring's own memory. commit() / commit(k) publishes all / the first k elements;
discard() (or dropping the grant) publishes nothing. While any view of the grant is alive,
commit() and discard() raise BufferError and change nothing. As a context manager it commits on
normal exit and is withdrawn on an exception.)doc")
      .def("commit", &write_grant_py::commit, "k"_a = py::none(),
           "Publishes the first k elements (all by default) and ends the grant.")
      .def("discard", &write_grant_py::discard, "Withdraws the grant: publishes nothing. Does nothing once ended.")
      .def("__len__", [](const write_grant_py& g) { return g.size(); })
      .def("__bool__", [](const write_grant_py& g) { return g.live(); })
      .def_property_readonly("live", [](const write_grant_py& g) { return g.live(); }, "True until the grant is committed or discarded.")
      .def_property_readonly("exports", [](const write_grant_py& g) { return g.exports(); }, "Views (memoryviews, arrays) of the grant alive now.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](write_grant_py& g, py::handle type, py::handle, py::handle) {
             if (!g.live()) return false;
             if (type.is_none())
               g.commit(py::none());
             else if (g.exports() == 0)
               g.discard();
             return false;
           })
      .def("__repr__", [](const write_grant_py& g) { return g.repr("WriteGrant"); });

  py::class_<read_grant_py>(m, "ReadGrant", py::is_final(), lends_buffers<read_grant_py>(), R"doc(
A consumer's region of len(g) committed elements, from Ring.try_read() or Ring.read().

The grant is a read-only buffer: memoryview(g), numpy.asarray(g) (a read-only array over the
ring's memory). release() / release(k) frees all / the first k elements; dropping the grant frees
nothing (a peek). While any view is alive, release() raises BufferError and changes nothing. As a
context manager it releases on normal exit and frees nothing on an exception.)doc")
      .def("release", &read_grant_py::release, "k"_a = py::none(),
           "Frees the first k elements (all by default) and ends the grant.")
      .def("__len__", [](const read_grant_py& g) { return g.size(); })
      .def("__bool__", [](const read_grant_py& g) { return g.live(); })
      .def_property_readonly("live", [](const read_grant_py& g) { return g.live(); }, "True until the grant is released.")
      .def_property_readonly("exports", [](const read_grant_py& g) { return g.exports(); }, "Views (memoryviews, arrays) of the grant alive now.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](read_grant_py& g, py::handle type, py::handle, py::handle) {
             if (!g.live()) return false;
             if (type.is_none())
               g.release(py::none());
             else if (g.exports() == 0)
               g.drop();
             return false;
           })
      .def("__repr__", [](const read_grant_py& g) { return g.repr("ReadGrant"); });

  py::class_<element_ring> ring(m, "Ring", R"doc(
Ring(capacity, dtype, *, mirrored=False): a lock-free single-producer/single-consumer ring of
`capacity` elements of a NumPy dtype (int8/16/32/64, uint8/16/32/64, float32, float64, by name
or as a numpy.dtype), over sluice::spsc_ring<T>.

One producer thread and one consumer thread at a time: a second grant on one side, or a call on
a side while another thread waits on it, raises ValueError. The blocking calls release the GIL.)doc");
  ring.def(py::init([](py::handle capacity, py::handle dtype, bool mirrored) {
             return make_element_ring(element_index(dtype), capacity, mirrored);
           }),
           "capacity"_a, "dtype"_a, py::kw_only(), "mirrored"_a = false)
      .def_static(
          "create_shared",
          [](const std::string& name, py::handle capacity, py::handle dtype, const std::string& role, bool mirrored,
             unsigned permissions) {
            return create_shared_ring(element_index(dtype), name, capacity, role, mirrored, permissions);
          },
          "name"_a, "capacity"_a, "dtype"_a, py::kw_only(), "role"_a = "consumer", "mirrored"_a = false,
          "permissions"_a = 0600,
          "Creates the shared-memory ring `name` (\"/name\"; it must not exist yet) and attaches in `role`.")
      .def_static(
          "open_shared",
          [](const std::string& name, py::handle dtype, const std::string& role, py::handle attach_timeout) {
            return open_shared_ring(element_index(dtype), name, role, attach_timeout);
          },
          "name"_a, "dtype"_a, py::kw_only(), "role"_a = "consumer", "attach_timeout"_a = 1.0,
          "Attaches to the shared-memory ring `name` made by another process (C++ or Python) in `role`.")
      .def("try_reserve", &try_reserve, "n"_a,
           "A WriteGrant of exactly n contiguous elements, or None if they are not free now (or n == 0, or closed).")
      .def("try_reserve_up_to", &try_reserve_up_to, "n"_a,
           "A WriteGrant of the longest contiguous free run, 1 to n elements, or None if nothing is free now.")
      .def("reserve", &reserve, "n"_a, "timeout"_a = py::none(),
           "As try_reserve(n), but waits (without the GIL) up to `timeout` seconds (None: until it can, or the ring "
           "is closed). None on timeout, and at once once the ring is closed.")
      .def("try_read", &try_read, "A ReadGrant of everything committed that is contiguous, or None.")
      .def("read", &read, "timeout"_a = py::none(),
           "As try_read(), but waits (without the GIL) up to `timeout` seconds (None: for ever). None on timeout, "
           "and once the ring is closed and everything committed has been read.")
      .def("write", &write, "data"_a,
           "Copies as many elements of the buffer `data` as fit now; returns the count. `data` is bytes-like "
           "(raw element bytes) or an array of the ring's dtype.")
      .def("read_into", &read_into, "out"_a,
           "Copies up to len(out) committed elements into the writable buffer `out`, frees them; returns the count.")
      .def("push", &push, "value"_a, "Appends one element; False if the ring is full now (or closed).")
      .def("pop", &pop, "Removes and returns the oldest element, or None if nothing is committed.")
      .def("close", [](element_ring& r) { r.visit([](auto& ring) { ring.close(); }); },
           "Closes the ring: reservations return None from now on, reads drain what was committed. Any thread.")
      .def_property_readonly("closed", [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.closed(); }); })
      .def_property_readonly("capacity",
                             [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.capacity(); }); })
      .def("size_approx", [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.size_approx(); }); },
           "Elements committed and not yet released; stale by nature.")
      .def("statistics", [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.statistics(); }); },
           "The ring's counters (RingStatistics), in elements.")
      .def_property_readonly("mirrored",
                             [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.mirrored(); }); })
      .def_property_readonly("shared",
                             [](const element_ring& r) { return r.visit([](const auto& ring) { return ring.shared(); }); })
      .def_property_readonly("dtype",
                             [](const element_ring& r) { return py::module_::import("numpy").attr("dtype")(r.info().name); })
      .def_property_readonly("itemsize", [](const element_ring& r) { return r.info().itemsize; })
      .def_property_readonly("format", [](const element_ring& r) { return r.info().format; },
                             "The struct format of the ring's views.")
      .def("__repr__", &ring_repr);

  py::class_<byte_ring, element_ring>(m, "ByteRing", py::is_final(), R"doc(
ByteRing(capacity, *, mirrored=False): a Ring of `capacity` bytes, over sluice::spsc_ring<std::byte>.
Its views have format 'B' (bytes assign to them) and write() takes any buffer as raw bytes.)doc")
      .def(py::init([](py::handle capacity, bool mirrored) {
             return std::unique_ptr<byte_ring>(
                 static_cast<byte_ring*>(make_element_ring(byte_index, capacity, mirrored).release()));
           }),
           "capacity"_a, py::kw_only(), "mirrored"_a = false)
      .def_static(
          "create_shared",
          [](const std::string& name, py::handle capacity, const std::string& role, bool mirrored, unsigned permissions) {
            return std::unique_ptr<byte_ring>(static_cast<byte_ring*>(
                create_shared_ring(byte_index, name, capacity, role, mirrored, permissions).release()));
          },
          "name"_a, "capacity"_a, py::kw_only(), "role"_a = "consumer", "mirrored"_a = false, "permissions"_a = 0600,
          "Creates the shared-memory byte ring `name` (it must not exist yet) and attaches in `role`.")
      .def_static(
          "open_shared",
          [](const std::string& name, const std::string& role, py::handle attach_timeout) {
            return std::unique_ptr<byte_ring>(
                static_cast<byte_ring*>(open_shared_ring(byte_index, name, role, attach_timeout).release()));
          },
          "name"_a, py::kw_only(), "role"_a = "consumer", "attach_timeout"_a = 1.0,
          "Attaches to the shared-memory byte ring `name` made by another process in `role`.");

  py::class_<sequence_producer>(m, "_SequenceProducer", py::is_final(), R"doc(
_SequenceProducer(ring, count, *, max_chunk=64, seed=1, close=True, start_delay=0.0): a C++ thread
producing `count` elements of a known sequence into `ring` (element i is i modulo 2**bits, or
i % 2**24 for floating point), in chunks of random sizes 1..max_chunk reserved in place; then,
with close, it closes the ring. It holds the ring's producer side until join() returns True.
For tests and benchmarks.)doc")
      .def(py::init([](py::object ring, py::handle count, py::handle max_chunk, std::uint64_t seed, bool close,
                       double start_delay) {
             if (!py::isinstance<element_ring>(ring))
               throw py::type_error("sluice: _SequenceProducer needs a Ring or ByteRing, not " +
                                    std::string(py::str(py::type::handle_of(ring).attr("__name__"))));
             return std::make_unique<sequence_producer>(std::move(ring), count_arg(count, "count"),
                                                        count_arg(max_chunk, "max_chunk"), seed, close, start_delay);
           }),
           "ring"_a, "count"_a, py::kw_only(), "max_chunk"_a = 64, "seed"_a = 1, "close"_a = true,
           "start_delay"_a = 0.0)
      .def("join", &sequence_producer::join, "timeout"_a = py::none(),
           "Waits (without the GIL) for the thread; True once finished, False on timeout.")
      .def_property_readonly("produced", &sequence_producer::produced, "Elements committed so far.");
}

}  // namespace sluice::python
