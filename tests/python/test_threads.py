"""Threads: the single-producer/single-consumer rule across Python threads, streaming between a
Python producer and consumer, a C++ producer feeding a Python consumer with the GIL released,
and no leaks over many grants."""
import gc
import resource
import sys
import threading
import time

import numpy as np
import pytest

import sluice


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.001)


def raises_value_error(call):
    try:
        result = call()
    except ValueError:
        return True
    # Whatever the call got is given back, so that the probe changes nothing.
    if isinstance(result, (sluice.WriteGrant, sluice.ReadGrant)):
        raise AssertionError("the probe got a grant: the other thread is not waiting yet")
    return False


class Ticker:
    """A Python thread counting as fast as it can, stamping the time every 100 counts: it only
    advances while it holds the GIL, so stamps inside another thread's blocking call prove that
    call released the GIL."""

    def __init__(self):
        self.stop = False
        self.stamps = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        stamps = self.stamps
        while not self.stop:
            n += 1
            if n % 100 == 0:
                stamps.append(time.monotonic())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(10)

    def check_ran_during(self, start, end, what):
        assert end - start > 0.2, f"{what}: the window is too short to judge"
        inside = [t for t in self.stamps if start < t < end]
        assert len(inside) >= 10, f"{what}: another Python thread was stalled (GIL held?)"
        # Spread over the window, not only at its edges: most 100 ms bins saw the ticker.
        bins = int((end - start) / 0.1)
        seen = {int((t - start) / 0.1) for t in inside}
        assert len(seen & set(range(bins))) >= bins // 2, f"{what}: the ticker ran only now and then"


# ------------------------------------------------------------------ the SPSC rule across threads


def test_second_write_grant_from_another_thread(runner):
    r = sluice.Ring(16, "uint32")
    g = r.try_reserve(4)
    seen = {}

    def other():
        for name, call in [("try_reserve", lambda: r.try_reserve(1)),
                           ("reserve", lambda: r.reserve(1, timeout=0.5)),
                           ("push", lambda: r.push(7)),
                           ("write", lambda: r.write(np.zeros(2, np.uint32)))]:
            try:
                call()
                seen[name] = None
            except Exception as e:  # noqa: BLE001 - the test checks the type
                seen[name] = type(e)

    runner.start(other)
    runner.join_all()
    assert seen == dict.fromkeys(["try_reserve", "reserve", "push", "write"], ValueError)
    assert g.live and r.size_approx() == 0 and r.statistics().committed == 0
    np.asarray(g)[:] = [1, 2, 3, 4]
    g.commit()
    assert r.size_approx() == 4


def test_second_read_grant_from_another_thread(runner):
    r = sluice.Ring(16, "uint32")
    r.write(np.arange(4, dtype=np.uint32))
    rg = r.try_read()
    seen = {}

    def other():
        for name, call in [("try_read", r.try_read), ("read", lambda: r.read(timeout=0.5)),
                           ("pop", r.pop), ("read_into", lambda: r.read_into(np.zeros(2, np.uint32)))]:
            try:
                call()
                seen[name] = None
            except Exception as e:  # noqa: BLE001
                seen[name] = type(e)

    runner.start(other)
    runner.join_all()
    assert seen == dict.fromkeys(["try_read", "read", "pop", "read_into"], ValueError)
    assert rg.live and r.size_approx() == 4 and r.statistics().released == 0
    rg.release()


def test_calls_while_another_thread_waits_in_reserve(runner):
    r = sluice.Ring(4, "uint32")
    r.write(np.arange(4, dtype=np.uint32))  # full
    got = {}

    def producer():
        g = r.reserve(2, timeout=10)  # waits (without the GIL) for room
        got["len"] = len(g)
        np.asarray(g)[:] = [40, 41]
        g.commit()

    runner.start(producer)
    wait_until(lambda: raises_value_error(lambda: r.try_reserve(1)))
    for call in (lambda: r.try_reserve(1), lambda: r.try_reserve_up_to(1), lambda: r.reserve(1, timeout=0),
                 lambda: r.push(1), lambda: r.write(np.zeros(1, np.uint32))):
        with pytest.raises(ValueError, match="another thread"):
            call()
    assert r.size_approx() == 4 and r.statistics().committed == 4
    # The consumer side is free meanwhile: freeing room wakes the waiting producer.
    rg = r.try_read()
    assert np.array_equal(np.asarray(rg), [0, 1, 2, 3])
    rg.release()
    runner.join_all()
    assert got["len"] == 2
    assert r.pop() == 40 and r.pop() == 41
    assert r.push(5) is True  # the producer side is free again


def test_calls_while_another_thread_waits_in_read(runner):
    r = sluice.Ring(8, "int64")
    got = []

    def consumer():
        g = r.read(timeout=10)
        got.extend(np.asarray(g).tolist())
        g.release()

    runner.start(consumer)
    wait_until(lambda: raises_value_error(r.try_read))
    for call in (r.try_read, lambda: r.read(timeout=0), r.pop, lambda: r.read_into(np.zeros(1, np.int64))):
        with pytest.raises(ValueError, match="another thread"):
            call()
    assert r.push(-5)  # the producer side is free
    runner.join_all()
    assert got == [-5]
    assert r.try_read() is None  # the consumer side is free again


def fill_records(ring, payload):
    n = 0
    while (g := ring.try_reserve(len(payload))) is not None:
        memoryview(g)[:] = payload
        g.commit()
        n += 1
    return n


def test_single_producer_record_ring_guards_waiting_reserve(runner):
    r = sluice.RecordRing(128, producers="single")
    filled = fill_records(r, b"full" * 4)

    def producer():
        g = r.reserve(8, timeout=10)
        memoryview(g)[:] = b"waited!!"
        g.commit()

    runner.start(producer)
    wait_until(lambda: raises_value_error(lambda: r.try_reserve(1)))
    with pytest.raises(ValueError, match="another thread"):
        r.try_reserve(8)
    assert r.in_flight() == 0
    batch = r.try_read()  # the consumer side is free: freeing room wakes the producer
    assert len(batch) == filled
    batch.release()
    runner.join_all()
    batch = r.read(timeout=5)
    assert [bytes(v) for v in batch] == [b"waited!!"]
    batch.release()


def test_grant_dropped_while_its_side_waits_is_ended_afterwards(runner):
    # A record grant that dies while another thread waits on its (single-producer) side is not
    # withdrawn concurrently with that wait, but as soon as the waiting call returns.
    r = sluice.RecordRing(128, producers="single")
    held = r.try_reserve(8)
    filled = fill_records(r, b"x" * 8)
    result = {}

    def producer():
        result["grant"] = r.reserve(8, timeout=0.5)  # no room: times out

    runner.start(producer)
    wait_until(lambda: raises_value_error(lambda: r.try_reserve(1)))
    del held  # deferred: the side is busy
    runner.join_all()
    assert result["grant"] is None
    assert r.in_flight() == 0  # withdrawn once reserve() returned
    batch = r.try_read()  # no longer held up by the withdrawn reservation
    assert batch is not None and len(batch) == filled
    batch.release()


def test_multi_producer_record_ring_from_python_threads(runner):
    r = sluice.RecordRing(4096, producers="multi")
    producers, per_producer = 4, 2000

    def producer(pid):
        for seq in range(per_producer):
            payload = np.array([pid, seq], np.uint32).tobytes()
            while True:
                g = r.reserve(len(payload), timeout=10)
                assert g is not None
                memoryview(g)[:] = payload
                if g.commit():
                    break

    for pid in range(producers):
        runner.start(producer, pid)
    next_seq = [0] * producers
    total = 0
    deadline = time.monotonic() + 30
    while total < producers * per_producer:
        assert time.monotonic() < deadline
        batch = r.read(timeout=1)
        if batch is None:
            continue
        for v in batch:
            pid, seq = np.frombuffer(v, np.uint32)
            assert seq == next_seq[pid], "records of one producer out of order"
            next_seq[pid] += 1
            v.release()
            total += 1
        batch.release()
    runner.join_all()
    assert next_seq == [per_producer] * producers
    assert r.try_read() is None


# ------------------------------------------------------------------ streaming


CHUNKS = 100_000


def test_python_producer_and_consumer_stream_exact_sequence(runner):
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        r = sluice.Ring(1024, "uint32")
        sizes = np.random.default_rng(12345).integers(1, 65, size=CHUNKS)
        total = int(sizes.sum())
        reference = np.arange(total, dtype=np.uint32)
        result = {}

        def producer():
            seq = 0
            for n in sizes.tolist():
                g = r.reserve(n, timeout=20)
                assert g is not None and len(g) == n
                a = np.asarray(g)
                a[:] = reference[seq:seq + n]
                del a
                g.commit()
                seq += n
            result["produced"] = seq
            r.close()

        def consumer():
            seq = 0
            grants = 0
            while True:
                g = r.read(timeout=20)
                if g is None:
                    break
                a = np.asarray(g)
                k = len(a)
                if not np.array_equal(a, reference[seq:seq + k]):
                    bad = int(np.flatnonzero(a != reference[seq:seq + k])[0])
                    raise AssertionError(f"element {seq + bad} is {a[bad]}, expected {seq + bad}")
                del a
                g.release()
                seq += k
                grants += 1
            result["consumed"] = seq
            result["grants"] = grants

        t0 = time.monotonic()
        runner.start(consumer)
        runner.start(producer)
        runner.join_all(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        sys.setswitchinterval(old)
    assert result["produced"] == total
    assert result["consumed"] == total
    s = r.statistics()
    assert s.committed == total and s.released == total
    assert r.size_approx() == 0
    assert elapsed < 30, f"streaming took {elapsed:.1f} s"


def test_cpp_producer_feeds_blocked_python_consumer_with_gil_released(runner):
    count = 300_000
    r = sluice.Ring(1024, "uint32")
    reference = np.arange(count, dtype=np.uint32)
    times = {}
    result = {}
    entering = threading.Event()

    def consumer():
        seq = 0
        entering.set()
        times["enter"] = time.monotonic()
        while True:
            g = r.read()  # blocks: the producer starts late
            if "first" not in times:
                times["first"] = time.monotonic()
            if g is None:
                break
            a = np.asarray(g)
            k = len(a)
            assert np.array_equal(a, reference[seq:seq + k]), f"wrong sequence after element {seq}"
            del a
            g.release()
            seq += k
        result["consumed"] = seq

    with Ticker() as ticker:
        runner.start(consumer)
        entering.wait(5)
        producer = sluice._SequenceProducer(r, count, max_chunk=64, seed=7, start_delay=0.6)
        # The producer side is the C++ thread's now.
        with pytest.raises(ValueError):
            r.try_reserve(1)
        runner.join_all(timeout=30)
    assert producer.join(timeout=10) is True
    assert producer.produced == count
    assert result["consumed"] == count
    assert r.closed
    # read() blocked until the producer started, and the ticker kept running meanwhile.
    assert times["first"] - times["enter"] >= 0.4
    ticker.check_ran_during(times["enter"] + 0.05, times["first"] - 0.05, "read()")
    assert r.push(1) is False  # producer side free again (and the ring closed)


def test_reserve_releases_the_gil(runner):
    r = sluice.Ring(8, "uint16")
    r.write(np.arange(8, dtype=np.uint16))
    times = {}

    def producer():
        times["enter"] = time.monotonic()
        g = r.reserve(4, timeout=0.8)  # times out: nobody frees room
        times["exit"] = time.monotonic()
        assert g is None

    with Ticker() as ticker:
        runner.start(producer)
        runner.join_all()
    ticker.check_ran_during(times["enter"] + 0.05, times["exit"] - 0.05, "reserve()")


def test_read_with_timeout_releases_the_gil(runner):
    r = sluice.Ring(8, "uint16")
    times = {}

    def consumer():
        times["enter"] = time.monotonic()
        times["result"] = r.read(timeout=0.8)
        times["exit"] = time.monotonic()

    with Ticker() as ticker:
        runner.start(consumer)
        runner.join_all()
    assert times["result"] is None
    ticker.check_ran_during(times["enter"] + 0.05, times["exit"] - 0.05, "read(timeout)")


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint32", "int64", "float32", "float64"])
def test_sequence_producer_values(dtype):
    count = 70_000
    r = sluice.Ring(256, dtype)
    producer = sluice._SequenceProducer(r, count, max_chunk=32, seed=3)
    got = []
    while (g := r.read(timeout=10)) is not None:
        got.append(np.array(np.asarray(g)))
        g.release()
    assert producer.join(timeout=10)
    values = np.concatenate(got)
    i = np.arange(count, dtype=np.uint64)
    if np.dtype(dtype).kind == "f":
        expected = (i % (1 << 24)).astype(dtype)
    else:
        expected = i.astype(dtype)  # modulo 2**bits
    assert values.dtype == np.dtype(dtype)
    assert np.array_equal(values, expected)


def test_sequence_producer_refuses_busy_producer_side():
    r = sluice.Ring(64, "uint32")
    g = r.try_reserve(1)
    with pytest.raises(ValueError):
        sluice._SequenceProducer(r, 10)
    g.discard()
    p = sluice._SequenceProducer(r, 10, close=False)
    assert p.join(timeout=10)
    assert r.size_approx() == 10 and not r.closed
    assert r.push(10)  # free again after join


# ------------------------------------------------------------------ no leaks


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def test_no_leak_over_many_grants_and_views():
    r = sluice.Ring(64, "uint32")
    values = np.arange(8, dtype=np.uint32)

    def cycle(i):
        g = r.reserve(8)
        mv = memoryview(g)
        a = np.asarray(g)
        a[:] = values
        a[0] = i
        del a
        mv.release()
        g.commit()
        rg = r.read()
        rmv = memoryview(rg)
        ra = np.asarray(rg)
        if ra[0] != i or rmv.nbytes != 32:
            raise AssertionError(f"cycle {i} read back wrong data")
        del ra
        rmv.release()
        rg.release()

    n = 100_000
    for i in range(1000):  # warm up: caches, pools
        cycle(i)
    gc.collect()
    ring_refs = sys.getrefcount(r)
    blocks0 = sys.getallocatedblocks()
    rss0 = rss_kib()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n // 2):
        cycle(i)
    gc.collect()
    blocks1 = sys.getallocatedblocks()
    rss1 = rss_kib()
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n // 2):
        cycle(i)
    gc.collect()
    blocks2 = sys.getallocatedblocks()
    rss2 = rss_kib()
    maxrss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert sys.getrefcount(r) == ring_refs
    # A leak of one small object per cycle would add 50000 blocks per half.
    assert blocks1 - blocks0 < 500 and blocks2 - blocks1 < 500, (blocks0, blocks1, blocks2)
    # And of a C++ grant per cycle (at least 32 bytes): well over 1.5 MB per half.
    assert rss2 - rss1 < 1024, (rss0, rss1, rss2)
    assert maxrss2 - maxrss1 < 2048, (maxrss0, maxrss1, maxrss2)
    assert r.statistics().committed == 8 * (n + 1000)


def test_no_leak_over_many_record_batches():
    r = sluice.RecordRing(1024, producers="single")

    def cycle(i):
        g = r.try_reserve(16)
        mv = memoryview(g)
        mv[:8] = i.to_bytes(8, "little")
        mv.release()
        g.commit()
        batch = r.try_read()
        for v in batch:
            assert int.from_bytes(v[:8], "little") == i
            v.release()
        batch.release()

    for i in range(1000):
        cycle(i)
    gc.collect()
    ring_refs = sys.getrefcount(r)
    blocks0 = sys.getallocatedblocks()
    rss0 = rss_kib()
    for i in range(30_000):
        cycle(i)
    gc.collect()
    assert sys.getrefcount(r) == ring_refs
    assert sys.getallocatedblocks() - blocks0 < 500
    assert rss_kib() - rss0 < 1024


# ------------------------------------------------------------------ close and signals wake waiters


@pytest.mark.parametrize("side", ["read", "reserve"])
def test_close_from_another_thread_wakes_a_waiter(runner, side):
    r = sluice.Ring(4, "uint32")
    if side == "reserve":
        r.write(np.arange(4, dtype=np.uint32))  # full
    result = {}

    def waiter():
        t0 = time.monotonic()
        result["value"] = r.read() if side == "read" else r.reserve(1)  # no timeout
        result["waited"] = time.monotonic() - t0

    runner.start(waiter)
    probe = r.try_read if side == "read" else (lambda: r.try_reserve(1))
    wait_until(lambda: raises_value_error(probe))
    time.sleep(0.1)
    r.close()
    runner.join_all(timeout=5)
    assert result["value"] is None
    assert 0.05 <= result["waited"] < 5
    if side == "reserve":
        assert np.array_equal(np.asarray(r.try_read()), [0, 1, 2, 3])  # still drains


def test_close_wakes_record_ring_waiters(runner):
    r = sluice.RecordRing(64, producers="multi")
    result = {}

    def consumer():
        result["batch"] = r.read()

    runner.start(consumer)
    wait_until(lambda: raises_value_error(r.try_read))
    r.close()
    runner.join_all(timeout=5)
    assert result["batch"] is None


def test_signal_interrupts_waiting_read():
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread")

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm

    r = sluice.Ring(8, "uint8")
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Alarm):
            r.read()  # no timeout: only the signal ends it
        assert time.monotonic() - t0 < 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # The consumer side is not left busy.
    r.push(3)
    assert r.pop() == 3
    assert r.read(timeout=0) is None
