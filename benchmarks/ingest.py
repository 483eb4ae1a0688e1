"""Benchmark: lackey text -> Parquet store ingest speed (MB/s of input text, records/s), in process
and as the whole ``memmodel ingest`` command, with peak RSS.

Usage::

    python benchmarks/ingest.py TRACE.lackey [--repeat 3]
    python benchmarks/ingest.py --make /tmp/pchase-big.lackey     # record the ~500 MB text first

``--make PATH`` builds ``traces/programs/pchase.c`` with gcc -O2 and records ``pchase 6000000``
under valgrind lackey into PATH, i.e.::

    gcc -O2 -o pchase traces/programs/pchase.c
    valgrind --tool=lackey --trace-mem=yes --log-file=/tmp/pchase-big.lackey ./pchase 6000000

(493.6 MB of text, 35.25 M records; about 40 s). An existing PATH is reused, not recorded again.
The input should be in the page cache (the warm-up run reads it). Two figures, every run and the best
of ``--repeat``:

* in process: :func:`memmodel.trace.ingest` called from this interpreter (imports are paid once,
  before timing), with the store's size;
* whole command: ``memmodel ingest TRACE -o OUT`` in a fresh interpreter (``memmodel.cli.main``, as the
  console script runs it), timed from spawn to exit, so interpreter start-up, imports, parsing,
  writing and the summary all count (goal, issue 9: >= 300 MB/s on a 500 MB
  text); with its peak RSS (``VmHWM``), and at the end how many runs reached the goal.

Every run line ends with the 1-minute load average before it (``load``): ingest uses both cores of the
2-vCPU benchmark machine (parser, Parquet writer and hashing threads), so on a machine shared with other
work the wall times measure the sharing too; compare runs at similar load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_trace(out: Path, steps: int) -> None:
    """Record ``pchase STEPS`` under lackey into ``out`` (plain text; written beside, renamed when complete)."""
    part = out.with_name(out.name + ".part")
    with tempfile.TemporaryDirectory() as d:
        exe = Path(d) / "pchase"
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(REPO / "traces" / "programs" / "pchase.c")], check=True)
        subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={part}", str(exe), str(steps)],
                       check=True, stdout=subprocess.DEVNULL)
    os.replace(part, out)


#: ``memmodel ingest ARGS`` exactly as the console script runs it (``memmodel.cli.main``), plus one line
#: on stderr at exit with the process's peak RSS (``VmHWM``; a child's ``ru_maxrss`` would also count
#: this benchmark's RSS at the fork, which the kernel carries across exec).
_COMMAND = """
import atexit, sys
def _hwm():
    with open("/proc/self/status") as f:
        print("VmHWM", [l.split()[1] for l in f if l.startswith("VmHWM:")][0], file=sys.stderr)
atexit.register(_hwm)
sys.argv = ["memmodel", "ingest", *sys.argv[1:]]
from memmodel.cli import main
main()
"""


def run_command(trace: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one ``memmodel ingest`` process, spawn to exit."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _COMMAND, str(trace), "-o", str(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"memmodel ingest failed ({res.returncode}): {res.stderr.strip()}")
    kib = [line.split()[1] for line in res.stderr.splitlines() if line.startswith("VmHWM ")]
    return dt, int(kib[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--make", type=Path, help="record a pchase trace to this path first (reused if it exists)")
    ap.add_argument("--steps", type=int, default=6_000_000)
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {a.repeat}")
    if a.make:
        if not a.make.exists():
            make_trace(a.make, a.steps)
        a.trace = a.trace or a.make
    if a.trace is None:
        ap.error("give a trace or --make PATH")
    from memmodel.trace.store import ingest

    size = os.path.getsize(a.trace)
    mb = size / 1e6
    print(f"trace: {a.trace} ({mb:,.1f} MB), cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.parquet"
        ingest([a.trace], out)  # warm-up: page cache, imports
        best = float("inf")
        for i in range(a.repeat):
            load = os.getloadavg()[0]
            t = time.perf_counter()
            s = ingest([a.trace], out)
            dt = time.perf_counter() - t
            best = min(best, dt)
            print(f"in process, run {i + 1}: {dt:.2f} s  {mb / dt:,.0f} MB/s  {s.records / dt / 1e6:,.1f} M records/s "
                  f"({s.records:,} records, parquet {out.stat().st_size / 1e6:,.1f} MB, "
                  f"footer {s.footer_check['status']})  load {load:.2f}")
        print(f"in process, best: {mb / best:,.0f} MB/s, {s.records / best / 1e6:,.1f} M records/s")
        best_cmd, rss, reached = float("inf"), 0.0, 0
        for i in range(a.repeat):
            load = os.getloadavg()[0]
            dt, peak = run_command(a.trace, Path(d) / "cmd.parquet")
            best_cmd, rss = min(best_cmd, dt), max(rss, peak)
            reached += mb / dt >= 300
            print(f"whole command, run {i + 1}: {dt:.2f} s  {mb / dt:,.0f} MB/s  peak RSS {peak:,.0f} MB  "
                  f"load {load:.2f}")
        print(f"whole `memmodel ingest` command, best: {mb / best_cmd:,.0f} MB/s, "
              f"{s.records / best_cmd / 1e6:,.1f} M records/s, peak RSS {rss:,.0f} MB (goal >= 300 MB/s: "
              f"{reached} of {a.repeat} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
