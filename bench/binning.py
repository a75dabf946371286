"""Histogram binning: our exact bins (``eventindex.tag.histogram.bin_indices`` + ``bincount``) beside boost-histogram's
regular axis (fast, but ``(x - lo) / (hi - lo) * n`` in doubles misplaces values that sit on an edge) and its variable
axis over the same exact edges (exact, by binary search), on the same values in the same run.

    python -m bench.binning [--values 10000000] [--repeat 5]

Cases: BCIDs (integers, 50 bins over [0, 3600)), lumi blocks on the issue's range (50 bins over [1, 201)) and a float
column (normal, 50 bins over [-3, 3)). For each: the best of ``--repeat`` seconds per filler, and how many values each
puts in another bin than exact rational arithmetic does (counted per distinct value, with Fractions).
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import hist
import numpy as np

from bench.catalog import timed
from eventindex.tag.histogram import _fill, bin_indices, exact_edges


def _exact_counts(values: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    uniq, counts = np.unique(values, return_counts=True)
    out = np.zeros(n + 2, np.int64)
    lo_f, hi_f = Fraction(lo), Fraction(hi)
    for x, count in zip(uniq.tolist(), counts.tolist()):
        fx = Fraction(x)
        out[(-1 if fx < lo_f else n if fx >= hi_f else int((fx - lo_f) * n // (hi_f - lo_f))) + 1] += count
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--values", type=int, default=10_000_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    rng = np.random.default_rng(2018)
    cases = [("bcid", rng.integers(0, 3564, args.values).astype(np.uint16), 0, 3600, 50),
             ("lumi_block", rng.integers(1, 201, args.values).astype(np.uint32), 1, 201, 50),
             ("float", rng.normal(size=args.values), -3.0, 3.0, 50)]
    print(f"{args.values:,} values, best of {args.repeat}")
    print(f"{'case':<11} {'ours s':>8} {'regular s':>10} {'variable s':>11} {'ours wrong':>11} {'regular wrong':>14}")
    for name, values, lo, hi, n in cases:
        edges = exact_edges(lo, hi, n)
        sampled = values.dtype.kind == "f"  # integers: every value against exact counts; floats: a sample

        def ours():
            h = hist.Hist(hist.axis.Variable(edges))
            _fill(h, [bin_indices(values, lo, hi, n, edges)], None)
            return h

        def regular():
            h = hist.Hist(hist.axis.Regular(n, lo, hi))
            h.fill(values.astype(np.float64))
            return h

        def variable():
            h = hist.Hist(hist.axis.Variable(edges))
            h.fill(values.astype(np.float64))
            return h

        times = [timed(f, args.repeat) for f in (ours, regular, variable)]
        if sampled:  # compare per sampled distinct value: which bin each filler gives it
            probe = np.unique(values)[::max(1, len(np.unique(values)) // 200_000)]
            truth = np.array([-1 if Fraction(x) < Fraction(lo) else n if Fraction(x) >= Fraction(hi)
                              else int((Fraction(x) - Fraction(lo)) * n // (Fraction(hi) - Fraction(lo)))
                              for x in probe.tolist()])
            mine = bin_indices(probe, lo, hi, n, edges)
            reg = np.clip(np.floor((probe - lo) / (hi - lo) * n), -1, n).astype(int)  # the regular axis's formula
            wrong = [int((mine != truth).sum()), int((reg != truth).sum())]
        else:
            exact = _exact_counts(values, lo, hi, n)
            wrong = [int(np.abs(ours().values(flow=True) - exact).sum() // 2),
                     int(np.abs(regular().values(flow=True) - exact).sum() // 2)]
        print(f"{name:<11} {times[0]:>8.3f} {times[1]:>10.3f} {times[2]:>11.3f} {wrong[0]:>11,} {wrong[1]:>14,}"
              + ("  (of 200k sampled distinct values)" if sampled else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
