"""Measure this machine's zeroing bandwidth and first-touch fault cost, for a ``[cost]`` table.

What is measured (medians of ``repeats`` runs each):

* zero-fill bandwidth of 4 KiB, 2 MiB and 1 GiB buffers that are already faulted in (numpy
  ``fill(0)``; the 4 KiB figure zeroes every 4 KiB page of a 64 MiB buffer one call at a time, so
  Python call overhead is part of it and the figure is a lower bound);
* first touch of fresh anonymous memory (``mmap``), one write per 4 KiB page with
  ``MADV_NOHUGEPAGE`` and one write per 2 MiB with ``MADV_HUGEPAGE``. The fault cost written is the
  time per page minus that page's zeroing time at the measured bandwidth (the kernel zeroes inside
  the fault), floored at 0.

Host (EPT/NPT) fault costs cannot be measured from one side; they keep their defaults
(:class:`memmodel.analysis.costs.CostModel`), as does ``walk_load_ns``. The 1 GiB fault cost is
taken equal to the 2 MiB one (1 GiB pages need a hugetlbfs pool).
"""

from __future__ import annotations

import contextlib
import mmap
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from memmodel.analysis.costs import CostModel

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Calibration:
    """Measured values (medians) and the cost model they give.

    Attributes:
        zero_gbps: zeroing bandwidth in GB/s by size name ("4k", "2m", "1g").
        touch_us_4k: first-touch time per 4 KiB page (fault + zeroing), microseconds.
        touch_us_2m: first-touch time per 2 MiB THP page (fault + zeroing), microseconds.
        thp_ok: whether the 2 MiB touch looked like THP (time per 2 MiB well below 512 4 KiB faults).
        big_bytes: size of the large buffer actually used for the "1g" figure (bytes).
        cost: the defaults with the measured keys replaced.
    """

    zero_gbps: dict[str, float]
    touch_us_4k: float
    touch_us_2m: float
    thp_ok: bool
    big_bytes: int
    cost: CostModel

    def to_toml(self) -> str:
        """A ``[cost]`` table with comments saying which keys were measured."""
        measured = "measured by memmodel calibrate (median)"
        comments = {
            "zero_gbps_4k": f"{measured}; numpy fill per 4 KiB page, lower bound",
            "zero_gbps_2m": measured,
            "zero_gbps_1g": f"{measured} on a {self.big_bytes // MIB} MiB buffer",
            "guest_fault_us_4k": f"{measured}: {self.touch_us_4k:.3f} us per first touch minus zeroing",
            "guest_fault_us_2m": f"{measured}: {self.touch_us_2m:.1f} us per THP first touch minus zeroing"
            + ("" if self.thp_ok else " (THP NOT obtained: 4K faults measured)"),
            "guest_fault_us_1g": "taken = guest_fault_us_2m (not measured)",
        }
        for k in ("host_fault_us_4k", "host_fault_us_2m", "host_fault_us_1g", "walk_load_ns"):
            comments[k] = "default, not measurable here (memmodel/analysis/costs.py names its source)"
        head = ("# Cost table written by `memmodel calibrate` "
                f"({time.strftime('%Y-%m-%d %H:%M')}). Paste into a config, or use as is.\n")
        return head + self.cost.to_toml(comments)


def _median_time(fn: Callable[[], None], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _zero_bw(size: int, repeats: int, page: int) -> float:
    """GB/s zeroing a pre-faulted ``size`` buffer in chunks of ``page`` bytes (one fill call per chunk)."""
    buf = np.ones(size, dtype=np.uint8)  # faulted in (and made non-zero)
    if page >= size:
        return size / _median_time(lambda: buf.fill(0), repeats) / 1e9
    chunks = [buf[i:i + page] for i in range(0, size, page)]

    def run() -> None:
        for c in chunks:
            c.fill(0)

    return size / _median_time(run, repeats) / 1e9


def _touch(size: int, step: int, advice: int | None) -> float:
    """Seconds per page to first-touch ``size`` bytes of fresh anonymous memory, one write per ``step``."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if advice is not None:
            with contextlib.suppress(OSError):
                m.madvise(advice)
        a = np.frombuffer(m, dtype=np.uint8)
        t0 = time.perf_counter()
        a[::step] = 1
        dt = time.perf_counter() - t0
        del a
    finally:
        m.close()
    return dt / (size // step)


def calibrate(
    repeats: int = 5,
    big_bytes: int = GIB,
    touch_bytes: int = 256 * MIB,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Measure this machine (about 10-20 s with the defaults).

    Args:
        repeats: runs per measurement; the median is kept.
        big_bytes: size of the buffer of the "1 GiB" bandwidth (smaller values for tests).
        touch_bytes: fresh memory first-touched per fault measurement (a multiple of 2 MiB).
        progress: called with a step name before each step.
    """
    step = progress or (lambda _s: None)
    if touch_bytes % (2 * MIB) or touch_bytes <= 0:
        raise ValueError("touch_bytes must be a positive multiple of 2 MiB")
    step("zero 4 KiB pages")
    bw4 = _zero_bw(min(64 * MIB, big_bytes), repeats, 4096)
    step("zero 2 MiB buffers")
    bw2 = _zero_bw(min(64 * MIB, big_bytes), repeats, 2 * MIB)
    step(f"zero a {big_bytes // MIB} MiB buffer")
    bw1 = _zero_bw(big_bytes, repeats, big_bytes)
    nohuge = getattr(mmap, "MADV_NOHUGEPAGE", None)
    huge = getattr(mmap, "MADV_HUGEPAGE", None)
    step("first touch, 4 KiB pages")
    t4 = statistics.median(_touch(touch_bytes, 4096, nohuge) for _ in range(repeats))
    step("first touch, 2 MiB THP pages")
    t2 = statistics.median(_touch(touch_bytes, 2 * MIB, huge) for _ in range(repeats))
    thp_ok = t2 < 100 * t4  # 512 separate 4K faults would cost ~512 x t4
    f4 = max(t4 - 4096 / (bw4 * 1e9), 0.0) * 1e6
    f2 = max(t2 - 2 * MIB / (bw2 * 1e9), 0.0) * 1e6
    cost = replace(CostModel(), zero_gbps_4k=round(bw4, 3), zero_gbps_2m=round(bw2, 3), zero_gbps_1g=round(bw1, 3),
                   guest_fault_us_4k=round(max(f4, 1e-3), 4), guest_fault_us_2m=round(max(f2, 1e-3), 3),
                   guest_fault_us_1g=round(max(f2, 1e-3), 3))
    return Calibration({"4k": bw4, "2m": bw2, "1g": bw1}, t4 * 1e6, t2 * 1e6, thp_ok, big_bytes, cost)
