"""Draw perf-mem-like samples from a full trace, each labelled with its exact native TLB outcome.

``memmodel sample`` turns a complete trace (lackey, or any store file) into what ``perf mem`` would have
recorded on a machine that runs the native config: a subset of the *translations*, each with its TLB
outcome (L1 hit / L2 hit / walk) and the size of the TLB entry that served it. Estimators
(:mod:`memmodel.analysis.estimate`) can then be validated on data whose truth is known.

Sampling unit: one translation (docs/model.md section 1). An ``L``/``S``/``M`` record makes one translation; an
access that straddles a 4 KiB boundary makes two, and each of the two is a separate sampling unit with
its own index. A sampled first half becomes the record ``(kind, gva, bytes up to the page end)``, a
sampled second half ``(kind, start of the last page, bytes from there to the access end)``: every sample
record translates exactly once, in the page whose outcome it carries, as a perf sample does. ``I``
records (and v2 ``U`` records) are never sampled; they are counted in the metadata.

Methods (``period`` = N translations per sample; every translation is sampled with probability exactly
1/N in all three, so ``sum(period * [label = walk])`` is an unbiased count of walks):

* ``fixed``: every N-th translation from a start offset drawn uniformly in [0, N) (PEBS with ``-c N``).
* ``jitter``: one sample at a uniform position inside each consecutive block of N translations (IBS
  randomises the low bits of its op counter to break periodic aliasing; this is the stratified form).
* ``bernoulli``: every translation independently with probability 1/N (geometric gaps).

Determinism: the same trace, method, period, seed, filter and native config give byte-identical output.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from memmodel.errors import MemmodelError

METHODS: Final = ("fixed", "jitter", "bernoulli")

#: Nominal latency in cycles of a load by native TLB outcome, used only by ``--filter latency>=T`` to
#: mimic Intel's load-latency threshold (``ldlat``). The model has no timing: L1 TLB + L1D hit 4 cycles;
#: an L2 TLB hit adds about 7 (measured step, research notes hardware.md section 1.8); a walk whose
#: entries hit the data caches adds about 20 more (Haswell reference figure, same notes).
NOMINAL_LATENCY: Final = {1: 4, 2: 11, 3: 31}

#: Footprint extents stored in the metadata are dropped beyond this many (the estimators then do without).
MAX_EXTENTS: Final = 200_000

_GEN_CHUNK = 1 << 16


class SampleError(MemmodelError):
    """Bad arguments to ``memmodel sample`` (names the option and what was expected)."""


@dataclass(frozen=True)
class LatencyFilter:
    """Keep only samples whose nominal latency (:data:`NOMINAL_LATENCY`, cycles) is at least ``min_cycles``."""

    min_cycles: int

    @classmethod
    def parse(cls, text: str) -> LatencyFilter:
        """Parse ``latency>=T`` (T a non-negative integer, cycles)."""
        m = re.fullmatch(r"\s*latency\s*>=\s*(\d+)\s*", text)
        if m is None:
            raise SampleError(f"--filter {text!r}: expected 'latency>=T' with T an integer number of cycles")
        return cls(int(m.group(1)))

    def text(self) -> str:
        """The canonical text form, ``latency>=T``."""
        return f"latency>={self.min_cycles}"


# --------------------------------------------------------------------------------------------------
# translations of a batch of records


def expand_translations(kind: np.ndarray, gva: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, ...]:
    """Records -> one row per translation, in trace order (docs/model.md section 1).

    Args:
        kind: uint8 codes (0 I, 1 L, 2 S, 3 M, 4 U).
        gva: uint64 virtual addresses (bytes).
        size: access sizes (bytes); for ``U``, the unmap length (ignored here).

    Returns:
        ``(kind, addr, nbytes)`` per translation: the record's kind, the first byte of the part of the
        access inside the translated 4 KiB page, and the bytes of the access inside that page (>= 1).
    """
    kind = np.asarray(kind, dtype=np.uint8)
    gva = np.asarray(gva, dtype=np.uint64)
    size = np.asarray(size).astype(np.uint64)
    data = (kind >= 1) & (kind <= 3)
    k, a, n = kind[data], gva[data], np.maximum(size[data], np.uint64(1))
    off = a & np.uint64(4095)
    with np.errstate(over="ignore"):
        end = a + n  # exclusive; wraps only for addresses within n of 2^64, which traces never hold
        straddle = off + n > np.uint64(4096)
        last_page = (end - np.uint64(1)) & ~np.uint64(4095)
    first_n = np.where(straddle, np.uint64(4096) - off, n)
    reps = 1 + straddle.astype(np.int64)
    out_k = np.repeat(k, reps)
    out_a = np.repeat(a, reps)
    out_n = np.repeat(first_n, reps)
    if straddle.any():
        second = np.cumsum(reps)[straddle] - 1  # row of each second translation
        out_a[second] = last_page[straddle]
        out_n[second] = (end - last_page)[straddle]
    return out_k, out_a, out_n


# --------------------------------------------------------------------------------------------------
# native labels from the exact engine


class NativeLabeler:
    """Exact native TLB outcome and entry shift of every translation, batch by batch, from the engine
    (``Replay(cfg, window, outcomes=True)``: one outcome per translation, in trace order)."""

    def __init__(self, cfg: Any) -> None:
        from memmodel.engine import Replay

        self.cfg = cfg
        self.replay = Replay(cfg, 10_000, outcomes=True)

    def label(self, kind: np.ndarray, gva: np.ndarray, size: np.ndarray,
              n_translations: int) -> tuple[np.ndarray, np.ndarray]:
        """Feed one batch; return (outcome codes 1/2/3, entry shifts 12/21/30) of its translations."""
        self.replay.feed(kind, gva, size)
        codes, shifts = self.replay.take_outcomes()
        if codes.shape[0] != n_translations or shifts.shape[0] != n_translations:
            raise MemmodelError(
                f"engine returned {codes.shape[0]} outcomes for {n_translations} translations of a batch"
            )
        return np.asarray(codes, dtype=np.uint8), np.asarray(shifts, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# sample positions


class Positions:
    """The sorted stream of sampled translation indices of one method, period and seed."""

    def __init__(self, method: str, period: int, seed: int) -> None:
        if method not in METHODS:
            raise SampleError(f"unknown sampling method {method!r}; expected one of {', '.join(METHODS)}")
        if period < 1:
            raise SampleError(f"--period {period}: expected an integer >= 1 (translations per sample)")
        self.method, self.period = method, period
        self.rng = np.random.default_rng(seed)
        self.buf = np.zeros(0, dtype=np.int64)
        self._block = 0  # next block of N translations (fixed / jitter)
        self._next = 0  # bernoulli: first index not yet decided
        self._offset = int(self.rng.integers(period)) if method == "fixed" else 0

    def _generate(self) -> np.ndarray:
        n, b = self.period, self._block
        if self.method == "fixed":
            out = self._offset + n * np.arange(b, b + _GEN_CHUNK, dtype=np.int64)
        elif self.method == "jitter":
            out = n * np.arange(b, b + _GEN_CHUNK, dtype=np.int64) + self.rng.integers(n, size=_GEN_CHUNK)
        else:
            gaps = self.rng.geometric(1.0 / n, size=_GEN_CHUNK).astype(np.int64)
            out = self._next - 1 + np.cumsum(gaps)
            self._next = int(out[-1]) + 1
        self._block += _GEN_CHUNK
        return out

    def take(self, end: int) -> np.ndarray:
        """The sampled indices below ``end`` not yet returned (int64, ascending)."""
        parts = [self.buf]
        last = int(self.buf[-1]) if self.buf.size else -1
        while last < end:
            chunk = self._generate()
            parts.append(chunk)
            last = int(chunk[-1])
        allp = np.concatenate(parts)
        cut = int(np.searchsorted(allp, end))
        self.buf = allp[cut:]
        return allp[:cut]


# --------------------------------------------------------------------------------------------------
# the command


@dataclass
class SampleSummary:
    """What one ``sample`` run did (also stored in the output's metadata under ``sampling``)."""

    out: str
    samples: int
    translations: int
    instructions: int
    records: int
    metadata: dict[str, Any]


def _extents(pages: np.ndarray) -> list[list[int]]:
    """Sorted unique 4 KiB page numbers -> merged ``[start, end)`` ranges."""
    if pages.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(pages) != 1)
    starts = np.concatenate([[pages[0]], pages[breaks + 1]])
    ends = np.concatenate([pages[breaks], [pages[-1]]]) + 1
    return [[int(s), int(e)] for s, e in zip(starts, ends, strict=True)]


def sample_trace(
    trace: str | os.PathLike[str],
    out: str | os.PathLike[str],
    period: int,
    method: str = "fixed",
    seed: int = 0,
    latency_filter: LatencyFilter | str | None = None,
    native_config: Any = "native-4k",
    cpu: str | None = None,
    batch_rows: int = 1 << 20,
) -> SampleSummary:
    """Sample a full trace like ``perf mem`` and write the samples as a store file.

    Args:
        trace: a full trace (store Parquet or raw lackey text).
        out: the Parquet file to write (replaced atomically; nothing is left on failure).
        period: N >= 1, translations per sample (the HT weight of each sample).
        method: ``fixed``, ``jitter`` or ``bernoulli`` (module doc).
        seed: seed of the start offset / jitter / Bernoulli draws.
        latency_filter: keep only samples with nominal latency >= T cycles (``latency>=T``), like ldlat.
        native_config: the native machine whose TLB labels the samples (preset, TOML or ModelConfig).
        cpu: CPU preset overriding the native config's.
        batch_rows: records read per batch (bounds memory).

    Returns:
        A :class:`SampleSummary`; the file has columns kind, gva, size, tlb (``TLB_*`` codes),
        data_page_size (bytes of the native TLB entry) and period, and its metadata holds
        ``sampled: true``, the period, method, seed, filter, native config (TOML), the source trace's
        identity and its translation / instruction / record counts, and the 4 KiB extents of its
        data footprint (a stand-in for perf's MMAP2 VMA extents).
    """
    from memmodel.analysis.api import resolve_configs
    from memmodel.trace import iter_batches, trace_identity
    from memmodel.trace.store import read_metadata, write_store

    if isinstance(latency_filter, str):
        latency_filter = LatencyFilter.parse(latency_filter)
    if not Path(trace).is_file():
        raise SampleError(f"{trace}: no such trace file")
    from memmodel.trace.store import is_parquet

    if is_parquet(trace) and read_metadata(trace).get("sampled"):
        raise SampleError(f"{trace}: is already a sampled trace; `memmodel sample` needs a full trace")
    cfg = resolve_configs(native_config, cpu)[0]
    if cfg.virtualized:
        raise SampleError(f"--native-config {cfg.name}: expected a native config (virtualized = false)")
    labeler = NativeLabeler(cfg)
    pos = Positions(method, period, seed)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("kind", "gva", "size", "tlb", "data_page_size")}
    pages: list[np.ndarray] = []
    done = instructions = records = unmaps = 0
    for batch in iter_batches(trace, ("kind", "gva", "size"), batch_rows):
        kind, gva, size = batch["kind"], batch["gva"], batch["size"]
        records += int(kind.shape[0])
        instructions += int(np.count_nonzero(kind == 0))
        unmaps += int(np.count_nonzero(kind == 4))
        tk, ta, tn = expand_translations(kind, gva, size)
        m = int(tk.shape[0])
        codes, shifts = labeler.label(kind, gva, size, m)
        pages.append(np.unique(ta >> np.uint64(12)))
        idx = pos.take(done + m) - done
        if latency_filter is not None and idx.size:
            lat = np.array([0, NOMINAL_LATENCY[1], NOMINAL_LATENCY[2], NOMINAL_LATENCY[3]])[codes[idx]]
            idx = idx[lat >= latency_filter.min_cycles]
        parts["kind"].append(tk[idx])
        parts["gva"].append(ta[idx])
        parts["size"].append(tn[idx])
        parts["tlb"].append(codes[idx])
        parts["data_page_size"].append(np.uint64(1) << shifts[idx].astype(np.uint64))
        done += m
    cols = {k: np.concatenate(v) if v else np.zeros(0, np.uint64) for k, v in parts.items()}
    cols["period"] = np.full(cols["kind"].shape[0], period, dtype=np.uint64)
    footprint = np.unique(np.concatenate(pages)) if pages else np.zeros(0, np.uint64)
    extents = _extents(footprint.astype(np.int64))
    sampling = {
        "sampled": True,
        "sample_period": period,
        "sample_method": method,
        "sample_seed": seed,
        "sample_unit": "translation (a straddling access is two units)",
        "sample_filter": latency_filter.text() if latency_filter is not None else None,
        "nominal_latency_cycles": {"l1_hit": NOMINAL_LATENCY[1], "l2_hit": NOMINAL_LATENCY[2],
                                   "walk": NOMINAL_LATENCY[3]},
        "native_config": cfg.name,
        "native_config_toml": cfg.to_toml(),
        "labels_from": "memmodel engine (exact replay of the full trace)",
        "covers_whole_run": True,
        "source": {k: v for k, v in trace_identity(trace).items() if k != "sources"},
        "source_records": records,
        "source_translations": done,
        "source_instructions": instructions,
        "source_unmaps": unmaps,
        "source_footprint_pages_4k": int(footprint.shape[0]),
        "source_footprint_extents_4k": extents if len(extents) <= MAX_EXTENTS else None,
    }
    name = Path(trace).name
    write_store(out, cols, source=f"memmodel sample of {name}", metadata={"sampling": sampling, **_flat(sampling)})
    return SampleSummary(str(out), int(cols["kind"].shape[0]), done, instructions, records, sampling)


def _flat(sampling: dict[str, Any]) -> dict[str, Any]:
    """The top-level metadata keys every reader of sampled traces checks (``sampled``, ``sample_period``)."""
    return {"sampled": True, "sample_period": sampling["sample_period"]}
