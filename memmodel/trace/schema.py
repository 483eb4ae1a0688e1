"""The one Arrow schema every trace source is stored in.

A record is an instruction fetch (``I``), a load (``L``), a store (``S``), a modify (``M``, a load
and a store of the same bytes) at guest-virtual address ``gva`` (bytes) of ``size`` bytes, or (schema
v2) an unmap (``U``): the program gave the virtual range ``[gva, gva + size)`` back to the kernel
(munmap, madvise DONTNEED/FREE/REMOVE, a brk shrink, an mremap move or shrink; the model's section 1).
Sources that know more (perf) fill the optional columns; a column a source does not have is absent
from its files, never filled with made-up values.

Invariants: ``kind`` is one of :data:`KIND_CODES`; ``gva`` is the full 64-bit virtual address;
``size`` is uint64 (bytes): >= 1 for ``I``/``L``/``S``/``M`` (perf samples without a known size get
1), and for ``U`` the unmap length as the program passed it, any value 0..2^64-1 (0 is kept; the
start is not rounded: the engine rounds, the reader records what the program asked for).

Schema versions: v1 stored ``size`` as uint16 and had no ``U``; v2 stores uint64. Readers of the
store cast a v1 file's ``size`` to uint64 (:data:`SCHEMA_VERSION` names the one written).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

#: Record kinds, stored as small integer codes in the ``kind`` column (UInt8).
KIND_I: Final = 0
KIND_L: Final = 1
KIND_S: Final = 2
KIND_M: Final = 3
KIND_U: Final = 4
KIND_NAMES: Final = ("I", "L", "S", "M", "U")
KIND_CODES: Final = {name: code for code, name in enumerate(KIND_NAMES)}
#: Kinds that make translations (docs/model.md section 1); ``I`` is only counted and ``U`` unmaps.
DATA_KINDS: Final = (KIND_L, KIND_S, KIND_M)

#: 4 KiB, the granule an unmap range is rounded to (docs/model.md section 7).
PAGE_4K: Final = 4096
_TOP: Final = 1 << 64


def unmap_range(gva: int, size: int) -> tuple[int, int]:
    """The 4 KiB-aligned range ``r = [start, end)`` a ``U(gva, size)`` record releases (docs/model.md section 7).

    Both ends are rounded *up* to 4 KiB (Linux keeps the page holding an unaligned new break or
    mremap end) and capped at 2^64, so ``start <= end`` and ``end - start`` is ``|r|`` (bytes, a
    multiple of 4096 or ``2^64 - start`` at the cap). Python integers: no uint64 wrap-around.

    Args:
        gva: start address as recorded (bytes, 0..2^64-1).
        size: length as recorded (bytes, 0..2^64-1); 0 gives an empty range.
    """
    def up(x: int) -> int:
        return min(-(-x // PAGE_4K) * PAGE_4K, _TOP)

    start, end = up(gva), up(gva + size)
    return start, max(start, end)


#: Written into every store's metadata (``"schema"``); v1 files (uint16 ``size``) are still read.
SCHEMA_VERSION: Final = "memmodel.trace.schema v2"

#: Decoded TLB outcome of a sampled access (perf ``data_src`` mem_dtlb), stored in ``tlb`` (UInt8).
TLB_NA: Final = 0
TLB_L1_HIT: Final = 1
TLB_L2_HIT: Final = 2
TLB_MISS: Final = 3  # missed every TLB level: a page walk
TLB_FAULT: Final = 4  # OS fault handler
TLB_HIT: Final = 5  # a TLB hit whose level is not known (Intel "L1 or L2 hit", Arm SPE "Walker hit")
TLB_NAMES: Final = ("n/a", "L1 hit", "L2 hit", "miss (walk)", "fault", "hit (level unknown)")

#: Columns every trace has, in this order.
REQUIRED_FIELDS: Final = (
    pa.field("kind", pa.uint8(), nullable=False),
    pa.field("gva", pa.uint64(), nullable=False),
    pa.field("size", pa.uint64(), nullable=False),  # bytes; for U the unmap length
)

#: Columns a source may add (perf), in this order after the required ones.
OPTIONAL_FIELDS: Final = (
    pa.field("pid", pa.uint32()),
    pa.field("tid", pa.uint32()),
    pa.field("time", pa.uint64()),  # nanoseconds, as perf prints secs.usecs/nsecs
    pa.field("ip", pa.uint64()),
    pa.field("period", pa.uint64()),
    pa.field("weight", pa.uint64()),
    pa.field("data_src", pa.uint64()),
    pa.field("tlb", pa.uint8()),  # TLB_* codes above
    pa.field("phys_addr", pa.uint64()),
    pa.field("data_page_size", pa.uint64()),  # bytes; 0 = unknown
)

ALL_FIELDS: Final = REQUIRED_FIELDS + OPTIONAL_FIELDS
FIELD_BY_NAME: Final = {f.name: f for f in ALL_FIELDS}


def schema_for(columns: list[str] | tuple[str, ...]) -> pa.Schema:
    """The store schema for a source that has ``columns`` (required columns are always included).

    Args:
        columns: names of optional columns the source provides; unknown names raise ``KeyError``.

    Returns:
        A schema with the required fields first, then the given optional fields in canonical order.
    """
    wanted = set(columns)
    unknown = wanted - set(FIELD_BY_NAME)
    if unknown:
        raise KeyError(f"unknown trace column(s): {sorted(unknown)}")
    fields = list(REQUIRED_FIELDS) + [f for f in OPTIONAL_FIELDS if f.name in wanted]
    return pa.schema(fields)
