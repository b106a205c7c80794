"""The deploy gate's paired bootstrap (``retrain.evaluation.compare_models``) beside the way it
was computed before, on the same scores: wall time, and how far the two intervals are apart.

The baseline here is the previous pass, kept verbatim below (``baseline_compare``): numpy's
Poisson sampler for the resampling weights, then per model one float64 pass over every row
(weights permuted to score order, a running sum of the negatives, a weighted sum over all rows).
Ours draws the weights from 16-bit uniforms through the Poisson(1) inverse CDF and runs the AUC
as one float32 running sum over the positives, read at each negative. Both are seeded; the
point estimates must be equal, the intervals agree to the bootstrap's own noise (different
draws). Scores are generated with ties (LightGBM's scores are tree leaves: many equal values)
and a 20% positive rate, two correlated models of close skill (paired). Rows above 100k are
subsampled by both (``MAX_BOOTSTRAP_ROWS``), so 1M rows costs what 100k does plus the sort.
Prints a table and saves benchmarks/results/bootstrap.json.

    .venv/bin/python benchmarks/bootstrap.py [--rows 10000 100000 1000000] [--rounds 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe, save_result  # noqa: E402

from retrain.evaluation import MAX_BOOTSTRAP_ROWS, compare_models  # noqa: E402


def baseline_compare(y, a_scores, b_scores, *, rounds: int, confidence: float, seed: int):
    """The AUC bootstrap as ``retrain.evaluation`` computed it before (commit a78d32b)."""

    def sorted_(y, s):
        order = np.argsort(-s, kind="stable")
        ss = s[order]
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
        return order, y[order], starts, len(starts) < len(ss)

    def auc(state, weights):
        order, ys, starts, grouped = state
        w = weights[:, order]
        pos, neg = w * ys, w * ~ys
        if grouped:
            pos = np.add.reduceat(pos, starts, axis=1)
            neg = np.add.reduceat(neg, starts, axis=1)
        total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
        neg_above = np.cumsum(neg, axis=1) - neg
        wins = (pos * (total_neg[:, None] - neg_above - 0.5 * neg)).sum(axis=1)
        return wins / (total_pos * total_neg)

    y = np.asarray(y).astype(bool)
    a, b = sorted_(y, a_scores), sorted_(y, b_scores)
    ones = np.ones((1, len(y)))
    new, old = float(auc(a, ones)[0]), float(auc(b, ones)[0])
    rng = np.random.default_rng(seed)
    if len(y) > MAX_BOOTSTRAP_ROWS:
        keep = np.sort(rng.choice(len(y), size=MAX_BOOTSTRAP_ROWS, replace=False))
        y = y[keep]
        a, b = sorted_(y, a_scores[keep]), sorted_(y, b_scores[keep])
    deltas = []
    for start in range(0, rounds, 32):
        k = min(32, rounds - start)
        weights = rng.poisson(1.0, size=(k, len(y))).astype("float64")
        deltas.append(auc(a, weights) - auc(b, weights))
    d = np.concatenate(deltas)
    d = d[~np.isnan(d)]
    tail = (1 - confidence) / 2
    return new, old, float(np.quantile(d, tail)), float(np.quantile(d, 1 - tail))


def scores(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(rows) < 0.2
    noise = rng.random(rows)
    challenger = np.round(noise + 0.35 * y, 3)
    champion = np.round(0.8 * noise + 0.2 * rng.random(rows) + 0.3 * y, 3)
    return y, challenger, champion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    runs = []
    head = f"{'rows':>10} {'baseline s':>11} {'ours s':>8} {'speed-up':>9}"
    print(f"{head}  intervals (baseline | ours)")
    for rows in args.rows:
        y, a, b = scores(rows)
        opts = {"rounds": args.rounds, "confidence": 0.95, "seed": 7}
        start = time.perf_counter()
        new, old, low, high = baseline_compare(y, a, b, **opts)
        base_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = compare_models(y, a, b, metric="auc", **opts)
        ours_s = time.perf_counter() - start
        assert (ours.challenger, ours.champion) == (new, old), "point estimates differ"
        runs.append(
            {
                "rows": rows,
                "rounds": args.rounds,
                "baseline_s": round(base_s, 2),
                "ours_s": round(ours_s, 2),
                "speedup": round(base_s / ours_s, 1),
                "delta": round(ours.delta, 5),
                "baseline_interval": [round(low, 5), round(high, 5)],
                "ours_interval": [round(ours.low, 5), round(ours.high, 5)],
            }
        )
        r = runs[-1]
        print(
            f"{rows:>10,} {base_s:>11.2f} {ours_s:>8.2f} {r['speedup']:>8.1f}x  "
            f"{r['baseline_interval']} | {r['ours_interval']} (delta {r['delta']})"
        )
    out = save_result("bootstrap", {"runs": runs, "machine": describe("numpy")})
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
