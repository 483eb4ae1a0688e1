"""The replay-ready (compact) form: I records carried as counts give exactly the counters of full records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_helpers import arrays, cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_differential_v2 import lifecycle_traces, v2_configs

from memmodel.engine import Replay
from memmodel.trace import write_store
from memmodel.trace.compact import (
    META_ICOUNT_MAX,
    META_SIZE_MAX,
    cached_compact_batches,
    compact_batches,
    pack,
    unpack,
)


def _full(records: list[tuple[str, int, int]], config: Any, batch: int) -> dict[str, Any]:
    a = arrays(records)
    r = Replay(config)
    for i in range(0, len(records), batch):
        r.feed(a["kind"][i : i + batch], a["gva"][i : i + batch], a["size"][i : i + batch])
    return r.result().counters


def _compact(records: list[tuple[str, int, int]], config: Any, batch: int) -> dict[str, Any]:
    a = arrays(records)
    batches = [{k: v[i : i + batch] for k, v in a.items()} for i in range(0, len(records), batch)]
    r = Replay(config)
    for b in compact_batches(batches):
        r.feed(b["kind"], b["gva"], b["size"], b["icount"])
    return r.result().counters


def test_compact_rows_keep_every_data_record_and_count_every_fetch() -> None:
    records = [("I", 0x400000, 3), ("I", 0x400003, 2), ("L", 0x1000, 8), ("U", 0x1000, 4096), ("I", 0x400005, 4),
               ("I", 0x400009, 1), ("I", 0x40000A, 2)]
    a = arrays(records)
    out = list(compact_batches([{k: v[:4] for k, v in a.items()}, {k: v[4:] for k, v in a.items()}]))
    kind = np.concatenate([b["kind"] for b in out]).tolist()
    icount = np.concatenate([b["icount"] for b in out]).tolist()
    # L after 2 fetches, U right after it, then the trailing fetches: the last as an I row after 2 others
    assert kind == [1, 4, 0] and icount == [2, 0, 2]
    assert int(np.concatenate([b["gva"] for b in out])[-1]) == 0x40000A


def test_runs_of_fetches_too_long_for_a_count_go_out_as_full_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.trace.compact as compact

    monkeypatch.setattr(compact, "_U32_MAX", 2)  # a count holds at most 2 fetches here (2^32 - 1 in use)
    records = ([("I", 0x400000, 4)] * 5 + [("L", 0x1000, 8)] + [("I", 0x400000, 4)] * 4 + [("S", 0x2000, 8)]
               + [("I", 0x400004, 4)] * 7)
    config = cfg({"virtualized": False})
    for batch in (1, 3, 6, len(records)):
        a = arrays(records)
        batches = [{k: v[i : i + batch] for k, v in a.items()} for i in range(0, len(records), batch)]
        out = list(compact_batches(batches))
        fetches = sum(int(b["icount"].sum()) + int((b["kind"] == 0).sum()) for b in out)
        assert fetches == 16 and all(int(b["icount"].max(initial=0)) <= 2 for b in out)
        assert _compact(records, config, batch) == _full(records, config, len(records))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=v2_configs(), batch=st.sampled_from([1, 2, 5, 1000]))
def test_the_compact_form_gives_the_counters_of_the_full_form(trace: list[tuple[str, int, int]],
                                                              raw: dict[str, Any], batch: int) -> None:
    # I-heavy traces and reporting every few clock records: passes fall inside runs of fetches
    trace = [r for rec in trace for r in ((("I", 0x400000, 4),) * 3 + (rec,))] + [("I", 0x400000, 4)] * 5
    if raw.get("virtualized") and "balloon" in raw:
        raw["balloon"]["interval"] = 2
    config = cfg(raw)
    assert _compact(trace, config, batch) == _full(trace, config, max(len(trace), 1))


def test_a_store_is_compacted_once_then_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    records = [("I", 0x400000 + i, 4) if i % 3 else ("L", 0x10000 + 64 * i, 8) for i in range(3000)]
    a = arrays(records)
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    first = list(cached_compact_batches(store, "abc", batch_rows=700))
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "complete").is_file()
    second = list(cached_compact_batches(store, "abc", batch_rows=700))
    for col in ("kind", "gva", "size", "icount"):
        assert np.array_equal(np.concatenate([b[col] for b in first]), np.concatenate([b[col] for b in second]))
    assert int(sum(b["icount"].sum() for b in second)) + int(sum((b["kind"] == 0).sum() for b in second)) == 2000


def test_a_cached_entry_is_mapped_once_per_process_until_dropped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.trace.compact as compact

    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compact, "_MAPPED", {})
    opened: list[Path] = []  # entries found on disk, opened and mapped
    load_files = compact._load_files

    def counting(entry: Path) -> dict[str, np.ndarray] | None:
        arrays = load_files(entry)
        if arrays is not None:
            opened.append(entry)
        return arrays

    monkeypatch.setattr(compact, "_load_files", counting)
    a = arrays([("L", 0x10000 + 64 * i, 8) for i in range(500)])
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    computed = list(cached_compact_batches(store, "abc", packed=True))  # computed and written, not mapped
    assert opened == []
    runs = [list(cached_compact_batches(store, "abc", packed=True)) for _ in range(3)]
    assert len(opened) == 1  # the files were found, opened and mapped once
    for run in runs:
        assert all(np.array_equal(x[c], y[c]) for x, y in zip(run, computed, strict=True) for c in x)
    compact.drop_cached("abc")  # a damaged entry is forgotten with its files...
    assert not list((tmp_path / "cache").iterdir())
    list(cached_compact_batches(store, "abc", packed=True))  # ...so the next replay recomputes it
    assert len(opened) == 1 and len(list((tmp_path / "cache").iterdir())) == 1
    list(cached_compact_batches(store, "abc", packed=True))  # and the one after maps the new files
    assert len(opened) == 2


def test_the_mapped_entries_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.trace.compact as compact

    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compact, "_MAPPED", {})
    a = arrays([("L", 0x10000 + 64 * i, 8) for i in range(50)])
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    for i in range(compact._MAPPED_MAX + 3):
        list(cached_compact_batches(store, f"k{i}"))  # computes entry k{i}
        list(cached_compact_batches(store, f"k{i}"))  # maps it
    assert len(compact._MAPPED) == compact._MAPPED_MAX
    assert str(compact.cache_dir() / f"replay-v{compact.CACHE_VERSION}-k{compact._MAPPED_MAX + 2}") in compact._MAPPED


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(blocker / "cache"))
    a = arrays([("I", 0x400000, 4), ("L", 0x1000, 8), ("I", 0x400004, 4)])
    store = tmp_path / "t.parquet"
    write_store(store, a)
    out = list(cached_compact_batches(store, "abc"))
    assert np.concatenate([b["kind"] for b in out]).tolist() == [1, 0]


# ---- the packed layout of the cache ------------------------------------------------------------------------
@st.composite
def compact_rows(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Compact rows whose sizes and icounts sit at, below and above what a packed row holds."""
    n = draw(st.integers(1, 60))
    kinds = draw(st.lists(st.sampled_from([1, 2, 3, 4, 0]), min_size=n, max_size=n))
    sizes = draw(st.lists(st.sampled_from([1, 8, 64, META_SIZE_MAX, META_SIZE_MAX + 1, 1 << 21, (1 << 64) - 1]),
                          min_size=n, max_size=n))
    icounts = draw(st.lists(st.sampled_from([0, 1, 7, META_ICOUNT_MAX, META_ICOUNT_MAX + 1, (1 << 32) - 1]),
                            min_size=n, max_size=n))
    gvas = draw(st.lists(st.integers(0, (1 << 64) - 1), min_size=n, max_size=n))
    return {"kind": np.array(kinds, dtype=np.uint8), "gva": np.array(gvas, dtype=np.uint64),
            "size": np.array(sizes, dtype=np.uint64), "icount": np.array(icounts, dtype=np.uint32)}


@settings(max_examples=200, deadline=None)
@given(rows=compact_rows())
def test_packing_keeps_every_column_exactly(rows: dict[str, np.ndarray]) -> None:
    packed = pack(rows)
    assert packed["gva"].nbytes + packed["meta"].nbytes == 12 * rows["kind"].shape[0]
    escaped = (rows["size"] > META_SIZE_MAX) | (rows["icount"] > META_ICOUNT_MAX)
    assert packed["esc_size"].shape[0] == int(escaped.sum())
    back = unpack(packed)
    for col in ("kind", "gva", "size", "icount"):
        assert back[col].dtype == rows[col].dtype and np.array_equal(back[col], rows[col]), col


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=v2_configs())
def test_the_engine_reads_packed_batches_as_the_compact_columns(trace: list[tuple[str, int, int]],
                                                               raw: dict[str, Any]) -> None:
    # runs of fetches longer than a packed row holds, and U lengths beyond its size field, both escape
    trace = [r for rec in trace for r in (("I", 0x400000, 4),) * (70000 if rec[0] == "U" else 2) + (rec,)]
    config = cfg(raw)
    a = arrays(trace)
    plain, packed = Replay(config), Replay(config)
    for b in compact_batches([a]):
        plain.feed(b["kind"], b["gva"], b["size"], b["icount"])
        packed.feed_packed(pack(b))
    assert packed.result().counters == plain.result().counters


def test_a_packed_batch_whose_escapes_run_out_is_refused() -> None:
    b = pack({"kind": np.array([1, 4], dtype=np.uint8), "gva": np.array([0x1000, 0x1000], dtype=np.uint64),
              "size": np.array([8, 1 << 30], dtype=np.uint64), "icount": np.array([0, 0], dtype=np.uint32)})
    b["esc_size"], b["esc_icount"] = b["esc_size"][:0], b["esc_icount"][:0]
    with pytest.raises(ValueError, match="escapes past the end"):
        Replay(cfg({"virtualized": False})).feed_packed(b)


def test_cached_batches_come_packed_on_request_and_unpack_to_the_same_rows(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    records = [("L", 0x10000 + 64 * i, 8) if i % 5 else ("U", 0x10000, 1 << 20) for i in range(2500)]
    records[101:101] = [("I", 0x400000, 4)] * 70000  # a run of fetches before an L: it escapes
    a = arrays(records)
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    first = list(cached_compact_batches(store, "abc", batch_rows=333))
    packed = list(cached_compact_batches(store, "abc", batch_rows=333, packed=True))
    assert all("meta" in b for b in packed) and sum(b["esc_size"].shape[0] for b in packed) == 501
    for col in ("kind", "gva", "size", "icount"):
        assert np.array_equal(np.concatenate([b[col] for b in first]),
                              np.concatenate([unpack(b)[col] for b in packed])), col


def test_a_damaged_cache_entry_is_a_one_line_error_and_is_removed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from memmodel.analysis.api import run
    from memmodel.errors import TraceError
    from memmodel.trace.compact import cache_dir

    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    a = arrays([("L", 0x1000 + 64 * i, 8) for i in range(50)] + [("U", 0x1000, 1 << 30)])
    store = tmp_path / "t.parquet"
    write_store(store, a)
    good = run([store], [cfg({"virtualized": False})])[0].result.counters  # computes and caches the form
    (entry,) = list(cache_dir().glob("replay-v*"))
    (entry / "esc_size.bin").write_bytes(b"")  # the U record's escape is lost...
    (entry / "esc_icount.bin").write_bytes(b"")
    (entry / "esc_row.bin").write_bytes(b"")  # ...consistently, so the entry still loads
    with pytest.raises(TraceError, match="damaged records in the store or its cached replay form"):
        run([store], [cfg({"virtualized": False})])
    assert not entry.exists()
    assert run([store], [cfg({"virtualized": False})])[0].result.counters == good  # recomputed


def test_the_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cache_dir() is kept per value of the variables it is made of: changing one moves the cache at once."""
    from memmodel.trace.compact import cache_dir

    monkeypatch.delenv("MEMMODEL_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "h1"))
    assert cache_dir() == tmp_path / "h1" / ".cache" / "memmodel"
    monkeypatch.setenv("HOME", str(tmp_path / "h2"))
    assert cache_dir() == tmp_path / "h2" / ".cache" / "memmodel"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "memmodel"
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MEMMODEL_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "memmodel"
    a = arrays([("L", 0x10000 + 64 * i, 8) for i in range(50)])
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    for folder in ("c1", "c2"):  # each replay writes its entry where the variable points now
        monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / folder))
        list(cached_compact_batches(store, "abc"))
        assert [p.name for p in (tmp_path / folder).iterdir()] == ["replay-v2-abc"]


def test_a_short_store_comes_as_one_batch_of_the_whole_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-batch path (no search of the escapes) gives the rows and escapes of the batched path."""
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    rows = [("I", 0x400000, 4)] * 70_000 + [("L", 0x10000, 8), ("U", 0x10000, 1 << 20), ("S", 0x20000, 8)]
    a = arrays(rows)
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    computed = list(cached_compact_batches(store, "abc", packed=True))
    (whole,) = list(cached_compact_batches(store, "abc", packed=True))  # from the entry, one batch
    pieces = list(cached_compact_batches(store, "abc", batch_rows=1, packed=True))
    assert len(pieces) == 3 and whole["esc_size"].size == 2  # the 70,000-fetch count and the unmap escape
    for c in ("gva", "meta", "esc_size", "esc_icount"):
        assert np.array_equal(whole[c], np.concatenate([b[c] for b in computed]))
        assert np.array_equal(whole[c], np.concatenate([b[c] for b in pieces]))


def _distinct_pages(records: list[tuple[str, int, int]]) -> int:
    """The 4 KiB pages the data records (L, S, M) translate: the pages of their first and last bytes
    (docs/model.md section 1: the pages strictly between them are not translated)."""
    pages: set[int] = set()
    for kind, gva, size in records:
        if kind in "LSM":
            pages.update({gva >> 12, (gva + max(size, 1) - 1) >> 12})
    return len(pages)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=v2_configs(), hint=st.sampled_from([0, 1, 3, 100, 5000, 1 << 45]))
def test_a_pages_hint_changes_no_counter_and_every_table_config_counts_the_trace_s_pages(
        trace: list[tuple[str, int, int]], raw: dict[str, Any], hint: int) -> None:
    config = cfg(raw)
    a = arrays(trace)
    results = []
    for pages_hint in (None, hint):
        r = Replay(config, flat=False, pages_hint=pages_hint)
        r.feed(a["kind"], a["gva"], a["size"])
        results.append(r)
    assert results[0].result().counters == results[1].result().counters
    assert results[0].pages_translated == results[1].pages_translated == _distinct_pages(trace)


def test_a_slot_table_presized_by_a_right_short_or_absurd_hint_counts_the_same() -> None:
    # 5,000 pages: past the 4,096 slots a table starts with (half load at 2,048), all touched twice
    records = [("L", 0x10000000 + 4096 * (i % 5000), 8) for i in range(10_000)]
    a = arrays(records)
    config = cfg({"virtualized": True})
    counters = []
    for pages_hint in (None, 5000, 10, 1 << 45):
        r = Replay(config, pages_hint=pages_hint)
        r.feed(a["kind"], a["gva"], a["size"])
        assert r.pages_translated == 5000
        counters.append(r.result().counters)
    assert all(c == counters[0] for c in counters[1:])


def test_the_replay_cache_keeps_the_pages_a_store_translates_for_its_next_replays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memmodel.analysis.api import run
    from memmodel.trace import compact
    from memmodel.trace.store import trace_identity

    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(tmp_path / "cache"))
    records = [("L", 0x7F0000000000 + 4096 * ((i * 7919) % 3000) + 4090, 8) for i in range(6000)]
    a = arrays(records)
    store = tmp_path / "t.parquet"
    write_store(store, {"kind": a["kind"], "gva": a["gva"], "size": a["size"]})
    sha = trace_identity(store)["sha256"]
    assert compact.pages_hint(sha) is None
    first = run([store], ["baseline-4k", "native-4k"])
    pages_file = next((tmp_path / "cache").iterdir()) / compact.PAGES_FILE
    # every record crosses into the next page: 3,000 pages and the one after each
    assert pages_file.read_text() == f"{_distinct_pages(records)}\n" and _distinct_pages(records) == 3001
    compact._PAGES.clear()
    assert compact.pages_hint(sha) == 3001
    second = run([store], ["baseline-4k", "native-4k"])
    assert [r.result.counters for r in first] == [r.result.counters for r in second]
    # a damaged file is no hint (and the replay is the same)
    pages_file.write_text("many\n")
    compact._PAGES.clear()
    assert compact.pages_hint(sha) is None
    third = run([store], ["baseline-4k"])
    assert third[0].result.counters == first[0].result.counters
    assert pages_file.read_text() == "3001\n"  # rewritten by the replay that had no hint
