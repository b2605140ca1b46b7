#!/usr/bin/env python3
"""A NumPy level meter and pitch detector over a ring that a C++ process fills.

The Python process creates a shared sluice ring of float32 frames and starts tone_source, a C++
program that attaches as the producer and renders a sine tone into the ring in place, one
period at a time, as an audio callback would (it never waits: a period without room is dropped).
This process sleeps in ring.read() until frames are committed, analyses each block through a
NumPy view of the ring's own memory (no copy), and releases it. Both sides touch the same pages:
the only copy of the audio is the one the producer rendered.

    level_meter.py --tone-source build/release/demos/python/tone_source --seconds 3

It prints a live meter and, at the end, a summary line whose fields the smoke test checks.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

import sluice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tone-source", required=True, help="path of the tone_source program")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the tone plays")
    parser.add_argument("--rate", type=int, default=48000, help="frames per second")
    parser.add_argument("--frequency", type=float, default=440.0, help="the tone's frequency in Hz")
    parser.add_argument("--period", type=int, default=256, help="frames per producer callback")
    parser.add_argument("--capacity", type=int, default=48000 // 4, help="ring capacity in frames")
    parser.add_argument("--slow", type=float, default=0.0,
                        help="extra seconds the consumer spends on each block (to make the producer drop)")
    args = parser.parse_args()

    name = f"/sluice-level-meter-{os.getpid()}"
    ring = sluice.Ring.create_shared(name, args.capacity, "float32", role="consumer")
    try:
        source = subprocess.Popen(
            [args.tone_source, "--name", name, "--seconds", str(args.seconds), "--rate", str(args.rate),
             "--frequency", str(args.frequency), "--period", str(args.period)],
            stdout=subprocess.PIPE, text=True)
        return consume(ring, source, args, lambda: sluice.remove_shared(name))
    finally:
        sluice.remove_shared(name)  # both processes keep the segment while they are attached


def consume(ring: "sluice.Ring", source: subprocess.Popen, args: argparse.Namespace, unlink) -> int:
    window = np.zeros(1 << 14, dtype=np.float32)  # the last 16384 frames, for the spectrum
    filled = 0
    frames = blocks = 0
    peak_level = 0.0
    sum_squares = 0.0
    last_print = time.monotonic()
    live = sys.stdout.isatty()
    while True:
        grant = ring.read(timeout=0.5)  # sleeps without the GIL until frames are committed
        if grant is None:
            if ring.closed or source.poll() is not None:
                grant = ring.try_read()  # closed: drain whatever is left
                if grant is None:
                    break
            else:
                continue
        if blocks == 0:
            unlink()  # the producer has attached: the name is no longer needed
        with grant:  # releases the frames on leaving the block
            block = np.asarray(grant)  # the ring's memory itself: no copy
            n = len(block)
            sum_squares += float(np.dot(block, block))
            peak_level = max(peak_level, float(np.abs(block).max()))
            take = min(n, len(window))
            window = np.roll(window, -take)
            window[-take:] = block[n - take:]
            filled = min(len(window), filled + take)
            frames += n
            blocks += 1
            del block  # the view must go before the grant is released (BufferError otherwise)
        if args.slow:
            time.sleep(args.slow)
        now = time.monotonic()
        if now - last_print > (0.1 if live else 1.0):
            last_print = now
            rms = (sum_squares / frames) ** 0.5 if frames else 0.0
            db = 20 * np.log10(max(rms, 1e-9))
            bar = "#" * max(0, int((db + 60) / 60 * 40))
            end = "\r" if live else "\n"
            print(f"level {db:6.1f} dBFS |{bar:<40}| pitch {pitch(window, filled, args.rate):7.1f} Hz", end=end,
                  flush=True)
    if live:
        print()
    out, _ = source.communicate(timeout=30)
    committed = dropped = -1
    for field in out.split():
        key, _, value = field.partition("=")
        if key == "committed":
            committed = int(value)
        elif key == "dropped":
            dropped = int(value)
    stats = ring.statistics()
    rms = (sum_squares / frames) ** 0.5 if frames else 0.0
    detected = pitch(window, filled, args.rate)
    exact = frames == committed == stats.committed == stats.released
    print(f"level_meter: frames={frames} blocks={blocks} committed={committed} dropped={dropped} "
          f"ring_committed={stats.committed} ring_refused={stats.refused} rms={rms:.4f} peak={peak_level:.4f} "
          f"pitch_hz={detected:.1f} source_exit={source.returncode} "
          f"verdict={'ok' if exact and source.returncode == 0 else 'FAILED'}")
    return 0 if exact and source.returncode == 0 else 1


def pitch(window: np.ndarray, filled: int, rate: int) -> float:
    """The strongest frequency in the last `filled` frames (Hann window, parabolic peak)."""
    if filled < 1024:
        return 0.0
    x = window[len(window) - filled:] * np.hanning(filled)
    spectrum = np.abs(np.fft.rfft(x))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return k * rate / filled


if __name__ == "__main__":
    sys.exit(main())
