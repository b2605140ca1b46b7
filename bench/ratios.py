#!/usr/bin/env python3
"""Medians of pairwise ratios from a sluice benchmark's JSON output (see bench/rounds.hpp).

    ./build/release/bench/bench_waiting --rounds=21 --benchmark_out=waiting.json
    python3 bench/ratios.py waiting.json [--markdown]

Every benchmark is named "<family>/<contender>/round:<k>". Within a round, each contender's
rate is divided by its family's baseline (named in the JSON context as "baseline:<family>"),
and the table gives the median of those ratios over the rounds with their interquartile range,
beside each contender's median rate. Ratios taken within a round cancel the machine's regime
of the moment; the medians of the rates alone do not, and are there for scale only.
"""
import argparse
import json
import re
import statistics
import sys
from collections import defaultdict

NAME = re.compile(r"^(?P<family>[^/]+)/(?P<contender>[^/]+)/round:(?P<round>\d+)")


def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def rate(b):
    if "items_per_second" in b:
        return b["items_per_second"], "items/s"
    if "bytes_per_second" in b:
        return b["bytes_per_second"], "B/s"
    # A latency benchmark: the rate is 1 / time, so a ratio above 1 still means "faster".
    return 1e9 / b["real_time"], "per s"


def human(x, unit):
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def load(path):
    with open(path) as f:
        data = json.load(f)
    ctx = data.get("context", {})
    baselines = {k[len("baseline:"):]: v for k, v in ctx.items() if k.startswith("baseline:")}
    runs = defaultdict(dict)  # (family, round) -> contender -> (rate, unit, benchmark)
    order = defaultdict(list)  # family -> contenders in order of appearance
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        m = NAME.match(b["name"])
        if not m:
            continue
        fam, who, rnd = m["family"], m["contender"], int(m["round"])
        r, unit = rate(b)
        runs[fam, rnd][who] = (r, unit, b)
        if who not in order[fam]:
            order[fam].append(who)
    return ctx, baselines, runs, order


def table(ctx, baselines, runs, order, families=None):
    lines = []
    lines.append("| family | contender | median rate | ratio to baseline (median) | IQR of ratio | rounds |")
    lines.append("|---|---|---|---|---|---|")
    for fam in order:
        if families and fam not in families:
            continue
        base = baselines.get(fam, order[fam][0])
        rounds = sorted(r for f, r in runs if f == fam)
        for who in order[fam]:
            rates, ratios, unit = [], [], ""
            for rnd in rounds:
                got = runs[fam, rnd]
                if who in got:
                    rates.append(got[who][0])
                    unit = got[who][1]
                    if base in got and got[base][0] > 0:
                        ratios.append(got[who][0] / got[base][0])
            if not rates:
                continue
            med = human(statistics.median(rates), unit)
            if who == base:
                lines.append(f"| {fam} | **{who}** (baseline) | {med} | 1 | - | {len(rates)} |")
            else:
                lo, hi = quartiles(ratios)
                lines.append(f"| {fam} | {who} | {med} | {statistics.median(ratios):.3f} | "
                             f"{lo:.3f} to {hi:.3f} | {len(ratios)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    args = ap.parse_args()
    for path in args.json:
        ctx, baselines, runs, order = load(path)
        print(f"{path}: host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
              f"{ctx.get('mhz_per_cpu', '?')} MHz, {ctx.get('date', '?')}, rounds {ctx.get('rounds', '?')}")
        print()
        print(table(ctx, baselines, runs, order))
        print()


if __name__ == "__main__":
    sys.exit(main())
