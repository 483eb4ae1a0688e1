"""Engine speed: end-to-end replay (Parquet in, counters out, one core) and a TLB-only race with pycachesim.

Usage::

    python benchmarks/simulate.py [TRACE...] [--repeat 3]

TRACE defaults to every shipped ``traces/*.lackey.xz`` (each ingested to a temporary Parquet store first).
Prints, for ``baseline-4k`` and ``memctl-2m`` with the ``skylake`` CPU preset: trace records/s (records
of every kind, instruction fetches included) and data translations/s, best of ``--repeat`` runs after a
warm-up (numba compilation excluded). Then, for a TLB-only config (native, 4K pages, L1 64 x 4-way + L2
1536 x 12-way, no PSC), memmodel's translations/s next to pycachesim's C core (``loadstore`` in bulk)
doing the same two-level LRU TLB on the same addresses, and checks that both count the same hits.
Goals (issue #3, 2-core machine): >= 50 M records/s and >= 20 M translations/s for the full nested model;
TLB-only >= 2x pycachesim.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def _best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    fn()  # warm-up: JIT, page cache
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("traces", nargs="*", help="default: every shipped trace (traces/*.lackey.xz)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for trace in args.traces or sorted((REPO / "traces").glob("*.lackey.xz")):
        bench_trace(Path(trace), args.repeat)
        print()


def bench_trace(trace: Path, repeat: int) -> None:
    """Print the figures for one trace."""
    from memmodel.analysis.api import run
    from memmodel.config import parse_config
    from memmodel.engine import Replay, translations_to_runs
    from memmodel.trace import ingest, iter_batches

    with tempfile.TemporaryDirectory() as tmp:
        store = trace
        if trace.suffix != ".parquet":
            store = Path(tmp) / "trace.parquet"
            ingest([trace], store)
        cols = [b for b in iter_batches(store, ("kind", "gva", "size"))]
        records = sum(len(b["kind"]) for b in cols)
        print(f"trace: {trace.name}, {records:,} records ({store.stat().st_size / 1e6:.1f} MB Parquet)")

        print("\nfull nested model, end to end (Parquet in, counters out), one core:")
        for name in ("baseline-4k", "memctl-2m"):
            secs, runs = _best(lambda name=name: run([store], [name], cpu="skylake"), repeat)
            c = runs[0].result.counters  # type: ignore[index]
            print(f"  {name:<12} {secs:6.3f} s  {records / secs / 1e6:6.1f} M records/s  "
                  f"{c['accesses'] / secs / 1e6:6.1f} M translations/s  (walks {c['walks']:,})")

        # ---- TLB-only: memmodel vs pycachesim on the same translation addresses ----
        tlb_only = parse_config({
            "name": "tlb-only", "virtualized": False, "guest": {"page_size": "4K"},
            "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 64, "ways": 4}],
                    "l2": [{"page_sizes": ["4K"], "entries": 1536, "ways": 12}]},
        })
        batches = [translations_to_runs(b["kind"], b["gva"], b["size"]) for b in cols]

        # the same addresses for both: one per translation, in trace order (straddles already split)
        pages = np.concatenate([np.repeat(p4, n) for p4, n, _ in batches])
        addr_u64 = (pages << 12).astype(np.uint64)
        loads = np.ones(addr_u64.shape[0], dtype=np.uint8)
        ones = np.ones(addr_u64.shape[0], dtype=np.uint16)

        def memmodel_tlb() -> dict:
            r = Replay(tlb_only)
            step = 1 << 20
            for i in range(0, addr_u64.shape[0], step):
                r.feed(loads[i : i + step], addr_u64[i : i + step], ones[i : i + step])
            return r.result().counters

        secs_mm, c = _best(memmodel_tlb, repeat)
        n_tr = c["accesses"]  # type: ignore[index]
        print(f"\nTLB-only (native 4K, L1 64x4 + L2 1536x12), {n_tr:,} translations, same address stream:")
        print(f"  memmodel    {secs_mm:6.3f} s  {n_tr / secs_mm / 1e6:6.1f} M translations/s "
              f"(addresses -> page runs -> kernel)")
        try:
            import cachesim  # pycachesim
        except ImportError:
            print("  pycachesim not installed (pip install pycachesim): no comparison")
            return
        addrs = addr_u64.astype(np.int64).tolist()

        def pycachesim_tlb() -> tuple[int, int, int]:
            mem = cachesim.MainMemory()
            l2 = cachesim.Cache("L2", 128, 12, 4096, "LRU")
            mem.load_to(l2)
            mem.store_from(l2)
            l1 = cachesim.Cache("L1", 16, 4, 4096, "LRU", store_to=l2, load_from=l2)
            cs = cachesim.CacheSimulator(l1, mem)
            cs.loadstore([(addrs, ())], length=1)  # one bulk call: every address a load
            st = {s["name"]: s for s in cs.stats()}
            return st["L1"]["HIT_count"], st["L2"]["HIT_count"], st["L2"]["MISS_count"]

        secs_pc, (h1, h2, miss) = _best(pycachesim_tlb, repeat)  # type: ignore[misc]
        same = (h1, h2, miss) == (c["l1_hits"], c["l2_hits"], c["walks"])  # type: ignore[index]
        print(f"  pycachesim  {secs_pc:6.3f} s  {n_tr / secs_pc / 1e6:6.1f} M translations/s (bulk loadstore)")
        print(f"  ratio memmodel / pycachesim: {secs_pc / secs_mm:.1f}x; same hits/misses: {same} "
              f"(memmodel {c['l1_hits']:,}/{c['l2_hits']:,}/{c['walks']:,}, "  # type: ignore[index]
              f"pycachesim {h1:,}/{h2:,}/{miss:,})")
        if not same:
            sys.exit("hit counts differ")


if __name__ == "__main__":
    main()
