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
from memmodel.trace.compact import cached_compact_batches, compact_batches


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


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MEMMODEL_CACHE_DIR", str(blocker / "cache"))
    a = arrays([("I", 0x400000, 4), ("L", 0x1000, 8), ("I", 0x400004, 4)])
    store = tmp_path / "t.parquet"
    write_store(store, a)
    out = list(cached_compact_batches(store, "abc"))
    assert np.concatenate([b["kind"] for b in out]).tolist() == [1, 0]
