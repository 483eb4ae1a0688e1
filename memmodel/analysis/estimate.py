"""Estimates with intervals of what a program costs under other configs, from sampled native TLB labels.

Input: samples (``memmodel sample`` output, or an ingested ``perf mem`` trace), each an isolated
translation with its measured native TLB outcome (``tlb`` column) and, where known, its period (the
number of translations it stands for) and the size of the TLB entry that served it. Replaying such
samples through LRU arrays is wrong (reuse distances are stretched by the sampling), and published
sampled-MRC methods need reuse pairs or spatial sampling that perf mem does not give. What is sound is
narrower, and this module does exactly that (research notes sampling.md sections 3-4):

* **transfer** (target's TLB entry size = the samples' entry size everywhere, same TLB arrays, same
  invalidation stream): the target's TLB sees the native tag stream, so its ``walks`` and ``l2_hits``
  *are* the native counts. Point: the Horvitz-Thompson sum ``sum(period * [label])``, unbiased under
  every method of :mod:`memmodel.analysis.sample`. Interval: exact binomial, walks W with k sampled
  at rate 1/period (k ~ Binomial(W, 1/period); inverted with Clopper-Pearson tail conditions),
  intersected with the sure cold-miss lower bound (distinct entries seen). ``walk_loads``: bracket
  [walks_low * cheapest walk, walks_high * dearest walk] (all PSC/nested-TLB hits vs none, docs/model.md
  section 4); no point.
* **bounds** (larger or mixed target entries, other TLB arrays, other invalidations): no point estimate.
  Lower bound: distinct target entries seen (each takes one cold walk); the Chao1 richness
  ``S_obs + f1^2 / (2 f2)`` of those entries is reported separately as ``distinct_entries`` (an
  estimate, labelled so). Upper bound: the native walk count's upper limit (coarsening: a larger
  entry misses no more often than the smaller ones it covers; empirical, not a theorem: set indexing
  and per-size capacities can break it).
* **cold-miss-only** (any target, when the footprint's entries fit the TLB array in every set, with no
  fallbacks and no flushes): walks = the distinct entries of the footprint, exactly.

Rows where a quantity gets only bounds have ``value`` null; ``high`` is null when nothing bounds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.errors import MemmodelError
from memmodel.trace.schema import TLB_FAULT, TLB_HIT, TLB_L2_HIT, TLB_MISS, TLB_NA

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.config.model import ModelConfig

QUANTITIES: Final = ("walks", "walk_loads", "l2_hits")
DEFAULT_CONFIDENCE: Final = 0.95


class EstimateError(MemmodelError):
    """Samples that cannot be estimated from (names the file and what was expected)."""


# --------------------------------------------------------------------------------------------------
# the samples


@dataclass
class Samples:
    """Sampled translations with their native labels.

    Attributes:
        name: where they came from (a path or ``<arrays>``).
        gva: uint64 address of each sample (bytes).
        tlb: uint8 ``TLB_*`` code of each sample.
        page_shift: native TLB entry shift of each sample (12/21/30), 0 where unknown.
        period: translations each sample stands for (float64), or None when the source has no period.
        meta: the ``sampling`` metadata (``memmodel sample``) or the store metadata of a perf trace.
        native: the native config that labelled the samples, or None (perf: real hardware).
        covers_whole_run: whether the samples were drawn from the program's whole run (then every
            distinct entry seen took at least one walk: the cold-miss lower bound is sure).
    """

    name: str
    gva: np.ndarray
    tlb: np.ndarray
    page_shift: np.ndarray
    period: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)
    native: ModelConfig | None = None
    covers_whole_run: bool = False
    kind: np.ndarray | None = None
    size: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.tlb.shape[0])

    def subset(self, index: np.ndarray, period: int, method: str, seed: int) -> Samples:
        """The samples at ``index`` (ascending) of a period-1 sample set, each standing for ``period``."""
        meta = dict(self.meta, sample_period=period, sample_method=method, sample_seed=seed)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return a[index] if a is not None else None

        return Samples(self.name, self.gva[index], self.tlb[index], self.page_shift[index],
                       np.full(index.shape[0], float(period)), meta, self.native, self.covers_whole_run,
                       pick(self.kind), pick(self.size))


def load_samples(path: str | os.PathLike[str]) -> Samples:
    """Read a sampled store file (``memmodel sample`` output or an ingested perf mem trace).

    Raises:
        EstimateError: the file is not a sampled trace, or has no ``tlb`` column.
    """
    import pyarrow.parquet as pq

    from memmodel.config.load import parse_config
    from memmodel.trace.store import is_parquet, read_metadata

    if not Path(path).is_file():
        raise EstimateError(f"{path}: no such sample file")
    if not is_parquet(path):
        raise EstimateError(f"{path}: expected a store Parquet file of samples (`memmodel sample` or "
                            "`memmodel ingest` of perf mem output)")
    md = read_metadata(path)
    if not md.get("sampled"):
        raise EstimateError(f"{path}: not a sampled trace (its metadata has no 'sampled: true'); a full trace "
                            "needs no estimate: run `memmodel simulate`")
    table = pq.read_table(path)
    if "tlb" not in table.column_names:
        raise EstimateError(f"{path}: sampled trace has no 'tlb' column (native TLB outcome of each sample)")
    col = {c: table.column(c).to_numpy() for c in table.column_names}
    n = table.num_rows
    dps = col.get("data_page_size")
    shift = np.zeros(n, dtype=np.uint8)
    if dps is not None:
        for s in (12, 21, 30):
            shift[dps.astype(np.uint64) == np.uint64(1 << s)] = s
    period = col["period"].astype(np.float64) if "period" in col else None
    sampling = md.get("sampling")
    native = None
    if sampling is not None:
        import tomllib

        native = parse_config(tomllib.loads(sampling["native_config_toml"]), source=f"{path}: native config")
        meta = dict(sampling)
    else:
        meta = {k: v for k, v in md.items() if k != "inputs"}
    return Samples(
        name=str(path),
        gva=col["gva"].astype(np.uint64),
        tlb=col["tlb"].astype(np.uint8),
        page_shift=shift,
        period=period,
        meta=meta,
        native=native,
        covers_whole_run=bool(meta.get("covers_whole_run", False)),
        kind=col["kind"],
        size=col["size"],
    )


# --------------------------------------------------------------------------------------------------
# statistics


def binomial_count_interval(k: int, rate: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[int, int]:
    """Exact interval for a count W of events of which ``k`` were sampled, each independently with ``rate``.

    Clopper-Pearson tail conditions on W (an integer): low = the least W with P(X >= k | W) > a/2, high =
    the largest W with P(X <= k | W) > a/2, X ~ Binomial(W, rate), a = 1 - confidence. At ``rate`` 1 the
    interval is [k, k].

    Args:
        k: sampled events (>= 0).
        rate: sampling probability in (0, 1].
        confidence: two-sided coverage, e.g. 0.95.
    """
    from scipy.stats import binom

    a = (1.0 - confidence) / 2
    if rate >= 1.0:
        return k, k

    def search(pred: Any, lo: int, hi: int) -> int:
        # least W in [lo, hi] with pred(W) true; pred is monotone (false ... false true ... true)
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    big = int(max(k, 1) / rate * 4 + 50 / rate)
    low = 0 if k == 0 else search(lambda w: binom.sf(k - 1, w, rate) > a, k, big)
    # high: largest W with cdf(k; W) > a  ==  (least W with cdf <= a) - 1
    high = search(lambda w: binom.cdf(k, w, rate) <= a, k, big) - 1
    return low, max(high, k)


def chao1(counts: np.ndarray) -> float:
    """Chao1 richness ``S_obs + f1^2 / (2 f2)`` (bias-corrected ``f1 (f1 - 1) / 2`` when f2 = 0)."""
    counts = counts[counts > 0]
    s_obs = float(counts.shape[0])
    f1 = float(np.count_nonzero(counts == 1))
    f2 = float(np.count_nonzero(counts == 2))
    if f2 > 0:
        return s_obs + f1 * f1 / (2 * f2)
    return s_obs + f1 * (f1 - 1) / 2


# --------------------------------------------------------------------------------------------------
# model facts about a config


def _leaf(levels: int, shift: int) -> int:
    return levels - (shift - 12) // 9


def fixed_entry_shift(cfg: ModelConfig) -> int | None:
    """The TLB entry shift every translation of ``cfg`` uses whatever happens (12 when either side maps only
    4 KiB pages), or None when it depends on allocation (fallbacks)."""
    if cfg.guest.page_shift == 12 or (cfg.virtualized and cfg.host.page_shift == 12):
        return 12
    return None


def preferred_entry_shift(cfg: ModelConfig) -> int:
    """``es = min(gs, hs)`` with both sides at their preferred page size (docs/model.md section 3)."""
    return min(cfg.guest.page_shift, cfg.host.page_shift) if cfg.virtualized else cfg.guest.page_shift


def no_fallbacks(cfg: ModelConfig, footprint_pages: int | None) -> bool:
    """Whether every page gets its side's preferred size: no fragmentation and room to spare (the footprint,
    rounded up to whole preferred pages, uses at most half of the side's memory)."""
    if footprint_pages is None:
        return False
    sides = [cfg.guest] + ([cfg.host] if cfg.virtualized else [])
    for side in sides:
        if side.fragmentation > 0:
            return False
        need = footprint_pages * 4096 + (1 << side.page_shift)  # each region may round up one page
        if need * 2 > side.memory:
            return False
    return True


def walk_cost_bounds(cfg: ModelConfig, gs: int, hs: int) -> tuple[int, int]:
    """(cheapest, dearest) page-table loads of one walk with guest page shift gs, host shift hs (docs/model.md s4).

    Cheapest: the deepest configured guest PSC hits and every host translation hits the nested TLB (or
    its deepest host PSC). Dearest: no PSC or nested-TLB hit, ``(G+1)(H+1) - 1`` (``G`` when native).
    """
    g = _leaf(cfg.guest.levels, gs)
    kg = max([p.level for p in cfg.psc_guest if p.entries > 0 and p.level <= g - 1], default=0)
    if not cfg.virtualized:
        return g - kg, g
    h = _leaf(cfg.host.levels, hs)
    kh = max([p.level for p in cfg.psc_host if p.entries > 0 and p.level <= h - 1], default=0)
    host_min = 0 if (cfg.ntlb is not None and cfg.ntlb.entries > 0) else h - kh
    host_translations = (g - kg) - (1 if kg >= 1 else 0) + 1
    return (g - kg) + host_translations * host_min, (g + 1) * (h + 1) - 1


def _tlb_geometry(cfg: ModelConfig) -> tuple[Any, ...]:
    return (tuple(cfg.tlb_l1), tuple(cfg.tlb_l2))


def _footprint_tags(extents: list[list[int]], k: int) -> np.ndarray:
    """Distinct entry numbers (4 KiB page >> k) covered by ``[start, end)`` extents of 4 KiB pages."""
    if not extents:
        return np.zeros(0, dtype=np.int64)
    ext = np.asarray(extents, dtype=np.int64)
    lo, hi = ext[:, 0] >> k, (ext[:, 1] - 1) >> k
    n = hi - lo + 1
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return np.unique(starts + np.arange(int(n.sum()), dtype=np.int64))


def footprint_fits(cfg: ModelConfig, shift: int, extents: list[list[int]] | None) -> int | None:
    """Distinct ``shift`` entries of the footprint when they fit the last TLB level holding ``shift`` in every
    set (no capacity or conflict miss can happen: walks = cold misses), else None."""
    if extents is None:
        return None
    k = shift - 12
    arrays = [a for a in cfg.tlb_l2 if shift in a.page_shifts] or [a for a in cfg.tlb_l1 if shift in a.page_shifts]
    if not arrays:
        return None
    arr = arrays[0]
    all_tags = _footprint_tags(extents, k)
    if all_tags.shape[0] > arr.entries:
        return None
    per_set = np.bincount(all_tags % arr.sets, minlength=arr.sets)
    if per_set.max(initial=0) > arr.ways:
        return None
    return int(all_tags.shape[0])


# --------------------------------------------------------------------------------------------------
# the estimator


@dataclass
class _Counts:
    k_walk: int
    k_l2: int
    k_hit_unknown: int
    k_unknown: int
    ht_walk: float | None
    ht_l2: float | None
    rate_walk: float | None  # 1 / (mean period of the samples counted)
    rate_all: float | None
    total: float | None  # translations of the source (known, or the HT sum of every sample's period)


def _counts(s: Samples) -> _Counts:
    t = s.tlb
    walk = t == TLB_MISS
    l2 = t == TLB_L2_HIT
    hit_unknown = t == TLB_HIT
    unknown = (t == TLB_NA) | (t == TLB_FAULT) | (t > TLB_HIT)
    known_total = s.meta.get("source_translations")
    if s.period is None:
        return _Counts(int(walk.sum()), int(l2.sum()), int(hit_unknown.sum()), int(unknown.sum()), None, None,
                       None, None, float(known_total) if known_total is not None else None)
    p = s.period
    mean_all = float(p.mean()) if p.size else float(s.meta.get("sample_period") or 1)
    ht_w, ht_l2 = float(p[walk].sum()), float(p[l2].sum())
    rate_w = 1.0 / (ht_w / walk.sum()) if walk.any() else 1.0 / mean_all
    total = float(known_total) if known_total is not None else float(p.sum())
    return _Counts(int(walk.sum()), int(l2.sum()), int(hit_unknown.sum()), int(unknown.sum()), ht_w, ht_l2,
                   min(rate_w, 1.0), min(1.0 / mean_all, 1.0), total)


def _distinct(s: Samples, shift: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sample counts per distinct ``shift`` entry (of the samples in ``mask``)."""
    vpn = s.gva >> np.uint64(shift)
    if mask is not None:
        vpn = vpn[mask]
    _, counts = np.unique(vpn, return_counts=True)
    return counts


@dataclass
class _Row:
    quantity: str
    value: float | None
    low: float | None
    high: float | None
    method: str


def _estimate_one(s: Samples, cfg: ModelConfig, c: _Counts, confidence: float) -> tuple[str, list[_Row]]:
    notes: list[str] = []
    known_shifts = s.page_shift[s.page_shift > 0]
    if known_shifts.size == s.n and s.n:
        native_uniform = int(known_shifts[0]) if np.all(known_shifts == known_shifts[0]) else None
    elif known_shifts.size == 0:
        native_uniform = 12
        notes.append("samples carry no page size: native entries assumed 4K")
    else:
        native_uniform = None
    extents = s.meta.get("source_footprint_extents_4k")
    fp_pages = s.meta.get("source_footprint_pages_4k")
    unmaps = int(s.meta.get("source_unmaps", 0) or 0)
    target_fixed = fixed_entry_shift(cfg)
    same_arrays = s.native is None or _tlb_geometry(s.native) == _tlb_geometry(cfg)
    if s.native is None:
        notes.append("labels measured on hardware: assumes its TLB arrays are the target's")
    same_invalidations = unmaps == 0 or (
        s.native is not None and cfg.guest.unmap == "free" and not cfg.balloon.reporting
        and cfg.guest.page_shift == s.native.guest.page_shift
    )
    fallback_free = no_fallbacks(cfg, fp_pages)
    es_pref = preferred_entry_shift(cfg)
    gs, hs = cfg.guest.page_shift, cfg.host.page_shift if cfg.virtualized else cfg.guest.page_shift
    cmin, _ = walk_cost_bounds(cfg, gs, hs)
    # a fallback maps smaller pages: deeper walks, so the dearest walk then uses 4 KiB leaves
    _, cmax = walk_cost_bounds(cfg, gs, hs) if fallback_free else walk_cost_bounds(cfg, 12, 12)
    if not fallback_free:
        notes.append("walk cost upper limit allows 4K fallbacks")

    # sure lower bound: every distinct entry of the smallest size the target can use takes a cold walk
    min_target_shift = target_fixed if target_fixed is not None else (es_pref if fallback_free else 12)
    cold_low = float(_distinct(s, min_target_shift).shape[0]) if s.covers_whole_run else 0.0
    if not s.covers_whole_run:
        notes.append("no cold-miss bound: the samples may not cover the run from its start")
    fits = None
    if unmaps == 0 and not cfg.balloon.reporting and (target_fixed is not None or fallback_free):
        fits = footprint_fits(cfg, target_fixed if target_fixed is not None else es_pref, extents)

    def ci(k: int, rate: float | None) -> tuple[float | None, float | None]:
        if rate is None:
            return None, None
        lo, hi = binomial_count_interval(k, rate, confidence)
        return float(lo), float(hi)

    w_lo, _ = ci(c.k_walk, c.rate_walk)
    _, w_hi = ci(c.k_walk + c.k_unknown, c.rate_walk)
    rows: list[_Row] = []
    transfer = (target_fixed is not None and native_uniform == target_fixed and same_arrays
                and same_invalidations)
    if fits is not None:
        method = "cold-miss-only: the footprint's entries fit the TLB in every set, so walks = distinct entries"
        rows.append(_Row("walks", float(fits), float(fits), float(fits), method))
        walks_lo: float | None = float(fits)
        walks_hi: float | None = float(fits)
    elif transfer and target_fixed is not None:
        method = (f"transfer: same {1 << (target_fixed - 10)}K entries and TLB arrays as the native samples; "
                  "Horvitz-Thompson count, exact binomial interval")
        # the point stays the unbiased HT sum; only the interval uses the sure cold-miss bound
        value = c.ht_walk if c.k_unknown == 0 else None
        walks_lo = max(w_lo, cold_low) if w_lo is not None else cold_low
        walks_hi = w_hi
        rows.append(_Row("walks", value, walks_lo, walks_hi, method))
    else:
        why = ("larger or mixed entries" if target_fixed is None or native_uniform != target_fixed
               else "different TLB arrays" if not same_arrays else "different TLB invalidations")
        method = (f"bounds ({why}): low = distinct entries seen (cold misses); high = native walks' upper "
                  "limit (coarsening, empirical); see distinct_entries for a Chao1 richness estimate")
        walks_lo = cold_low
        coarsens = (native_uniform is not None and min_target_shift >= native_uniform and same_invalidations)
        walks_hi = w_hi if coarsens else None
        rows.append(_Row("walks", None, walks_lo, walks_hi, method))
        counts = _distinct(s, es_pref)
        footprint_entries = None
        if extents is not None:
            k = es_pref - 12
            footprint_entries = float(_footprint_tags(extents, k).shape[0])
        rows.append(_Row("distinct_entries", chao1(counts) if counts.size else 0.0, float(counts.shape[0]),
                         footprint_entries,
                         f"Chao1 richness of distinct {1 << (es_pref - 10)}K-entry regions (an estimate); "
                         "low = seen; high = footprint extents"))
    # walk loads: bracket only (PSC and nested-TLB hits depend on the miss stream, which samples do not give)
    wl_lo = walks_lo * cmin if walks_lo is not None else None
    wl_hi = walks_hi * cmax if walks_hi is not None else None
    wl_val = None
    if cmin == cmax and rows[0].value is not None:
        wl_val = rows[0].value * cmin
    rows.insert(1, _Row("walk_loads", wl_val, wl_lo, wl_hi,
                        f"bracket: walks x [{cmin}, {cmax}] loads (every PSC/nested-TLB hit .. none)"))
    # L2 hits transfer exactly when walks do (same tag stream through the same arrays)
    if (transfer or (fits is not None and target_fixed is not None and native_uniform == target_fixed
                     and same_arrays and same_invalidations)) and c.rate_walk is not None:
        lo, _ = ci(c.k_l2, c.rate_all)
        _, hi = ci(c.k_l2 + c.k_hit_unknown + c.k_unknown, c.rate_all)
        val = c.ht_l2 if (c.k_hit_unknown + c.k_unknown) == 0 else None
        how = "transfer: Horvitz-Thompson count, exact binomial interval"
        if c.k_hit_unknown:
            how += f"; {c.k_hit_unknown} hit(s) of unknown level counted only in high"
        rows.insert(2, _Row("l2_hits", val, lo, hi, how))
    else:
        rows.insert(2, _Row("l2_hits", None, 0.0, c.total, "no estimate: the L2 TLB sees another tag stream; "
                            "trivial bounds 0 .. translations"))
    if c.k_unknown:
        notes.append(f"{c.k_unknown} sample(s) with unknown TLB outcome counted as possible walks in high")
    if s.period is None:
        notes.append("no sample period: counts cannot be scaled (value and interval need periods)")
    head = rows[0].method.split(":")[0]
    full = head + ("; " + "; ".join(notes) if notes else "")
    return full, rows


def estimate(
    samples: str | os.PathLike[str] | Samples,
    configs: Any,
    confidence: float = DEFAULT_CONFIDENCE,
    cpu: str | None = None,
) -> pl.DataFrame:
    """Estimates with intervals of ``walks``, ``walk_loads`` and ``l2_hits`` for each target config.

    Args:
        samples: a sample file (``memmodel sample`` output or an ingested perf mem trace) or :class:`Samples`.
        configs: preset names, TOML files or ModelConfig objects.
        confidence: two-sided coverage of the binomial intervals (0 < confidence < 1).
        cpu: CPU preset overriding each config's.

    Returns:
        One row per (config, quantity): ``config``, ``quantity``, ``value`` (null when only bounds are
        sound), ``low``, ``high`` (null when unbounded), ``method`` (how this quantity was obtained),
        ``config_method`` (the config's overall method and caveats), ``confidence``. Same input, same frame.
    """
    import polars as pl

    from memmodel.analysis.api import resolve_configs

    if not 0.0 < confidence < 1.0:
        raise EstimateError(f"confidence {confidence}: expected a number strictly between 0 and 1")
    s = samples if isinstance(samples, Samples) else load_samples(samples)
    c = _counts(s)
    out: list[dict[str, Any]] = []
    for cfg in resolve_configs(configs, cpu):
        method, rows = _estimate_one(s, cfg, c, confidence)
        for r in rows:
            out.append({"config": cfg.name, "quantity": r.quantity, "value": r.value, "low": r.low, "high": r.high,
                        "method": r.method, "config_method": method, "confidence": confidence})
    schema = {"config": pl.String, "quantity": pl.String, "value": pl.Float64, "low": pl.Float64,
              "high": pl.Float64, "method": pl.String, "config_method": pl.String, "confidence": pl.Float64}
    return pl.DataFrame(out, schema=schema)


def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)


def estimates_to_json(frame: pl.DataFrame) -> str:
    """The ``--json`` document: ``[{"config", "method", "estimates": {q: {value, low, high}}}]`` + newline."""
    docs: list[dict[str, Any]] = []
    by: dict[str, dict[str, Any]] = {}
    for row in frame.iter_rows(named=True):
        d = by.get(row["config"])
        if d is None:
            d = {"config": row["config"], "method": row["config_method"], "estimates": {}}
            by[row["config"]] = d
            docs.append(d)
        d["estimates"][row["quantity"]] = {"value": _num(row["value"]), "low": _num(row["low"]),
                                           "high": _num(row["high"])}
    return json.dumps(docs, indent=1) + "\n"


def naive_replay(samples: str | os.PathLike[str], configs: Sequence[Any], cpu: str | None = None) -> dict[str, int]:
    """Walks of each config when the samples are replayed as if they were the trace (for contrast only)."""
    from memmodel.analysis.api import run

    return {r.config.name: int(r.result.counters["walks"])
            for r in run(samples, list(configs), cpu=cpu, allow_sampled=True)}
