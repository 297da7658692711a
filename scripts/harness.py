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

The benchmark scripts also import `interval` from here, for bootstrap intervals of paired ratios.
"""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time


def interval(ratios, resamples=10000):
    """95% percentile-bootstrap interval of the median of paired ratios: rounds resampled with
    replacement, seeded, so that a rerun on the same data gives the same interval."""
    rng = random.Random(1)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios)))
                     for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


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
