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
# 2. **simulate**: replay it through configs and get the exact counters (MODEL.md §6) as a polars DataFrame;
# 3. **compare**: the same runs side by side with estimated costs and ratios to a baseline;
# 4. **plots**: plotly figures you can restyle, and the self-contained HTML report.
#
# Times in this notebook are **estimates** (counts × per-event costs, `memmodel.analysis.costs`);
# the counters are exact.

# %%
import os
from pathlib import Path

import polars as pl

import memmodel
from memmodel.analysis.api import run, runs_to_frame
from memmodel.analysis.compare import DEFAULT_CONFIGS, compare_runs
from memmodel.report import figures
from memmodel.report.html import write_report
from memmodel.trace import ingest, trace_info

REPO = Path(memmodel.__path__[0]).parent
TRACE = Path(os.environ.get("MEMMODEL_NOTEBOOK_TRACE", REPO / "traces" / "stream.lackey.xz"))

# %% [markdown]
# ## 1. Ingest
# `ingest` parses the lackey text (compressed or not) into a Parquet store file, streaming, and
# reconciles every line read: records + known non-record lines (`==pid==` messages) + skipped lines.
# The same runs work on the raw trace too (it is then parsed on the fly).

# %%
store = Path("quickstart.parquet")
summary = ingest([TRACE], store)
print(f"{summary.lines:,} lines = {summary.records:,} records + {sum(summary.non_records.values()):,} "
      f"non-record lines + {sum(summary.skipped.values()):,} skipped; by kind {summary.by_kind}")
info = trace_info(store)
print("distinct data pages:", info["pages"]["data"], "footprint:", info["footprint_bytes"]["data"] // 4096, "x 4 KiB")

# %% [markdown]
# ## 2. Simulate: exact counters
# `run` replays the trace once per config (the trace is parsed once); `runs_to_frame` gives one row per
# (trace, config) with every MODEL.md §6 counter and derived rates.

# %%
runs = run(store, list(DEFAULT_CONFIGS), window=10_000)
counters = runs_to_frame(runs)
counters.select("config", "accesses", "walks", "walk_loads", "loads_per_walk", "guest_faults", "host_faults",
                "guest_zeroed_bytes", "host_zeroed_bytes")

# %% [markdown]
# ## 3. Compare: side by side, with estimated costs and ratios to `baseline-thp`

# %%
cmp = compare_runs(runs, baseline="baseline-thp")
cmp.select("config", "walks", "walks_vs_base", "host_zeroed_bytes", "guest_zeroed_bytes",
           pl.col("est_setup_s") * 1e3, pl.col("est_walk_s") * 1e3, "est_total_s_vs_base")

# %% [markdown]
# ## 4. Plots
# Every function of `memmodel.report.figures` takes runs and returns a plotly Figure.

# %%
fig = figures.loads_per_walk(runs)
fig.show()

# %%
figures.zeroing(runs).show()

# %%
figures.walk_loads_over_time(runs).update_yaxes(type="log").show()

# %% [markdown]
# The whole report as one self-contained HTML file (plotly.js embedded; open it offline):

# %%
out = write_report(runs, Path("reports") / "quickstart.html", baseline="baseline-thp")
print(out, out.stat().st_size // 1024, "KiB")
assert cmp.height == len(DEFAULT_CONFIGS)
