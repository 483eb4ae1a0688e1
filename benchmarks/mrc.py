"""Miss-ratio-curve speed: the one-pass stack-distance pass (translations/s), the whole curve, and
what ``compare --mrc`` costs on top of the compare's replays; peak RSS.

Usage::

    python benchmarks/mrc.py [TRACE...] [--repeat 3] [--big PATH]

TRACE defaults to the shipped ``traces/pchase.lackey.xz`` (ingested to a temporary Parquet store)
plus the big random-access trace ``--big`` (default ``/tmp/pchase-big.parquet``), recorded on first
use exactly as ``benchmarks/simulate.py`` says (``traces/programs/pchase.c`` built with gcc -O2,
``memmodel record --no-syscalls -o /tmp/pchase-big.parquet -- ./pchase 6000000``: 35.3 M records,
7.0 M translations over 32 MiB; about a minute). ``--big none`` skips it.

Per trace and config (``baseline-4k``: only 4 KiB entries, ~8,400 distinct tags; ``memctl-2m``: 2 MiB
entries) it prints, best of ``--repeat`` in this one process:

* the stack pass alone (:class:`memmodel.analysis.mrc.StackPass` over the stream in memory), fully
  associative and with 16 sets, in translations/s (goal: >= 20 M/s; the numba pass it replaced ran
  at 5-6 M/s on pchase);
* the whole standalone curve (:func:`miss_ratio_curves`: read the store, mapping-only replay, pass);
* ``compare --mrc``'s share: the compare replays of both configs with and without
  :class:`memmodel.analysis.mrc.CompareCurves` attached (the curves come from the replays' outcomes;
  before, every config was replayed a second time for its curve);
* peak RSS of the whole process (``resource.getrusage``; it only grows, so read it per trace in the
  order printed: the big trace's figure bounds everything).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from simulate import best_of  # noqa: E402  (benchmarks/simulate.py: one timing rule for every benchmark)

CONFIGS = ("baseline-4k", "memctl-2m")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_trace(store: Path, label: str, repeat: int) -> None:
    """Print the figures of one trace (a Parquet store)."""
    from memmodel.analysis.api import run
    from memmodel.analysis.mrc import CompareCurves, StackPass, miss_ratio_curves, translation_stream
    from memmodel.config import load_config

    print(f"\n== {label}: {store.stat().st_size / 1e6:.1f} MB Parquet")
    for name in CONFIGS:
        cfg = load_config(name)
        t0 = time.perf_counter()
        stream = translation_stream(store, cfg)
        t_stream = time.perf_counter() - t0
        n = stream.translations
        print(f"{name}: {n:,} translations in {stream.p4.shape[0]:,} runs, entry sizes {stream.shifts()} "
              f"(stream built in {t_stream:.2f} s)")
        for sets in (1, 16):
            def one_pass(sets: int = sets, stream: Any = stream) -> Any:
                sp = StackPass(stream.shifts(), sets)
                sp.feed(stream.p4, stream.es, stream.counts)
                return sp.histogram(), sp.state_bytes

            secs, (hist, state) = best_of(one_pass, repeat)
            print(f"  stack pass, sets={sets:<3} {secs:6.3f} s  {n / secs / 1e6:6.1f} M translations/s  "
                  f"({hist.compulsory:,} compulsory, {hist.max_useful_ways:,} ways to compulsory only, "
                  f"state {state / 1024:,.0f} KiB)")
        secs, frame = best_of(partial(miss_ratio_curves, store, cfg), repeat)
        print(f"  whole curve (store -> mapping replay -> pass -> {frame.height} rows) {secs:6.3f} s  "
              f"{n / secs / 1e6:6.1f} M translations/s")

    plain, _ = best_of(lambda: run([store], list(CONFIGS)), repeat)

    def with_curves() -> CompareCurves:
        curves = CompareCurves()
        run([store], list(CONFIGS), on_batch=curves)
        return curves

    tapped, curves = best_of(with_curves, repeat)
    rows = curves.frame(0, store.name).height
    alone = sum(best_of(partial(miss_ratio_curves, store, c), 1)[0] for c in CONFIGS)
    print(f"compare of {', '.join(CONFIGS)}: replays {plain:.3f} s; with --mrc curves from their outcomes "
          f"{tapped:.3f} s (+{tapped - plain:.3f} s, {rows} curve rows); a separate curve per config "
          f"(what --mrc did before) would add {alone:.3f} s")
    print(f"peak RSS so far: {peak_rss_mb():,.0f} MB")


def main() -> int:
    from simulate import big_trace  # benchmarks/simulate.py: how the big trace is made

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path, help="default: traces/pchase.lackey.xz and --big")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big", default="/tmp/pchase-big.parquet", help="the big random trace ('none': skip)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {args.repeat}")
    from memmodel.trace import ingest

    traces = list(args.traces) or [REPO / "traces" / "pchase.lackey.xz"]
    print(f"peak RSS after imports: {peak_rss_mb():,.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        for trace in traces:
            store = trace
            if trace.suffix != ".parquet":
                store = Path(tmp) / (trace.name.split(".")[0] + ".parquet")
                ingest([trace], store)
            bench_trace(store, trace.name, args.repeat)
    if not args.traces and args.big != "none":
        big = big_trace(Path(args.big))
        bench_trace(big, f"{big.name} (big random trace)", args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
