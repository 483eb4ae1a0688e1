"""A batch is replayed in chunks so Ctrl-C can stop it: chunking never changes a result, a signal stops a
long batch between two chunks, and a replay stopped mid-batch refuses to go on from its partial state."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from engine_helpers import cfg

from memmodel.analysis.api import resolve_configs
from memmodel.config import ModelConfig
from memmodel.engine import Replay, _core
from memmodel.trace.compact import META_ESCAPE, META_KIND_MASK, pack

#: Records of the batches below: several chunks of 1000, thousands of chunks of 1 and 7.
N = 4000
#: Guest-virtual bases of the regions the batches touch (several top-level tables).
BASES = (0x7F00_0000_0000, 0x5555_0000_0000, 0x10_0000)


@contextmanager
def feed_chunk(n: int) -> Iterator[None]:
    """Every feed inside replays its batch in chunks of ``n`` records (0: the default, sized by time)."""
    old = _core._set_feed_chunk(n)
    try:
        yield
    finally:
        _core._set_feed_chunk(old)


def lifecycle_batch(n: int = N, seed: int = 5) -> dict[str, np.ndarray]:
    """A compact batch (kind, gva, size, icount) with every kind, straddles, unmaps and both kinds of
    escape of the packed form: sizes > 4095 (unmap lengths, long accesses) and icounts > 65535."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(np.array([0, 1, 2, 3, 4], dtype=np.uint8), n, p=[0.05, 0.5, 0.25, 0.1, 0.1])
    base = np.array(BASES, dtype=np.uint64)[rng.integers(0, len(BASES), n)]
    page = rng.integers(0, 3000, n).astype(np.uint64) * rng.choice(np.array([1, 1, 1, 512], dtype=np.uint64), n)
    offset = rng.choice(np.array([0, 8, 2048, 4088, 4095], dtype=np.uint64), n)
    gva = base + page * np.uint64(4096) + offset
    size = rng.choice(np.array([1, 8, 8, 64, 5000], dtype=np.uint64), n)
    size[kind == 4] = rng.choice(np.array([4096, 1 << 21, 1 << 30, (1 << 64) - 1], dtype=np.uint64),
                                 int((kind == 4).sum()), p=[0.4, 0.4, 0.15, 0.05])
    icount = rng.choice(np.array([0, 0, 1, 3, 70_000], dtype=np.uint32), n)
    return {"kind": kind, "gva": gva, "size": size, "icount": icount}


def configs() -> dict[str, tuple[ModelConfig, bool]]:
    """One config per record loop of the core (feed_records): (config, record outcomes)."""
    report = cfg({"virtualized": True, "guest": {"memory": "2G", "page_size": "4K"},
                  "host": {"memory": "4G", "page_size": "2M"},
                  "balloon": {"reporting": True, "interval": 7, "order": 0}})
    tiny = cfg({"virtualized": True, "guest": {"memory": "2G", "page_size": "2M"}, "host": {"memory": "4G"},
                "tlb": {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 8, "ways": 2}]}})
    return {
        "native-4k flat, preset loop": (resolve_configs("native-4k", cpu="skylake")[0], False),
        "baseline-4k nested, preset loop": (resolve_configs("baseline-4k", cpu="zen4")[0], False),
        "reporting loop": (report, False),
        "generic loop": (tiny, False),
        "outcomes loop": (tiny, True),
    }


CONFIGS = configs()


def feed(r: Replay, form: str, b: dict[str, np.ndarray]) -> None:
    """Feed ``b`` as one batch in ``form``: packed, compact (plain columns + icount) or full (icount 0)."""
    if form == "packed":
        r.feed_packed(pack(b))
    elif form == "compact":
        r.feed(b["kind"], b["gva"], b["size"], b["icount"])
    else:
        r.feed(b["kind"], b["gva"], b["size"])


def state(r: Replay, outcomes: bool) -> dict[str, Any]:
    """Everything a replay reports: counters, extras, histogram, series, free lists (and outcomes)."""
    res = r.result()
    out: dict[str, Any] = {
        "counters": res.counters, "extras": res.extras, "hist": res.walk_hist.tolist(),
        "series": {k: v.tolist() for k, v in res.series.items()},
        "host_nr_free": res.host_nr_free.tolist(), "guest_nr_free": res.guest_nr_free.tolist(),
    }
    if outcomes:
        out["outcomes"] = [a.tolist() for a in r.take_outcomes()]
    return out


@pytest.mark.parametrize("form", ["packed", "compact", "full"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_batch_replayed_in_chunks_of_any_size_gives_the_result_of_one_chunk(name: str, form: str) -> None:
    config, outcomes = CONFIGS[name]
    b = lifecycle_batch()
    packed = pack(b)
    assert packed["esc_size"].shape[0] > 100  # both kinds of escape, spread over the chunks
    assert (packed["meta"][:1000] & META_ESCAPE).any() and (packed["meta"][-1000:] & META_ESCAPE).any()
    results = []
    for chunk in (N + 1, 1000, 7, 1, 0):  # one chunk, several, thousands; then the default (by time)
        with feed_chunk(chunk):
            r = Replay(config, window=16, outcomes=outcomes)  # a small window: series rows in every chunk
            feed(r, form, b)
            feed(r, form, lifecycle_batch(500, seed=6))  # a second batch goes on where the first ended
        results.append(state(r, outcomes))
    assert results[0]["counters"]["accesses"] > N // 2 and len(results[0]["series"]["translations"]) > 100
    for res in results[1:]:
        assert res == results[0]


@pytest.mark.parametrize("form", ["packed", "compact"])
def test_a_bad_record_in_a_later_chunk_is_reported_at_its_index_in_the_batch(form: str) -> None:
    b = lifecycle_batch()
    b["kind"][2345] = 7
    p = pack(b)
    assert p["meta"][2345] & META_KIND_MASK == 7
    for chunk in (1000, 7, 0):
        r = Replay(CONFIGS["generic loop"][0])
        with feed_chunk(chunk), pytest.raises(ValueError, match=r"^record 2345 has unknown kind code 7 "):
            if form == "packed":
                r.feed_packed(p)
            else:
                r.feed(b["kind"], b["gva"], b["size"], b["icount"])


def test_an_escape_past_the_end_in_a_later_chunk_is_reported_at_its_index_in_the_batch() -> None:
    p = pack(lifecycle_batch())
    p["esc_size"], p["esc_icount"] = p["esc_size"][:-1], p["esc_icount"][:-1]  # the last escape is lost
    last = int(np.flatnonzero(p["meta"] & META_ESCAPE)[-1])
    assert last > 1000
    for chunk in (1000, 7, 0):
        r = Replay(CONFIGS["generic loop"][0])
        with feed_chunk(chunk), pytest.raises(ValueError, match=rf"^packed record {last} escapes past the end"):
            r.feed_packed(p)


def slow_batch(n: int) -> dict[str, np.ndarray]:
    """``n`` records of one fetch each (the engine's instruction counter counts the records fed): a load of
    one page and a ``U`` of it, in turn, that :func:`slow_config` replays at ~0.6 ms per record on average
    (each ``U`` is passed through to the host, whose discard empties a TLB of 2^20 entries)."""
    kind = np.where(np.arange(n) % 2 == 0, 1, 4).astype(np.uint8)
    size = np.where(kind == 4, 4096, 8).astype(np.uint64)
    return {"kind": kind, "gva": np.full(n, 0x10000, dtype=np.uint64), "size": size,
            "icount": np.ones(n, dtype=np.uint32)}


def slow_config() -> ModelConfig:
    return cfg({"virtualized": True, "guest": {"memory": "1G", "page_size": "4K", "unmap": "passthrough"},
                "host": {"memory": "2G", "page_size": "4K"},
                "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 64, "ways": 4}],
                        "l2": [{"page_sizes": ["4K"], "entries": 1 << 20, "ways": 8}]}})


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("form", ["packed", "compact"])
def test_a_signal_during_a_long_batch_interrupts_it_between_two_chunks(form: str) -> None:
    # A signal that is pending before the call runs its handler before the call (Python checks at once),
    # so the signal comes from a timer of this process's CPU time (not wall time: a loaded machine does
    # not move it), 50 ms; the batch needs ~12 s of it uninterrupted (240x more), its first chunks (default
    # sizing: 256 records, then ~20 ms) ~150 ms and ~20 ms. The handler runs between two chunks and its
    # KeyboardInterrupt ends the feed; the replay then refuses to go on.
    n = 20_000
    b = slow_batch(n)
    r = Replay(slow_config())

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGVTALRM, interrupt)
    try:
        with feed_chunk(0), pytest.raises(KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_VIRTUAL, 0.05)
            feed(r, form, b)
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)
    fed = r._core.counters()["instructions"]  # from the engine itself: the Replay refuses to report
    assert 0 < fed < n // 10
    partial = r"config 'test': this replay was interrupted mid-batch \(KeyboardInterrupt\); its state is partial"
    with pytest.raises(RuntimeError, match=partial + ".*this replay is over"):
        r.result()
    with pytest.raises(RuntimeError, match=partial):
        feed(r, form, slow_batch(1))


def test_a_replay_stopped_at_a_bad_record_refuses_to_go_on_from_its_partial_state() -> None:
    b = lifecycle_batch()
    b["kind"][1234] = 6
    r = Replay(CONFIGS["generic loop"][0])
    with pytest.raises(ValueError, match="record 1234"):
        r.feed(b["kind"], b["gva"], b["size"], b["icount"])
    partial = r"interrupted mid-batch \(ValueError: record 1234 has unknown kind code 6 .*\); its state is partial"
    with pytest.raises(RuntimeError, match=partial):
        r.result()
    with pytest.raises(RuntimeError, match=partial):
        r.feed(b["kind"][:1], b["gva"][:1], b["size"][:1])
    with pytest.raises(RuntimeError, match=partial):
        r.feed_packed(pack(lifecycle_batch(1)))


def test_a_batch_refused_before_any_record_is_fed_leaves_the_replay_usable() -> None:
    # the core checks its arguments before it replays a record: nothing is partial, the replay goes on
    b = lifecycle_batch(100)
    r = Replay(CONFIGS["generic loop"][0])
    with pytest.raises(TypeError, match="one length"):
        r.feed(b["kind"], b["gva"][:50], b["size"])
    r.feed(b["kind"], b["gva"], b["size"], b["icount"])
    whole = Replay(CONFIGS["generic loop"][0])
    whole.feed(b["kind"], b["gva"], b["size"], b["icount"])
    assert r.result().counters == whole.result().counters


def test_the_feed_chunk_hook_returns_the_previous_setting_and_refuses_negative_sizes() -> None:
    with feed_chunk(5):
        assert _core._set_feed_chunk(9) == 5
        with pytest.raises(ValueError, match=">= 0"):
            _core._set_feed_chunk(-1)
        assert _core._set_feed_chunk(0) == 9
    assert _core._set_feed_chunk(0) == 0  # the default: sized by time
