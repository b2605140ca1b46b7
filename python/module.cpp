// The Python module `sluice`: the rings with zero-copy, memory-safe views of their regions. See
// docs/python.md for the lifetime rule of views and how the GIL is handled.
#include "bindings.hpp"

#include <sluice/shared_memory.hpp>
#include <sluice/statistics.hpp>
#include <sluice/version.hpp>

#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;
using namespace pybind11::literals;

PYBIND11_MODULE(sluice, m) {
  m.doc() = R"doc(sluice: lock-free producer-consumer ring buffers whose regions are lent to Python
as zero-copy views (memoryview, numpy.asarray). Ring(capacity, dtype) and ByteRing(capacity) hold
elements (one producer, one consumer); RecordRing(capacity, producers=...) holds variable-length
records from one or many producers. While a view of a region is alive, the calls that give the
region back (commit, release, discard) raise BufferError.)doc";
  m.attr("__version__") = sluice::version();

  py::class_<sluice::ring_statistics>(m, "Statistics", py::is_final(), R"doc(
A snapshot of a ring's counters (ring.statistics()): committed, released, refused (reservations
that found no room: a producer's dropped count), discarded, high_water, lost, wakeups.)doc")
      .def_readonly("committed", &sluice::ring_statistics::committed, "Elements or records published.")
      .def_readonly("released", &sluice::ring_statistics::released, "Elements or records the consumer freed.")
      .def_readonly("refused", &sluice::ring_statistics::refused, "Reservations that found no room.")
      .def_readonly("discarded", &sluice::ring_statistics::discarded, "Record reservations withdrawn.")
      .def_readonly("high_water", &sluice::ring_statistics::high_water,
                    "The most the consumer ever found waiting at once (elements, or bytes for records).")
      .def_readonly("lost", &sluice::ring_statistics::lost, "Shared record rings: reservations of dead producers reclaimed.")
      .def_readonly("wakeups", &sluice::ring_statistics::wakeups, "Wake-ups issued to sleeping threads.")
      .def("__repr__", [](const sluice::ring_statistics& s) {
        return "Statistics(committed=" + std::to_string(s.committed) + ", released=" + std::to_string(s.released) +
               ", refused=" + std::to_string(s.refused) + ", discarded=" + std::to_string(s.discarded) +
               ", high_water=" + std::to_string(s.high_water) + ", lost=" + std::to_string(s.lost) +
               ", wakeups=" + std::to_string(s.wakeups) + ")";
      });

  m.def(
      "remove_shared", [](const std::string& name) { return sluice::remove_shared(name); }, "name"_a,
      "Removes the shared-memory ring `name` (processes attached keep it until they detach); True if it existed.");

  sluice::python::bind_element_rings(m);
  sluice::python::bind_record_rings(m);
}
