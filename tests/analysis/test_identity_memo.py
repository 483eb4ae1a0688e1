"""A store is hashed once per process while unchanged, and hashed again as soon as it changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import memmodel.trace
from memmodel.analysis import api
from memmodel.trace import write_store


def _store(path: Path, n: int) -> None:
    write_store(path, {"kind": np.ones(n, dtype=np.uint8), "gva": np.arange(n, dtype=np.uint64) * 4096,
                       "size": np.full(n, 8, dtype=np.uint64)})


def test_an_unchanged_store_is_hashed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "t.parquet"
    _store(store, 10)
    calls: list[str] = []
    real = memmodel.trace.trace_identity
    monkeypatch.setattr(memmodel.trace, "trace_identity", lambda p: calls.append(str(p)) or real(p))
    first = api.cached_trace_identity(store)
    second = api.cached_trace_identity(store)
    assert first == second and len(calls) == 1


def test_a_rewritten_store_gets_its_new_identity(tmp_path: Path) -> None:
    store = tmp_path / "t.parquet"
    _store(store, 10)
    before = api.cached_trace_identity(store)
    _store(store, 11)  # new content at the same path (new size, modification and change times)
    after = api.cached_trace_identity(store)
    assert after["sha256"] != before["sha256"] and after["sha256"] == memmodel.trace.trace_identity(store)["sha256"]


def test_the_identity_names_the_path_it_was_asked_for(tmp_path: Path) -> None:
    store = tmp_path / "t.parquet"
    _store(store, 5)
    link = tmp_path / "link.parquet"
    link.symlink_to(store)
    assert api.cached_trace_identity(store)["path"] == str(store)
    assert api.cached_trace_identity(link)["path"] == str(link)
    assert api.cached_trace_identity(link)["sha256"] == api.cached_trace_identity(store)["sha256"]


def test_a_replay_follows_a_store_rewritten_in_place(tmp_path: Path) -> None:
    """run() stats each file once per call and memoises by what the stat says: a store rewritten at the same
    path is replayed from its new records (new identity, new replay-ready form), never from the old ones."""
    store = tmp_path / "t.parquet"
    _store(store, 10)
    first = api.run([store], ["native-4k"])[0]
    api.run([store], ["native-4k"])  # the memoised identity and the mapped replay-ready form
    _store(store, 700)  # new records at the same path
    second = api.run([store], ["native-4k"])[0]
    assert first.result.counters["accesses"] == 10 and second.result.counters["accesses"] == 700
    assert second.trace_identity["sha256"] == memmodel.trace.trace_identity(store)["sha256"]
    fresh = api.run([{"kind": np.ones(700, dtype=np.uint8), "gva": np.arange(700, dtype=np.uint64) * 4096,
                      "size": np.full(700, 8, dtype=np.uint64)}], ["native-4k"])[0]
    assert second.result.counters == fresh.result.counters


def test_a_store_rewritten_as_a_sampled_one_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "t.parquet"
    _store(store, 10)
    assert not api.is_sampled_trace(store)
    api.run([store], ["native-4k"])
    write_store(store, {"kind": np.ones(10, dtype=np.uint8), "gva": np.arange(10, dtype=np.uint64) * 4096,
                        "size": np.full(10, 8, dtype=np.uint64)}, metadata={"sampled": True})
    assert api.is_sampled_trace(store)
    with pytest.raises(api.SampledTraceError):
        api.run([store], ["native-4k"])


def test_what_is_not_a_regular_file_is_neither_sampled_nor_memoised(tmp_path: Path) -> None:
    assert not api.is_sampled_trace(tmp_path)  # a folder
    assert not api.is_sampled_trace(tmp_path / "missing.parquet")
    assert api._stat_key(tmp_path) is None and api._stat_key(tmp_path / "missing.parquet") is None
