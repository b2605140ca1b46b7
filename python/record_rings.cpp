// sluice.RecordRing: spsc_record_ring or mpsc_record_ring, their grants (RecordGrant) and batches
// (RecordBatch, iterating read-only memoryviews of its records, each exported view counted).
#include "bindings.hpp"
#include "common.hpp"

#include <sluice/record_ring.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice::python {
namespace {

using ring_variant = std::variant<std::unique_ptr<spsc_record_ring>, std::unique_ptr<mpsc_record_ring>>;
using grant_variant = std::variant<std::monostate, spsc_record_ring::grant, mpsc_record_ring::grant>;
using batch_variant = std::variant<std::monostate, spsc_record_ring::batch, mpsc_record_ring::batch>;
using iterator_variant = std::variant<spsc_record_ring::batch::iterator, mpsc_record_ring::batch::iterator>;

template <class V>
constexpr bool is_empty_alternative = std::is_same_v<std::decay_t<V>, std::monostate>;

bool multi_arg(const std::string& producers) {
  if (producers == "single") return false;
  if (producers == "multi") return true;
  throw py::value_error("sluice: producers must be \"single\" or \"multi\", not \"" + producers + "\"");
}

// sluice.RecordRing. Touched only with the GIL, but for the C++ ring inside a waiting call. With
// producers="multi" any number of Python threads may produce at once (the C++ ring is lock-free
// for them), so only the consumer side is guarded; with "single", both are.
class record_ring_py {
 public:
  record_ring_py(bool multi, ring_variant ring) : ring_(std::move(ring)), multi_(multi) {}
  record_ring_py(const record_ring_py&) = delete;
  record_ring_py& operator=(const record_ring_py&) = delete;

  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit([&](auto& ring) -> decltype(auto) { return f(*ring); }, ring_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit([&](const auto& ring) -> decltype(auto) { return f(*ring); }, ring_);
  }

  bool multi() const noexcept { return multi_; }
  // The producer side's guard, or nullptr when producers may run concurrently.
  side_state* producer_guard() noexcept { return multi_ ? nullptr : &producer_; }

  ring_variant ring_;  // first: destroyed after the side states and the grants they defer
  bool multi_;
  side_state producer_{"producer"};
  side_state consumer_{"consumer"};
};

enum class loan_state { live, committed, released, withdrawn };

// ------------------------------------------------------------------ RecordGrant

class record_grant_py {
 public:
  record_grant_py(py::object owner, record_ring_py& ring, grant_variant grant)
      : owner_(std::move(owner)), ring_(&ring), grant_(std::move(grant)) {
    std::visit(
        [&](auto& g) {
          if constexpr (!is_empty_alternative<decltype(g)>) {
            data_ = g.data();
            size_ = g.size();
          }
        },
        grant_);
  }
  record_grant_py(const record_grant_py&) = delete;
  record_grant_py& operator=(const record_grant_py&) = delete;
  ~record_grant_py() {
    if (state_ != loan_state::live) return;
    // Dropping the C++ grant withdraws the reservation (the consumer steps over it).
    auto grant = std::make_shared<grant_variant>(std::move(grant_));
    if (side_state* side = ring_->producer_guard())
      side->finish_or_defer([grant] { *grant = std::monostate{}; });
    else
      *grant = std::monostate{};
  }

  bool live() const noexcept { return state_ == loan_state::live; }
  std::size_t size() const noexcept { return live() ? size_ : 0; }
  Py_ssize_t exports() const noexcept { return views_.exports; }

  int get_buffer(PyObject* self, Py_buffer* view, int flags) noexcept {
    if (!live())
      return refuse_ended(view, state_ == loan_state::committed
                                    ? "sluice: the record grant has ended (committed); take views of a live grant only"
                                    : "sluice: the record grant has ended (discarded); take views of a live grant only");
    return views_.fill(self, region{data_, static_cast<Py_ssize_t>(size_), 1, "B", false}, view, flags);
  }
  void release_buffer() noexcept { --views_.exports; }

  // Publishes the first k bytes (all by default) as the record. True; False only in a shared ring
  // whose consumer reclaimed the reservation meanwhile (recover()), when nothing is published.
  bool commit(py::handle k) {
    views_.check_no_views("commit", "record grant");
    if (!live())
      throw py::value_error(std::string("sluice: commit() of a record grant that has ended (") +
                            (state_ == loan_state::committed ? "committed" : "discarded") + ")");
    const std::size_t n = count_arg_or(k, "k", size_);
    if (side_state* side = ring_->producer_guard()) side->check_idle();
    bool published = false;
    within_loan([&] {
      std::visit(
          [&](auto& g) {
            if constexpr (!is_empty_alternative<decltype(g)>) published = g.commit(n);
          },
          grant_);
    });  // ValueError for n > size, the grant unchanged
    state_ = loan_state::committed;
    grant_ = std::monostate{};
    return published;
  }

  // Withdraws the reservation: the consumer never sees it. Does nothing once ended.
  void discard() {
    views_.check_no_views("discard", "record grant");
    if (!live()) return;
    if (side_state* side = ring_->producer_guard()) side->check_idle();
    grant_ = std::monostate{};
    state_ = loan_state::withdrawn;
  }

  std::string repr() const {
    std::string s = "<sluice.RecordGrant of " + std::to_string(size_) + " bytes, ";
    s += state_ == loan_state::live ? "live" : state_ == loan_state::committed ? "committed" : "discarded";
    if (views_.exports != 0) s += ", " + std::to_string(views_.exports) + " view" + (views_.exports == 1 ? "" : "s");
    return s + ">";
  }

 private:
  py::object owner_;  // the ring's Python object; first, so it is released last
  record_ring_py* ring_;
  grant_variant grant_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  export_counter views_;
  loan_state state_ = loan_state::live;
};

// ------------------------------------------------------------------ RecordBatch

class record_batch_py {
 public:
  record_batch_py(py::object owner, record_ring_py& ring, batch_variant batch)
      : owner_(std::move(owner)), ring_(&ring), batch_(std::move(batch)) {
    std::visit(
        [&](auto& b) {
          if constexpr (!is_empty_alternative<decltype(b)>) records_ = b.size();
        },
        batch_);
    ++ring_->consumer_.outstanding;
  }
  record_batch_py(const record_batch_py&) = delete;
  record_batch_py& operator=(const record_batch_py&) = delete;
  ~record_batch_py() {
    if (state_ != loan_state::live) return;
    --ring_->consumer_.outstanding;
    // Dropping the C++ batch frees nothing: the records are read again.
    auto batch = std::make_shared<batch_variant>(std::move(batch_));
    ring_->consumer_.finish_or_defer([batch] { *batch = std::monostate{}; });
  }

  bool live() const noexcept { return state_ == loan_state::live; }
  std::size_t size() const noexcept { return live() ? records_ : 0; }
  Py_ssize_t exports() const noexcept { return exports_; }

  // The iterator at the first record. Only while live.
  iterator_variant begin() const {
    return std::visit(
        [](const auto& b) -> iterator_variant {
          if constexpr (is_empty_alternative<decltype(b)>)
            throw py::value_error("sluice: the batch has ended");
          else
            return b.begin();
        },
        batch_);
  }

  void release(py::handle k) {
    if (exports_ != 0)
      throw py::buffer_error("sluice: cannot release: " + std::to_string(exports_) + " record view" +
                             (exports_ == 1 ? "" : "s") + " (memoryview or NumPy array) of the batch still alive; release " +
                             (exports_ == 1 ? "it" : "them") + " first (del the view, or memoryview.release())");
    if (!live()) throw py::value_error("sluice: release() of a batch that has ended (released)");
    const std::size_t n = count_arg_or(k, "k", records_);
    ring_->consumer_.check_idle();
    within_loan([&] {
      std::visit(
          [&](auto& b) {
            if constexpr (!is_empty_alternative<decltype(b)>) b.release(n);
          },
          batch_);
    });  // ValueError for n > size(), the batch unchanged
    state_ = loan_state::released;
    batch_ = std::monostate{};
    --ring_->consumer_.outstanding;
  }

  // Ends the batch without freeing anything (the records are read again). Does nothing once ended.
  void drop() {
    if (exports_ != 0 || !live()) return;
    ring_->consumer_.check_idle();
    batch_ = std::monostate{};
    state_ = loan_state::withdrawn;
    --ring_->consumer_.outstanding;
  }

  std::string repr() const {
    std::string s = "<sluice.RecordBatch of " + std::to_string(records_) + " record" + (records_ == 1 ? "" : "s") + ", ";
    s += live() ? "live" : state_ == loan_state::released ? "released" : "dropped";
    if (exports_ != 0) s += ", " + std::to_string(exports_) + " view" + (exports_ == 1 ? "" : "s");
    return s + ">";
  }

  Py_ssize_t exports_ = 0;  // views of its records alive, counted by record_view_py

 private:
  py::object owner_;  // the ring's Python object; first, so it is released last
  record_ring_py* ring_;
  batch_variant batch_;
  std::size_t records_ = 0;
  loan_state state_ = loan_state::live;
};

// One record of a batch, as a buffer: what the memoryviews the batch iterates are views of. It
// keeps its batch alive and counts its exports there too.
class record_view_py {
 public:
  record_view_py(py::object batch, const std::byte* data, std::size_t size)
      : batch_obj_(std::move(batch)), batch_(&batch_obj_.cast<record_batch_py&>()), data_(data), size_(size) {}

  int get_buffer(PyObject* self, Py_buffer* view, int flags) noexcept {
    if (!batch_->live())
      return refuse_ended(view, "sluice: the record's batch has ended (released); take views of a live batch only");
    const int rc = own_.fill(self, region{const_cast<std::byte*>(data_), static_cast<Py_ssize_t>(size_), 1, "B", true},
                             view, flags);
    if (rc == 0) ++batch_->exports_;
    return rc;
  }
  void release_buffer() noexcept {
    --own_.exports;
    --batch_->exports_;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  py::object batch_obj_;
  record_batch_py* batch_;
  const std::byte* data_;
  std::size_t size_;
  export_counter own_;
};

// Iterates the records of a batch as memoryviews. Every iteration of a batch starts afresh.
class record_iterator_py {
 public:
  explicit record_iterator_py(py::object batch)
      : batch_obj_(std::move(batch)), batch_(&batch_obj_.cast<record_batch_py&>()), left_(batch_->size()),
        at_(batch_->begin()) {}

  py::object next() {
    if (left_ == 0) throw py::stop_iteration();
    if (!batch_->live()) throw py::value_error("sluice: the batch has ended (released) while it was iterated");
    const std::span<const std::byte> record = std::visit(
        [](auto& it) {
          const std::span<const std::byte> r = *it;
          ++it;
          return r;
        },
        at_);
    --left_;
    py::object exporter = py::cast(std::make_unique<record_view_py>(batch_obj_, record.data(), record.size()));
    return py::reinterpret_steal<py::object>(PyMemoryView_FromObject(exporter.ptr()));
  }

 private:
  py::object batch_obj_;
  record_batch_py* batch_;
  std::size_t left_;
  iterator_variant at_;
};

// ------------------------------------------------------------------ ring methods

record_ring_py& ring_of(py::handle self) { return self.cast<record_ring_py&>(); }

// True if the variant holds a live grant or a non-empty batch (not the empty alternative).
template <class Variant>
bool holds_loan(const Variant& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (is_empty_alternative<decltype(x)>)
          return false;
        else
          return static_cast<bool>(x);
      },
      v);
}

py::object wrap_grant(py::handle self, record_ring_py& r, grant_variant g) {
  if (!holds_loan(g)) return py::none();
  return py::cast(std::make_unique<record_grant_py>(py::reinterpret_borrow<py::object>(self), r, std::move(g)));
}

py::object wrap_batch(py::handle self, record_ring_py& r, batch_variant b) {
  if (!holds_loan(b)) return py::none();
  return py::cast(std::make_unique<record_batch_py>(py::reinterpret_borrow<py::object>(self), r, std::move(b)));
}

py::object try_reserve(py::handle self, py::handle n) {
  record_ring_py& r = ring_of(self);
  const std::size_t k = count_arg(n, "n");
  if (side_state* side = r.producer_guard()) side->check_idle();
  return wrap_grant(self, r, r.visit([&](auto& ring) { return grant_variant(ring.try_reserve(k)); }));
}

py::object reserve(py::handle self, py::handle n, py::handle timeout) {
  record_ring_py& r = ring_of(self);
  const std::size_t k = count_arg(n, "n");
  const std::optional<steady::time_point> deadline = deadline_of(timeout_arg(timeout));
  grant_variant g;
  {
    std::optional<busy_side> busy;
    if (side_state* side = r.producer_guard()) busy.emplace(*side, "reserve()");
    py::gil_scoped_release nogil;
    r.visit([&](auto& ring) { g = deadline ? ring.try_reserve_until(k, *deadline) : ring.reserve(k); });
  }
  return wrap_grant(self, r, std::move(g));
}

constexpr const char* batch_outstanding =
    "sluice: a batch is still outstanding; the consumer holds at most one (release or drop it first)";

py::object try_read(py::handle self) {
  record_ring_py& r = ring_of(self);
  r.consumer_.check_idle();
  r.consumer_.check_none_outstanding(batch_outstanding);
  return wrap_batch(self, r, r.visit([&](auto& ring) { return batch_variant(ring.try_read()); }));
}

py::object read(py::handle self, py::handle timeout) {
  record_ring_py& r = ring_of(self);
  const std::optional<steady::time_point> deadline = deadline_of(timeout_arg(timeout));
  r.consumer_.check_idle();
  r.consumer_.check_none_outstanding(batch_outstanding);
  batch_variant b;
  auto ready = [&] { return holds_loan(b); };
  // Ready now: no wait, so the GIL stays (releasing it would hand it to another thread).
  r.visit([&](auto& ring) { b = ring.try_read(); });
  if (!ready()) {
    busy_side busy(r.consumer_, "read()");
    for (;;) {
      const steady::time_point now = steady::now();
      const steady::time_point slice_end = deadline ? std::min(*deadline, now + read_slice) : now + read_slice;
      {
        py::gil_scoped_release nogil;
        r.visit([&](auto& ring) { b = ring.try_read_until(slice_end); });
      }
      if (ready()) break;
      if (r.visit([](auto& ring) { return ring.closed(); })) {
        r.visit([&](auto& ring) { b = ring.try_read(); });
        break;
      }
      if (deadline && steady::now() >= *deadline) break;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }
  return wrap_batch(self, r, std::move(b));
}

std::size_t recover(py::handle self, py::handle stalled_after) {
  record_ring_py& r = ring_of(self);
  const std::optional<std::chrono::duration<double>> t = timeout_arg(stalled_after);
  r.consumer_.check_idle();
  return r.visit([&](auto& ring) {
    if (!t) return ring.recover();
    return ring.recover(std::chrono::ceil<std::chrono::nanoseconds>(std::min(*t, std::chrono::duration<double>(1e9))));
  });
}

std::string ring_repr(const record_ring_py& r) {
  std::string s = std::string("<sluice.RecordRing producers=") + (r.multi() ? "multi" : "single");
  r.visit([&](const auto& ring) {
    s += " capacity=" + std::to_string(ring.capacity()) + " size_approx=" + std::to_string(ring.size_approx());
    if (ring.mirrored()) s += " mirrored";
    if (ring.shared()) s += " shared";
    if (ring.closed()) s += " closed";
  });
  return s + ">";
}

std::unique_ptr<record_ring_py> make_record_ring(py::handle capacity, const std::string& producers, bool mirrored) {
  const std::size_t c = capacity_arg(capacity);
  const bool multi = multi_arg(producers);
  auto make = [&]<class Ring>() {
    return mirrored ? std::make_unique<Ring>(sluice::mirrored, c) : std::make_unique<Ring>(c);
  };
  if (multi) return std::make_unique<record_ring_py>(true, make.template operator()<mpsc_record_ring>());
  return std::make_unique<record_ring_py>(false, make.template operator()<spsc_record_ring>());
}

std::unique_ptr<record_ring_py> create_shared_record_ring(const std::string& name, py::handle capacity,
                                                          const std::string& producers, const std::string& role,
                                                          bool mirrored, unsigned permissions) {
  const std::size_t c = capacity_arg(capacity);
  const bool multi = multi_arg(producers);
  const sluice::shared_options options{.role = role_arg(role), .mirrored = mirrored, .permissions = permissions};
  auto make = [&]<class Ring>() {
    py::gil_scoped_release nogil;
    return std::make_unique<Ring>(sluice::create_shared, name, c, options);
  };
  if (multi) return std::make_unique<record_ring_py>(true, make.template operator()<mpsc_record_ring>());
  return std::make_unique<record_ring_py>(false, make.template operator()<spsc_record_ring>());
}

std::unique_ptr<record_ring_py> open_shared_record_ring(const std::string& name, const std::string& producers,
                                                        const std::string& role, py::handle attach_timeout) {
  const bool multi = multi_arg(producers);
  const sluice::shared_options options{.role = role_arg(role), .attach_timeout = attach_timeout_arg(attach_timeout)};
  auto make = [&]<class Ring>() {
    py::gil_scoped_release nogil;
    return std::make_unique<Ring>(sluice::open_shared, name, options);
  };
  if (multi) return std::make_unique<record_ring_py>(true, make.template operator()<mpsc_record_ring>());
  return std::make_unique<record_ring_py>(false, make.template operator()<spsc_record_ring>());
}

}  // namespace

void bind_record_rings(py::module_& m) {
  using namespace pybind11::literals;

  py::class_<record_grant_py>(m, "RecordGrant", py::is_final(), lends_buffers<record_grant_py>(), R"doc(
A producer's reservation of exactly len(g) payload bytes (8-aligned), from RecordRing.try_reserve().

The grant is a writable buffer of format 'B' (memoryview(g)[:] = b"..." works). commit() /
commit(k) publishes all / the first k bytes as one record; discard() (or dropping the grant)
withdraws it. While any view is alive, commit() and discard() raise BufferError and change
nothing. As a context manager it commits on normal exit and is withdrawn on an exception.)doc")
      .def("commit", &record_grant_py::commit, "k"_a = py::none(),
           "Publishes the first k bytes (all by default) as the record. True; False only if a shared ring's consumer "
           "reclaimed the reservation (recover()), when nothing is published.")
      .def("discard", &record_grant_py::discard, "Withdraws the reservation. Does nothing once ended.")
      .def("__len__", &record_grant_py::size)
      .def("__bool__", &record_grant_py::live)
      .def_property_readonly("live", &record_grant_py::live, "True until the grant is committed or discarded.")
      .def_property_readonly("exports", &record_grant_py::exports, "Views of the grant alive now.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](record_grant_py& g, py::handle type, py::handle, py::handle) {
             if (!g.live()) return false;
             if (type.is_none())
               g.commit(py::none());
             else if (g.exports() == 0)
               g.discard();
             return false;
           })
      .def("__repr__", &record_grant_py::repr);

  py::class_<record_view_py>(m, "_Record", py::is_final(), lends_buffers<record_view_py>(),
                             "One record of a RecordBatch: the object its memoryviews view (read-only, format 'B').")
      .def("__len__", &record_view_py::size);

  py::class_<record_iterator_py>(m, "_RecordIterator", py::is_final())
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &record_iterator_py::next);

  py::class_<record_batch_py>(m, "RecordBatch", py::is_final(), R"doc(
The records ready for the consumer, from RecordRing.try_read() or RecordRing.read().

Iterating it (as often as wanted) yields one read-only memoryview (format 'B') per record, in
place in the ring. len(batch) is the number of records. release() / release(k) frees all / the
first k records; dropping the batch frees nothing (the records are read again). While any
record's view is alive, release() raises BufferError and changes nothing. As a context manager it
releases on normal exit and frees nothing on an exception.)doc")
      .def("__iter__", [](py::object self) { return record_iterator_py(std::move(self)); })
      .def("release", &record_batch_py::release, "k"_a = py::none(),
           "Frees the first k records (all by default) and ends the batch.")
      .def("__len__", &record_batch_py::size)
      .def("__bool__", &record_batch_py::live)
      .def_property_readonly("live", &record_batch_py::live, "True until the batch is released.")
      .def_property_readonly("exports", &record_batch_py::exports, "Views of its records alive now.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](record_batch_py& b, py::handle type, py::handle, py::handle) {
             if (!b.live()) return false;
             if (type.is_none())
               b.release(py::none());
             else
               b.drop();
             return false;
           })
      .def("__repr__", &record_batch_py::repr);

  py::class_<record_ring_py>(m, "RecordRing", py::is_final(), R"doc(
RecordRing(capacity, producers="single", *, mirrored=False): framed, variable-length records of
bytes from one producer thread ("single": sluice::spsc_record_ring) or any number of them
("multi": sluice::mpsc_record_ring) to one consumer thread. `capacity` is in bytes (at least 32;
rounded down to a multiple of 8); max_record_size is the largest record.)doc")
      .def(py::init(&make_record_ring), "capacity"_a, "producers"_a = "single", py::kw_only(), "mirrored"_a = false)
      .def_static("create_shared", &create_shared_record_ring, "name"_a, "capacity"_a, "producers"_a = "single",
                  py::kw_only(), "role"_a = "consumer", "mirrored"_a = false, "permissions"_a = 0600,
                  "Creates the shared-memory record ring `name` (it must not exist yet) and attaches in `role`.")
      .def_static("open_shared", &open_shared_record_ring, "name"_a, "producers"_a = "single", py::kw_only(),
                  "role"_a = "consumer", "attach_timeout"_a = 1.0,
                  "Attaches to the shared-memory record ring `name` made by another process in `role`.")
      .def("try_reserve", &try_reserve, "n"_a,
           "A RecordGrant of exactly n bytes, or None if they are not free now (or the ring is closed).")
      .def("reserve", &reserve, "n"_a, "timeout"_a = py::none(),
           "As try_reserve(n), but waits (without the GIL) up to `timeout` seconds (None: until it fits, or the ring "
           "is closed). None on timeout, and at once once the ring is closed.")
      .def("try_read", &try_read, "A RecordBatch of every record ready, or None.")
      .def("read", &read, "timeout"_a = py::none(),
           "As try_read(), but waits (without the GIL) up to `timeout` seconds (None: for ever). None on timeout, "
           "and once the ring is closed and every record committed has been read.")
      .def("recover", &recover, "stalled_after"_a = py::none(),
           "Shared rings: reclaims reservations of dead producer processes (and, with stalled_after seconds, of hung "
           "ones) that hold up the ring; returns how many.")
      .def("close", [](record_ring_py& r) { r.visit([](auto& ring) { ring.close(); }); },
           "Closes the ring: reservations return None from now on, reads drain what was committed. Any thread.")
      .def_property_readonly("closed", [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.closed(); }); })
      .def_property_readonly("capacity",
                             [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.capacity(); }); })
      .def_property_readonly(
          "max_record_size", [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.max_record_size(); }); })
      .def("size_approx", [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.size_approx(); }); },
           "Bytes reserved and not yet released (headers and padding included); stale by nature.")
      .def("in_flight", [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.in_flight(); }); },
           "Reservations made and not yet committed or discarded.")
      .def("statistics", [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.statistics(); }); },
           "The ring's counters (RingStatistics): records, and bytes for high_water.")
      .def_property_readonly("producers", [](const record_ring_py& r) { return r.multi() ? "multi" : "single"; })
      .def_property_readonly("mirrored",
                             [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.mirrored(); }); })
      .def_property_readonly("shared",
                             [](const record_ring_py& r) { return r.visit([](const auto& ring) { return ring.shared(); }); })
      .def("__repr__", &ring_repr);
}

}  // namespace sluice::python
