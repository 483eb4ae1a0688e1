"""Benchmark: lackey text -> Parquet store ingest speed (MB/s of input text, records/s).

Usage::

    python benchmarks/ingest.py TRACE.lackey [--repeat 3]
    python benchmarks/ingest.py --make /tmp/big.lackey --steps 6000000   # record one first

``--make`` builds ``traces/programs/pchase.c`` with gcc -O2 and records it under valgrind lackey
(6 M steps give ~494 MB of text, 35 M records). The input should be in the page cache (the first
repeat warms it); the best of ``--repeat`` runs is reported together with every run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_trace(out: Path, steps: int) -> None:
    """Record ``pchase STEPS`` under lackey into ``out`` (plain text)."""
    src = Path(__file__).resolve().parent.parent / "traces" / "programs" / "pchase.c"
    with tempfile.TemporaryDirectory() as d:
        exe = Path(d) / "pchase"
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
        with open(out, "wb") as f:
            subprocess.run(
                ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-fd={f.fileno()}", str(exe), str(steps)],
                check=True,
                pass_fds=(f.fileno(),),
                stdout=subprocess.DEVNULL,
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--make", type=Path, help="record a pchase trace to this path first")
    ap.add_argument("--steps", type=int, default=6_000_000)
    a = ap.parse_args()
    if a.make:
        make_trace(a.make, a.steps)
        a.trace = a.trace or a.make
    if a.trace is None:
        ap.error("give a trace or --make PATH")
    from memmodel.trace.store import ingest

    size = os.path.getsize(a.trace)
    print(f"trace: {a.trace} ({size / 1e6:,.1f} MB), cpus: {os.cpu_count()}")
    best = None
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.parquet"
        for i in range(a.repeat):
            t = time.perf_counter()
            s = ingest([a.trace], out)
            dt = time.perf_counter() - t
            pq_mb = out.stat().st_size / 1e6
            print(
                f"run {i + 1}: {dt:.2f} s  {size / 1e6 / dt:,.0f} MB/s  {s.records / dt / 1e6:,.1f} M records/s  "
                f"({s.records:,} records, parquet {pq_mb:,.1f} MB, footer {s.footer_check['status']})"
            )
            best = dt if best is None else min(best, dt)
    assert best is not None
    print(f"best: {size / 1e6 / best:,.0f} MB/s, {s.records / best / 1e6:,.1f} M records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
