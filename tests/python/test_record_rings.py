"""sluice.RecordRing: record grants, batches, views, waiting, and errors."""
import time

import numpy as np
import pytest

import sluice

PRODUCERS = ["single", "multi"]


@pytest.fixture(params=PRODUCERS)
def producers(request):
    return request.param


def snapshot(ring):
    s = ring.statistics()
    return (ring.size_approx(), ring.in_flight(), s.committed, s.released, s.discarded)


def put(ring, payload):
    g = ring.try_reserve(len(payload))
    assert g is not None
    mv = memoryview(g)
    mv[:] = payload
    mv.release()
    assert g.commit() is True
    return g


def records(batch):
    return [bytes(v) for v in batch]


# ------------------------------------------------------------------ construction


def test_construction(producers):
    r = sluice.RecordRing(256, producers=producers)
    assert r.producers == producers
    assert r.capacity == 256
    assert 0 < r.max_record_size < 256
    assert r.size_approx() == 0 and r.in_flight() == 0 and not r.closed
    assert sluice.RecordRing(256).producers == "single"
    assert sluice.RecordRing(256, producers).producers == producers


@pytest.mark.parametrize("capacity", ["64", 64.0, None, True])
def test_capacity_of_wrong_type(capacity):
    with pytest.raises(TypeError):
        sluice.RecordRing(capacity)


@pytest.mark.parametrize("capacity", [0, -64, 16])
def test_capacity_too_small(capacity):
    with pytest.raises(ValueError, match="capacity"):
        sluice.RecordRing(capacity)


def test_producers_argument():
    with pytest.raises(ValueError, match="producers"):
        sluice.RecordRing(64, producers="many")


# ------------------------------------------------------------------ grants and batches


def test_reserve_commit_read_release(producers):
    r = sluice.RecordRing(256, producers=producers)
    assert r.try_read() is None
    g = r.try_reserve(5)
    assert isinstance(g, sluice.RecordGrant) and len(g) == 5 and g.live
    mv = memoryview(g)
    assert mv.format == "B" and not mv.readonly and mv.nbytes == 5
    mv[:] = b"hello"
    assert np.asarray(g).dtype == np.uint8
    mv.release()
    assert r.try_read() is None  # reserved, not committed
    assert r.in_flight() == 1
    assert g.commit() is True
    assert not g.live and len(g) == 0
    put(r, b"")
    put(r, b"world!!!!")
    batch = r.try_read()
    assert isinstance(batch, sluice.RecordBatch)
    assert len(batch) == 3
    first = records(batch)
    second = records(batch)  # a batch iterates as often as wanted
    assert first == second == [b"hello", b"", b"world!!!!"]
    views = list(batch)
    assert all(isinstance(v, memoryview) and v.readonly and v.format == "B" for v in views)
    for v in views:
        v.release()
    batch.release()
    assert not batch.live
    assert r.try_read() is None
    assert r.size_approx() == 0
    s = r.statistics()
    assert s.committed == 3 and s.released == 3


def test_record_views_are_read_only_and_in_place(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(8)
    w = np.asarray(g)
    w[:] = np.arange(8, dtype=np.uint8)
    w_addr = w.__array_interface__["data"][0]
    del w
    g.commit()
    batch = r.try_read()
    (v,) = list(batch)
    with pytest.raises(TypeError):
        v[0] = 1
    arr = np.asarray(v)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = 1
    assert arr.__array_interface__["data"][0] == w_addr  # the record is read in place
    assert np.array_equal(arr, np.arange(8))
    del arr
    v.release()
    batch.release()


def test_commit_k_publishes_first_k_bytes(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(10)
    memoryview(g)[:] = b"0123456789"
    g.commit(4)
    batch = r.try_read()
    assert records(batch) == [b"0123"]
    batch.release()


def test_discard_withdraws(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(4)
    memoryview(g)[:] = b"gone"
    g.discard()
    g.discard()  # idempotent
    assert not g.live
    put(r, b"kept")
    batch = r.try_read()
    assert records(batch) == [b"kept"]
    batch.release()
    assert r.statistics().discarded == 1
    with pytest.raises(ValueError):
        g.commit()


def test_dropped_grant_is_withdrawn(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(4)
    del g
    assert r.in_flight() == 0
    put(r, b"next")
    batch = r.try_read()
    assert records(batch) == [b"next"]
    batch.release()


def test_uncommitted_reservation_holds_later_records(producers):
    r = sluice.RecordRing(256, producers=producers)
    first = r.try_reserve(3)
    put(r, b"later")
    assert r.try_read() is None  # records come out in reservation order
    memoryview(first)[:] = b"1st"
    first.commit()
    batch = r.try_read()
    assert records(batch) == [b"1st", b"later"]
    batch.release()


def test_release_k_frees_first_k_records(producers):
    r = sluice.RecordRing(512, producers=producers)
    for i in range(5):
        put(r, bytes([i]) * (i + 1))
    batch = r.try_read()
    assert len(batch) == 5
    batch.release(2)
    assert r.statistics().released == 2
    batch = r.try_read()
    assert records(batch) == [bytes([i]) * (i + 1) for i in range(2, 5)]
    batch.release()


def test_dropped_batch_frees_nothing(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"again")
    batch = r.try_read()
    del batch
    batch = r.try_read()
    assert records(batch) == [b"again"]
    batch.release()


def fill(ring):
    """Reserves records of max_record_size until one is refused; returns the grants."""
    grants = []
    while True:
        g = ring.try_reserve(ring.max_record_size)
        if g is None:
            return grants
        grants.append(g)
        assert len(grants) <= ring.capacity // 8


def test_try_reserve_none_when_full(producers):
    r = sluice.RecordRing(64, producers=producers)
    grants = fill(r)
    assert grants and r.size_approx() == r.capacity
    assert r.statistics().refused == 1
    before = snapshot(r)
    assert r.try_reserve(1) is None
    assert snapshot(r) == before
    assert r.statistics().refused == 2
    for g in grants:
        g.commit()
    batch = r.try_read()
    assert len(batch) == len(grants)
    batch.release()
    assert r.try_reserve(r.max_record_size) is not None


def test_ring_wraps(producers):
    r = sluice.RecordRing(128, producers=producers)
    got = []
    expected = []
    for i in range(200):
        payload = bytes([i % 256]) * (1 + i % 20)
        expected.append(payload)
        put(r, payload)
        batch = r.try_read()
        got.extend(records(batch))
        batch.release()
    assert got == expected
    assert r.size_approx() == 0


def test_context_managers(producers):
    r = sluice.RecordRing(256, producers=producers)
    with r.try_reserve(3) as g:
        memoryview(g)[:] = b"abc"
    assert not g.live
    with pytest.raises(KeyError):
        with r.try_reserve(3) as g:
            memoryview(g)[:] = b"xyz"
            raise KeyError
    assert not g.live and r.in_flight() == 0
    with pytest.raises(KeyError):
        with r.try_read() as batch:
            raise KeyError
    with r.try_read() as batch:
        assert records(batch) == [b"abc"]
    assert not batch.live
    assert r.try_read() is None


# ------------------------------------------------------------------ views keep the loan


def test_grant_commit_and_discard_refused_while_views_alive(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(6)
    mv = memoryview(g)
    arr = np.asarray(g)
    mv[:] = b"abcdef"
    before = snapshot(r)
    for call in (g.commit, lambda: g.commit(2), g.discard):
        with pytest.raises(BufferError, match="view"):
            call()
        assert g.live and len(g) == 6
        assert snapshot(r) == before
    del arr
    with pytest.raises(BufferError):
        g.commit()
    mv.release()
    assert g.commit()
    batch = r.try_read()
    assert records(batch) == [b"abcdef"]
    batch.release()


def test_batch_release_refused_while_record_view_alive(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"one")
    put(r, b"two")
    batch = r.try_read()
    views = list(batch)
    arr = np.asarray(views[1])
    del views
    before = snapshot(r)
    for call in (batch.release, lambda: batch.release(1)):
        with pytest.raises(BufferError, match="view"):
            call()
        assert batch.live and len(batch) == 2
        assert snapshot(r) == before
    assert bytes(arr) == b"two"
    del arr
    batch.release()
    assert r.size_approx() == 0


def test_memoryview_release_unblocks_batch(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"x")
    batch = r.try_read()
    (v,) = list(batch)
    with pytest.raises(BufferError):
        batch.release()
    v.release()
    batch.release()


def test_no_views_of_ended_loans(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = put(r, b"abc")
    with pytest.raises(BufferError):
        memoryview(g)
    batch = r.try_read()
    it = iter(batch)
    batch.release()
    with pytest.raises(ValueError):
        next(it)


# ------------------------------------------------------------------ errors leave the ring unchanged


def test_record_larger_than_max(producers):
    r = sluice.RecordRing(64, producers=producers)
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"max_record_size\(\) \(%d\)" % r.max_record_size):
        r.try_reserve(r.max_record_size + 1)
    with pytest.raises(ValueError, match="max_record_size"):
        r.reserve(r.max_record_size + 1, timeout=0.01)
    assert snapshot(r) == before
    g = r.try_reserve(r.max_record_size)
    assert g is not None
    g.discard()


def test_commit_past_the_grant(producers):
    r = sluice.RecordRing(256, producers=producers)
    g = r.try_reserve(5)
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"commit\(6\).*\(5\)"):
        g.commit(6)
    assert g.live and len(g) == 5 and snapshot(r) == before
    with pytest.raises(ValueError):
        g.commit(-1)
    assert g.live
    g.commit(5)


def test_release_past_the_batch(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"a")
    put(r, b"b")
    batch = r.try_read()
    before = snapshot(r)
    with pytest.raises(ValueError, match=r"release\(3\).*\(2\)"):
        batch.release(3)
    assert batch.live and len(batch) == 2 and snapshot(r) == before
    batch.release(2)
    assert r.size_approx() == 0


def test_second_batch_is_value_error(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"a")
    batch = r.try_read()
    before = snapshot(r)
    with pytest.raises(ValueError, match="at most one"):
        r.try_read()
    with pytest.raises(ValueError, match="at most one"):
        r.read(timeout=0)
    assert batch.live and snapshot(r) == before
    batch.release()
    assert r.try_read() is None


def test_one_producer_may_hold_several_grants():
    # Documented for both rings: a producer may hold several grants, committed in any order.
    r = sluice.RecordRing(256, producers="single")
    a = r.try_reserve(1)
    b = r.try_reserve(1)
    memoryview(b)[:] = b"b"
    b.commit()
    memoryview(a)[:] = b"a"
    a.commit()
    batch = r.try_read()
    assert records(batch) == [b"a", b"b"]
    batch.release()


# ------------------------------------------------------------------ waiting and closing


def test_read_and_reserve_time_out(producers):
    r = sluice.RecordRing(64, producers=producers)
    t0 = time.monotonic()
    assert r.read(timeout=0.1) is None
    assert 0.09 <= time.monotonic() - t0 < 2.0
    grants = fill(r)
    t0 = time.monotonic()
    assert r.reserve(r.max_record_size, timeout=0.1) is None
    assert 0.09 <= time.monotonic() - t0 < 2.0
    for g in grants:
        g.commit()
    batch = r.read(timeout=1)
    assert batch is not None and len(batch) == len(grants)
    batch.release()


def test_close_drains_then_none(producers):
    r = sluice.RecordRing(256, producers=producers)
    put(r, b"a")
    put(r, b"bc")
    r.close()
    assert r.closed
    t0 = time.monotonic()
    assert r.reserve(1) is None
    assert r.try_reserve(1) is None
    batch = r.read()
    assert records(batch) == [b"a", b"bc"]
    batch.release()
    assert r.read() is None
    assert r.try_read() is None
    assert time.monotonic() - t0 < 1.0


def test_repr(producers):
    r = sluice.RecordRing(128, producers=producers)
    assert producers in repr(r)
    g = r.try_reserve(3)
    assert "live" in repr(g)
    g.commit()
    batch = r.try_read()
    assert "1 record" in repr(batch)
    batch.release()


def test_shared_record_ring_between_two_attachments(producers):
    import os

    name = f"/sluice-pytest-records-{os.getpid()}-{producers}"
    sluice.remove_shared(name)
    try:
        consumer = sluice.RecordRing.create_shared(name, 256, producers, role="consumer")
        producer = sluice.RecordRing.open_shared(name, producers, role="producer")
        assert consumer.shared and producer.producers == producers
        put(producer, b"across")
        batch = consumer.try_read()
        assert records(batch) == [b"across"]
        batch.release()
        assert consumer.recover() == 0
    finally:
        assert sluice.remove_shared(name) is True
