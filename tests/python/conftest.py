"""Shared helpers and fixtures of the sluice Python tests.

Run with the build's module on the path, e.g.
    PYTHONPATH=build/dev/python python3 -m pytest -q tests/python
"""
import threading

import numpy as np
import pytest

import sluice

# Every dtype sluice.Ring supports.
DTYPES = [
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float32", "float64",
]


def pattern(dtype, n, start=0):
    """n distinct-ish values of `dtype` starting at `start` (wrapping within the type's range)."""
    dt = np.dtype(dtype)
    values = np.arange(start, start + n, dtype=np.int64)
    if dt.kind == "f":
        return (values * 0.5 - 3.25).astype(dt)
    info = np.iinfo(dt)
    # Spread over the whole range (negative values for signed types), deterministic.
    span = int(info.max) - int(info.min) + 1
    values = (values * 37 + 11) % min(span, 1 << 62) + int(info.min)
    return values.astype(dt)


def snapshot(ring):
    """What a failed call must leave unchanged: size and every counter."""
    s = ring.statistics()
    return (ring.size_approx(), s.committed, s.released, s.refused, s.discarded)


def write_values(ring, values):
    """Reserves len(values), writes them through a NumPy view and commits."""
    g = ring.try_reserve(len(values))
    assert g is not None
    arr = np.asarray(g)
    arr[:] = values
    del arr
    g.commit()


def read_all(ring):
    """Drains everything committed (several grants if it wraps), as one array."""
    parts = []
    while True:
        g = ring.try_read()
        if g is None:
            break
        parts.append(np.array(np.asarray(g)))  # a copy: the view must go before release()
        g.release()
    if not parts:
        return np.empty(0, dtype=ring.dtype)
    return np.concatenate(parts)


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


class Runner:
    """Starts threads that record their exception; join_all() re-raises the first one."""

    def __init__(self):
        self.threads = []
        self.errors = []

    def start(self, target, *args):
        def run():
            try:
                target(*args)
            except BaseException as e:  # noqa: B036 - reported in the test thread
                self.errors.append(e)

        t = threading.Thread(target=run, daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def join_all(self, timeout=30.0):
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a test thread did not finish"
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def runner():
    r = Runner()
    yield r
    for t in r.threads:
        t.join(5.0)
