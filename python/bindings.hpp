// The parts of the module, each binding its classes into `m`.
#pragma once

#include <pybind11/pybind11.h>

namespace sluice::python {

void bind_element_rings(pybind11::module_& m);  // Ring, ByteRing, WriteGrant, ReadGrant, _SequenceProducer
void bind_record_rings(pybind11::module_& m);   // RecordRing, RecordGrant, RecordBatch

}  // namespace sluice::python
