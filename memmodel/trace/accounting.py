"""Line accounting shared by every reader.

Invariant (checked by :meth:`Accounting.check`): every line read is exactly one of a record, a
known non-record line (by kind) or a skipped line (by reason)::

    lines == records + sum(non_records.values()) + sum(skipped.values())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memmodel.errors import TraceError
from memmodel.trace.schema import KIND_NAMES, unmap_range

#: How many individual skipped lines are quoted in the warnings (the rest are only counted).
MAX_QUOTED_SKIPS = 5


@dataclass
class Accounting:
    """Counts for one input file (or the sum over several).

    Attributes:
        name: the input's name (path) for messages.
        lines: lines read (a final line without newline counts as a line).
        by_kind: records per kind letter ``I``/``L``/``S``/``M``/``U`` (``U``: unmaps, schema v2).
        non_records: known non-record lines by kind (e.g. ``valgrind_message``, ``comment``).
        skipped: lines dropped by reason (e.g. ``bad_line``, ``truncated_last_line``).
        warnings: human-readable warnings (footer mismatch, skipped lines quoted, ...).
        notes: reader-specific facts (e.g. ``records_with_extra_column``).
        footer_guest_instrs: sum of lackey footers' ``guest instrs`` (``None`` if no footer seen).
        footers: number of lackey footers seen.
        unmapped_bytes: sum over ``U`` records of their 4 KiB-rounded range sizes ``|r|`` (bytes,
            docs/model.md section 7; the engine's ``unmapped_bytes`` counter for the same trace).
    """

    name: str = ""
    lines: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_NAMES, 0))
    non_records: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    footer_guest_instrs: int | None = None
    footers: int = 0
    unmapped_bytes: int = 0

    @property
    def records(self) -> int:
        """Total records (sum of :attr:`by_kind`, unmaps included: a ``U`` is one stored row)."""
        return sum(self.by_kind.values())

    @property
    def data_records(self) -> int:
        """Records that make translations (``L``, ``S``, ``M``)."""
        return self.by_kind["L"] + self.by_kind["S"] + self.by_kind["M"]

    def unmap(self, gva: int, size: int) -> None:
        """Count one ``U(gva, size)`` record and its rounded range (see :func:`~memmodel.trace.schema.unmap_range`)."""
        start, end = unmap_range(gva, size)
        self.by_kind["U"] += 1
        self.unmapped_bytes += end - start

    def warn_if_no_translations(self) -> None:
        """Warn (once) when nothing was read that the model translates: a wrong file or line ends."""
        if self.data_records == 0:
            self.warnings.append(
                f"{self.name}: no L/S/M records: this trace gives 0 translations ({self.lines:,} lines, "
                f"{self.records:,} records); is it a lackey trace recorded with --trace-mem=yes?"
            )

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` skipped lines under ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def non_record(self, kind: str, n: int = 1) -> None:
        """Count ``n`` known non-record lines of ``kind``."""
        if n:
            self.non_records[kind] = self.non_records.get(kind, 0) + n

    def note(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the reader-specific counter ``key``."""
        if n:
            self.notes[key] = self.notes.get(key, 0) + n

    def check(self) -> None:
        """Raise :class:`TraceError` unless lines == records + non-records + skipped (a reader bug)."""
        total = self.records + sum(self.non_records.values()) + sum(self.skipped.values())
        if total != self.lines:
            raise TraceError(
                f"{self.name}: internal line accounting mismatch: {self.lines} lines read but "
                f"{self.records} records + {sum(self.non_records.values())} non-record lines + "
                f"{sum(self.skipped.values())} skipped = {total}"
            )

    def footer_check(self) -> dict[str, Any]:
        """The lackey footer check: ``{"status": "ok"|"mismatch"|"absent", "footer", "I_records"}``."""
        if self.footer_guest_instrs is None:
            return {"status": "absent", "footer": None, "I_records": self.by_kind["I"], "footers": 0}
        ok = self.footer_guest_instrs == self.by_kind["I"]
        return {
            "status": "ok" if ok else "mismatch",
            "footer": self.footer_guest_instrs,
            "I_records": self.by_kind["I"],
            "footers": self.footers,
        }

    def merge(self, other: Accounting) -> None:
        """Add ``other``'s counts into this one (for several inputs concatenated)."""
        self.lines += other.lines
        for k, v in other.by_kind.items():
            self.by_kind[k] += v
        for k, v in other.non_records.items():
            self.non_record(k, v)
        for k, v in other.skipped.items():
            self.skip(k, v)
        for k, v in other.notes.items():
            self.note(k, v)
        self.warnings.extend(other.warnings)
        if other.footer_guest_instrs is not None:
            self.footer_guest_instrs = (self.footer_guest_instrs or 0) + other.footer_guest_instrs
        self.footers += other.footers
        self.unmapped_bytes += other.unmapped_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the counts."""
        return {
            "name": self.name,
            "lines": self.lines,
            "records": self.records,
            "by_kind": dict(self.by_kind),
            "unmaps": self.by_kind["U"],
            "unmapped_bytes": self.unmapped_bytes,
            "non_records": dict(self.non_records),
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
            "footer_check": self.footer_check(),
            "warnings": list(self.warnings),
        }
