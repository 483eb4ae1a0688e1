# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # memmodel quickstart: ingest a trace, simulate, compare baseline vs memctl, plot
#
# 1. **ingest** a real trace (a shipped Valgrind lackey trace) into the Parquet trace store;
# 2. **simulate**: replay it through configs and get the exact counters (docs/model.md §6) as a polars DataFrame;
# 3. **compare**: each memctl config next to the baseline its preset declares (memctl-2m vs
#    baseline-thp, memctl-4k vs baseline-4k), with estimated costs per access and per 1000 instructions;
# 4. **plots**: plotly figures you can restyle, and the self-contained HTML report.
#
# Run it with `jupytext --to ipynb notebooks/quickstart.py && jupyter execute notebooks/quickstart.ipynb`
# (`pip install -e ".[notebooks]"`).
# Times in this notebook are **estimates** (counts × per-event costs; every constant, its derivation
# and its source: `docs/costs.md`); the counters are exact. Column names carry their unit
# (`_s` seconds, `_ms` milliseconds, `_ns` nanoseconds, `_bytes` bytes).

# %%
import os
from pathlib import Path

import polars as pl

import memmodel
from memmodel.analysis.api import run, runs_to_frame
from memmodel.analysis.compare import DEFAULT_CONFIGS, compare_runs, pairings, summary_sentence
from memmodel.report import figures
from memmodel.trace import ingest, trace_info

REPO = Path(memmodel.__path__[0]).parent
TRACE = Path(os.environ.get("MEMMODEL_NOTEBOOK_TRACE", REPO / "traces" / "stream.lackey.xz"))
# outputs (the store file and the report) go to reports/ of the checkout (ignored by git), else here
OUT = REPO / "reports" if (REPO / "reports").is_dir() else Path(".")

# %% [markdown]
# ## 1. Ingest
# `ingest` parses the lackey text (compressed or not) into a Parquet store file, streaming, and
# reconciles every line read: records + known non-record lines (`==pid==` messages) + skipped lines.
# The same runs work on the raw trace too (it is then parsed on the fly).

# %%
store = OUT / "quickstart.parquet"
summary = ingest([TRACE], store)
print(f"{summary.lines:,} lines = {summary.records:,} records + {sum(summary.non_records.values()):,} "
      f"non-record lines + {sum(summary.skipped.values()):,} skipped; by kind {summary.by_kind}")
info = trace_info(store)
print("distinct data pages:", info["pages"]["data"], "footprint:", info["footprint_bytes"]["data"] // 4096, "x 4 KiB")

# %% [markdown]
# ## 2. Simulate: exact counters
# `run` replays the trace once per config (the trace is parsed once); `runs_to_frame` gives one row per
# (trace, config) with every docs/model.md §6 counter and derived rates.

# %%
runs = run(store, list(DEFAULT_CONFIGS), window=10_000)
counters = runs_to_frame(runs)
counters.select("config", "accesses", "walks", "walk_loads", "loads_per_walk", "guest_faults", "host_faults",
                "guest_zeroed_bytes", "host_zeroed_bytes")

# %% [markdown]
# ## 3. Compare: each memctl config against its declared baseline
# The sentence a reader can quote first, then the frame: `paired_with` names the baseline and the
# `*_vs_pair` columns divide by it.

# %%
for pair in pairings(runs):
    print(summary_sentence(pair))
cmp = compare_runs(runs, baseline="baseline-thp")
cmp.select("config", "paired_with", "walk_loads", "walk_loads_vs_pair", "guest_zeroed_bytes",
           "host_zeroed_bytes", (pl.col("est_setup_s") * 1e3).alias("est_setup_ms"),
           "est_setup_s_vs_pair", "est_walk_ns_per_access", "est_steady_walk_ns_per_access")

# %% [markdown]
# ## 4. Plots
# Every function of `memmodel.report.figures` takes runs and returns a plotly Figure.

# %%
fig = figures.loads_per_walk(runs)
fig.show()

# %%
figures.zeroing(runs).show()

# %%
figures.walk_loads_over_time(runs).show()

# %% [markdown]
# The whole report as one self-contained HTML file (plotly.js embedded; open it offline):

# %%
out = memmodel.report(store, OUT / "quickstart.html", fragmentation=[0.0, 0.99])
print(out, out.stat().st_size // 1024, "KiB")
assert cmp.height == len(DEFAULT_CONFIGS)
assert cmp.filter(pl.col("config") == "memctl-2m")["paired_with"].to_list() == ["baseline-thp"]
