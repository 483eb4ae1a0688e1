"""Type stub of the compiled lackey byte scanner (``_lackey.c``; its header states the arguments and rules)."""

from typing import Any

def scan(
    buf: Any,
    pos: int,
    end: int,
    kinds: Any,
    gvas: Any,
    sizes: Any,
    nout: int,
    counts: Any,
    msgpos: Any,
    nmsg: int,
) -> tuple[int, int, int, int, int]:
    """Parse lines of ``buf[pos:end]`` (uint8) into ``kinds`` (uint8) / ``gvas`` / ``sizes`` (8-byte) from ``nout``.

    Returns ``(pos, nout, nmsg, lines, status)``; status 0 = consumed, 1 = outputs or ``msgpos`` full,
    2 = the line at ``pos`` is not a lackey line. ``counts`` (int64, 9 slots) and ``msgpos`` (int64) are
    filled in place. The GIL is released while scanning.
    """
