#!/usr/bin/env python3
"""Times commands side by side for the meshbench benchmark scripts.

    harness.py time --runs N --label L -- CMD ARGS...

runs CMD N times (stdout to /dev/null) and prints one JSON line: label, runs, median, min and
max wall seconds (time.perf_counter), every run's wall seconds in order, and the peak RSS in
bytes. The scripts interleave their
commands run by run, so that machine noise falls on all of them alike.

Peak RSS comes from one extra run under GNU time (/usr/bin/time -f %M), not from wait4: Linux
keeps a process's peak RSS across exec, so a child forked from this Python would report at least
Python's own ~14 MB.

The benchmark scripts also import `interval` from here, for intervals of the median paired ratio.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time


def interval(ratios):
    """95% confidence interval of the median of paired ratios, free of any assumption about
    their distribution: the order statistics x(k) and x(n+1-k), with k the largest count such
    that P(Binomial(n, 1/2) <= k-1) <= 2.5% (the sign test's interval; 96.1% for 9 rounds).
    A percentile bootstrap of the median, used before 2026-11-27, is too narrow with the 9-24
    rounds the scripts run. Below 6 rounds no such k exists, and the whole range is returned."""
    xs = sorted(ratios)
    n = len(xs)
    k, below = 0, 0.0
    while k < n:
        below += math.comb(n, k) / 2 ** n
        if below > 0.025:
            break
        k += 1
    if k == 0:
        return xs[0], xs[-1]
    return xs[k - 1], xs[n - k]


def verdict(median, low, high, target, at_least):
    """Whether a target on the median of paired ratios is met: "met" only when the whole
    interval clears it, for a target the ratio must reach (`at_least`) or stay under."""
    shown, at_median = ((low >= target, median >= target) if at_least
                        else (high <= target, median <= target))
    if shown:
        return "met"
    if at_median:
        return f"met at the median, not shown (the interval crosses {target:g}x)"
    return "**not met**"


def run_once(cmd):
    with open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        status = subprocess.run(cmd, stdout=devnull).returncode
        wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"harness: {' '.join(cmd)} failed with status {status}")
    return wall


def peak_rss(cmd):
    with tempfile.NamedTemporaryFile("r") as out, open(os.devnull, "wb") as devnull:
        status = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], stdout=devnull).returncode
        if status != 0:
            sys.exit(f"harness: {' '.join(cmd)} failed under /usr/bin/time with status {status}")
        return int(out.read().strip().splitlines()[-1]) * 1024


def main():
    args = sys.argv[1:]
    if not args or args[0] != "time" or "--" not in args:
        sys.exit(__doc__)
    sep = args.index("--")
    opts, cmds = args[1:sep], args[sep + 1:]
    runs = int(opts[opts.index("--runs") + 1]) if "--runs" in opts else 5
    # Several commands separated by ';;' run interleaved: a, b, a, b, ...
    groups, current = [], []
    for a in cmds:
        if a == ";;":
            groups.append(current)
            current = []
        else:
            current.append(a)
    groups.append(current)
    labels = opts[opts.index("--labels") + 1].split(",") if "--labels" in opts else [g[0] for g in groups]
    results = {label: [] for label in labels}
    for _ in range(runs):
        for label, cmd in zip(labels, groups):
            results[label].append(run_once(cmd))
    for label, cmd in zip(labels, groups):
        walls = sorted(results[label])
        print(json.dumps({
            "label": label,
            "runs": runs,
            "median_s": walls[len(walls) // 2],
            "min_s": walls[0],
            "max_s": walls[-1],
            # In run order, so that scripts can pair rounds of interleaved commands.
            "walls_s": results[label],
            "peak_rss_bytes": peak_rss(cmd),
        }))


if __name__ == "__main__":
    main()
