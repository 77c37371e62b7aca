"""Write ``notebooks/walkthrough.ipynb`` (without outputs) from the cells below.

Run once after editing the cells: ``python notebooks/make_walkthrough.py``. The notebook itself
is executed by ``tests/test_notebook.py``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = [
    ("md", """\
# kaizhou-gis walkthrough — 开州区“十三五”脱贫攻坚规划的空间分析

This notebook walks a planner through the pipeline on the shipped Kaizhou layers (`layers/`):

1. the **plan file** — every threshold and target the analysis uses, with its source;
2. the **layers** — what is real and what is synthesized;
3. **relocation** (高山生态扶贫搬迁): which natural villages are candidates, and why;
4. **road access** (通达/通畅): the scorecard against the plan and the works that close the gaps,
   and the road graph as a networkx graph;
5. **industry** (产业扶贫): the plan's projects placed on their villages;
6. the **plan scorecard** and the output files.

Set the environment variable `KAIZHOU_LAYERS` to run it on other layers and `KAIZHOU_OUT` to
choose the output folder (default: a new temporary folder)."""),
    ("code", """\
import os
import tempfile
from pathlib import Path

import pandas as pd

from kaizhou_gis.layers import load_layers
from kaizhou_gis.pipeline import Context, run_steps
from kaizhou_gis.plan import load_plan

pd.set_option("display.max_columns", 20)
pd.set_option("display.width", 160)
LAYERS = os.environ.get("KAIZHOU_LAYERS") or None  # None: the shipped layers
OUT = Path(os.environ.get("KAIZHOU_OUT") or tempfile.mkdtemp(prefix="kaizhou-walkthrough-"))"""),
    ("md", """\
## 1. The plan file

`load_plan()` reads the shipped plan (`kaizhou_gis/plans/kaizhou.toml`). Each value carries its
source: a chapter of the plan (`ch.5`), a derivation, or `assumption: ...` where the plan gives no
number and the tool had to choose — those are the ones to review."""),
    ("code", """\
plan = load_plan()
settings = pd.DataFrame([{"key": k, "value": v["value"], "source": v["source"]}
                         for k, v in plan.settings("relocation").items()])
settings.head(12)"""),
    ("code", """\
assumptions = [k for k in plan.settings() if plan.is_assumption(k)]
print(f"{len(plan.settings())} settings, {len(assumptions)} of them assumptions")
print("relocation threshold:", plan["relocation.threshold_m"], "m —", plan.source("relocation.threshold_m"))"""),
    ("md", """\
## 2. The layers

`load_layers` checks every layer against the layer contract and reprojects it to the work CRS
(`EPSG:4545`, metres). Rows whose values were synthesized say so in their `source` column."""),
    ("code", """\
layers = load_layers(LAYERS, plan=plan)
overview = pd.DataFrame([
    {"layer": name, "rows": len(gdf),
     "synthesized rows": int(gdf["source"].astype(str).str.contains("synth").sum()) if "source" in gdf else 0}
    for name in ("townships", "township_seats", "villages", "settlements", "roads")
    for gdf in [getattr(layers, name)]])
print(layers.source)
print(layers.attribution)
overview"""),
    ("md", """\
## 3. Relocation candidates

A `Context` holds the layers, the plan and the options; `ctx.result(step)` runs a step (and the
steps it needs) once and keeps the result. The relocation step flags settlements above the plan's
800 m line and in steep, deep-valley or remote terrain, and gives every flag as a reason."""),
    ("code", """\
ctx = Context(layers=layers, plan=plan, options={"township": None, "header": "en"})
rel = ctx.result("relocation")
print("\\n".join(rel.summary["headline"]))
s = rel.data.settlements
cand = s[s["relocation_candidate"]]
cols = [c for c in ("settlement_id", "name", "village_code", "elevation_m", "slope_deg", "population",
                    "priority", "schedule_year", "reasons_zh") if c in cand]
cand.sort_values("priority", ascending=False)[cols].head(10)"""),
    ("md", """\
**What if the threshold were 900 m?** Change the plan value (exactly what `--threshold-m 900`
does on the command line) and rerun only the relocation step; road access does not depend on the
threshold, so it is reused."""),
    ("code", """\
plan900 = load_plan(overrides={"relocation.threshold_m": 900.0})
ctx900 = Context(layers=layers, plan=plan900, options=dict(ctx.options),
                 results={"access": ctx.result("access")})
s900 = ctx900.result("relocation").data.settlements
pd.DataFrame({
    "threshold_m": [800, 900],
    "candidates": [int(s["relocation_candidate"].sum()), int(s900["relocation_candidate"].sum())],
    "people": [int(s.loc[s["relocation_candidate"], "population"].sum()),
               int(s900.loc[s900["relocation_candidate"], "population"].sum())],
})"""),
    ("md", """\
## 4. Road access: 通达 and 通畅

The scorecard compares the share of administrative villages reached by a hardened road (通畅) and
of settlements with ≥ 30 households or ≥ 100 people reached by any road (通达) or a hardened one
with the plan's targets, before and after the proposed works (cheapest first)."""),
    ("code", """\
acc = ctx.result("access")
card = acc.data.scorecard
keys = ["village_tongchang_pct", "settlement_tongda_pct", "settlement_tongchang_pct"]
pd.DataFrame({"before": [card["before"][k] for k in keys],
              "after": [card["after"][k] for k in keys],
              "target": [plan["access.village_tongchang_target_pct"],
                         plan["access.settlement_tongda_target_pct"],
                         plan["access.settlement_tongchang_target_pct"]]}, index=keys)"""),
    ("code", """\
works = acc.data.works
print(f"{len(works)} works, {works['km'].sum():.1f} km, {works['cost_yuan'].sum() / 1e8:.2f} 亿元")
works.drop(columns="geometry").sort_values("cost_yuan", ascending=False).head(8)"""),
    ("md", """\
**The road graph in networkx.** `RoadNetwork.to_networkx()` gives the graph the access step
measured on, in osmnx's conventions: a `MultiDiGraph` with every road in both directions, the
work CRS in `G.graph["crs"]`, node `x`/`y` in metres, and on each edge `length` (m), `geometry`
(LineString), `travel_time` (s), `road_id`, `road_class`, `surface` and `paved` (硬化). Any
networkx algorithm runs on it, and osmnx's functions take it as they take a graph from OSM (e.g.
`ox.convert.graph_to_gdfs(G)`). Below, one multi-source Dijkstra gives every node's road distance
to the nearest township seat. The same nodes and edges are in `access/access.gpkg` (layers `nodes`
and `edges`, whose `u`/`v` are the `node_id`s), for QGIS."""),
    ("code", """\
import networkx as nx

net = acc.data.network
G = net.to_networkx()
print(G, "| CRS:", G.graph["crs"].to_string())
seat_nodes = sorted({int(i) for i in net.nodes.sindex.nearest(layers.township_seats.geometry)[1]})
km = {n: d / 1000 for n, d in nx.multi_source_dijkstra_path_length(G, seat_nodes, weight="length").items()}
far = max(km, key=km.get)
print(f"{len(km):,} of {G.number_of_nodes():,} nodes reached from {len(seat_nodes)} seat nodes; "
      f"farthest: node {far}, {km[far]:.1f} km by road ({G.nodes[far]['x']:.0f}, {G.nodes[far]['y']:.0f})")
pd.Series(km).describe().round(2)"""),
    ("md", """\
## 5. Industry projects

The plan's chapter 3 names projects and the villages that host them; the step places them on the
villages layer and lists every name it could not place, with the reason."""),
    ("code", """\
ind = ctx.result("industry")
projects = ind.data.projects
print(f"{len(projects)} projects, {len(ind.data.hosts)} host points, "
      f"{len(ind.data.unresolved)} names not placed")
projects.groupby("category").size().rename("projects").to_frame()"""),
    ("md", """\
## 6. The plan scorecard and the files

The report step reads the results above. `run_steps` writes each step's files (atomically) just as
`kaizhou-gis run` does; open `report.html` in any browser, offline."""),
    ("code", """\
report = ctx.result("report").data.report
pd.DataFrame(report["indicators"])[["id", "name_zh", "unit", "target_2018", "status", "computed",
                                    "computed_after"]]"""),
    ("code", """\
outcomes = run_steps(ctx, ["relocation", "access", "industry", "report"], OUT)
for o in outcomes:
    print(f"{o.name:<11} {o.status:<6} {len(o.paths):3d} files")
print("report:", OUT / "report.html")
sorted(p.relative_to(OUT).as_posix() for p in OUT.rglob("*") if p.is_file())[:12]"""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, src) in enumerate(CELLS):
        cell = new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        cell["id"] = f"cell-{i:02d}"  # stable ids: the file does not change when rebuilt
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    target = Path(__file__).with_name("walkthrough.ipynb")
    nbformat.write(build(), target)
    print(f"wrote {target}")
