"""Two builds of the engine core raced in one process: which is faster, on pairs of runs.

Usage::

    cp memmodel/engine/_core*.so /tmp/before.so       # a build to compare against
    ... change the core, python setup.py build_ext --inplace ...
    python benchmarks/ab_core.py /tmp/before.so memmodel/engine/_core*.so TRACE CONFIG [--pairs 20] [--cpu skylake]

CONFIG is a preset or TOML file, or ``tlb`` for the TLB-only config of ``benchmarks/simulate.py``. Each
pair runs :func:`memmodel.analysis.api.run` end to end (store in, counters out) once with each build, in
alternating order, so both see the same load: on a shared machine, where best-of-N wall times of separate
processes swing by 2x, the median ratio of pairs still resolves differences of a few percent. The two
builds must give the same counters (checked first). Prints the best time of each and the median pair
ratio (> 1: the second build is faster).

The builds are loaded under the module name ``_core`` from copies in a temporary folder, and swapped into
``memmodel.engine.replay`` through ``sys.modules`` (``memmodel.engine.replay`` as an attribute is the
``replay`` function, not the module).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def load_build(so: Path, folder: Path, tag: str) -> ModuleType:
    """The engine core in ``so``, loaded as its own module (a copy, so the file may be rebuilt meanwhile)."""
    d = folder / tag
    d.mkdir()
    copy = d / so.name
    shutil.copy(so, copy)
    spec = importlib.util.spec_from_file_location("_core", copy)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{so}: not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="first build (.so)")
    ap.add_argument("b", type=Path, help="second build (.so)")
    ap.add_argument("trace", type=Path, help="a Parquet trace store")
    ap.add_argument("config", help="preset, TOML file, or 'tlb'")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--cpu", default="skylake", help="CPU preset for a preset config (default skylake)")
    args = ap.parse_args()

    import memmodel.engine.replay  # noqa: F401  (the module, reached through sys.modules below)
    from memmodel.analysis.api import run

    replay_module = sys.modules["memmodel.engine.replay"]
    cfg: Any = args.config
    kwargs: dict[str, Any] = {"cpu": args.cpu}
    if args.config == "tlb":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from simulate import tlb_only_config

        cfg, kwargs = tlb_only_config(), {}

    with tempfile.TemporaryDirectory() as tmp:
        builds = [load_build(args.a, Path(tmp), "a"), load_build(args.b, Path(tmp), "b")]
        counters = []
        for build in builds:
            replay_module._core = build  # type: ignore[attr-defined]
            counters.append(run([args.trace], [cfg], **kwargs)[0].result.counters)
        if counters[0] != counters[1]:
            diff = sorted(k for k in counters[0] if counters[0][k] != counters[1].get(k))
            print(f"the builds disagree on {', '.join(diff)}: not comparable")
            return 1
        times: list[list[float]] = [[], []]
        for i in range(args.pairs):
            for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                replay_module._core = builds[j]  # type: ignore[attr-defined]
                t0 = time.perf_counter()
                run([args.trace], [cfg], **kwargs)
                times[j].append(time.perf_counter() - t0)
    ratio = float(np.median(np.array(times[0]) / np.array(times[1])))
    print(f"{args.trace.name} {args.config}: {args.a.name} best {min(times[0]) * 1e3:.2f} ms, {args.b.name} best "
          f"{min(times[1]) * 1e3:.2f} ms; median of {args.pairs} pairs {ratio:.3f} (> 1: {args.b.name} is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
