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
# # memmodel quickstart: a trace, the canonical model, baseline vs memctl
#
# 1. pick a trace (a shipped lackey trace, or any frame of `kind`/`gva`/`size` arrays);
# 2. **simulate**: replay it through configs and get the exact counters (MODEL.md §6) as a polars DataFrame;
# 3. **compare**: the same runs side by side with estimated costs and ratios to a baseline;
# 4. **plots**: plotly figures you can restyle, and the self-contained HTML report.
#
# Times in this notebook are **estimates** (counts × per-event costs, `memmodel.analysis.costs`);
# the counters are exact.

# %%
import os
from pathlib import Path

import numpy as np
import polars as pl

import memmodel
import memmodel.trace
from memmodel.analysis.api import run, runs_to_frame
from memmodel.analysis.compare import DEFAULT_CONFIGS, compare_runs
from memmodel.report import figures
from memmodel.report.html import write_report

REPO = Path(memmodel.__path__[0]).parent
TRACE = Path(os.environ.get("MEMMODEL_NOTEBOOK_TRACE", REPO / "traces" / "stream.lackey.xz"))

# %% [markdown]
# ## 1. The trace
# A shipped trace (`traces/*.lackey.xz`, Valgrind lackey output) is read directly by path. If the trace
# reader is not available in this checkout, a synthetic frame stands in: a streaming pass over 256 MiB
# plus random accesses over 2 GiB.

# %%
if TRACE.is_file() and hasattr(memmodel.trace, "iter_batches"):
    trace = str(TRACE)
else:
    rng = np.random.default_rng(0)
    n = 200_000
    stream = np.arange(n // 2, dtype=np.uint64) * 2048
    rand = rng.integers(0, 2 << 30, n // 2).astype(np.uint64)
    trace = {"kind": rng.integers(1, 4, n).astype(np.uint8),
             "gva": 0x7F00_0000_0000 + np.concatenate([stream, rand]),
             "size": np.full(n, 8, np.uint16)}
print("trace:", trace if isinstance(trace, str) else "<synthetic frame>")

# %% [markdown]
# ## 2. Simulate: exact counters
# `run` replays the trace once per config (the trace is parsed once); `runs_to_frame` gives one row per
# (trace, config) with every MODEL.md §6 counter and derived rates.

# %%
runs = run(trace, list(DEFAULT_CONFIGS), window=10_000)
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
