"""Measure this machine's zeroing bandwidth and first-touch fault cost, for a ``[cost]`` table.

What is measured (medians of ``repeats`` runs each):

* zero-fill bandwidth of 4 KiB, 2 MiB and 1 GiB buffers that are already faulted in (numpy
  ``fill(0)``; the 4 KiB figure zeroes every 4 KiB page of a 64 MiB buffer one call at a time, so
  Python call overhead is part of it and the figure is a lower bound);
* first touch of fresh anonymous memory (``mmap``), one write per 4 KiB page with
  ``MADV_NOHUGEPAGE`` and one write per 2 MiB with ``MADV_HUGEPAGE``. The fault cost written is the
  time per page minus that page's zeroing time at the measured bandwidth, floored at 0.

A 2 MiB fault cost is written only when the kernel really gave transparent huge pages: the
mapping's ``AnonHugePages`` in ``/proc/self/smaps`` must cover the touched memory (or, without
``/proc``, the touch must cost far less than 512 separate 4 KiB faults). Otherwise the 2 MiB and
1 GiB fault costs keep their defaults and the table says that THP was not obtained: a time
measured on 4 KiB faults is never written as a 2 MiB fault cost.

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
            "guest_fault_us_2m": f"{measured}: {self.touch_us_2m:.1f} us per THP first touch minus zeroing",
            "guest_fault_us_1g": "taken = guest_fault_us_2m (not measured)",
        }
        if not self.thp_ok:
            why = (f"default kept: THP was not obtained (the kernel backed the 2 MiB test with 4 KiB pages, "
                   f"{self.touch_us_2m:.1f} us per 2 MiB); see docs/costs.md")
            comments["guest_fault_us_2m"] = why
            comments["guest_fault_us_1g"] = why
        for k in ("host_fault_us_4k", "host_fault_us_2m", "host_fault_us_1g", "walk_load_ns"):
            comments[k] = "default, not measurable here (derivation and source: docs/costs.md)"
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


def anon_huge_bytes(address: int, smaps: str = "/proc/self/smaps") -> int | None:
    """``AnonHugePages`` of the mapping holding ``address``, in bytes (None without ``/proc``)."""
    try:
        text = open(smaps, encoding="ascii", errors="replace").read()  # noqa: SIM115
    except OSError:
        return None
    inside = False
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            lo, _, hi = head.partition("-")
            try:
                inside = int(lo, 16) <= address < int(hi, 16)
            except ValueError:
                inside = False
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    return 0 if inside else None


def _touch(size: int, step: int, advice: int | None) -> tuple[float, int | None]:
    """Seconds per page to first-touch ``size`` bytes of fresh anonymous memory, one write per ``step``,
    and the mapping's ``AnonHugePages`` bytes after the touch (None when unknown)."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if advice is not None:
            with contextlib.suppress(OSError):
                m.madvise(advice)
        a = np.frombuffer(m, dtype=np.uint8)
        t0 = time.perf_counter()
        a[::step] = 1
        dt = time.perf_counter() - t0
        huge = anon_huge_bytes(int(a.ctypes.data))
        del a
    finally:
        m.close()
    return dt / (size // step), huge


def thp_obtained(huge_bytes: list[int | None], touch_bytes: int, t2: float, t4: float) -> bool:
    """Whether the 2 MiB first-touch test really ran on transparent huge pages.

    Args:
        huge_bytes: ``AnonHugePages`` of the test mapping after each run (None where unknown).
        touch_bytes: bytes touched per run.
        t2: median seconds per 2 MiB touch.
        t4: median seconds per 4 KiB touch.

    With ``/proc``: at least half of the touched memory was huge in the median run. Without it:
    a 2 MiB touch cost less than 100 4 KiB faults (512 separate faults would cost about 512 x t4).
    """
    known = [h for h in huge_bytes if h is not None]
    if known:
        return statistics.median(known) >= touch_bytes // 2
    return t2 < 100 * t4


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
    t4 = statistics.median(_touch(touch_bytes, 4096, nohuge)[0] for _ in range(repeats))
    step("first touch, 2 MiB THP pages")
    thp = [_touch(touch_bytes, 2 * MIB, huge) for _ in range(repeats)]
    t2 = statistics.median(t for t, _ in thp)
    thp_ok = thp_obtained([h for _, h in thp], touch_bytes, t2, t4)
    f4 = max(t4 - 4096 / (bw4 * 1e9), 0.0) * 1e6
    f2 = max(t2 - 2 * MIB / (bw2 * 1e9), 0.0) * 1e6
    cost = replace(CostModel(), zero_gbps_4k=round(bw4, 3), zero_gbps_2m=round(bw2, 3), zero_gbps_1g=round(bw1, 3),
                   guest_fault_us_4k=round(max(f4, 1e-3), 4))
    if thp_ok:  # never a 2 MiB fault cost measured on 4 KiB faults: the defaults stay otherwise
        cost = replace(cost, guest_fault_us_2m=round(max(f2, 1e-3), 3), guest_fault_us_1g=round(max(f2, 1e-3), 3))
    return Calibration({"4k": bw4, "2m": bw2, "1g": bw1}, t4 * 1e6, t2 * 1e6, thp_ok, big_bytes, cost)
