"""Regenerate tests/data/golden/*.json: counters of every VM preset on every shipped trace.

The goldens come from the slow pure-Python reference model of MODEL.md v2 (tests/reference_model.py)
reading the lackey text with its own reader (syscall lines included), so the golden test checks
memmodel's reader and engine together against an independent path.

Run: ``python tests/make_goldens.py`` (all shipped traces, a few minutes) or
``python tests/make_goldens.py qsort stream`` (only those traces). Each JSON file is written to a
temporary file beside it and renamed into place, so an interrupted run never leaves a half-written
golden.
"""

from __future__ import annotations

import json
import lzma
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from reference_model import parse_lackey_simple, run_reference  # noqa: E402

from memmodel.config import load_config, preset_names  # noqa: E402


def main(names: list[str]) -> None:
    traces = sorted((HERE.parent / "traces").glob("*.lackey.xz"))
    known = [t.name.split(".")[0] for t in traces]
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"make_goldens: unknown trace(s) {', '.join(unknown)}; shipped traces: {', '.join(known)}")
    for trace in traces:
        stem = trace.name.split(".")[0]
        if names and stem not in names:
            continue
        with lzma.open(trace, "rt") as f:
            records = parse_lackey_simple(f.read())
        out = {}
        for name in preset_names("vm"):
            out[name] = run_reference(records, load_config(name))
            print(trace.name, name, out[name]["walks"], flush=True)
        path = HERE / "data" / "golden" / f"{stem}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)


if __name__ == "__main__":
    main(sys.argv[1:])
