"""Runs of a small synthetic trace through the default configs, shared by the report tests."""

from __future__ import annotations

import numpy as np
import pytest

from memmodel.analysis.api import run
from memmodel.analysis.compare import DEFAULT_CONFIGS


@pytest.fixture(scope="session")
def report_runs():
    rng = np.random.default_rng(3)
    n = 60_000
    gva = 0x5555_0000_0000 + np.concatenate([rng.integers(0, 32 << 20, n // 2), rng.integers(0, 2 << 30, n // 2)])
    frame = {"kind": rng.integers(1, 4, n).astype(np.uint8), "gva": gva.astype(np.uint64),
             "size": np.full(n, 8, np.uint16)}
    return run(frame, list(DEFAULT_CONFIGS), window=2000)
