"""Small builders shared by the engine tests: configs from dicts, traces from tuples."""

from __future__ import annotations

from typing import Any

import numpy as np

from memmodel.config import ModelConfig, parse_config
from memmodel.engine import replay

KIND = {"I": 0, "L": 1, "S": 2, "M": 3, "U": 4}


def cfg(raw: dict[str, Any], name: str = "test") -> ModelConfig:
    """A config from a MODEL.md section 5 document given as a dict."""
    return parse_config({"name": name, **raw}, source="<test>")


def arrays(records: list[tuple[str, int, int]]) -> dict[str, np.ndarray]:
    """(kind, address, size) tuples -> the kind/gva/size arrays the engine reads."""
    return {
        "kind": np.array([KIND[k] for k, _, _ in records], dtype=np.uint8),
        "gva": np.array([a for _, a, _ in records], dtype=np.uint64),
        "size": np.array([n for _, _, n in records], dtype=np.uint64),
    }


def engine_counters(records: list[tuple[str, int, int]], config: ModelConfig, batch: int = 0) -> dict[str, Any]:
    """Counters of the fast engine, optionally feeding the trace in batches of ``batch`` records."""
    a = arrays(records)
    if batch:
        n = len(records)
        batches = [{k: v[i : i + batch] for k, v in a.items()} for i in range(0, n, batch)]
    else:
        batches = [a]
    return replay(batches, config).counters
