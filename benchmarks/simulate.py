"""Engine speed, end to end (Parquet store in, counters out, one core), a TLB-only race with
pycachesim's C core on the same addresses, and peak RSS.

Usage::

    python benchmarks/simulate.py [TRACE...] [--repeat 3] [--big PATH] [--callgrind]

TRACE defaults to every shipped ``traces/*.lackey.xz`` (each ingested to a temporary Parquet store
first) plus a big random-access trace, ``--big`` (default ``/tmp/pchase-big.parquet``; ``none`` skips
it). The big trace is not shipped; it is recorded on first use and cached at that path, exactly so::

    gcc -O2 -o pchase traces/programs/pchase.c
    memmodel record --no-syscalls -o /tmp/pchase-big.parquet -- ./pchase 6000000

(a random pointer chase over 32 MiB: 35.3 M records, 28.3 M of them instruction fetches, 7.0 M data
translations; about a minute under valgrind lackey). ``--no-syscalls`` keeps ``U`` records out, so the
TLB-only race and the miss-ratio curves (``benchmarks/mrc.py``) can use it too.

Per trace it prints, best of ``--repeat`` timed runs after a warm-up, all in this one process:

* full nested model end to end (:func:`memmodel.analysis.api.run` on the store: read, decode, replay,
  counters) for ``baseline-4k``, ``baseline-thp`` and ``memctl-2m`` with the ``skylake`` CPU preset: trace
  records/s (every kind, instruction fetches included) and data translations/s. Goals (issue 9):
  >= 50 M records/s and >= 20 M translations/s for baseline-4k, memctl-2m and THP no slower;
* TLB-only (native, 4K pages, L1 64 x 4-way + L2 1536 x 12-way, no PSC): memmodel end to end from the
  store next to pycachesim's C core (``loadstore`` in bulk on a list of the same translation
  addresses, prepared untimed) doing the same two-level LRU TLB; both must count the same L1 hits,
  L2 hits and misses (the script exits non-zero otherwise). Goal: >= 2x pycachesim. The ratio is
  printed best against best and as the median of ``--repeat`` back-to-back pairs (steadier when the
  machine is shared; on a short trace each side of a pair runs the same number of times, enough for
  20 ms). A third line
  times memmodel's engine on the same addresses already in memory (no store; packed as 1-byte loads,
  untimed, as pycachesim's list is prepared untimed), like pycachesim;
* peak RSS (``VmHWM``, MB) of a fresh process that replays one config from the store, and of one that
  only imports memmodel; and, read after every batch while the replay's state is alive, its anonymous
  part (the state, Python's heap) and its file-backed part (the mapped replay cache of the trace, 12
  bytes per data record, and shared libraries: page-cache pages the kernel can drop and read again). The
  anonymous part is bounded by the pages touched, not by the trace length: the 35 M-record trace needs
  no more than the 7 M-record shipped pchase (measured: 37 MB for either, against 60 and 124 MB
  file-backed); the file-backed part grows with the trace's data records;
* with ``--callgrind``: instructions executed inside the engine core's ``feed`` for baseline-4k (valgrind
  callgrind, ``--toggle-collect=Engine_feed``), per record and per translation: a figure that does not
  depend on the machine's load (slow: about 50x the replay time).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ("baseline-4k", "baseline-thp", "memctl-2m")
BIG_STEPS = 6_000_000


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(best wall time in s over ``repeat`` runs after one warm-up run, last result)."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def paired_ratios(ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int,
                  min_sample: float = 0.02) -> tuple[list[float], int]:
    """Speed ratios (their time / our time) of ``repeat`` back-to-back pairs of samples, and the runs per
    sample: on a machine shared with other work, a pair sees the same load, so the median pair is steadier
    than best against best. A sample is ``loops`` runs in a row, the same count on both sides, enough for
    the faster side to take ``min_sample`` seconds: one run of a short trace (0.6 ms for memmodel on
    lifecycle) is a single reading of a timer and a cache state: medians of five such pairs ranged from
    1.98x to 2.48x over six runs of two builds of equal speed (pairs of the builds: 1.00x); ``loops`` is 1
    for traces that take longer than that already.
    """
    t0 = time.perf_counter()
    ours()
    t1 = time.perf_counter()
    theirs()
    fastest = min(t1 - t0, time.perf_counter() - t1)
    loops = max(1, int(min_sample / max(fastest, 1e-9)) + 1) if fastest < min_sample else 1
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            ours()
        t1 = time.perf_counter()
        for _ in range(loops):
            theirs()
        out.append((time.perf_counter() - t1) / (t1 - t0))
    return out, loops


def big_trace(path: Path, steps: int = BIG_STEPS) -> Path:
    """The big random-access trace at ``path``: recorded once (see the module docstring), then reused."""
    if path.exists():
        return path
    print(f"recording the big random trace once: pchase {steps} under valgrind lackey -> {path} (about a minute)",
          flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part.parquet")  # renamed into place when complete: never half a cache
    with tempfile.TemporaryDirectory() as d:
        exe = Path(d) / "pchase"
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(REPO / "traces" / "programs" / "pchase.c")], check=True)
        subprocess.run([sys.executable, "-m", "memmodel", "record", "--no-syscalls", "-o", str(part), "--",
                        str(exe), str(steps)], check=True, stdout=subprocess.DEVNULL)
    os.replace(part, path)
    return path


def tlb_only_config() -> Any:
    """Native 4K pages, L1 64 x 4-way + L2 1536 x 12-way, no PSC: what pycachesim can model too."""
    from memmodel.config import parse_config

    return parse_config({
        "name": "tlb-only", "virtualized": False, "guest": {"page_size": "4K"},
        "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 64, "ways": 4}],
                "l2": [{"page_sizes": ["4K"], "entries": 1536, "ways": 12}]},
    })


def translation_addresses(store: Path) -> list[int]:
    """The address of every translation of the trace (one per L/S/M, two for a straddle), in order."""
    from memmodel.engine import translations_to_runs
    from memmodel.trace import iter_batches

    parts = []
    for b in iter_batches(store, ("kind", "gva", "size")):
        p4, n, _ = translations_to_runs(b["kind"], b["gva"], b["size"])
        parts.append(np.repeat(p4, n) << 12)
    return np.concatenate(parts).tolist() if parts else []


def pycachesim_tlb(addrs: list[int]) -> tuple[int, int, int]:
    """pycachesim's C core as the same two-level LRU TLB: (L1 hits, L2 hits, L2 misses)."""
    import cachesim

    mem = cachesim.MainMemory()
    l2 = cachesim.Cache("L2", 128, 12, 4096, "LRU")
    mem.load_to(l2)
    mem.store_from(l2)
    l1 = cachesim.Cache("L1", 16, 4, 4096, "LRU", store_to=l2, load_from=l2)
    cs = cachesim.CacheSimulator(l1, mem)
    cs.loadstore([(addrs, ())], length=1)  # one bulk call: every address a 1-byte load
    st = {s["name"]: s for s in cs.stats()}
    return st["L1"]["HIT_count"], st["L2"]["HIT_count"], st["L2"]["MISS_count"]


def peak_rss_mb() -> float:
    """Peak RSS (MB) of this process's own address space: ``VmHWM`` of /proc/self/status.

    Not ``getrusage``: a spawned child's ``ru_maxrss`` also counts the parent's RSS at the fork (the
    kernel carries the old address space's high-water mark across exec), which here is the benchmark.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no procfs: an upper bound


def rss_parts_mb() -> tuple[float, float]:
    """This process's resident memory now (MB): anonymous (``RssAnon``: heap, the replay's state) and
    file-backed (``RssFile``: mapped files such as the replay cache of a trace, and shared libraries, pages
    the kernel can drop and read again). (0, 0) without procfs."""
    parts = {"RssAnon:": 0.0, "RssFile:": 0.0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(maxsplit=1)[0]
                if key in parts:
                    parts[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return parts["RssAnon:"], parts["RssFile:"]


def import_rss() -> float:
    """Peak RSS (MB) of a fresh process that only imports memmodel's analysis API."""
    return child_rss("--imports-only")[0]


def _packed_loads(addrs: np.ndarray) -> list[dict[str, np.ndarray]]:
    """``addrs`` as 1-byte loads in the packed compact form every replay of a store reads (batches of 2^20)."""
    from memmodel.trace.compact import pack

    n = addrs.shape[0]
    return [pack({"kind": np.ones(min(n - i, 1 << 20), dtype=np.uint8), "gva": addrs[i : i + (1 << 20)],
                  "size": np.ones(min(n - i, 1 << 20), dtype=np.uint64),
                  "icount": np.zeros(min(n - i, 1 << 20), dtype=np.uint32)}) for i in range(0, n, 1 << 20)]


def _kernel_tlb_packed(cfg: Any, batches: list[dict[str, np.ndarray]]) -> tuple[int, int, int]:
    """memmodel's engine on packed batches already in memory: (L1 hits, L2 hits, walks)."""
    from memmodel.engine import Replay

    r = Replay(cfg)
    for b in batches:
        r.feed_packed(b)
    c = r.result().counters
    return c["l1_hits"], c["l2_hits"], c["walks"]


def child_rss(*args: str) -> tuple[float, float, float]:
    """Of a fresh ``python simulate.py --child ...`` process (MB): peak RSS, and the most anonymous and
    file-backed resident memory seen after a batch (0 for ``--imports-only``)."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    peak, anon, file = (float(x) for x in out.stdout.split()[-3:])
    return peak, anon, file


def callgrind_feed(store: Path, config: str) -> tuple[int, int, int]:
    """(instructions inside Engine_feed, records, translations) of one replay, under valgrind callgrind."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "callgrind.out"
        res = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              "--toggle-collect=Engine_feed", sys.executable, __file__, "--child", str(store), config,
                              "--counts"], check=True, capture_output=True, text=True)
        text = out.read_text()
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if m is None:
        raise RuntimeError("callgrind wrote no instruction total")
    records, translations = (int(x) for x in res.stdout.split()[:2])
    return int(m.group(1)), records, translations


def bench_trace(trace: Path, label: str, repeat: int, callgrind: bool) -> bool:
    """Print the figures of one trace; False when memmodel and pycachesim disagree."""
    import polars as pl

    from memmodel.analysis.api import run
    from memmodel.trace import ingest, read_metadata, write_store

    with tempfile.TemporaryDirectory() as tmp:
        store = trace
        if trace.suffix != ".parquet":
            store = Path(tmp) / "trace.parquet"
            ingest([trace], store)
        by_kind = read_metadata(store)["accounting"]["by_kind"]
        records = sum(int(v) for v in by_kind.values())
        print(f"\n== {label}: {records:,} records ({int(by_kind.get('I', 0)):,} I), "
              f"{store.stat().st_size / 1e6:.1f} MB Parquet")

        print("full nested model, end to end (store in, counters out), one core:")
        for name in CONFIGS:
            secs, runs = best_of(partial(run, [store], [name], cpu="skylake"), repeat)
            c = runs[0].result.counters
            print(f"  {name:<13} {secs:6.3f} s  {records / secs / 1e6:6.1f} M records/s  "
                  f"{c['accesses'] / secs / 1e6:6.1f} M translations/s  (walks {c['walks']:,})")

        cfg = tlb_only_config()
        race, note = store, ""
        if int(by_kind.get("U", 0)):
            # pycachesim has no invalidation: both race on the trace without its U records (untimed copy)
            race, note = Path(tmp) / "no-unmaps.parquet", f", {int(by_kind['U'])} U records removed"
            write_store(race, pl.read_parquet(store, columns=["kind", "gva", "size"]).filter(pl.col("kind") != 4))
        secs_mm, runs = best_of(partial(run, [race], [cfg]), repeat)
        c = runs[0].result.counters
        n_tr = c["accesses"]
        print(f"TLB-only (native 4K, L1 64x4 + L2 1536x12), {n_tr:,} translations, same addresses{note}:")
        print(f"  memmodel    {secs_mm:6.3f} s  {n_tr / secs_mm / 1e6:6.1f} M translations/s "
              "(end to end from the store)")
        same = True
        try:
            import cachesim  # noqa: F401  (pycachesim)
        except ImportError:
            print("  pycachesim not installed (pip install pycachesim): no comparison")
        else:
            addrs = translation_addresses(race)
            secs_pc, (h1, h2, miss) = best_of(lambda: pycachesim_tlb(addrs), repeat)
            ratios, loops = paired_ratios(partial(run, [race], [cfg]), lambda: pycachesim_tlb(addrs), repeat)
            secs_k, kc = best_of(partial(_kernel_tlb_packed, cfg, _packed_loads(np.array(addrs, dtype=np.uint64))),
                                 repeat)
            del addrs
            print(f"  memmodel    {secs_k:6.3f} s  {n_tr / secs_k / 1e6:6.1f} M translations/s (the same addresses "
                  f"as 1-byte loads in memory, no store; same hits: {kc == (c['l1_hits'], c['l2_hits'], c['walks'])})")
            same = (h1, h2, miss) == (c["l1_hits"], c["l2_hits"], c["walks"])
            print(f"  pycachesim  {secs_pc:6.3f} s  {n_tr / secs_pc / 1e6:6.1f} M translations/s (bulk loadstore, "
                  "addresses already in a list)")
            per = f", {loops} runs a side per pair" if loops > 1 else ""
            print(f"  ratio memmodel / pycachesim: {secs_pc / secs_mm:.2f}x (best against best); paired runs "
                  f"median {float(np.median(ratios)):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x{per}")
            print(f"  same hits: {same} (L1/L2/miss memmodel {c['l1_hits']:,}/{c['l2_hits']:,}/{c['walks']:,}, "
                  f"pycachesim {h1:,}/{h2:,}/{miss:,})")

        rss = {name: child_rss(str(store), name) for name in CONFIGS}
        print("peak RSS of a fresh process replaying one config from the store: "
              + ", ".join(f"{k} {v[0]:,.0f} MB" for k, v in rss.items())
              + "; of it, the most after a batch, anonymous (replay state, Python) "
              + ", ".join(f"{v[1]:,.0f}" for v in rss.values())
              + " MB and file-backed (the trace's mapped replay cache, libraries) "
              + ", ".join(f"{v[2]:,.0f}" for v in rss.values()) + " MB")
        if callgrind:
            ins, recs, trs = callgrind_feed(store, "baseline-4k")
            print(f"callgrind, baseline-4k, inside Engine_feed: {ins:,} instructions = {ins / recs:.1f} per record, "
                  f"{ins / trs:.1f} per translation")
    return same


def child(argv: list[str]) -> None:
    """``--child STORE CONFIG [--counts]``: replay one config, print (records, translations), then peak RSS and
    the most anonymous and file-backed resident memory seen after a batch, while the replay's state is
    alive (MB; read by ``run``'s progress callback); ``--child --imports-only``: only the imports."""
    from memmodel.analysis.api import run
    from memmodel.trace import read_metadata

    if argv[0] == "--imports-only":
        print(peak_rss_mb(), 0, 0)
        return
    store, config = argv[0], argv[1]
    seen = [0.0, 0.0]

    def progress(_done: int) -> None:
        anon, file = rss_parts_mb()
        seen[0], seen[1] = max(seen[0], anon), max(seen[1], file)

    c = run([store], [config], cpu="skylake", progress=progress)[0].result.counters
    if "--counts" in argv:
        records = sum(int(v) for v in read_metadata(store)["accounting"]["by_kind"].values())
        print(records, c["accesses"])
    print(peak_rss_mb(), seen[0], seen[1])


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path, help="default: every traces/*.lackey.xz and --big")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big", default="/tmp/pchase-big.parquet", help="the big random trace ('none': skip)")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions under valgrind callgrind")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {args.repeat}")
    todo = [(t, t.name) for t in (args.traces or sorted((REPO / "traces").glob("*.lackey.xz")))]
    if not args.traces and args.big != "none":
        big = big_trace(Path(args.big))
        todo.append((big, f"{big.name} (big random trace, pchase {BIG_STEPS})"))
    print(f"peak RSS of a fresh process that only imports memmodel: {import_rss():,.0f} MB")
    ok = True
    for trace, label in todo:
        ok &= bench_trace(trace, label, args.repeat, args.callgrind)
    if not ok:
        print("memmodel and pycachesim counted different hits", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
