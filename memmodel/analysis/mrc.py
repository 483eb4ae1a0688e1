"""One-pass miss-ratio curves of LRU TLB arrays (Mattson stack distances, per set).

An LRU array with ``sets`` sets and ``ways`` ways (MODEL.md section 3: true LRU, set index
``vpn mod sets``, tag ``(es, vpn)``) hits a translation exactly when, inside the translation's set,
fewer than ``ways`` distinct other tags were referenced since the previous reference to the same tag
(the LRU inclusion property, applied to each set separately). So one pass that records, for every
translation, its *per-set stack distance* gives the miss count of every associativity at once; with
``sets = 1`` this is the fully associative curve over every capacity.

Design (documented decision):

* **Page sizes come from a replay.** Which TLB entry size a translation uses depends on the config's
  guest and host page sizes, fragmentation and allocation history (``es = min(guest shift, host
  shift)``, fixed per page once mapped when the trace has no ``U`` records). So the trace is first replayed through
  the config (:class:`memmodel.engine.Replay`, with its translation caches replaced by a single 1-entry
  array, which leaves every mapping decision unchanged and keeps repeat collapsing exact), and
  :meth:`~memmodel.engine.Replay.effective_shifts` then gives ``es`` for every page. The translation
  stream is kept in memory as collapsed runs (one int64 page number and one int64 count per run).
* **Tags** are ``(es, vpn = p4 >> (es - 12))``, the tag the engine uses. An array that lists only some
  page sizes sees only the translations of those sizes (the others are skipped, as MODEL.md says for a
  level with no array for ``es``); they are reported in ``skipped`` and are not misses.
* **Runs.** Consecutive translations of one 4 KiB page form a run (:func:`translations_to_runs`);
  after the first translation of a run its entry is the most recent one of its set, so the repeats are
  hits for any capacity >= 1: only the first translation of a run gets a stack distance.
  The first reference to a tag is a compulsory miss (infinite distance).
* **Stack distances** use a Fenwick tree over reference positions holding a 1 at the last reference of
  every tag (O(n log n), numba). For ``sets > 1`` the references are stably ordered by set first, so
  each set is a contiguous block and one tree serves every set.

The curve at capacity ``entries = sets * ways`` equals, exactly, the ``walks`` counter of
:func:`memmodel.simulate` for the same config with only that one ``[[tlb.l1]]`` array (no L2 array),
when the array lists every page size the config produces; the tests check this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from memmodel.config.model import SHIFT_NAMES, ModelConfig, TlbArray
from memmodel.engine import Replay, translations_to_runs

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.analysis.api import ConfigLike, TraceLike

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
        """Total translations (MODEL.md ``accesses``)."""
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


# ================================ the numba pass ====================================================
@njit(cache=True)
def _fenwick_distances(ids: np.ndarray, order: np.ndarray, n_ids: int) -> tuple[np.ndarray, int]:
    """Stack distances of references ``ids[order[k]]`` taken in the order ``k = 0..n-1``.

    The order must keep every tag's references in trace order and group each set contiguously.
    Returns (histogram of distances, number of first references).
    """
    n = order.shape[0]
    tree = np.zeros(n + 1, dtype=np.int64)
    last = np.full(n_ids, -1, dtype=np.int64)
    hist = np.zeros(n_ids + 1, dtype=np.int64)
    cold = 0
    for k in range(n):
        t = ids[order[k]]
        p = last[t]
        if p >= 0:
            # markers at positions p+1 .. k-1 = prefix(k) - prefix(p+1)
            s = 0
            i = k
            while i > 0:
                s += tree[i]
                i -= i & (-i)
            i = p + 1
            while i > 0:
                s -= tree[i]
                i -= i & (-i)
            hist[s] += 1
            i = p + 1
            while i <= n:
                tree[i] -= 1
                i += i & (-i)
        else:
            cold += 1
        i = k + 1
        while i <= n:
            tree[i] += 1
            i += i & (-i)
        last[t] = k
    return hist, cold


def stack_histogram(stream: TranslationStream, page_shifts: Iterable[int], sets: int = 1) -> StackHistogram:
    """Per-set stack distances of the translations whose entry size is in ``page_shifts``.

    Args:
        stream: the translation stream (see :func:`translation_stream`).
        page_shifts: page sizes (shifts 12/21/30) the array holds.
        sets: number of sets (>= 1); set index = ``vpn mod sets`` (MODEL.md section 3).
    """
    if sets < 1:
        raise ValueError("sets must be >= 1")
    shifts = tuple(sorted(set(page_shifts)))
    keep = np.isin(stream.es, np.array(shifts, dtype=np.uint8)) if shifts else np.zeros(stream.es.shape, bool)
    es = stream.es[keep].astype(np.int64)
    p4 = stream.p4[keep]
    accesses = int(stream.counts[keep].sum())
    skipped = int(stream.counts.sum()) - accesses
    vpn = p4 >> (es - 12)
    tag = (vpn << 2) | ((es - 12) // 9)  # the engine's tag: (es, vpn)
    _, ids = np.unique(tag, return_inverse=True)
    ids = ids.astype(np.int64).ravel()
    n_ids = int(ids.max()) + 1 if ids.size else 0
    if sets == 1:
        order = np.arange(ids.shape[0], dtype=np.int64)
    else:
        order = np.argsort(vpn % sets, kind="stable").astype(np.int64)
    hist, cold = _fenwick_distances(ids, order, n_ids)
    return StackHistogram(sets, shifts, hist, int(cold), accesses, skipped)


# ================================ the stream =======================================================
def es_probe_config(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with its translation caches replaced by one 1-entry L1 array holding every page size.

    Mapping decisions (page sizes, allocations, fragmentation) do not depend on the caches, so a replay
    of this config maps every page exactly like ``cfg``; the single array keeps repeat collapsing
    exact and fast (docs/model.md) and makes walks cheap (no PSCs, no nested TLB).
    """
    return dataclasses.replace(cfg, tlb_l1=(TlbArray((12, 21, 30), 1, 1),), tlb_l2=(), psc_guest=(),
                               psc_host=(), ntlb=None)


def translation_stream(trace: TraceLike, cfg: ModelConfig, batch_rows: int = 1 << 20) -> TranslationStream:
    """Read ``trace`` once, replaying it through ``cfg`` (mapping only) and keeping its collapsed runs.

    Stack distances assume a TLB whose contents change only by lookups and fills. The memory lifecycle
    breaks that (MODEL.md v2: ``U`` records invalidate or flush entries and change page sizes; free page
    reporting flushes), so a trace with ``U`` records or a config with free page reporting is refused
    rather than given a curve that is not exact.

    Raises:
        memmodel.errors.OutOfMemoryError: when the config's memory runs out (as :func:`simulate`).
        memmodel.errors.ConfigError: the config has free page reporting on.
        memmodel.errors.TraceError: the trace holds ``U`` (unmap) records.
    """
    from memmodel.analysis.api import _batches
    from memmodel.errors import ConfigError, TraceError

    if cfg.virtualized and cfg.balloon.reporting:
        raise ConfigError(f"{cfg.source or cfg.name}: miss-ratio curves are exact only without free page "
                          "reporting (its passes flush the TLB); set [balloon] reporting = false")
    name, _, batches = _batches(trace, batch_rows)
    replay = Replay(es_probe_config(cfg), window=1 << 62)
    p4s: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    instructions = 0
    for batch in batches:
        if np.any(batch["kind"] == 4):
            raise TraceError(f"{name}: holds U (unmap) records; miss-ratio curves are exact only for traces "
                             "without them (unmaps invalidate TLB entries and change page sizes); record with "
                             "`memmodel record --no-syscalls` or use `memmodel simulate`")
        p4, n, ins = translations_to_runs(batch["kind"], batch["gva"], batch["size"])
        replay.feed(batch["kind"], batch["gva"], batch["size"])
        p4s.append(p4)
        counts.append(n)
        instructions += ins
    all_p4 = np.concatenate(p4s) if p4s else np.zeros(0, np.int64)
    all_n = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return TranslationStream(all_p4, all_n, replay.effective_shifts(all_p4), instructions)


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


def array_shapes(cfg: ModelConfig, stream: TranslationStream, level: str | None,
                 sets: Sequence[int] = (1,)) -> list[ArrayShape]:
    """Which curves to compute.

    With ``level`` None: one array holding every page size the stream uses, with each of ``sets``.
    With ``level`` "l1"/"l2": every array of that config level (its page sizes), fully associative
    and with the array's own number of sets.
    """
    produced = stream.shifts()
    if level is None:
        return [ArrayShape("all", produced, s) for s in sorted(set(sets))]
    if level not in ("l1", "l2"):
        raise ValueError(f"level must be 'l1' or 'l2', got {level!r}")
    arrays = cfg.tlb_l1 if level == "l1" else cfg.tlb_l2
    out = []
    for arr in arrays:
        label = f"{level}:{sizes_name(arr.page_shifts)}"
        for s in sorted({1, arr.sets}):
            out.append(ArrayShape(label, arr.page_shifts, s))
    return out


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
    """
    import polars as pl

    from memmodel.analysis.api import resolve_configs

    (cfg,) = resolve_configs(config, cpu)
    name = str(trace) if isinstance(trace, str | PurePath) else "<frame>"
    stream = translation_stream(str(trace) if isinstance(trace, str | PurePath) else trace, cfg, batch_rows)
    rows: list[dict[str, Any]] = []
    for shape in array_shapes(cfg, stream, level, sets):
        hist = stack_histogram(stream, shape.page_shifts, shape.sets)
        want = None if sizes is None else [e for e in sizes if e >= 1 and e % shape.sets == 0]
        if want is not None and not want:
            continue
        for row in curve_rows(hist, want):
            rows.append({"trace": str(name), "config": cfg.name, "array": shape.label, **row})
    schema = {"trace": pl.String, "config": pl.String, "array": pl.String, "page_sizes": pl.String,
              "sets": pl.Int64, "ways": pl.Int64, "entries": pl.Int64, "accesses": pl.Int64, "misses": pl.Int64,
              "compulsory": pl.Int64, "miss_ratio": pl.Float64, "skipped": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(["array", "sets", "entries"], maintain_order=True)


def single_array_config(cfg: ModelConfig, page_shifts: Iterable[int], entries: int, ways: int) -> ModelConfig:
    """``cfg`` with exactly one TLB array: ``[[tlb.l1]]`` of ``entries``/``ways`` holding ``page_shifts``.

    No L2 array; PSCs and the nested TLB are kept (they change walk costs, not ``walks``). Replaying
    this config gives ``walks`` = the curve's misses at ``entries`` plus ``skipped``.
    """
    return dataclasses.replace(cfg, tlb_l1=(TlbArray(tuple(sorted(set(page_shifts))), entries, ways),), tlb_l2=())
