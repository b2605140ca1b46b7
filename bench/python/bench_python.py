#!/usr/bin/env python3
"""Blocks of 4 KiB to 1 MiB from a producer to a consumer, four ways, in interleaved rounds.

  ring/threads   sluice.ByteRing between two threads: the producer reserves a block, fills it
                 through a NumPy view (the one copy), commits; the consumer reads it in place
                 through a NumPy view and releases it
  queue/threads  queue.Queue of bytes between two threads: the producer makes a bytes object
                 of the block (the one copy), the consumer reads it through numpy.frombuffer
  ring/processes a shared sluice.ByteRing between two processes, used as above
  pipe/processes a multiprocessing Pipe between two processes: send_bytes, recv_bytes (a copy
                 into the pipe and one out of it)

The consumer touches every block the same way (the sum of 64 bytes spread over the block), so
every variant delivers the block to code that reads it; the producer fills each block from the
same source array. Each variant runs for --seconds per round, rounds interleaved (A B C D A B C
D ...), at most 8 blocks in flight (the ring's capacity, the queue's size; a pipe holds what
the kernel lets it), and the table gives the median throughput over rounds and its ratio to queue/threads
(in-process) or pipe/processes (across processes) within each round.

    PYTHONPATH=build/release/python python3 bench/python/bench_python.py --rounds 5
"""

import argparse
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import threading
import time

import numpy as np

import sluice

IN_FLIGHT = 8  # blocks: the ring's capacity, the queue's maxsize
PROBES = 64


def touch(view: np.ndarray) -> int:
    """What the consumer does with a block: reads 64 bytes spread over it."""
    step = max(1, len(view) // PROBES)
    return int(view[::step].sum())


def ring_producer(ring, source: np.ndarray, block: int, deadline: float) -> int:
    sent = 0
    while time.perf_counter() < deadline:
        g = ring.reserve(block, timeout=0.5)
        if g is None:
            break
        view = np.asarray(g)
        view[:] = source[:block]  # the one copy: into the ring
        del view
        g.commit()
        sent += 1
    ring.close()
    return sent


def ring_consumer(ring) -> int:
    received = 0
    total = 0
    while True:
        g = ring.read()
        if g is None:
            return received
        view = np.asarray(g)  # the ring's memory: no copy
        total += touch(view)
        received += len(view)
        del view
        g.release()


def queue_producer(q: queue.Queue, source: np.ndarray, block: int, deadline: float) -> int:
    sent = 0
    while time.perf_counter() < deadline:
        q.put(source[:block].tobytes())  # the one copy: a new bytes object
        sent += 1
    q.put(None)
    return sent


def queue_consumer(q: queue.Queue) -> int:
    received = 0
    total = 0
    while True:
        item = q.get()
        if item is None:
            return received
        view = np.frombuffer(item, dtype=np.uint8)
        total += touch(view)
        received += len(view)


def run_threads(kind: str, block: int, seconds: float, source: np.ndarray) -> float:
    """Bytes per second moved between two threads."""
    result = {}
    if kind == "ring":
        ring = sluice.ByteRing(IN_FLIGHT * block)
        consumer = threading.Thread(target=lambda: result.setdefault("bytes", ring_consumer(ring)))
        start = time.perf_counter()
        consumer.start()
        ring_producer(ring, source, block, start + seconds)
    else:
        q = queue.Queue(maxsize=IN_FLIGHT)  # the same bytes in flight at most
        consumer = threading.Thread(target=lambda: result.setdefault("bytes", queue_consumer(q)))
        start = time.perf_counter()
        consumer.start()
        queue_producer(q, source, block, start + seconds)
    consumer.join()
    return result["bytes"] / (time.perf_counter() - start)


def shared_ring_consumer(name: str, out) -> None:
    ring = sluice.ByteRing.open_shared(name, role="consumer")
    out.send(ring_consumer(ring))


def pipe_consumer(conn, out) -> None:
    received = 0
    total = 0
    while True:
        item = conn.recv_bytes()
        if not item:
            break
        view = np.frombuffer(item, dtype=np.uint8)
        total += touch(view)
        received += len(view)
    out.send(received)


def run_processes(kind: str, block: int, seconds: float, source: np.ndarray) -> float:
    """Bytes per second moved between two processes."""
    ctx = multiprocessing.get_context("fork")
    result_recv, result_send = ctx.Pipe(duplex=False)
    if kind == "ring":
        name = f"/sluice-bench-python-{os.getpid()}"
        ring = sluice.ByteRing.create_shared(name, IN_FLIGHT * block, role="producer")
        try:
            consumer = ctx.Process(target=shared_ring_consumer, args=(name, result_send))
            start = time.perf_counter()
            consumer.start()
            ring_producer(ring, source, block, start + seconds)
            received = result_recv.recv()
            consumer.join()
        finally:
            sluice.remove_shared(name)
    else:
        recv_end, send_end = ctx.Pipe(duplex=False)
        consumer = ctx.Process(target=pipe_consumer, args=(recv_end, result_send))
        start = time.perf_counter()
        consumer.start()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            send_end.send_bytes(source[:block])  # the buffer protocol: no bytes object made here
        send_end.send_bytes(b"")
        received = result_recv.recv()
        consumer.join()
    return received / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="per variant and round")
    parser.add_argument("--blocks", default="4096,65536,1048576", help="block sizes in bytes")
    args = parser.parse_args()
    blocks = [int(b) for b in args.blocks.split(",")]
    source = np.random.default_rng(1).integers(0, 256, size=max(blocks), dtype=np.uint8)
    variants = [("ring/threads", run_threads, "ring", "queue/threads"),
                ("queue/threads", run_threads, "queue", "queue/threads"),
                ("ring/processes", run_processes, "ring", "pipe/processes"),
                ("pipe/processes", run_processes, "pipe", "pipe/processes")]

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"Python {platform.python_version()}, NumPy {np.__version__}, sluice {sluice.__version__}; "
          f"{args.rounds} rounds of {args.seconds} s per variant")
    print()
    print("| block | variant | median MB/s | ratio to baseline (median, min..max over rounds) |")
    print("|---|---|---|---|")
    for block in blocks:
        rates = {name: [] for name, *_ in variants}
        for _ in range(args.rounds):
            for name, run, kind, _baseline in variants:
                rates[name].append(run(kind, block, args.seconds, source))
        for name, _run, _kind, baseline in variants:
            ratios = [a / b for a, b in zip(rates[name], rates[baseline])]
            ratio = "baseline" if name == baseline else (
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f})")
            print(f"| {block // 1024} KiB | {name} | {statistics.median(rates[name]) / 1e6:,.0f} | {ratio} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
