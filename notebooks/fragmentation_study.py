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
# # memctl vs baseline as host fragmentation grows
#
# The host's memory starts with a fraction *f* of its 2 MiB blocks broken by one unmovable 4 KiB frame
# (docs/model.md §2, `[host] fragmentation`). When the host cannot find a free 2 MiB block it backs guest
# memory with 4 KiB pages: TLB entries splinter to 4K, walks get longer, and there are 512× more host
# faults. This notebook sweeps *f* from 0 to 0.9 — and on to 0.999, where the effect shows — for
# `baseline-thp` and `memctl-2m` on the shipped pointer-chase trace (32 MiB touched at random).
#
# Note what the model says about *f*: a fraction *f* of broken blocks still leaves (1 − *f*) of the
# memory as whole 2 MiB blocks. A 64 GiB host at *f* = 0.9 keeps 6.4 GiB of them, far more than a
# small trace needs, so fallback needs a small host share (`HOST_MEMORY`, default 1 GiB: about 51
# whole blocks at *f* = 0.9, 26 at 0.95, 5 at 0.99) or *f* close to 1.
#
# Configs are built by editing the raw TOML of a preset (`load_raw` → edit → `parse_config`).
# `memmodel compare --fragmentation 0,0.9,0.99` runs a small version of this study for every report.
# Times are **estimates** (every constant, its derivation and its source: `docs/costs.md`). Column
# names carry their unit (`_ms` milliseconds). Run with
# `jupytext --to ipynb notebooks/fragmentation_study.py && jupyter execute notebooks/fragmentation_study.ipynb`.

# %%
import os
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

import memmodel
from memmodel.analysis.api import run
from memmodel.analysis.compare import compare_runs
from memmodel.config import load_raw, parse_config
from memmodel.report import figures

REPO = Path(memmodel.__path__[0]).parent
TRACE = Path(os.environ.get("MEMMODEL_NOTEBOOK_TRACE", REPO / "traces" / "pchase.lackey.xz"))
FRAGMENTATION = [0.0, 0.3, 0.6, 0.9, 0.95, 0.99, 0.999]
PRESETS = ["baseline-thp", "memctl-2m"]
# Host memory available to this VM (see above): with 1 GiB, the 23 host 2 MiB pages this trace
# needs run out between f = 0.9 and 0.95 (at 0.95: 21 pages of 2 MiB, then 4 KiB fallbacks).
HOST_MEMORY = os.environ.get("MEMMODEL_NOTEBOOK_HOST_MEMORY", "1G")

# %%
trace = str(TRACE)  # read by path; workers of a sweep would do the same
print("trace:", trace)


# %%
def config(preset: str, f: float):
    """The preset with host fragmentation f and HOST_MEMORY of host memory, named e.g. 'memctl-2m@0.6'."""
    raw, source = load_raw(preset)
    raw["host"]["fragmentation"] = f
    raw["host"]["memory"] = HOST_MEMORY
    raw["name"] = f"{preset}@{f:g}"
    return parse_config(raw, source)


configs = [config(p, f) for f in FRAGMENTATION for p in PRESETS]
runs = run(trace, configs, window=10_000)
df = compare_runs(runs, baseline="baseline-thp@0").with_columns(
    pl.col("config").str.split("@").list.get(0).alias("preset"),
    pl.col("config").str.split("@").list.get(1).cast(pl.Float64).alias("fragmentation"),
)
host4k = {r.config.name: r.result.counters["host_pages_4k"] / max(r.result.counters["host_faults"], 1) for r in runs}
df = df.with_columns(pl.col("config").replace_strict(host4k).alias("host_4k_fault_share"))
df.select("config", "walks", "loads_per_walk", "host_faults", "host_4k_fault_share", "host_unusable_index_2m",
          (pl.col("est_setup_s") * 1e3).alias("est_setup_ms"), (pl.col("est_walk_s") * 1e3).alias("est_walk_ms"))

# %% [markdown]
# ## Walks, host faults and estimated time against fragmentation

# %%
fig = make_subplots(rows=1, cols=3, subplot_titles=("Walk loads per translation", "Host faults",
                                                    "Estimated set-up + walk time (ms)"))
colors = figures.PRESET_COLORS  # the report's colours (colour-blind safe, one per config)
for preset in PRESETS:
    d = df.filter(pl.col("preset") == preset).sort("fragmentation")
    x = d["fragmentation"].to_list()
    per_tr = [r.result.counters["walk_loads"] / r.result.counters["accesses"] for r in runs
              if r.config.name.startswith(preset + "@")]
    kw = {"mode": "lines+markers", "name": preset, "line": {"color": colors[preset]}, "legendgroup": preset}
    fig.add_trace(go.Scatter(x=x, y=per_tr, **kw), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=d["host_faults"].to_list(), showlegend=False, **kw), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=(d["est_total_s"] * 1e3).to_list(), showlegend=False, **kw), row=1, col=3)
fig.update_xaxes(title_text="host fragmentation f (share of 2 MiB blocks broken)")
fig.update_yaxes(title_text="loads / translation", row=1, col=1)
fig.update_yaxes(title_text="host faults (log)", type="log", row=1, col=2)
fig.update_yaxes(title_text="ms (estimate)", row=1, col=3)
fig.update_layout(title="memctl-2m vs baseline-thp as host fragmentation grows", template="plotly_white",
                  legend_title_text="config", height=420)
fig.show()

# %% [markdown]
# ## What memctl saves, per fragmentation level
# Ratios memctl-2m / baseline-thp at the same *f* (below 1 = memctl is cheaper). Once the host falls back
# to 4K, the baseline's guest zeroes whole 2 MiB guest pages and so host-touches all 512 of their 4 KiB
# pages, while the memctl guest does not zero: the host backs (and zeroes) only the 4 KiB pages the
# program touches. Walk loads are about equal: both splinter to 4K TLB entries.

# %%
wide = df.pivot(on="preset", index="fragmentation", values=["walk_loads", "est_setup_s", "est_total_s"])
savings = wide.select(
    "fragmentation",
    (pl.col("walk_loads_memctl-2m") / pl.col("walk_loads_baseline-thp")).alias("walk_loads_ratio"),
    (pl.col("est_setup_s_memctl-2m") / pl.col("est_setup_s_baseline-thp")).alias("setup_time_ratio"),
    (pl.col("est_total_s_memctl-2m") / pl.col("est_total_s_baseline-thp")).alias("total_time_ratio"),
)
print(savings)

# %%
assert df.height == len(FRAGMENTATION) * len(PRESETS)
