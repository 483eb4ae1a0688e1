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
