"""sluice.Ring and sluice.ByteRing: grants, views, copies, waiting, and errors."""
import array
import time

import numpy as np
import pytest

import sluice
from conftest import DTYPES, pattern, read_all, snapshot, write_values


def make(dtype, capacity=16, as_numpy=False):
    return sluice.Ring(capacity, np.dtype(dtype) if as_numpy else dtype)


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize("as_numpy", [False, True], ids=["name", "numpy.dtype"])
def test_ring_of_each_dtype(dtype, as_numpy):
    r = make(dtype, 16, as_numpy)
    assert r.dtype == np.dtype(dtype)
    assert r.capacity == 16
    assert r.itemsize == np.dtype(dtype).itemsize
    assert np.dtype(r.format) == np.dtype(dtype)
    assert r.size_approx() == 0
    assert not r.closed


def test_ring_accepts_numpy_scalar_types():
    assert sluice.Ring(4, np.int16).dtype == np.dtype("int16")
    assert sluice.Ring(4, np.float64).dtype == np.dtype("float64")


@pytest.mark.parametrize("bad", ["complex64", "float16", "bool", "object", "U4", "bogus", np.dtype(">u4" if np.little_endian else "<u4")])
def test_unsupported_dtype_raises(bad):
    with pytest.raises((TypeError, ValueError)):
        sluice.Ring(8, bad)


def test_missing_dtype_raises():
    with pytest.raises(TypeError):
        sluice.Ring(8, None)


@pytest.mark.parametrize("capacity", ["8", 8.0, None, True, b"8"])
@pytest.mark.parametrize("cls", ["Ring", "ByteRing"])
def test_capacity_of_wrong_type_is_type_error(cls, capacity):
    with pytest.raises(TypeError):
        if cls == "Ring":
            sluice.Ring(capacity, "uint8")
        else:
            sluice.ByteRing(capacity)


@pytest.mark.parametrize("capacity", [0, -1, -(1 << 70)])
@pytest.mark.parametrize("cls", ["Ring", "ByteRing"])
def test_capacity_not_positive_is_value_error(cls, capacity):
    with pytest.raises(ValueError, match="capacity"):
        if cls == "Ring":
            sluice.Ring(capacity, "uint8")
        else:
            sluice.ByteRing(capacity)


def test_capacity_accepts_numpy_integer():
    assert sluice.Ring(np.int64(12), "int32").capacity == 12
    assert sluice.ByteRing(np.uint16(7)).capacity == 7


# ------------------------------------------------------------------ write grants and views


def test_write_grant_views(dtype):
    r = make(dtype, 16)
    g = r.try_reserve(5)
    assert isinstance(g, sluice.WriteGrant)
    assert len(g) == 5 and g.live
    mv = memoryview(g)
    assert not mv.readonly
    assert mv.itemsize == np.dtype(dtype).itemsize
    assert mv.nbytes == 5 * np.dtype(dtype).itemsize
    arr = np.asarray(g)
    assert arr.ndim == 1 and arr.shape == (5,)
    assert arr.dtype == np.dtype(dtype)
    assert arr.flags.writeable
    # Both views show the same memory: a write through one is seen through the other.
    other = np.asarray(mv)
    assert np.shares_memory(arr, other)
    values = pattern(dtype, 5)
    arr[:] = values
    assert np.array_equal(other, values)
    assert g.exports == 2
    mv.release()
    del arr, other
    assert g.exports == 0
    g.commit()
    assert not g.live and len(g) == 0


def test_write_then_read_back_shares_ring_memory(dtype):
    r = make(dtype, 8)
    for cycle in range(5):  # wraps several times
        n = 3 + cycle % 3
        values = pattern(dtype, n, start=cycle * 10)
        g = r.try_reserve(n)
        if g is None:  # not contiguous before the end: free everything and retry
            r.try_read().release()
            g = r.try_reserve(n)
        w = np.asarray(g)
        w_addr = w.__array_interface__["data"][0]
        w[:] = values
        del w
        g.commit()
        rg = r.try_read()
        assert len(rg) == n
        rv = np.asarray(rg)
        assert rv.dtype == np.dtype(dtype)
        assert np.array_equal(rv, values)
        # The read view shows the very slots the write view filled: no copy in between.
        assert rv.__array_interface__["data"][0] == w_addr
        assert not rv.flags.writeable
        del rv
        rg.release()
    assert r.size_approx() == 0


def test_views_of_the_same_slots_are_the_same_memory_after_wrap():
    # A write grant and a read grant of the same slots never coexist, so compare where their
    # views point: lap 2's write view (after the wrap) must cover exactly the memory lap 1's
    # read view showed, and lap 2's read view the memory its write view filled.
    r = sluice.Ring(4, "uint32")
    write_values(r, np.array([1, 2, 3, 4], np.uint32))
    rg = r.try_read()
    rv = np.asarray(rg)
    lap1 = (rv.__array_interface__["data"][0], rv.nbytes)
    assert np.array_equal(rv, [1, 2, 3, 4])
    del rv
    rg.release()
    g = r.try_reserve(4)
    w = np.asarray(g)
    assert (w.__array_interface__["data"][0], w.nbytes) == lap1
    w[:] = [5, 6, 7, 8]
    del w
    g.commit()
    rg = r.try_read()
    rv = np.asarray(rg)
    assert (rv.__array_interface__["data"][0], rv.nbytes) == lap1
    assert np.array_equal(rv, [5, 6, 7, 8])
    # Two views of one read grant share memory.
    rv2 = np.frombuffer(memoryview(rg), dtype=np.uint32)
    assert np.shares_memory(rv, rv2)
    del rv, rv2
    rg.release()


def test_byte_ring_views_take_bytes():
    r = sluice.ByteRing(16)
    assert r.format == "B" and r.itemsize == 1 and r.dtype == np.dtype("uint8")
    g = r.try_reserve(5)
    mv = memoryview(g)
    assert mv.format == "B" and not mv.readonly
    mv[:] = b"hello"
    mv[1:3] = bytearray(b"EL")
    mv.release()
    g.commit()
    rg = r.try_read()
    rmv = memoryview(rg)
    assert rmv.format == "B" and rmv.readonly
    assert bytes(rmv) == b"hELlo"
    assert np.asarray(rg).dtype == np.uint8
    rmv.release()
    rg.release()
    assert r.size_approx() == 0


def test_byte_ring_write_takes_any_buffer_as_bytes():
    r = sluice.ByteRing(64)
    a = array.array("I", [1, 2, 3])
    assert r.write(a) == 12
    assert r.write(np.array([1.5], np.float64)) == 8
    out = bytearray(20)
    assert r.read_into(out) == 20
    assert bytes(out) == a.tobytes() + np.array([1.5]).tobytes()


# ------------------------------------------------------------------ reservations


def test_try_reserve_none_when_no_room(dtype):
    r = make(dtype, 8)
    write_values(r, pattern(dtype, 6))
    before = snapshot(r)
    assert r.try_reserve(3) is None  # only 2 free
    assert r.size_approx() == before[0]
    assert r.statistics().committed == before[1]
    assert r.statistics().refused == before[3] + 1
    g = r.try_reserve(2)
    assert g is not None and len(g) == 2
    g.discard()
    assert r.size_approx() == 6


def test_try_reserve_zero_is_none():
    r = sluice.Ring(8, "int32")
    assert r.try_reserve(0) is None


def test_try_reserve_up_to():
    r = sluice.Ring(8, "int32")
    g = r.try_reserve_up_to(100)
    assert len(g) == 8
    g.discard()
    write_values(r, np.arange(5, dtype=np.int32))
    g = r.try_reserve_up_to(10)
    assert g is not None and len(g) == 3
    arr = np.asarray(g)
    assert arr.shape == (3,) and arr.dtype == np.int32
    arr[:] = [5, 6, 7]
    del arr
    g.commit()
    assert r.try_reserve_up_to(1) is None  # full
    assert np.array_equal(read_all(r), np.arange(8))


def test_try_reserve_up_to_contiguous_run_after_wrap():
    r = sluice.Ring(8, "int32")
    write_values(r, np.arange(6, dtype=np.int32))
    g = r.try_read()
    g.release(4)  # 4 and 5 remain in slots 4..5; free: slots 6..7 and 0..3
    g = r.try_reserve_up_to(8)
    assert g is not None and len(g) == 4  # the longest contiguous free run
    g.discard()
    g = r.try_reserve_up_to(2)
    assert len(g) == 2
    g.discard()


def test_commit_k_publishes_first_k(dtype):
    r = make(dtype, 16)
    g = r.try_reserve(6)
    values = pattern(dtype, 6)
    a = np.asarray(g)
    a[:] = values
    del a
    g.commit(4)
    assert r.size_approx() == 4
    assert r.statistics().committed == 4
    assert np.array_equal(read_all(r), values[:4])


def test_commit_zero_publishes_nothing():
    r = sluice.Ring(8, "uint8")
    g = r.try_reserve(3)
    g.commit(0)
    assert not g.live
    assert r.size_approx() == 0 and r.try_read() is None


def test_discard_and_dropping_publish_nothing():
    r = sluice.Ring(8, "uint8")
    g = r.try_reserve(3)
    g.discard()
    g.discard()  # idempotent
    assert not g.live and r.size_approx() == 0
    g = r.try_reserve(3)
    del g
    assert r.size_approx() == 0
    assert r.try_reserve(8) is not None  # the dropped grant freed its side


def test_context_manager_commits_on_normal_exit():
    r = sluice.Ring(8, "int64")
    with r.reserve(3) as g:
        np.asarray(g)[:] = [7, 8, 9]
    assert not g.live
    assert np.array_equal(read_all(r), [7, 8, 9])


def test_context_manager_publishes_nothing_on_exception():
    r = sluice.Ring(8, "int64")
    before = snapshot(r)
    with pytest.raises(KeyError):
        with r.reserve(3) as g:
            np.asarray(g)[:] = [1, 2, 3]
            raise KeyError("boom")
    assert not g.live
    assert snapshot(r) == before
    assert r.try_read() is None
    g2 = r.try_reserve(8)  # the next reservation succeeds, and gets the whole ring
    assert g2 is not None and len(g2) == 8
    g2.discard()


def test_try_reserve_after_commit_uses_freed_space():
    r = sluice.Ring(4, "uint8")
    for lap in range(10):
        write_values(r, np.full(4, lap, np.uint8))
        assert r.try_reserve(1) is None
        assert np.array_equal(read_all(r), np.full(4, lap))


# ------------------------------------------------------------------ read grants


def test_try_read_none_when_empty(dtype):
    r = make(dtype, 8)
    assert r.try_read() is None
    g = r.try_reserve(2)  # reserved, not committed: nothing to read
    assert r.try_read() is None
    g.commit()
    rg = r.try_read()
    assert isinstance(rg, sluice.ReadGrant) and len(rg) == 2
    rg.release()


def test_read_views_are_read_only(dtype):
    r = make(dtype, 8)
    values = pattern(dtype, 4)
    write_values(r, values)
    rg = r.try_read()
    mv = memoryview(rg)
    assert mv.readonly
    with pytest.raises(TypeError):
        mv[0] = mv[1]
    arr = np.asarray(rg)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = arr[1]
    with pytest.raises(ValueError):
        arr.setflags(write=True)
    assert np.array_equal(arr, values)  # unchanged
    mv.release()
    del arr
    rg.release()


def test_read_grant_refuses_writable_buffer_request():
    r = sluice.Ring(8, "uint8")
    r.push(1)
    rg = r.try_read()
    with pytest.raises((BufferError, TypeError)):
        r2 = sluice.Ring(8, "uint8")
        r2.read_into(rg)  # asks rg for a writable buffer
    assert rg.exports == 0
    rg.release()


def test_release_k_frees_first_k(dtype):
    r = make(dtype, 16)
    values = pattern(dtype, 10)
    write_values(r, values)
    rg = r.try_read()
    assert len(rg) == 10
    rg.release(3)
    assert not rg.live
    assert r.size_approx() == 7
    assert r.statistics().released == 3
    assert np.array_equal(read_all(r), values[3:])


def test_dropped_read_grant_frees_nothing():
    r = sluice.Ring(8, "int16")
    write_values(r, np.array([1, 2, 3], np.int16))
    rg = r.try_read()
    del rg
    assert r.size_approx() == 3
    assert np.array_equal(read_all(r), [1, 2, 3])


def test_read_grant_context_manager():
    r = sluice.Ring(8, "int16")
    write_values(r, np.array([1, 2, 3], np.int16))
    with pytest.raises(KeyError):
        with r.try_read() as rg:
            raise KeyError
    assert r.size_approx() == 3  # nothing freed on exception
    with r.try_read() as rg:
        assert np.array_equal(np.asarray(rg), [1, 2, 3])
    assert r.size_approx() == 0 and not rg.live


# ------------------------------------------------------------------ copies and single elements


@pytest.mark.parametrize("kind", ["numpy", "bytes", "bytearray", "array", "memoryview"])
def test_write_and_read_into_any_buffer(kind):
    r = sluice.Ring(16, "int32")
    values = np.arange(-3, 7, dtype=np.int32)
    src = {
        "numpy": values,
        "bytes": values.tobytes(),
        "bytearray": bytearray(values.tobytes()),
        "array": array.array("i", values.tolist()),
        "memoryview": memoryview(values),
    }[kind]
    assert r.write(src) == 10
    assert r.size_approx() == 10
    dst = {
        "numpy": np.zeros(10, np.int32),
        "bytes": bytearray(40),
        "bytearray": bytearray(40),
        "array": array.array("i", [0] * 10),
        "memoryview": memoryview(bytearray(40)),
    }[kind]
    assert r.read_into(dst) == 10
    assert np.array_equal(np.frombuffer(dst, dtype=np.int32), values)
    assert r.size_approx() == 0


def test_write_copies_only_what_fits_and_read_into_only_what_is_there(dtype):
    r = make(dtype, 8)
    values = pattern(dtype, 12)
    assert r.write(values) == 8
    assert r.write(values) == 0
    out = np.zeros(5, dtype)
    assert r.read_into(out) == 5
    assert np.array_equal(out, values[:5])
    out = np.zeros(10, dtype)
    assert r.read_into(out) == 3
    assert np.array_equal(out[:3], values[5:8])
    assert r.read_into(out) == 0


def test_write_wraps_around():
    r = sluice.Ring(8, "uint16")
    seq = 0
    got = []
    for _ in range(20):
        chunk = np.arange(seq, seq + 5, dtype=np.uint16)
        assert r.write(chunk) == 5
        seq += 5
        out = np.zeros(8, np.uint16)
        n = r.read_into(out)
        got.append(out[:n])
    assert np.array_equal(np.concatenate(got), np.arange(seq, dtype=np.uint16))


def test_write_refuses_foreign_element_type():
    r = sluice.Ring(8, "float32")
    before = snapshot(r)
    with pytest.raises(TypeError):
        r.write(np.zeros(2, np.float64))
    with pytest.raises(TypeError):
        r.write(np.zeros(2, np.int32))  # same size, other kind
    with pytest.raises(TypeError):
        r.write(np.zeros(2, np.dtype(">f4" if np.little_endian else "<f4")))
    with pytest.raises(ValueError):
        r.write(b"abc")  # not a whole number of elements
    with pytest.raises((TypeError, BufferError)):
        r.read_into(b"12345678")  # not writable
    assert snapshot(r) == before


def test_push_and_pop(dtype):
    r = make(dtype, 4)
    values = pattern(dtype, 4)
    for v in values:
        assert r.push(v.item()) is True
    assert r.push(values[0].item()) is False  # full
    assert r.statistics().refused >= 1
    got = [r.pop() for _ in range(4)]
    assert r.pop() is None
    assert np.array_equal(np.array(got, dtype=dtype), values)
    assert all(isinstance(v, float if np.dtype(dtype).kind == "f" else int) for v in got)


def test_push_out_of_range_or_wrong_type():
    r = sluice.Ring(4, "uint8")
    before = snapshot(r)
    with pytest.raises(ValueError):
        r.push(256)
    with pytest.raises(ValueError):
        r.push(-1)
    with pytest.raises(TypeError):
        r.push(1.5)
    with pytest.raises(TypeError):
        r.push("1")
    assert snapshot(r) == before
    r64 = sluice.Ring(4, "uint64")
    assert r64.push(2**64 - 1) and r64.pop() == 2**64 - 1
    with pytest.raises(ValueError):
        r64.push(2**64)
    i64 = sluice.Ring(4, "int64")
    assert i64.push(-(2**63)) and i64.pop() == -(2**63)
    with pytest.raises(ValueError):
        i64.push(2**63)


def test_byte_ring_push_pop():
    r = sluice.ByteRing(4)
    assert r.push(255) and r.push(0)
    assert r.pop() == 255 and r.pop() == 0 and r.pop() is None
    with pytest.raises(ValueError):
        r.push(256)


# ------------------------------------------------------------------ waiting and closing


def test_reserve_and_read_time_out():
    r = sluice.Ring(4, "uint8")
    t0 = time.monotonic()
    assert r.read(timeout=0.1) is None
    assert 0.09 <= time.monotonic() - t0 < 2.0
    write_values(r, np.arange(4, dtype=np.uint8))
    t0 = time.monotonic()
    assert r.reserve(1, timeout=0.1) is None
    assert 0.09 <= time.monotonic() - t0 < 2.0
    assert r.size_approx() == 4
    assert r.reserve(1, timeout=0) is None
    g = r.read(timeout=0.1)
    assert g is not None and len(g) == 4
    g.release()
    g = r.reserve(4, timeout=None)
    assert g is not None and len(g) == 4
    g.discard()


def test_reserve_returns_none_at_once_after_close():
    r = sluice.Ring(8, "int32")
    r.close()
    assert r.closed
    t0 = time.monotonic()
    assert r.reserve(1) is None  # no timeout: would wait for ever if close did not end it
    assert r.reserve(1, timeout=10) is None
    assert r.try_reserve(1) is None
    assert r.try_reserve_up_to(1) is None
    assert r.push(1) is False
    assert r.write(np.arange(3, dtype=np.int32)) == 0
    assert time.monotonic() - t0 < 1.0
    assert r.size_approx() == 0


def test_read_drains_then_none_after_close():
    r = sluice.Ring(8, "int32")
    write_values(r, np.arange(6, dtype=np.int32))
    g = r.try_read()
    g.release(4)
    write_values(r, np.arange(6, 10, dtype=np.int32))  # wraps: two contiguous parts
    r.close()
    got = []
    t0 = time.monotonic()
    while True:
        g = r.read()  # no timeout: must not block once closed and drained
        if g is None:
            break
        got.append(np.array(np.asarray(g)))
        g.release()
    assert time.monotonic() - t0 < 1.0
    assert np.array_equal(np.concatenate(got), np.arange(4, 10))
    assert r.read(timeout=5) is None
    assert r.try_read() is None


def test_grant_from_before_close_still_commits():
    r = sluice.Ring(8, "int32")
    g = r.try_reserve(2)
    r.close()
    np.asarray(g)[:] = [4, 5]
    g.commit()
    assert np.array_equal(read_all(r), [4, 5])


@pytest.mark.parametrize("timeout", ["1", [1], object()])
def test_timeout_of_wrong_type(timeout):
    r = sluice.Ring(8, "int32")
    with pytest.raises(TypeError):
        r.read(timeout=timeout)
    with pytest.raises(TypeError):
        r.reserve(1, timeout=timeout)
    assert r.try_reserve(1) is not None  # nothing left outstanding


# ------------------------------------------------------------------ views keep the loan


def test_commit_refused_while_views_alive(dtype):
    r = make(dtype, 8)
    g = r.try_reserve(4)
    arr = np.asarray(g)
    arr[:] = pattern(dtype, 4)
    mv = memoryview(g)
    before = snapshot(r)
    for call in (g.commit, lambda: g.commit(2), g.discard):
        with pytest.raises(BufferError, match="view"):
            call()
        assert g.live and len(g) == 4
        assert snapshot(r) == before
    del arr
    with pytest.raises(BufferError, match="1 view"):
        g.commit()
    assert g.live and snapshot(r) == before
    mv.release()
    g.commit()
    assert not g.live
    assert r.size_approx() == 4


def test_release_refused_while_views_alive(dtype):
    r = make(dtype, 8)
    values = pattern(dtype, 4)
    write_values(r, values)
    rg = r.try_read()
    arr = np.asarray(rg)
    before = snapshot(r)
    for call in (rg.release, lambda: rg.release(1)):
        with pytest.raises(BufferError, match="view"):
            call()
        assert rg.live and len(rg) == 4
        assert snapshot(r) == before
    assert np.array_equal(arr, values)
    del arr
    rg.release(1)
    assert r.size_approx() == 3


def test_view_derived_from_view_keeps_loan():
    r = sluice.Ring(8, "int16")
    g = r.try_reserve(4)
    arr = np.asarray(g)
    sub = arr[1:3]  # keeps arr's buffer alive
    del arr
    with pytest.raises(BufferError):
        g.commit()
    del sub
    g.commit()


def test_no_views_of_ended_grant():
    r = sluice.Ring(8, "int16")
    g = r.try_reserve(2)
    g.commit()
    with pytest.raises(BufferError):
        memoryview(g)
    with pytest.raises((BufferError, ValueError, TypeError)):
        np.frombuffer(g, dtype=np.int16)
    with pytest.raises(ValueError):
        g.commit()
    rg = r.try_read()
    rg.release()
    with pytest.raises(BufferError):
        memoryview(rg)
    with pytest.raises(ValueError):
        rg.release()


def test_context_manager_exception_with_view_alive_keeps_grant():
    r = sluice.Ring(8, "int16")
    with pytest.raises(KeyError):
        with r.try_reserve(2) as g:
            arr = np.asarray(g)
            raise KeyError
    assert g.live and r.size_approx() == 0
    del arr
    g.discard()
    assert r.try_reserve(8) is not None


# ------------------------------------------------------------------ errors leave the ring unchanged


def test_reservation_beyond_capacity(dtype):
    r = make(dtype, 8)
    write_values(r, pattern(dtype, 2))
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"capacity \(8\)"):
        r.try_reserve(9)
    with pytest.raises(ValueError, match=r"capacity \(8\)"):
        r.reserve(9, timeout=0.01)
    with pytest.raises(ValueError, match="capacity"):
        r.try_reserve(2**70)
    assert snapshot(r) == before
    assert r.try_reserve(6) is not None


def test_commit_and_release_past_the_grant(dtype):
    r = make(dtype, 8)
    g = r.try_reserve(3)
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"commit\(4\).*\(3\)"):
        g.commit(4)
    assert g.live and len(g) == 3 and snapshot(r) == before
    with pytest.raises(ValueError):
        g.commit(-1)
    with pytest.raises(TypeError):
        g.commit(1.0)
    assert g.live and snapshot(r) == before
    g.commit(3)
    rg = r.try_read()
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"release\(5\).*\(3\)"):
        rg.release(5)
    assert rg.live and len(rg) == 3 and snapshot(r) == before
    rg.release(3)
    assert r.size_approx() == 0


def test_second_write_grant_is_value_error():
    r = sluice.Ring(8, "uint32")
    g = r.try_reserve(2)
    before = snapshot(r)
    for call in (lambda: r.try_reserve(1), lambda: r.try_reserve_up_to(1), lambda: r.reserve(1, timeout=0),
                 lambda: r.push(1), lambda: r.write(b"\0\0\0\0")):
        with pytest.raises(ValueError, match="at most one"):
            call()
        assert snapshot(r) == before and g.live
    g.commit()
    assert r.try_reserve(1) is not None


def test_second_read_grant_is_value_error():
    r = sluice.Ring(8, "uint32")
    write_values(r, np.arange(4, dtype=np.uint32))
    rg = r.try_read()
    before = snapshot(r)
    for call in (r.try_read, lambda: r.read(timeout=0), r.pop, lambda: r.read_into(bytearray(8))):
        with pytest.raises(ValueError, match="at most one"):
            call()
        assert snapshot(r) == before and rg.live
    rg.release(1)
    assert r.pop() == 1


def test_repr_and_properties():
    r = sluice.Ring(8, "float32")
    assert "float32" in repr(r) and "capacity=8" in repr(r)
    g = r.try_reserve(2)
    assert "live" in repr(g)
    g.commit()
    assert "committed" in repr(g)
    assert "ByteRing" in repr(sluice.ByteRing(3))
    assert isinstance(sluice.ByteRing(3), sluice.Ring)


# ------------------------------------------------------------------ lifetimes


def test_view_keeps_a_dropped_grant_outstanding():
    r = sluice.Ring(8, "int32")
    a = np.asarray(r.try_reserve(4))  # the grant object lives on inside the view
    a[:] = 5
    with pytest.raises(ValueError, match="outstanding"):
        r.try_reserve(1)
    del a  # the grant dies: withdrawn, nothing published
    assert r.size_approx() == 0 and r.try_read() is None
    g = r.try_reserve(8)
    assert g is not None
    g.discard()


def test_grant_keeps_its_ring_alive():
    import gc
    import sys

    r = sluice.Ring(8, "int32")
    refs = sys.getrefcount(r)
    g = r.try_reserve(2)
    assert sys.getrefcount(r) == refs + 1  # the grant holds its ring
    mv = memoryview(g)
    del g
    assert sys.getrefcount(r) == refs + 1  # ... and the view its grant
    mv.release()
    assert sys.getrefcount(r) == refs
    g = r.try_reserve(2)
    del r
    gc.collect()
    np.asarray(g)[:] = [1, 2]  # the ring's memory is still there
    g.commit()


def test_large_copies():
    # Copies of 64 KiB or more run without the GIL; results must be the same.
    r = sluice.ByteRing(1 << 20)
    src = np.random.default_rng(1).integers(0, 256, size=300_000, dtype=np.uint8)
    assert r.write(src) == 300_000
    assert r.write(bytes(800_000)) == (1 << 20) - 300_000
    out = np.zeros(400_000, np.uint8)
    assert r.read_into(out) == 400_000
    assert np.array_equal(out[:300_000], src) and not out[300_000:].any()
    r2 = sluice.Ring(100_000, "float64")
    values = np.linspace(0, 1, 100_000)
    assert r2.write(values) == 100_000
    out = np.empty(100_000)
    assert r2.read_into(out) == 100_000
    assert np.array_equal(out, values)


def test_sequence_producer_needs_an_element_ring():
    with pytest.raises(TypeError):
        sluice._SequenceProducer(sluice.RecordRing(64), 5)
    with pytest.raises(TypeError):
        sluice._SequenceProducer(object(), 5)
    with pytest.raises(ValueError):
        sluice._SequenceProducer(sluice.Ring(8, "uint8"), 5, max_chunk=0)
    with pytest.raises(ValueError):
        sluice._SequenceProducer(sluice.Ring(8, "uint8"), -1)


# ------------------------------------------------------------------ shared memory, in one process


def test_shared_ring_between_two_attachments():
    import os

    name = f"/sluice-pytest-ring-{os.getpid()}"
    sluice.remove_shared(name)
    try:
        consumer = sluice.Ring.create_shared(name, 64, "int32", role="consumer")
        producer = sluice.Ring.open_shared(name, "int32", role="producer")
        assert consumer.shared and producer.shared and producer.capacity == 64
        g = producer.try_reserve(3)
        np.asarray(g)[:] = [7, -8, 9]
        g.commit()
        rg = consumer.try_read()
        assert np.array_equal(np.asarray(rg), [7, -8, 9])
        rg.release()
        assert producer.size_approx() == 0
        with pytest.raises(Exception):
            consumer.try_reserve(1)  # attached as the consumer
        with pytest.raises(Exception):
            sluice.Ring.create_shared(name, 64, "int32")  # exists already
    finally:
        assert sluice.remove_shared(name) is True
    assert sluice.remove_shared(name) is False


def test_grant_truthiness_and_exports():
    r = sluice.Ring(8, "uint8")
    g = r.try_reserve(2)
    assert bool(g) and g.exports == 0
    mv = memoryview(g)
    mv2 = memoryview(g)
    assert g.exports == 2 and "2 views" in repr(g)
    mv.release()
    mv2.release()
    assert g.exports == 0
    g.commit()
    assert not bool(g)
