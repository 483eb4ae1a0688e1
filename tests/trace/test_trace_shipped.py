"""The shipped traces in traces/: exact record counts, computed independently.

Counts from the decompressed text with awk (the command, run in traces/):
    xz -dc NAME.lackey.xz | awk '/^I  /{i++} /^ L /{l++} /^ S /{s++} /^ M /{m++} /^==/{e++} /^SYSCALL/{y++}
        /^ *(\\[sync\\] )?-->/{c++} END{print i,l,s,m,e,y,c,NR}'
the footer with: xz -dc NAME.lackey.xz | grep 'guest instrs:'
and the unmaps (lifecycle and sparse were recorded with --trace-syscalls=yes) with the independent
awk one-off tests/trace/unmaps.awk: xz -dc NAME.lackey.xz | awk -f ../tests/trace/unmaps.awk
(line, address, length of every U). Syscall lines that are not U records are the SYSCALL lines plus
the continuation lines minus the U count. Unmapped bytes are the sums of those lengths rounded up to
4 KiB (every start is page-aligned here), done by hand: lifecycle's 36059-byte munmap counts 36864.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memmodel.trace import ingest

TRACES = Path(__file__).resolve().parent.parent.parent / "traces"

EXPECTED = {
    #            I         L       S       M     U  '==' lines  syscall lines  total lines
    "pchase": (5859455, 952675, 437058, 1492, 0, 24, 0, 7250704),
    "stream": (3410479, 553626, 535861, 1502, 0, 24, 0, 4501492),
    "qsort": (3287357, 860983, 400318, 9483, 0, 24, 0, 4558165),
    "lifecycle": (346852, 73611, 41775, 2057, 13, 24, 121 + 1, 464441),
    "sparse": (8125528, 224795, 273104, 1479, 5, 24, 91 + 1, 8625022),
}

UNMAPS = {  # (gva, size) of every U, in order (awk one-off, see the module doc)
    "lifecycle": [
        (0x483C000, 36059),  # ld.so unmaps ld.so.cache
        (0x4A2A000, 4198400), (0x4A2A000, 4198400), (0x4A2A000, 4198400),  # free() of 3 x malloc(4 MiB)
        (0x4C2A000, 2 << 20),  # madvise DONTNEED
        (0x502A000, 1 << 20),  # madvise FREE
        (0x4056000, 0x4245000 - 0x4056000),  # heap trim: brk shrink
        (0x522A000, 266240), (0x52AC000, 528384),  # realloc growth moved the block twice (mremap)
        (0x542E000, 7340032),  # realloc shrink 8 MiB -> 1 MiB in place (mremap)
        (0x532D000, 1052672), (0x526B000, 266240),  # free() of both blocks
        (0x4A2A000, 8 << 20),  # munmap of the 8 MiB mapping
    ],
    "sparse": [
        (0x483C000, 36059),
        (0x198C25000, 1 << 30),  # munmap of the top 1 GiB after round 1
        (0x58C25000, 1 << 30),  # madvise DONTNEED of the bottom 1 GiB
        (0x118C25000, 64 << 20),  # madvise DONTNEED of 64 MiB after round 2
        (0x58C25000, 6 << 30),  # the final munmap
    ],
}
UNMAPPED_BYTES = {"lifecycle": 35647488, "sparse": 8657080320}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_trace_exact_record_counts_and_footer(tmp_path, name):
    i, l, s, m, u, msgs, sys_lines, lines = EXPECTED[name]
    summ = ingest([TRACES / f"{name}.lackey.xz"], tmp_path / "t.parquet")
    assert summ.by_kind == {"I": i, "L": l, "S": s, "M": m, "U": u}
    non_records = {"valgrind_message": msgs} | ({"syscall": sys_lines - u} if sys_lines else {})
    assert summ.non_records == non_records and summ.lines == lines and not summ.skipped
    assert summ.footer_check == {"status": "ok", "footer": i, "I_records": i, "footers": 1}
    assert summ.reconciled and not summ.warnings
    assert summ.unmapped_bytes == UNMAPPED_BYTES.get(name, 0)


@pytest.mark.parametrize("name", sorted(UNMAPS))
def test_shipped_lifecycle_traces_unmap_records_in_order(name):
    from memmodel.trace import iter_batches

    got = [
        (g, z)
        for b in iter_batches(TRACES / f"{name}.lackey.xz")
        for k, g, z in zip(b["kind"].tolist(), b["gva"].tolist(), b["size"].tolist(), strict=True)
        if k == 4
    ]
    assert got == UNMAPS[name]


def test_sparse_trace_footprint_exceeds_the_2m_tlb_reach_of_skylake():
    # distinct 4K / 2M pages of the data records' first and last bytes, counted with awk:
    #   xz -dc sparse.lackey.xz | awk 'function hex(s, i, v){v=0; for(i=1;i<=length(s);i++)
    #     v=v*16+index("0123456789abcdef",substr(s,i,1))-1; return v} /^ [LSM] /{split($2,a,",");
    #     x=hex(a[1]); e=x+a[2]-1; p[int(x/4096)]=1; p[int(e/4096)]=1; q[int(x/2097152)]=1;
    #     q[int(e/2097152)]=1} END{n=0; for(k in p)n++; m=0; for(k in q)m++; print n, m}'  ->  64300 3079
    from memmodel.trace import trace_info

    d = trace_info(TRACES / "sparse.lackey.xz")
    assert d["pages"]["data"]["4K"] == 64300 and d["pages"]["data"]["2M"] == 3079
    assert d["pages"]["data"]["2M"] > 1536  # more 2 MiB pages than a Skylake L2 TLB holds (3 GiB reach)
    assert d["unmaps"] == 5 and d["unmapped_bytes"] == UNMAPPED_BYTES["sparse"]
