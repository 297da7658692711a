#!/usr/bin/env python3
"""How often the percentile-bootstrap interval compare used until 2026-11-27 calls a difference
where there is none (docs/compare.md quotes this script's output).

Each simulated comparison draws `n` repetitions per arm from the same normal distribution (mean
100, sd 5), resamples each arm's repetitions 1,000 times, and takes the 2.5th and 97.5th
percentiles of the resampled deltas in percent, as compare did. A 95% interval should exclude
zero in 5% of such comparisons. Seeded; plain Python, about 10 s.

    python3 scripts/interval-coverage.py

The interval compare uses now is checked in Rust by its tests
(`intervals_keep_their_95_percent_with_few_repetitions` and the two beside it).
"""
import random


def percentile_interval(a, b, rng, rounds=1000):
    deltas = []
    for _ in range(rounds):
        ma = sum(rng.choice(a) for _ in a) / len(a)
        mb = sum(rng.choice(b) for _ in b) / len(b)
        deltas.append((mb - ma) / ma * 100)
    deltas.sort()
    at = lambda q: deltas[round((len(deltas) - 1) * q)]
    return at(0.025), at(0.975)


def main():
    rng = random.Random(1)
    sims = 600
    for n in (2, 3, 5, 10):
        alarms = 0
        for _ in range(sims):
            a = [rng.gauss(100, 5) for _ in range(n)]
            b = [rng.gauss(100, 5) for _ in range(n)]
            low, high = percentile_interval(a, b, rng)
            alarms += low > 0 or high < 0
        print(f"{n} repetitions per arm: the interval excluded zero in {alarms / sims:.1%} "
              f"of {sims} comparisons with no true difference (a 95% interval: 5%)", flush=True)


if __name__ == "__main__":
    main()
