"""Golden tests: exact counters of every VM preset on every shipped trace.

The goldens (tests/data/golden) were computed by the pure-Python reference model reading the lackey
text with its own parser (``python tests/make_goldens.py``), so these tests check memmodel's trace
reader and engine together against an independent path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memmodel.analysis.api import run
from memmodel.config import preset_names

REPO = Path(__file__).resolve().parent.parent.parent
GOLDEN = REPO / "tests" / "data" / "golden"
TRACES = sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.json"))


def test_every_shipped_trace_has_goldens_for_every_preset() -> None:
    shipped = sorted(p.name.split(".")[0] for p in (REPO / "traces").glob("*.lackey.xz"))
    assert shipped == TRACES and len(shipped) >= 2
    for name in TRACES:
        assert sorted(json.loads((GOLDEN / f"{name}.json").read_text())) == preset_names("vm")


@pytest.mark.parametrize("trace", TRACES)
def test_every_vm_preset_gives_the_golden_counters(trace: str) -> None:
    expected = json.loads((GOLDEN / f"{trace}.json").read_text())
    runs = run(REPO / "traces" / f"{trace}.lackey.xz", preset_names("vm"))
    for r in runs:
        assert r.result.counters == expected[r.config.name], r.config.name
