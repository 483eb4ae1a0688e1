"""Fixtures of the trace-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """Write text or bytes to a file under tmp_path and return its path."""

    def _w(name: str, data: bytes | str) -> Path:
        p = tmp_path / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    return _w
