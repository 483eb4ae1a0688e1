"""Replaying a stream of trace batches through one config: the Python face of the C engine core.

:class:`Replay` turns a resolved :class:`~memmodel.config.ModelConfig` into the core's parameters
(translation-cache arrays, sides, free page reporting), runs docs/model.md's start-up, feeds it batches of
records and assembles the :class:`~memmodel.engine.result.SimResult`. Memory is bounded by the model
state (pages touched, guest-physical memory), never by trace length: the trace arrives in batches.

The core (``memmodel/engine/_core.c``) replays records one by one, so every event of the memory
lifecycle (a ``U`` record, a free page reporting pass, a TLB invalidation) happens exactly where it
falls in the trace; ``docs/model.md`` states why its shortcuts (repeat collapsing, the 4 KiB L1 fast
path, cached per-page state) are exact under those events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import numpy as np

from memmodel.config.model import ModelConfig
from memmodel.engine import _core
from memmodel.engine.result import EXTRA_NAMES, SERIES_NAMES, SimResult, counters_from_raw
from memmodel.errors import OutOfMemoryError

MASK64 = (1 << 64) - 1
DEFAULT_WINDOW = 10_000


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The standard splitmix64 output function, vectorised over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def removed_frames(frames: int, fragmentation: float, seed: int) -> np.ndarray:
    """Frames made unmovable by pre-existing fragmentation (docs/model.md section 2), sorted, int64."""
    if fragmentation <= 0.0:
        return np.zeros(0, dtype=np.int64)
    b = np.arange(frames // 512, dtype=np.uint64)
    h = splitmix64((np.uint64(seed) << np.uint64(32)) ^ b)
    broken = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fragmentation
    offset = splitmix64(h[broken]) % np.uint64(512)
    return (b[broken] * np.uint64(512) + offset).astype(np.int64)


class Buddy:
    """One side's buddy allocator (docs/model.md section 2), the engine core's own code, for tests and tools."""

    def __init__(self, core: Any) -> None:
        self._core = core

    @classmethod
    def build(cls, frames: int, fragmentation: float, seed: int, placement: str = "lowest") -> Buddy:
        """An allocator over ``frames`` 4 KiB frames with its pre-existing fragmentation applied."""
        removed = removed_frames(frames, fragmentation, seed)
        return cls(_core.BuddyAllocator(frames, removed, placement == "random", seed & MASK64))

    def alloc(self, order: int) -> int:
        """``alloc(order)``: the first frame of the block, or -1 when nothing large enough is free."""
        return int(self._core.alloc(order))

    def free(self, frame: int, order: int) -> None:
        """Free an aligned block; it merges with free buddies (the canonical decomposition)."""
        self._core.free(frame, order)

    @property
    def nr_free(self) -> np.ndarray:
        """Free blocks per order 0..18 (int64)."""
        return np.frombuffer(self._core.nr_free(), dtype=np.int64).copy()


def _engine_params(cfg: ModelConfig, window: int, outcomes: bool) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """The core's parameters and its LRU arrays ((entries, ways) in index order) for ``cfg``."""
    virt = cfg.virtualized
    arrays: list[tuple[int, int]] = []

    def add(entries: int, ways: int) -> int:
        arrays.append((entries, ways))
        return len(arrays) - 1

    l1_of = [-1, -1, -1]
    l2_of = [-1, -1, -1]
    for dst, level in ((l1_of, cfg.tlb_l1), (l2_of, cfg.tlb_l2)):
        for arr in level:
            idx = add(arr.entries, arr.ways)
            for s in arr.page_shifts:
                dst[(s - 12) // 9] = idx
    gpsc = [-1] * 6
    for psc in cfg.psc_guest:
        gpsc[psc.level] = add(psc.entries, psc.ways)
    hpsc = [-1] * 6
    ntlb = -1
    if virt:
        for psc in cfg.psc_host:
            hpsc[psc.level] = add(psc.entries, psc.ways)
        if cfg.ntlb is not None:
            ntlb = add(cfg.ntlb.entries, cfg.ntlb.ways)
    params = {
        "virtualized": int(virt),
        "window": window,
        "report": int(virt and cfg.balloon.reporting),
        "report_interval": cfg.balloon.interval,
        "report_order": cfg.balloon.order,
        # es = min(guest shift, host shift) is always 4K when either side maps only 4 KiB pages
        "only_4k": int(cfg.guest.page_shift == 12 or (virt and cfg.host.page_shift == 12)),
        "guest_levels": cfg.guest.levels,
        "guest_shift": cfg.guest.page_shift,
        "guest_zeroing": int(cfg.guest.zeroing),
        "guest_frames": cfg.guest.memory >> 12,
        "guest_passthrough": int(cfg.guest.unmap == "passthrough"),
        "guest_random": int(cfg.guest.placement == "random"),
        "guest_seed": cfg.guest.seed & MASK64,
        "host_levels": cfg.host.levels,
        "host_shift": cfg.host.page_shift,
        "host_zeroing": int(cfg.host.zeroing),
        "host_frames": cfg.host.memory >> 12,
        "host_random": int(cfg.host.placement == "random"),
        "host_seed": cfg.host.seed & MASK64,
        "ntlb": ntlb,
        "outcomes": int(outcomes),
        "l1_of": l1_of,
        "l2_of": l2_of,
        "gpsc": gpsc,
        "hpsc": hpsc,
    }
    return params, arrays


class Replay:
    """The state of one replay of one config; feed it batches, then read :meth:`result`.

    Args:
        cfg: the resolved config.
        window: translations per time-series window (>= 1).
        outcomes: record the TLB outcome (1 = L1 hit, 2 = L2 hit, 3 = walk) and effective page shift of
            every translation, read with :meth:`take_outcomes` (used to label sampled traces).
        flat: keep the guest of a native replay with 4 KiB pages in the flat store (docs/model.md Part 3,
            item 9; the same results, faster); None: whenever the config allows, False: never (the tests
            compare the two), True: required (ValueError for any other config).
        pages_hint: how many distinct 4 KiB pages the trace translates, when known (an earlier replay's
            :attr:`pages_translated`, kept by the replay cache): the per-page table starts that big instead
            of growing to it. Speed only: any value gives the same results.

    Raises:
        OutOfMemoryError: when a side runs out of memory at start-up (and later from :meth:`feed`).

    A feed that stops mid-batch (out of memory, a bad record, Ctrl-C: the core runs Python's signal
    handlers between chunks of a batch, about 20 ms of replay each) leaves the records before the stop
    replayed and the rest not: the replay is then over, and :meth:`feed`, :meth:`feed_packed` and
    :meth:`result` raise an error saying so rather than go on from a partial batch.
    """

    def __init__(self, cfg: ModelConfig, window: int = DEFAULT_WINDOW, outcomes: bool = False,
                 flat: bool | None = None, pages_hint: int | None = None) -> None:
        if window < 1:
            raise ValueError("window must be >= 1 translation")
        self.cfg = cfg
        self.window = window
        params, arrays = _engine_params(cfg, window, outcomes)
        if flat is not None or pages_hint:
            params = {**params}
            if flat is not None:
                params["flat"] = int(flat)
            if pages_hint:
                params["pages"] = max(0, int(pages_hint))
        g_removed = removed_frames(cfg.guest.memory >> 12, cfg.guest.fragmentation, cfg.guest.seed)
        h_removed = (removed_frames(cfg.host.memory >> 12, cfg.host.fragmentation, cfg.host.seed)
                     if cfg.virtualized else np.zeros(0, dtype=np.int64))
        self._core = _core.Engine(params, arrays, g_removed, h_removed)
        self._stopped: Exception | None = None  # the error that ended the run mid-batch, if one did
        # ---- start-up (docs/model.md section 2), in order ----
        with self._stop_guard():
            self._core.start()  # the host root table
            if cfg.virtualized and cfg.host.prealloc:
                self._core.prealloc()
            self._core.guest_root()

    @property
    def flat_store(self) -> bool:
        """Whether this replay keeps its guest in the flat store (docs/model.md Part 3, item 9)."""
        return bool(self._core.flat_store())

    @property
    def preset_walk(self) -> bool:
        """Whether this replay's walks use the code specialised for the CPU presets' PSC and nested-TLB
        shapes (docs/model.md Part 3, item 10): 4-level tables, and the presets' shapes on every side walked."""
        return bool(self._core.preset_walk())

    @property
    def pages_translated(self) -> int | None:
        """Distinct 4 KiB virtual pages this replay has translated so far (its per-page table's entries), or
        None for the flat store, which keeps no per-page table. The same for every other config of a trace:
        what the replay cache keeps as the trace's ``pages_hint``."""
        return self._core.pages()

    def _stop_guard(self) -> _StopGuard:
        self._raise_if_stopped()
        return _StopGuard(self.cfg, self)

    def _raise_if_stopped(self) -> None:
        if self._stopped is not None:
            # the same kind of error as the stop (OutOfMemoryError, or RuntimeError for a cut-short batch)
            raise type(self._stopped)(f"{self._stopped} (earlier: this replay is over)")

    # ---- feeding ------------------------------------------------------------------------------------
    def feed(self, kind: np.ndarray, gva: np.ndarray, size: np.ndarray, icount: np.ndarray | None = None) -> None:
        """Replay a batch of trace records (docs/model.md sections 1, 7 and 8), in order.

        Args:
            kind: uint8 record kinds (0 = I, 1 = L, 2 = S, 3 = M, 4 = U); any other code is an error.
            gva: uint64 virtual addresses (bytes).
            size: access sizes, or unmap lengths for ``U`` records (bytes; uint64).
            icount: the compact form (:mod:`memmodel.trace.compact`): ``icount[i]`` instruction fetches
                come right before record ``i`` (uint32); None for a batch of full records.

        Raises:
            ValueError: a record of an unknown kind (nothing is silently translated); the run stops.
            OutOfMemoryError: a side ran out of memory; the run stops.
            KeyboardInterrupt: Ctrl-C (or another signal handler's exception) during the batch; the run stops.
            RuntimeError: an earlier feed stopped mid-batch (not out of memory): this replay is over.
        """
        kind = np.ascontiguousarray(kind, dtype=np.uint8)
        gva = np.ascontiguousarray(gva, dtype=np.uint64)
        size = np.ascontiguousarray(size, dtype=np.uint64)
        if icount is not None:
            icount = np.ascontiguousarray(icount, dtype=np.uint32)
        with self._stop_guard():
            self._core.feed(kind, gva, size, icount)

    def feed_packed(self, batch: Mapping[str, np.ndarray]) -> None:
        """Replay a batch of the packed compact form (``memmodel.trace.compact``, the cache's layout: ``gva``
        uint64, ``meta`` uint32, ``esc_size`` uint64, ``esc_icount`` uint32), in order; the same counters
        as :meth:`feed` of the unpacked batch.

        Raises:
            ValueError: a record of an unknown kind, or a damaged batch (an escape without its entry); the
                run stops.
            OutOfMemoryError: a side ran out of memory; the run stops.
            KeyboardInterrupt: Ctrl-C (or another signal handler's exception) during the batch; the run stops.
            RuntimeError: an earlier feed stopped mid-batch (not out of memory): this replay is over.
        """
        with self._stop_guard():
            self._core.feed_packed(np.ascontiguousarray(batch["gva"], dtype=np.uint64),
                                   np.ascontiguousarray(batch["meta"], dtype=np.uint32),
                                   np.ascontiguousarray(batch["esc_size"], dtype=np.uint64),
                                   np.ascontiguousarray(batch["esc_icount"], dtype=np.uint32))

    def take_outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        """Outcome codes (uint8: 1 L1 hit, 2 L2 hit, 3 walk) and effective shifts of the translations
        fed since the last call, in trace order (needs ``outcomes=True``)."""
        codes, shifts = self._core.take_outcomes()
        return np.frombuffer(codes, dtype=np.uint8).copy(), np.frombuffer(shifts, dtype=np.uint8).copy()

    # ---- results ------------------------------------------------------------------------------------
    def result(self) -> SimResult:
        """The counters of docs/model.md section 6 (exact), extras, the walk histogram and the time series.

        Raises:
            OutOfMemoryError: the run stopped out of memory: there is no result (docs/model.md Part 4: a
                partial one would look like a complete one).
            RuntimeError: a feed stopped mid-batch otherwise (a bad record, Ctrl-C): no result either.
        """
        self._raise_if_stopped()
        raw = self._core.counters()
        virt = self.cfg.virtualized
        host_nr = np.frombuffer(self._core.nr_free(True), dtype=np.int64).copy()
        guest_nr = np.frombuffer(self._core.nr_free(False), dtype=np.int64).copy()
        counters = counters_from_raw(raw, _host_indices(host_nr) if virt else None)
        rows = np.frombuffer(self._core.series(), dtype=np.int64).reshape(-1, len(_core.SERIES_NAMES))
        # one copy of the wanted columns, one row per series (a copy per column cost ~4 us per result)
        series = dict(zip(SERIES_NAMES, np.ascontiguousarray(rows.T[_SERIES_COLS]), strict=True))
        return SimResult(
            config_name=self.cfg.name,
            counters=counters,
            walk_hist=np.frombuffer(self._core.hist(), dtype=np.int64).copy(),
            series=series,
            window=self.window,
            host_nr_free=host_nr if virt else guest_nr,
            guest_nr_free=guest_nr,
            extras={name: int(raw[name]) for name in EXTRA_NAMES},
        )


class _StopGuard:
    """Around a call into the core that changes its state: turns the core's out-of-memory exceptions into
    :class:`OutOfMemoryError` naming the config, and marks the replay stopped on any exception that may
    have left a batch half-fed (so it refuses to go on from a partial state)."""

    def __init__(self, cfg: ModelConfig, replay: Replay) -> None:
        self.cfg = cfg
        self.replay = replay  # marked stopped on an exception from the core (TypeError excepted, see __exit__)

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> Literal[False]:
        if typ is None:
            return False
        for side, cls in (("guest", _core.GuestOutOfMemory), ("host", _core.HostOutOfMemory)):
            if issubclass(typ, cls):
                cfg = self.cfg
                s = getattr(cfg, side)
                where = f" ({cfg.source})" if cfg.source and not cfg.source.startswith("preset:") else ""
                err = OutOfMemoryError(
                    f"config {cfg.name!r}{where}: {side} out of memory ({side}.memory = {s.memory >> 30} GiB, "
                    f"fragmentation {s.fragmentation}); the run stops (docs/model.md section 2)"
                )
                self.replay._stopped = err
                raise err from None
        # The core checks its arguments (TypeError) before it feeds a record; any other exception (a bad
        # record, KeyboardInterrupt between two chunks of a batch, the host machine out of memory) may
        # come after some of the batch's records were replayed, and so may a signal handler's exception
        # raised in Python right around the call: the state may be partial either way.
        if not issubclass(typ, TypeError):
            cfg = self.cfg
            self.replay._stopped = RuntimeError(
                f"config {cfg.name!r}: this replay was interrupted mid-batch ({typ.__name__}"
                f"{': ' + str(exc) if str(exc) else ''}); its state is partial: start a new replay"
            )
        return False


def translations_to_runs(kind: np.ndarray, gva: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Records -> runs of translations of one 4 KiB page (docs/model.md section 1), in the engine core.

    ``I`` records only count; ``L``/``S``/``M`` each translate ``gva``; an access straddling a 4 KiB
    boundary translates ``gva + size - 1`` right after. Consecutive translations of the same 4 KiB
    page are collapsed into one run with a count. ``U`` records are refused (a run stream has no
    place for the lifecycle; callers that need one replay records with :class:`Replay`).

    Returns:
        (4 KiB page numbers as int64, repeat counts as int64, number of ``I`` records).
    """
    kind = np.ascontiguousarray(kind, dtype=np.uint8)
    gva = np.ascontiguousarray(gva, dtype=np.uint64)
    size = np.ascontiguousarray(size, dtype=np.uint64)
    pages, counts, instructions = _core.records_to_runs(kind, gva, size)
    return np.frombuffer(pages, dtype=np.int64).copy(), np.frombuffer(counts, dtype=np.int64).copy(), int(instructions)


#: The core's series column of each :data:`SERIES_NAMES`, in that order.
_SERIES_COLS: Final = np.array([_core.SERIES_NAMES.index(name) for name in SERIES_NAMES], dtype=np.intp)


def _host_indices(nr_free: np.ndarray) -> dict[str, float]:
    """The four host fragmentation counters: :func:`unusable_index` and :func:`extfrag_index` at 2 MiB and
    1 GiB, over one list of the free counts (four calls on the array cost ~10 us per result)."""
    nr = nr_free.tolist()
    free_pages, blocks = _free_pages(nr), sum(nr)
    out = {}
    for order, size in ((9, "2m"), (18, "1g")):
        suitable = _suitable(nr, order)
        out[f"host_unusable_index_{size}"] = _unusable(free_pages, suitable, order)
        out[f"host_extfrag_index_{size}"] = _extfrag(free_pages, blocks, suitable, order)
    return out


def _free_pages(nr: list[int]) -> int:
    return sum(n << o for o, n in enumerate(nr))


def _suitable(nr: list[int], order: int) -> int:
    return sum(nr[o] << (o - order) for o in range(order, len(nr)))


def _unusable(free_pages: int, suitable: int, order: int) -> float:
    return round((free_pages - suitable * (1 << order)) / free_pages, 6) if free_pages else 0.0


def _extfrag(free_pages: int, blocks: int, suitable: int, order: int) -> float:
    if suitable > 0:
        return -1.0
    return round(1 - (1 + free_pages / (1 << order)) / blocks, 6) if blocks else 0.0


def unusable_index(nr_free: np.ndarray, order: int) -> float:
    """Linux's unusable free space index at ``order`` (docs/model.md section 6), double precision, 6 decimals."""
    nr = [int(n) for n in nr_free]
    return _unusable(_free_pages(nr), _suitable(nr, order), order)


def extfrag_index(nr_free: np.ndarray, order: int) -> float:
    """Linux's fragmentation index at ``order`` (docs/model.md section 6): -1 if a block is suitable."""
    nr = [int(n) for n in nr_free]
    return _extfrag(_free_pages(nr), sum(nr), _suitable(nr, order), order)


def replay(batches: Iterable[Mapping[str, np.ndarray]], cfg: ModelConfig, window: int = DEFAULT_WINDOW) -> SimResult:
    """Replay trace batches (dicts with ``kind``, ``gva``, ``size`` arrays) through ``cfg``."""
    r = Replay(cfg, window)
    for batch in batches:
        r.feed(batch["kind"], batch["gva"], batch["size"])
    return r.result()
