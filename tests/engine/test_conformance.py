"""Golden tests: the worked examples of MODEL.md (tests/data/conformance, see SOURCE.md there).

Each example's counters were produced by two independent implementations of MODEL.md; the engine and
the pure-Python reference model must both reproduce every counter exactly.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
from engine_helpers import engine_counters
from reference_model import parse_lackey_simple, run_reference

from memmodel.config import load_config

DATA = Path(__file__).parent.parent / "data" / "conformance"
CASES = [
    (trace, name)
    for trace, expected in (("tiny.lackey", "tiny.expected.json"), ("true.lackey.xz", "true.expected.json"))
    for name in json.loads((DATA / expected).read_text())
]


def _records(trace: str) -> list[tuple[str, int, int]]:
    path = DATA / trace
    if trace.endswith(".xz"):
        with lzma.open(path, "rt") as f:
            return parse_lackey_simple(f.read())
    return parse_lackey_simple(path.read_text())


def _expected(trace: str, name: str) -> dict[str, float]:
    file = "tiny.expected.json" if trace.startswith("tiny") else "true.expected.json"
    return json.loads((DATA / file).read_text())[name]


@pytest.mark.parametrize(("trace", "name"), CASES)
def test_engine_reproduces_every_conformance_counter(trace: str, name: str) -> None:
    got = engine_counters(_records(trace), load_config(DATA / f"{name}.toml"))
    assert got == _expected(trace, name)


@pytest.mark.parametrize(("trace", "name"), CASES)
def test_engine_counters_do_not_depend_on_batch_boundaries(trace: str, name: str) -> None:
    got = engine_counters(_records(trace), load_config(DATA / f"{name}.toml"), batch=7)
    assert got == _expected(trace, name)


@pytest.mark.parametrize(("trace", "name"), [c for c in CASES if c[0] == "tiny.lackey"])
def test_reference_model_reproduces_every_conformance_counter(trace: str, name: str) -> None:
    got = run_reference(_records(trace), load_config(DATA / f"{name}.toml"))
    assert got == _expected(trace, name)
