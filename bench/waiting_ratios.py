#!/usr/bin/env python3
"""Median ratios of bench_waiting's policies against no_waiting, from Google Benchmark JSON.

    ./build/release/bench/bench_waiting --benchmark_repetitions=20 \
        --benchmark_enable_random_interleaving=true --benchmark_out=waiting.json
    python3 bench/waiting_ratios.py waiting.json

Random interleaving spreads every policy's repetitions over the same stretch of time, so a
noisy neighbour slows all of them alike; the ratio of medians is the figure to quote.
"""
import json
import re
import statistics
import sys
from collections import defaultdict


def main(path):
    with open(path) as f:
        data = json.load(f)
    rates = defaultdict(list)  # (family, args) -> policy -> [items/s]
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        m = re.match(r"(\w+)<(.*)>", b["run_name"] if "run_name" in b else b["name"])
        if not m:
            continue
        args = [a.strip() for a in m.group(2).split(",")]
        policy = args[-1].replace("sluice::", "")
        key = (m.group(1), ", ".join(a.replace("sluice::", "") for a in args[:-1]))
        rates[key, policy].append(b["items_per_second"])
    ctx = data.get("context", {})
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
          f"{ctx.get('mhz_per_cpu', '?')} MHz, {ctx.get('library_build_type', '?')} benchmark library")
    print()
    print("| benchmark | no_waiting (M items/s) | waitable | full_fence | waitable / no_waiting | full_fence / no_waiting |")
    print("|---|---|---|---|---|---|")
    keys = sorted({k for k, _ in rates})
    for key in keys:
        med = {p: statistics.median(rates[key, p]) for p in ("no_waiting", "waitable", "full_fence") if rates.get((key, p))}
        if "no_waiting" not in med:
            continue
        base = med["no_waiting"]
        name = key[0] + (f"<{key[1]}>" if key[1] else "")
        n = len(rates[key, "no_waiting"])
        cells = [f"{med.get(p, float('nan')) / 1e6:.1f}" for p in ("no_waiting", "waitable", "full_fence")]
        ratios = [f"{med[p] / base:.3f}" if p in med else "-" for p in ("waitable", "full_fence")]
        print(f"| {name} (n={n}) | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "waiting.json")
