"""Golden tests: the worked examples of MODEL.md (tests/data/conformance, see SOURCE.md there).

Each example's counters were produced by two independent implementations of MODEL.md; the engine and
the pure-Python reference model must both reproduce every counter exactly. The v1 examples list only
the v1 counters; with no ``U`` records and the default v2 keys, the v2 counters must show no
lifecycle activity. The v2 examples list every counter of MODEL.md section 6.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
from engine_helpers import engine_counters
from reference_model import parse_lackey_simple, run_reference

from memmodel.config import load_config
from memmodel.trace import iter_batches
from memmodel.trace.schema import KIND_NAMES

DATA = Path(__file__).parent.parent / "data" / "conformance"
#: trace file -> its expected-counters file ({config stem: {counter: value}}), and its model version.
TRACES = {
    "tiny.lackey": ("tiny.expected.json", 1),
    "true.lackey.xz": ("true.expected.json", 1),
    "tiny_lifecycle.lackey": ("tiny_lifecycle.expected.json", 2),
    "freeloop.lackey.xz": ("freeloop.expected.json", 2),
}
CASES = [(trace, name) for trace, (expected, _) in TRACES.items() for name in json.loads((DATA / expected).read_text())]
V1_CASES = [c for c in CASES if TRACES[c[0]][1] == 1]
V2_CASES = [c for c in CASES if TRACES[c[0]][1] == 2]
#: v2 counters that only the memory lifecycle (U records, reporting) moves away from 0.
LIFECYCLE_COUNTERS = (
    "unmaps",
    "unmapped_bytes",
    "guest_freed_bytes",
    "guest_splits",
    "host_splits",
    "host_discards",
    "host_freed_bytes",
    "report_ticks",
    "tlb_flushes",
    "tlb_page_invalidations",
)


def _records(trace: str) -> list[tuple[str, int, int]]:
    path = DATA / trace
    if trace.endswith(".xz"):
        with lzma.open(path, "rt") as f:
            return parse_lackey_simple(f.read())
    return parse_lackey_simple(path.read_text())


def _expected(trace: str, name: str) -> dict[str, float]:
    expected: dict[str, float] = json.loads((DATA / TRACES[trace][0]).read_text())[name]
    return expected


def _check(got: dict[str, float], trace: str, name: str) -> None:
    """Every expected counter exactly; v1 examples also show no lifecycle activity in the v2 counters."""
    expected = _expected(trace, name)
    if TRACES[trace][1] == 2:
        assert got == expected
        return
    assert {k: got[k] for k in expected} == expected
    assert {k: got[k] for k in LIFECYCLE_COUNTERS} == dict.fromkeys(LIFECYCLE_COUNTERS, 0)
    # Nothing was freed: every page ever faulted is still resident.
    assert got["guest_resident_bytes"] == (
        got["guest_pages_4k"] * 4096 + got["guest_pages_2m"] * (1 << 21) + got["guest_pages_1g"] * (1 << 30)
    )
    assert got["host_resident_bytes"] == got["host_resident_peak_bytes"] == got["host_backed_bytes"]


@pytest.mark.parametrize(("trace", "name"), CASES)
def test_engine_reproduces_every_conformance_counter(trace: str, name: str) -> None:
    _check(engine_counters(_records(trace), load_config(DATA / f"{name}.toml")), trace, name)


@pytest.mark.parametrize(("trace", "name"), CASES)
def test_engine_counters_do_not_depend_on_batch_boundaries(trace: str, name: str) -> None:
    _check(engine_counters(_records(trace), load_config(DATA / f"{name}.toml"), batch=7), trace, name)


@pytest.mark.parametrize(("trace", "name"), CASES)
def test_reference_model_reproduces_every_conformance_counter(trace: str, name: str) -> None:
    _check(run_reference(_records(trace), load_config(DATA / f"{name}.toml")), trace, name)


@pytest.mark.parametrize(("trace", "name"), V2_CASES)
def test_reference_extras_are_bounded_by_their_zeroed_bytes(trace: str, name: str) -> None:
    """Re-fault zeroing is part of all zeroing, and a guest re-fault needs a translated page released."""
    counters, extras = run_reference(_records(trace), load_config(DATA / f"{name}.toml"), extras=True)
    assert counters == _expected(trace, name)
    assert 0 <= extras["guest_zeroed_refault_bytes"] <= counters["guest_zeroed_bytes"]
    assert 0 <= extras["host_zeroed_refault_bytes"] <= counters["host_zeroed_bytes"]
    if counters["guest_freed_bytes"] == 0:
        assert extras["guest_zeroed_refault_bytes"] == 0
    if counters["host_freed_bytes"] == 0:
        assert extras["host_zeroed_refault_bytes"] == 0


def test_reference_reader_turns_the_lifecycle_syscalls_into_section_1_unmaps() -> None:
    """tiny_lifecycle.lackey's syscall lines, read by hand from MODEL.md section 1."""
    unmaps = [(a, n) for kind, a, n in _records("tiny_lifecycle.lackey") if kind == "U"]
    assert unmaps == [
        (0x10001000, 0x10040000 - 0x10001000),  # brk shrink: U(R, B - R)
        (0x40001000, 4096),  # munmap inside a 2 MiB page
        (0x40200000, 2 << 20),  # madvise DONTNEED completed by its [async] half after a read's
        (0x40000000, 8192),  # mremap moved: U(OLD, OLDSIZE)
        (0x60001000, 16384 - 4096),  # mremap shrunk in place: U(OLD + NEWSIZE, OLDSIZE - NEWSIZE)
        (0x70000000, 1 << 30),  # munmap of 1 GiB (the glued brk before it gives nothing: R = B)
        (0xC0000800, 100),  # unaligned munmap
        (0xC0000000, 0),  # n = 0
    ]


@pytest.mark.parametrize("trace", [t for t, (_, version) in TRACES.items() if version == 2])
def test_memmodel_reader_gives_the_reference_readers_records(trace: str) -> None:
    """memmodel's lackey reader and the independent reference reader agree record by record."""
    kinds: list[str] = []
    addresses: list[int] = []
    sizes: list[int] = []
    for batch in iter_batches(DATA / trace):
        kinds += [KIND_NAMES[k] for k in batch["kind"].tolist()]
        addresses += batch["gva"].tolist()
        sizes += batch["size"].tolist()
    assert list(zip(kinds, addresses, sizes, strict=True)) == _records(trace)
