"""One-pass miss-ratio curves of LRU TLB arrays (Mattson stack distances, per set).

An LRU array with ``sets`` sets and ``ways`` ways (docs/model.md section 3: true LRU, set index
``vpn mod sets``, tag ``(es, vpn)``) hits a translation exactly when, inside the translation's set,
fewer than ``ways`` distinct other tags were referenced since the previous reference to the same tag
(the LRU inclusion property, applied to each set separately). So one pass that records, for every
translation, its *per-set stack distance* gives the miss count of every associativity at once; with
``sets = 1`` this is the fully associative curve over every capacity.

Design (documented decision):

* **Page sizes come from a replay.** Which TLB entry size a translation uses depends on the config's
  guest and host page sizes, fragmentation and allocation history (``es = min(guest shift, host
  shift)``, fixed per page once mapped when the trace has no ``U`` records). So the trace is replayed
  through the config with ``outcomes=True`` (:class:`memmodel.engine.Replay`), which reports the ``es``
  of every translation. For a standalone curve the config's translation caches are replaced by one
  large direct-mapped array (:func:`es_probe_config`): mapping decisions never depend on the caches,
  so every page is mapped exactly as under the config, and almost every translation is a cheap hit.
  ``memmodel compare --mrc`` needs no replay of its own: it reads the outcomes of the compare's
  replays (:class:`CompareCurves`).
* **Tags** are ``(es, vpn = p4 >> (es - 12))``, the tag the engine uses. An array that lists only some
  page sizes sees only the translations of those sizes (the others are skipped, as docs/model.md says for a
  level with no array for ``es``); they are reported in ``skipped`` and are not misses.
* **Runs.** Consecutive translations of one 4 KiB page form a run (:func:`translations_to_runs`);
  after the first translation of a run its entry is the most recent one of its set, so the repeats are
  hits for any capacity >= 1: only the first translation of a run gets a stack distance.
  The first reference to a tag is a compulsory miss (infinite distance).
* **Stack distances** come from a C pass (``memmodel/analysis/_stack.c``, :class:`StackPass`) that
  streams the runs batch by batch: a hash table from tag to the position of its last reference in its
  set's timeline, and per set a bitmap of live positions with a Fenwick tree over 64-position blocks,
  renumbered when the timeline fills (so its state is bounded by the distinct tags, never by the
  trace length). O(log(tags / 64)) per reference; 20-50 M translations/s on the pchase traces.

The curve at capacity ``entries = sets * ways`` equals, exactly, the ``walks`` counter of
:func:`memmodel.simulate` for the same config with only that one ``[[tlb.l1]]`` array (no L2 array),
when the array lists every page size the config produces; the tests check this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from memmodel.analysis import _stack
from memmodel.config.model import SHIFT_NAMES, ModelConfig, TlbArray
from memmodel.engine import Replay, translations_to_runs

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.analysis.api import ConfigLike, TraceLike

#: Every TLB entry shift (4K, 2M, 1G).
ALL_SHIFTS = (12, 21, 30)

#: The columns of a miss-ratio-curve frame, in order.
MRC_COLUMNS = ("trace", "config", "array", "page_sizes", "sets", "ways", "entries", "accesses",
               "misses", "compulsory", "miss_ratio", "skipped")


@dataclass(frozen=True)
class TranslationStream:
    """The translation stream of a trace under one config, as collapsed runs.

    Attributes:
        p4: 4 KiB virtual page number of each run (int64), in trace order.
        counts: translations in each run (int64, >= 1).
        es: TLB entry shift (12, 21 or 30) of each run's page under the config (uint8).
        instructions: ``I`` records of the trace (not translated).
    """

    p4: np.ndarray
    counts: np.ndarray
    es: np.ndarray
    instructions: int

    @property
    def translations(self) -> int:
        """Total translations (docs/model.md ``accesses``)."""
        return int(self.counts.sum())

    def shifts(self) -> tuple[int, ...]:
        """The entry shifts the stream uses, ascending."""
        return tuple(int(s) for s in np.unique(self.es))


@dataclass(frozen=True)
class StackHistogram:
    """Per-set LRU stack distances of the translations of some page sizes.

    Attributes:
        sets: number of sets (1 = fully associative).
        page_shifts: the page sizes (shifts) the array holds.
        hist: ``hist[d]`` = references whose per-set stack distance is ``d`` (int64).
        compulsory: first references of a tag (misses at any capacity).
        accesses: translations of those page sizes, repeats included.
        skipped: translations of other page sizes (not seen by the array).
    """

    sets: int
    page_shifts: tuple[int, ...]
    hist: np.ndarray
    compulsory: int
    accesses: int
    skipped: int

    def misses(self, ways: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Misses of the ``sets x ways`` LRU array, for each given ``ways`` (>= 1); int64 array."""
        w = np.atleast_1d(np.asarray(ways, dtype=np.int64))
        if (w < 1).any():
            raise ValueError("ways must be >= 1 (an array with 0 entries is absent)")
        tail = np.concatenate([np.cumsum(self.hist[::-1])[::-1], [0]])  # tail[d] = refs with distance >= d
        idx = np.minimum(w, tail.shape[0] - 1)
        return (self.compulsory + tail[idx]).astype(np.int64)

    @property
    def max_useful_ways(self) -> int:
        """Smallest ways at which only compulsory misses remain."""
        nz = np.flatnonzero(self.hist)
        return int(nz[-1]) + 1 if nz.size else 1


# ================================ the C pass ========================================================
def _shift_mask(page_shifts: Iterable[int]) -> int:
    """Bit ``(es - 12) / 9`` of every page size (shift 12, 21 or 30) in ``page_shifts``."""
    mask = 0
    for s in page_shifts:
        if s not in ALL_SHIFTS:
            raise ValueError(f"page shift {s} is not 12 (4K), 21 (2M) or 30 (1G)")
        mask |= 1 << ((s - 12) // 9)
    return mask


class StackPass:
    """Per-set LRU stack distances of one array shape, fed translation runs batch by batch (C core).

    Its state is bounded by the number of distinct tags (pages) it has seen, never by the number of
    runs fed, so a whole trace streams through it.

    Args:
        page_shifts: page sizes (shifts 12/21/30) the array holds; runs of other sizes are ``skipped``.
        sets: number of sets (>= 1); set index = ``vpn mod sets`` (docs/model.md section 3).
    """

    def __init__(self, page_shifts: Iterable[int], sets: int = 1) -> None:
        if sets < 1:
            raise ValueError("sets must be >= 1")
        self.page_shifts = tuple(sorted(set(page_shifts)))
        self.sets = sets
        self._core = _stack.StackPass(sets, _shift_mask(self.page_shifts))

    def feed(self, p4: np.ndarray, es: np.ndarray, counts: np.ndarray) -> None:
        """References of one batch of runs, in trace order.

        Args:
            p4: 4 KiB virtual page number of each run (int64).
            es: TLB entry shift (12, 21 or 30) of each run (uint8).
            counts: translations in each run (int64, >= 1).

        Raises:
            ValueError: lengths differ, a shift is not 12/21/30 or a count is < 1.
        """
        self._core.feed(np.ascontiguousarray(p4, dtype=np.int64), np.ascontiguousarray(es, dtype=np.uint8),
                        np.ascontiguousarray(counts, dtype=np.int64))

    def histogram(self) -> StackHistogram:
        """The histogram of every reference fed so far (``hist`` ends at the largest distance seen)."""
        hist, cold, accesses, skipped = self._core.result()
        return StackHistogram(self.sets, self.page_shifts, np.frombuffer(hist, dtype=np.int64).copy(), int(cold),
                              int(accesses), int(skipped))

    @property
    def state_bytes(self) -> int:
        """Bytes of state the pass holds (hash table, per-set timelines, histogram)."""
        return int(self._core.state_bytes())


def stack_histogram(stream: TranslationStream, page_shifts: Iterable[int], sets: int = 1) -> StackHistogram:
    """Per-set stack distances of the translations whose entry size is in ``page_shifts``.

    Args:
        stream: the translation stream (see :func:`translation_stream`).
        page_shifts: page sizes (shifts 12/21/30) the array holds.
        sets: number of sets (>= 1); set index = ``vpn mod sets`` (docs/model.md section 3).
    """
    sp = StackPass(page_shifts, sets)
    sp.feed(stream.p4, stream.es, stream.counts)
    return sp.histogram()


# ================================ the stream =======================================================
def es_probe_config(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with its translation caches replaced by one direct-mapped 65536-entry L1 array holding
    every page size.

    Mapping decisions (page sizes, allocations, fragmentation) do not depend on the caches, so a replay
    of this config maps every page exactly like ``cfg`` and reports the same entry shift for every
    translation; the large array makes nearly every translation a hit (no walk: 5-10x faster than a
    1-entry array on the pchase traces) and keeps repeat collapsing exact (docs/model.md).
    """
    return dataclasses.replace(cfg, tlb_l1=(TlbArray(ALL_SHIFTS, 1 << 16, 1),), tlb_l2=(), psc_guest=(),
                               psc_host=(), ntlb=None)


def refuse_reporting(cfg: ModelConfig) -> None:
    """Refuse a config with free page reporting (its passes flush the TLB: stack distances are not exact).

    Raises:
        memmodel.errors.ConfigError: the config has free page reporting on.
    """
    from memmodel.errors import ConfigError

    if reporting_reason(cfg):
        raise ConfigError(f"{cfg.source or cfg.name}: miss-ratio curves are exact only without free page "
                          "reporting (its passes flush the TLB); set [balloon] reporting = false")


def reporting_reason(cfg: ModelConfig) -> str | None:
    """Why no exact curve exists for ``cfg`` (free page reporting), or None."""
    if cfg.virtualized and cfg.balloon.reporting:
        return "free page reporting flushes the TLB"
    return None


#: Why a trace with ``U`` records gets no curve.
UNMAP_REASON = "the trace holds U (unmap) records, which invalidate TLB entries and change page sizes"


def _refuse_unmaps(name: str, kind: np.ndarray) -> None:
    from memmodel.errors import TraceError

    if np.any(kind == 4):
        raise TraceError(f"{name}: holds U (unmap) records; miss-ratio curves are exact only for traces "
                         "without them (unmaps invalidate TLB entries and change page sizes); record with "
                         "`memmodel record --no-syscalls` or use `memmodel simulate`")


def run_shifts(counts: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The entry shift of each run, from the per-translation shifts of :meth:`Replay.take_outcomes`.

    ``shifts`` has one entry per translation (``counts.sum()`` of them, in trace order); without ``U``
    records and free page reporting every translation of a run has its first translation's shift.

    Raises:
        RuntimeError: the outcomes do not cover the runs (the replay and the runs disagree).
    """
    total = int(counts.sum())
    if shifts.shape[0] != total:
        raise RuntimeError(f"the replay reported {shifts.shape[0]} translation outcomes for {total} translations")
    if total == 0:
        return np.zeros(0, dtype=np.uint8)
    starts = np.cumsum(counts) - counts
    return shifts[starts]


def _run_batches(trace: TraceLike, cfg: ModelConfig, batch_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray, int]]:
    """(p4, es, counts, instructions) of every batch of ``trace`` under ``cfg`` (a mapping-only replay of
    the trace's compact form, :mod:`memmodel.trace.compact`, cached per store file like :func:`simulate`'s)."""
    from memmodel.analysis.api import _batches, _replay_batches

    refuse_reporting(cfg)
    name, identity, full = _batches(trace, batch_rows)
    replay = Replay(es_probe_config(cfg), window=1 << 62, outcomes=True)
    for batch in _replay_batches(trace, identity, full, batch_rows):
        _refuse_unmaps(name, batch["kind"])
        icount = batch.get("icount")
        p4, n, ins = translations_to_runs(batch["kind"], batch["gva"], batch["size"])
        replay.feed(batch["kind"], batch["gva"], batch["size"], icount)
        _, shifts = replay.take_outcomes()
        yield p4, run_shifts(n, shifts), n, ins + (int(icount.sum()) if icount is not None else 0)


def translation_stream(trace: TraceLike, cfg: ModelConfig, batch_rows: int = 1 << 20) -> TranslationStream:
    """Read ``trace`` once, replaying it through ``cfg`` (mapping only) and keeping its collapsed runs.

    Stack distances assume a TLB whose contents change only by lookups and fills. The memory lifecycle
    breaks that (docs/model.md v2: ``U`` records invalidate or flush entries and change page sizes; free page
    reporting flushes), so a trace with ``U`` records or a config with free page reporting is refused
    rather than given a curve that is not exact. The stream is held in memory (16 bytes and 1 byte per
    run); :func:`miss_ratio_curves` streams instead.

    Raises:
        memmodel.errors.OutOfMemoryError: when the config's memory runs out (as :func:`simulate`).
        memmodel.errors.ConfigError: the config has free page reporting on.
        memmodel.errors.TraceError: the trace holds ``U`` (unmap) records.
    """
    p4s: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    shifts: list[np.ndarray] = []
    instructions = 0
    for p4, es, n, ins in _run_batches(trace, cfg, batch_rows):
        p4s.append(p4)
        shifts.append(es)
        counts.append(n)
        instructions += ins
    if not p4s:
        return TranslationStream(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8), instructions)
    return TranslationStream(np.concatenate(p4s), np.concatenate(counts), np.concatenate(shifts), instructions)


# ================================ curves ============================================================
def default_ways(max_useful: int) -> list[int]:
    """Ways 1, 2, 3, 4, 6, 8, 12, 16, ... up to the first value >= ``max_useful`` (all misses compulsory)."""
    out: list[int] = []
    p = 1
    while True:
        for w in (p, p + p // 2) if p >= 2 else (p,):
            out.append(w)
            if w >= max_useful:
                return sorted(set(out))
        p *= 2


def sizes_name(shifts: Iterable[int]) -> str:
    """``(12, 21)`` -> ``"4K+2M"``."""
    return "+".join(SHIFT_NAMES[s] for s in sorted(shifts))


def curve_rows(hist: StackHistogram, entries: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Rows (sets, ways, entries, accesses, misses, compulsory, miss_ratio, skipped) of one histogram.

    Args:
        hist: the stack-distance histogram of one array shape.
        entries: capacities to report (each a multiple of ``hist.sets``); default: a geometric grid of
            ways up to the point where only compulsory misses remain.
    """
    if entries is None:
        ways = default_ways(hist.max_useful_ways)
    else:
        bad = [e for e in entries if e < 1 or e % hist.sets]
        if bad:
            raise ValueError(f"capacities {bad} are not positive multiples of sets = {hist.sets}")
        ways = sorted({e // hist.sets for e in entries})
    misses = hist.misses(ways)
    return [
        {"page_sizes": sizes_name(hist.page_shifts), "sets": hist.sets, "ways": w, "entries": w * hist.sets,
         "accesses": hist.accesses, "misses": int(m), "compulsory": hist.compulsory,
         "miss_ratio": (int(m) / hist.accesses) if hist.accesses else 0.0, "skipped": hist.skipped}
        for w, m in zip(ways, misses, strict=True)
    ]


@dataclass(frozen=True)
class ArrayShape:
    """An array whose curve is wanted: a label, the page sizes it holds, and its number of sets."""

    label: str
    page_shifts: tuple[int, ...]
    sets: int


def array_shapes(cfg: ModelConfig, produced: Sequence[int] | TranslationStream, level: str | None,
                 sets: Sequence[int] = (1,)) -> list[ArrayShape]:
    """Which curves to compute.

    With ``level`` None: one array holding every page size ``produced`` (the shifts the stream uses, or
    the stream itself), with each of ``sets``. With ``level`` "l1"/"l2": every array of that config level
    (its page sizes), fully associative and with the array's own number of sets.
    """
    shifts = produced.shifts() if isinstance(produced, TranslationStream) else tuple(sorted(set(produced)))
    if level is None:
        return [ArrayShape("all", shifts, s) for s in sorted(set(sets))]
    if level not in ("l1", "l2"):
        raise ValueError(f"level must be 'l1' or 'l2', got {level!r}")
    arrays = cfg.tlb_l1 if level == "l1" else cfg.tlb_l2
    out = []
    for arr in arrays:
        label = f"{level}:{sizes_name(arr.page_shifts)}"
        for s in sorted({1, arr.sets}):
            out.append(ArrayShape(label, arr.page_shifts, s))
    return out


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    import polars as pl

    schema = {"trace": pl.String, "config": pl.String, "array": pl.String, "page_sizes": pl.String,
              "sets": pl.Int64, "ways": pl.Int64, "entries": pl.Int64, "accesses": pl.Int64, "misses": pl.Int64,
              "compulsory": pl.Int64, "miss_ratio": pl.Float64, "skipped": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(["array", "sets", "entries"], maintain_order=True)


def miss_ratio_curves(
    trace: TraceLike,
    config: ConfigLike,
    *,
    level: str | None = None,
    sets: Sequence[int] = (1,),
    sizes: Sequence[int] | None = None,
    cpu: str | None = None,
    batch_rows: int = 1 << 20,
) -> pl.DataFrame:
    """Miss counts of LRU TLB arrays at many capacities, from one pass over the translation stream.

    The trace streams through a mapping-only replay and one :class:`StackPass` per curve, batch by
    batch: memory is bounded by the pages the trace touches, never by its length.

    Args:
        trace: a trace path or a frame/mapping with kind, gva, size.
        config: a preset name, TOML file or ModelConfig (decides the page size of every translation).
        level: None for one array holding every page size produced; "l1"/"l2" for the config's arrays
            of that level (each fully associative and with its own sets).
        sets: set counts of the unified array (``level`` None); 1 = fully associative.
        sizes: capacities in entries (default: a geometric grid per curve); capacities that are not a
            multiple of a curve's sets are left out of that curve.
        cpu: CPU preset overriding the config's (matters with ``level``).
        batch_rows: records per batch read from the trace.

    Returns:
        One row per (array, sets, ways) with :data:`MRC_COLUMNS`; ``misses`` are exact counts
        (compulsory misses included), ``miss_ratio = misses / accesses``.

    Raises:
        memmodel.errors.ConfigError: the config has free page reporting on.
        memmodel.errors.TraceError: the trace holds ``U`` (unmap) records.
    """
    from memmodel.analysis.api import resolve_configs

    (cfg,) = resolve_configs(config, cpu)
    name = str(trace) if isinstance(trace, str | PurePath) else "<frame>"
    # level None: the unified array holds every size; it is labelled with the sizes produced at the end
    shapes = array_shapes(cfg, ALL_SHIFTS, level, sets)
    passes = [StackPass(shape.page_shifts, shape.sets) for shape in shapes]
    seen = np.zeros(31, dtype=bool)
    for p4, es, n, _ in _run_batches(str(trace) if isinstance(trace, str | PurePath) else trace, cfg, batch_rows):
        seen[np.unique(es)] = True
        for sp in passes:
            sp.feed(p4, es, n)
    produced = tuple(int(x) for x in np.flatnonzero(seen))
    rows: list[dict[str, Any]] = []
    for shape, sp in zip(shapes, passes, strict=True):
        hist = sp.histogram()
        if level is None:
            hist = dataclasses.replace(hist, page_shifts=produced)
        want = None if sizes is None else [e for e in sizes if e >= 1 and e % shape.sets == 0]
        if want is not None and not want:
            continue
        for row in curve_rows(hist, want):
            rows.append({"trace": str(name), "config": cfg.name, "array": shape.label, **row})
    return _frame(rows)


# ================================ compare --mrc: curves from the compare's replays =================
class CompareCurves:
    """Fully associative curves of every (trace, config) of a comparison, from the comparison's replays.

    Pass an instance as ``on_batch`` to :func:`memmodel.analysis.api.run`: its replays then record
    outcomes, and after every batch this reads the entry shift of each translation from each replay
    (:meth:`Replay.take_outcomes`) and streams the batch's runs (computed once for every config)
    through one :class:`StackPass` per config. No config is replayed again, and memory stays bounded
    by the pages the trace touches.

    A trace with ``U`` records or a config with free page reporting gets no curve (not exact, see
    :func:`translation_stream`); :meth:`notes` says which and why.
    """

    def __init__(self) -> None:
        self._passes: dict[int, dict[int, StackPass]] = {}
        self._configs: dict[int, list[ModelConfig]] = {}
        self._produced: dict[int, dict[int, np.ndarray]] = {}
        self._refused: dict[int, str] = {}

    def __call__(self, trace_index: int, batch: Mapping[str, np.ndarray], replays: Sequence[Replay]) -> None:
        """Consume the outcomes of one batch that every replay of trace ``trace_index`` has been fed."""
        outcomes = [r.take_outcomes() for r in replays]  # always drained: the replays keep nothing
        if trace_index not in self._configs:
            self._configs[trace_index] = [r.cfg for r in replays]
            self._passes[trace_index] = {j: StackPass(ALL_SHIFTS, 1) for j, r in enumerate(replays)
                                         if reporting_reason(r.cfg) is None}
            self._produced[trace_index] = {j: np.zeros(31, dtype=bool) for j in self._passes[trace_index]}
        if trace_index in self._refused:
            return
        if np.any(batch["kind"] == 4):
            self._refused[trace_index] = UNMAP_REASON
            self._passes[trace_index] = {}
            return
        p4, n, _ = translations_to_runs(batch["kind"], batch["gva"], batch["size"])
        for j, sp in self._passes[trace_index].items():
            es = run_shifts(n, outcomes[j][1])
            self._produced[trace_index][j][np.unique(es)] = True
            sp.feed(p4, es, n)

    def frame(self, trace_index: int, trace_name: str) -> pl.DataFrame:
        """The curves of one trace: one fully associative curve per config that has one (:data:`MRC_COLUMNS`)."""
        rows: list[dict[str, Any]] = []
        cfgs = self._configs.get(trace_index, [])
        for j, sp in self._passes.get(trace_index, {}).items():
            produced = tuple(int(x) for x in np.flatnonzero(self._produced[trace_index][j]))
            hist = dataclasses.replace(sp.histogram(), page_shifts=produced)
            for row in curve_rows(hist):
                rows.append({"trace": trace_name, "config": cfgs[j].name, "array": "all", **row})
        return _frame(rows)

    def notes(self, trace_index: int) -> list[str]:
        """One sentence per config of the trace without a curve, saying why."""
        cfgs = self._configs.get(trace_index, [])
        if trace_index in self._refused:
            return [f"No curves: {self._refused[trace_index]}; curves are exact only without them."]
        return [f"No curve for {c.name}: {reason}; curves are exact only without it."
                for c in cfgs if (reason := reporting_reason(c)) is not None]


def single_array_config(cfg: ModelConfig, page_shifts: Iterable[int], entries: int, ways: int) -> ModelConfig:
    """``cfg`` with exactly one TLB array: ``[[tlb.l1]]`` of ``entries``/``ways`` holding ``page_shifts``.

    No L2 array; PSCs and the nested TLB are kept (they change walk costs, not ``walks``). Replaying
    this config gives ``walks`` = the curve's misses at ``entries`` plus ``skipped``.
    """
    return dataclasses.replace(cfg, tlb_l1=(TlbArray(tuple(sorted(set(page_shifts))), entries, ways),), tlb_l2=())
