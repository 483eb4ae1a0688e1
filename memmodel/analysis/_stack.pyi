"""Type stubs of the compiled stack-distance pass (``_stack.c``; its header states the state and invariants)."""

from typing import Any

class StackPass:
    """Per-set LRU stack distances of a stream of translation runs.

    ``StackPass(sets, mask)``: ``sets`` >= 1 (set index = vpn mod sets); ``mask`` bit (es - 12) / 9 set
    for every page size the array holds (1 = 4K, 2 = 2M, 4 = 1G).
    """

    def __init__(self, sets: int, mask: int) -> None: ...
    def feed(self, p4: Any, es: Any, counts: Any) -> None:
        """Runs in trace order: p4 int64 pages, es uint8 shifts (12/21/30), counts int64 (>= 1)."""
    def result(self) -> tuple[bytes, int, int, int]:
        """(int64 histogram bytes up to the largest distance seen, compulsory, accesses, skipped)."""
    def state_bytes(self) -> int:
        """Bytes of state held (hash table, per-set timelines, histogram)."""
