"""Regenerate tests/data/golden/*.json: counters of every VM preset on every shipped trace.

The goldens come from the slow pure-Python reference model (tests/reference_model.py) reading the
lackey text with its own minimal parser, so the golden test checks memmodel's reader and engine
together against an independent path. Run: ``python tests/make_goldens.py`` (a few minutes).
"""

from __future__ import annotations

import json
import lzma
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from reference_model import parse_lackey_simple, run_reference  # noqa: E402

from memmodel.config import load_config, preset_names  # noqa: E402


def main() -> None:
    traces = sorted((HERE.parent / "traces").glob("*.lackey.xz"))
    for trace in traces:
        with lzma.open(trace, "rt") as f:
            records = parse_lackey_simple(f.read())
        out = {}
        for name in preset_names("vm"):
            out[name] = run_reference(records, load_config(name))
            print(trace.name, name, out[name]["walks"], flush=True)
        path = HERE / "data" / "golden" / (trace.name.split(".")[0] + ".json")
        path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
