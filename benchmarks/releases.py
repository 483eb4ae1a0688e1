"""Replay speed under frequent releases: a random-access trace with a short ``U`` (munmap/madvise) every
few thousand records, the pattern of a program that gives small blocks back while it runs.

Usage::

    python benchmarks/releases.py [--pages 32768] [--records 2000000] [--every 2000] [--repeat 5]
                                  [--keep PATH]

The trace is synthetic and made here (fixed seed, so the same on every machine): ``--records`` 8-byte
loads at random offsets of ``--pages`` random 4 KiB pages of one region, and every ``--every``-th
record replaced by a ``U`` of one random page of the region (4096 bytes, page-aligned). It is written
as a Parquet store (to ``--keep PATH`` if given, to race two builds of the engine core on it with
``benchmarks/ab_core.py BEFORE.so AFTER.so PATH CONFIG``; else to a temporary folder).

Prints, best of ``--repeat`` end to end (store in, counters out, one core) for the TLB-only config of
``benchmarks/simulate.py`` and the nested ``baseline-4k`` and ``baseline-thp`` presets: seconds, records/s,
translations/s, faults and releases; then the peak RSS of the process.

What it measures: a release must make the engine forget what it cached about the pages it changed
(``docs/model.md`` Part 3, item 3). Making every cached page stale at each release made every page
walked afterwards resolve again; a short release now marks only its own pages (measured with
``ab_core.py`` on the default trace, medians of 10-30 pairs in several runs: 1.96-2.27x TLB-only,
1.20-1.24x baseline-4k, 1.30-1.39x baseline-thp).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from simulate import best_of, tlb_only_config  # noqa: E402  (one timing rule, one TLB-only config)

BASE = 0x7F00_0000_0000  # where the region starts (a typical x86-64 mmap address)


def make_trace(path: Path, pages: int, records: int, every: int, seed: int = 7) -> int:
    """Write the trace as a Parquet store at ``path``; returns the number of ``U`` records."""
    import polars as pl

    from memmodel.trace import write_store

    rng = np.random.default_rng(seed)
    page = rng.integers(0, pages, records, dtype=np.uint64)
    gva = np.uint64(BASE) + page * np.uint64(4096) + rng.integers(0, 4088, records, dtype=np.uint64)
    kind = np.full(records, 1, dtype=np.uint8)  # L
    size = np.full(records, 8, dtype=np.uint64)
    at = np.arange(every, records, every)
    kind[at] = 4  # U
    size[at] = 4096
    gva[at] = np.uint64(BASE) + rng.integers(0, pages, len(at), dtype=np.uint64) * np.uint64(4096)
    write_store(path, pl.DataFrame({"kind": kind, "gva": gva, "size": size}))
    return len(at)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=32768)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--every", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="write the trace here (and keep it)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {args.repeat}")
    if args.pages < 1 or args.records < 1 or args.every < 2:
        ap.error("--pages and --records must be >= 1 and --every >= 2")

    from memmodel.analysis.api import run
    from memmodel.errors import MemmodelError

    with tempfile.TemporaryDirectory() as tmp:
        store = args.keep or Path(tmp) / "releases.parquet"
        try:
            unmaps = make_trace(store, args.pages, args.records, args.every)
        except MemmodelError as exc:
            ap.error(str(exc))
        print(f"trace: {args.records:,} records over {args.pages:,} random 4 KiB pages, {unmaps:,} U records "
              f"of one page (one per {args.every:,}); {store.stat().st_size / 1e6:.1f} MB Parquet"
              + (f" at {store}" if args.keep else ""))
        for label, cfg in (("TLB-only", tlb_only_config()), ("baseline-4k", "baseline-4k"),
                           ("baseline-thp", "baseline-thp")):
            cpu = "skylake" if isinstance(cfg, str) else None  # a preset takes the Skylake TLBs
            secs, runs = best_of(partial(run, [store], [cfg], cpu=cpu), args.repeat)
            c = runs[0].result.counters
            print(f"  {label:<13} {secs:6.3f} s  {args.records / secs / 1e6:6.1f} M records/s  "
                  f"{c['accesses'] / secs / 1e6:6.1f} M translations/s  (faults {c['guest_faults']:,}, "
                  f"unmaps {c['unmaps']:,})")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
