"""Validate `memmodel estimate` against exact replays: coverage of its intervals over seeds.

For each trace (the shipped traces/*.lackey.xz, plus one random-access trace of millions of records),
each target config and each sample period (100, 1000, 10000), draw samples with several seeds
(IBS-style jitter by default), estimate ``walks`` and print: the exact value from `simulate` on the full
trace, the mean estimate, a typical interval, the coverage (share of seeds whose interval holds the
truth) and the naive replay of the samples (walks x period) for contrast.

The random-access trace: by default a synthetic uniform random walk over 8 GiB (4,000,000 loads of 8 B,
numpy seed 1, written with memmodel.trace.write_store). To use a recorded one instead, record a pointer
chase with valgrind, e.g. ``sh traces/programs/record.sh pchase`` with a larger argument
(``./pchase 4000000``), ingest it, and pass ``--random PATH``.

    python benchmarks/estimate.py [--seeds 5] [--method jitter] [--random PATH] [--json OUT]

Labels are computed once per trace (a period-1 sample holds every translation with its native label);
each (period, seed) sample is drawn from it exactly as `memmodel sample` would (same position streams).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("native-4k", "baseline-4k", "memctl-4k", "native-thp", "baseline-thp", "memctl-2m", "hugetlb-1g")
PERIODS = (100, 1000, 10000)


def random_trace(path: Path, records: int = 4_000_000, span: int = 8 << 30) -> None:
    """Uniform random 8-byte loads over ``span`` bytes (a pointer chase with no locality)."""
    from memmodel.trace.store import write_store

    rng = np.random.default_rng(1)
    gva = np.uint64(0x7F0000000000) + (rng.integers(0, span // 8, size=records).astype(np.uint64) << np.uint64(3))
    write_store(path, {"kind": np.ones(records, np.uint8), "gva": gva, "size": np.full(records, 8, np.uint64)},
                source="benchmarks/estimate.py random trace")


def main() -> int:
    from memmodel.analysis.api import run, simulate
    from memmodel.analysis.estimate import estimate, load_samples
    from memmodel.analysis.sample import Positions, sample_trace
    from memmodel.trace.store import ingest

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--method", default="jitter", choices=("fixed", "jitter", "bernoulli"))
    ap.add_argument("--random", type=Path, default=None, help="random-access trace (default: synthetic)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        traces = []
        for name in ("stream", "qsort", "pchase"):
            p = Path(tmp) / f"{name}.parquet"
            ingest([REPO / "traces" / f"{name}.lackey.xz"], p)
            traces.append((name, p))
        rnd = args.random
        if rnd is None:
            rnd = Path(tmp) / "random.parquet"
            random_trace(rnd)
        traces.append(("random", rnd))
        for name, path in traces:
            t0 = time.perf_counter()
            exact = {r["config"]: r for r in simulate(path, list(CONFIGS)).iter_rows(named=True)}
            full_path = Path(tmp) / f"{name}.full.parquet"
            sample_trace(path, full_path, 1)
            full = load_samples(full_path)
            print(f"# {name}: {full.n:,} translations, exact replay + labels in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            for period in PERIODS:
                per: dict[str, list[tuple[float | None, float, float | None, str, float]]] = {c: [] for c in CONFIGS}
                for seed in range(args.seeds):
                    idx = Positions(args.method, period, seed).take(full.n)
                    sub = full.subset(idx, period, args.method, seed)
                    df = estimate(sub, list(CONFIGS))
                    naive = {r.config.name: r.result.counters["walks"] * period for r in run(
                        {"kind": sub.kind, "gva": sub.gva, "size": sub.size}, list(CONFIGS))}
                    for r in df.filter(df["quantity"] == "walks").iter_rows(named=True):
                        per[r["config"]].append((r["value"], r["low"], r["high"], r["config_method"].split(";")[0],
                                                 naive[r["config"]]))
                for cfg, vals in per.items():
                    truth = exact[cfg]["walks"]
                    cov = sum(lo <= truth and (hi is None or truth <= hi) for _, lo, hi, _, _ in vals) / len(vals)
                    pts = [v for v, *_ in vals if v is not None]
                    his = [h for _, _, h, _, _ in vals if h is not None]
                    rows.append({
                        "trace": name, "config": cfg, "period": period, "exact": truth,
                        "estimate_mean": float(np.mean(pts)) if pts else None,
                        "low_median": float(np.median([lo for _, lo, _, _, _ in vals])),
                        "high_median": float(np.median(his)) if his else None,
                        "coverage": cov, "seeds": len(vals), "method": vals[0][3],
                        "naive_replay_mean": float(np.mean([n for *_, n in vals])),
                    })
    hdr = (f"{'trace':<7} {'config':<13} {'period':>6} {'exact':>9} {'estimate':>11} {'interval (median)':>25} "
           f"{'cover':>5} {'naive':>11}  method")
    print(hdr)
    print("-" * len(hdr))

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:,.0f}"

    for r in rows:
        print(f"{r['trace']:<7} {r['config']:<13} {r['period']:>6} {r['exact']:>9,} {f(r['estimate_mean']):>11} "
              f"{'[' + f(r['low_median']) + ', ' + f(r['high_median']) + ']':>25} {r['coverage']:>5.2f} "
              f"{f(r['naive_replay_mean']):>11}  {r['method']}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
