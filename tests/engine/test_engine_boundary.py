"""The engine's boundary: record kinds, the counter table, events that end a collapsed run, outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import arrays, cfg, engine_counters
from reference_model import run_reference

from memmodel.analysis.mrc import translation_stream
from memmodel.engine import EXTRA_NAMES, Replay, _core
from memmodel.engine.result import COUNTER_TABLE
from memmodel.errors import ConfigError, TraceError

TINY_TLB = {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 4, "ways": 4}]}


def test_an_unknown_record_kind_is_an_error_never_a_translation() -> None:
    r = Replay(cfg({"virtualized": False}))
    kind = np.array([1, 5, 1], dtype=np.uint8)
    with pytest.raises(ValueError, match=r"record 1 has unknown kind code 5"):
        r.feed(kind, np.array([0x1000, 0x2000, 0x3000], dtype=np.uint64), np.ones(3, dtype=np.uint64))


def test_every_counter_of_the_table_comes_from_an_engine_counter() -> None:
    raw = set(_core.COUNTER_NAMES) | {"unmapped_bytes"}
    for name, src in COUNTER_TABLE:
        if src == "raw":
            assert name in raw, name
        elif src.startswith("sum:"):
            assert set(src[4:].split("+")) <= raw
        elif src.startswith("pages:"):
            assert src[6:] in raw
        else:
            assert src == "index" and name.startswith("host_")
    assert set(EXTRA_NAMES) <= raw
    # nothing the core counts is dropped on the way out
    used = {n for n, s in COUNTER_TABLE if s == "raw"} | {"guest_pte_loads", "host_pte_loads", "touched_pages"}
    assert raw - used - set(EXTRA_NAMES) == set()


def test_an_unmap_length_of_terabytes_and_up_to_2_64_is_carried_exactly() -> None:
    config = cfg({"virtualized": False, "tlb": TINY_TLB})
    records = [("L", 0x1000, 8), ("U", 0, (1 << 64) - 1), ("U", 1 << 40, 1 << 42)]
    c = engine_counters(records, config)
    # r = [0, 2^64) for the first (capped at 2^64), 4 TiB for the second
    assert c["unmaps"] == 2
    assert c["unmapped_bytes"] == (1 << 64) + (1 << 42)
    assert c == run_reference(records, config)


@pytest.mark.parametrize("event", ["unmap", "report"])
def test_an_event_between_two_translations_of_one_page_ends_the_collapsed_run(event: str) -> None:
    # L x, <event>, L x: the event empties the TLB, so the second L walks; a collapsed run that did not
    # end at the event would count it as an L1 hit
    raw = {"tlb": TINY_TLB, "guest": {"memory": "1G"}, "host": {"memory": "2G", "page_size": "2M"}}
    x = 0x40_0000_1000
    if event == "unmap":
        raw["guest"]["unmap"] = "passthrough"
        records = [("L", x, 8), ("U", x, 4096), ("L", x, 8)]
    else:
        raw["balloon"] = {"reporting": True, "interval": 1, "order": 0}
        raw["host"]["prealloc"] = False
        records = [("L", x, 8), ("U", x, 4096), ("L", x, 8)]  # free, then the report discards the frame
    config = cfg(raw)
    c = engine_counters(records, config)
    assert c == run_reference(records, config)
    assert c["l1_hits"] == 0 and c["walks"] == 2
    assert c["host_discards"] >= 1


def test_outcomes_label_every_translation_in_trace_order() -> None:
    config = cfg({"virtualized": False, "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 1, "ways": 1}],
                                                "l2": [{"page_sizes": ["4K"], "entries": 2, "ways": 2}]}})
    # a: walk, a: L1 (repeat), b: walk, a: L2, straddle over b|c: L2 (b) then walk (c)
    a, b = 0x10000, 0x11000
    records = [("L", a, 8), ("L", a, 8), ("S", b, 8), ("L", a, 8), ("L", b + 4090, 16)]
    r = Replay(config, outcomes=True)
    arr = arrays(records)
    r.feed(arr["kind"], arr["gva"], arr["size"])
    codes, shifts = r.take_outcomes()
    assert codes.tolist() == [3, 1, 3, 2, 2, 3]
    assert shifts.tolist() == [12] * 6
    assert r.take_outcomes()[0].size == 0  # taken: the next call starts empty


def test_mrc_refuses_traces_with_unmaps_and_configs_with_reporting(tmp_path: object) -> None:
    import polars as pl

    config = cfg({"virtualized": False, "tlb": TINY_TLB})
    frame = pl.DataFrame({"kind": [1, 4, 1], "gva": [0x1000, 0x1000, 0x1000], "size": [8, 4096, 8]},
                         schema={"kind": pl.UInt8, "gva": pl.UInt64, "size": pl.UInt64})
    with pytest.raises(TraceError, match="U \\(unmap\\) records"):
        translation_stream(frame, config)
    reporting = cfg({"balloon": {"reporting": True}, "tlb": TINY_TLB})
    with pytest.raises(ConfigError, match="free page reporting"):
        translation_stream(frame.filter(pl.col("kind") != 4), reporting)


def test_unmapped_bytes_beyond_2_63_stay_exact_in_the_polars_frame() -> None:
    import polars as pl

    import memmodel

    frame = pl.DataFrame({"kind": [1, 4, 4], "gva": [0x1000, 0, 5 << 40], "size": [8, (1 << 64) - 1, 1 << 44]},
                         schema={"kind": pl.UInt8, "gva": pl.UInt64, "size": pl.UInt64})
    out = memmodel.simulate(frame, ["native-4k"])
    # [0, 2^64) and [5 TiB, 21 TiB): 2^64 + 2^44 bytes, more than any 64-bit integer holds
    assert out["unmapped_bytes"].to_list() == [(1 << 64) + (1 << 44)]
    assert out.schema["unmapped_bytes"] == pl.Int128


_ARENA_CHILD = """
import json, mmap, resource, sys
sys.path[:0] = sys.argv[1].split(":")
from engine_helpers import arrays, cfg
from memmodel.engine import replay
from test_engine_boundary import arena_trace, ARENA_CONFIG
records, config = arena_trace(), cfg(ARENA_CONFIG)
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (4 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
try:  # the engine's reservation for a 16 GiB guest's tables (17 GB of address space) must now fail
    mmap.mmap(-1, 17 << 30, prot=mmap.PROT_READ)
    print("reservation not refused")
    sys.exit(3)
except OSError:
    pass
print(json.dumps(replay([arrays(records)], config).counters))
"""

ARENA_CONFIG = {"virtualized": False, "guest": {"page_size": "4K", "memory": "16G"},
                "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 4, "ways": 2}], "l2": []}}


def arena_trace() -> list[tuple[str, int, int]]:
    """A store to 1,100 distinct 2 MiB regions, then a load of each: 1,100 leaf tables, 2.3 MB of them
    (past the 2 MiB where the table arena moves to its reserved address range)."""
    pages = [(r << 21) | ((r * 7919 % 512) << 12) for r in range(1100)]
    return [("S", p, 8) for p in pages] + [("L", p + 64, 8) for p in pages]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux procfs and RLIMIT_AS")
def test_the_table_arena_gives_the_reference_counters_reserved_or_grown_by_copy() -> None:
    """Past 2 MiB of guest tables the arena grows in place in reserved address space; where that space
    is refused (an address-space limit) it keeps growing by copy. Both give the reference's counters."""
    records, config = arena_trace(), cfg(ARENA_CONFIG)
    expected = run_reference(records, config)
    assert engine_counters(records, config) == expected
    assert expected["guest_pt_pages"] >= 1100
    tests = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", _ARENA_CHILD, f"{tests}:{Path(__file__).resolve().parent}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == expected
