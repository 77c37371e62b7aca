"""The ``industry`` pipeline step: reads the plan and layers, resolves the hosts, builds the tables."""
from __future__ import annotations

import logging

from kaizhou_gis.industry.hosts import resolve_hosts
from kaizhou_gis.industry.projects import (
    HOST_LABELS_ZH,
    PROJECT_LABELS_ZH,
    UNRESOLVED_LABELS_ZH,
    _plan_table,
    load_projects,
    load_township_aliases,
    load_village_aliases,
)
from kaizhou_gis.industry.totals import product_totals, project_status
from kaizhou_gis.results import IndustryData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[IndustryData]:
    """Pipeline step ``industry``: the project table, the host points and what could not be placed.

    Files (relative to ``--out``): ``industry/projects.csv``, ``industry/projects.gpkg`` (layer
    ``industry_hosts``), ``industry/unresolved.csv``, ``industry/totals.csv``. With ``--township``
    only the projects with a host in that township are kept, with that township's hosts.
    """
    split = ctx.options.get("split") or ctx.plan.get("industry.split", "none")
    layers = ctx.layers
    table_path = _plan_table(ctx.plan, "industry.projects_table")
    projects = load_projects(table_path)
    hosts, unresolved = resolve_hosts(
        projects, layers.villages, layers.townships, split=split, seats=layers.township_seats,
        township_aliases=load_township_aliases(_plan_table(ctx.plan, "industry.township_aliases")),
        village_aliases=load_village_aliases(_plan_table(ctx.plan, "industry.village_aliases")))
    table = project_status(projects, hosts, unresolved)

    n_poverty = None
    if "poverty_village" in layers.villages.columns:
        n_poverty = int(layers.villages["poverty_village"].fillna(False).astype(bool).sum())
    stated_poverty = projects.loc[projects["host_level"].eq("poverty_villages"), "n_villages_stated"]
    notes = []
    if n_poverty is not None and len(stated_poverty) and int(stated_poverty.max()) != n_poverty:
        notes.append(f"the plan puts some projects on {int(stated_poverty.max())} poverty villages; "
                     + (f"the villages layer flags {n_poverty}, and those are used." if n_poverty
                        else "the villages layer flags none, so those projects are listed in "
                             "industry/unresolved.csv."))
        log.warning("%s", notes[-1])

    tw = ctx.township
    if tw:
        keep_ids = set(hosts.loc[hosts["township_code"].astype(str) == str(tw), "project_id"])
        keep_ids |= set(unresolved.loc[unresolved["township_code"].astype(str) == str(tw), "project_id"])
        table = table[table["project_id"].isin(keep_ids)].copy()
        hosts = hosts[hosts["township_code"].astype(str) == str(tw)].copy()
        unresolved = unresolved[unresolved["township_code"].astype(str) == str(tw)].copy()
        table.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
        hosts.attrs["labels_zh"] = dict(HOST_LABELS_ZH)
        unresolved.attrs["labels_zh"] = dict(UNRESOLVED_LABELS_ZH)

    totals = product_totals(table, hosts)
    # every named host is either placed or unresolved (also within one township)
    placed_named = int((hosts["host_level"].isin(["village", "township"])).sum())
    pv_ids = set(projects.loc[projects["host_level"].eq("poverty_villages"), "project_id"])
    n_pv_unplaced = int(unresolved["project_id"].isin(pv_ids).sum())
    named = placed_named + len(unresolved) - n_pv_unplaced
    named_villages = int(hosts["host_level"].eq("village").sum()
                         + unresolved["village_text"].ne("").sum())
    where = ""
    if tw:
        names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"]))
        where = f" in {names.get(str(tw), tw)}"
    place_ids = set(projects.loc[projects["host_level"].eq("place"), "project_id"])
    n_places = int(unresolved["project_id"].isin(place_ids).sum())
    line = f"{len(table)} plan projects (ch.3){where}; {named} named hosts{where}: {placed_named} placed"
    n_not = len(unresolved) - n_pv_unplaced
    if n_not:
        line += (f", {n_not} not ({n_not - n_places} names not found, "
                 f"{n_places} mountain/scenic places; see industry/unresolved.csv)")
    headline = [line]
    if table_path is False:
        headline = ["no industry projects table: the plan file's industry.projects_table is "
                    "empty, so there are no projects to place (the tables are written empty)"]
        notes.append(headline[0])
    if n_pv_unplaced:
        headline.append(f"{n_pv_unplaced} per-poverty-village projects not placed: the villages "
                        f"layer flags no poverty village")
    pv = hosts[hosts["host_level"].eq("poverty_villages")]
    if len(pv):
        headline.append(f"{pv['village_code'].nunique()} poverty villages carry the per-village "
                        f"projects (photovoltaic stations, e-commerce stations)")
    if split == "even":
        headline.append("scales over several villages split evenly (assumed; see scale_basis)")

    totals_records = totals.astype(object).where(totals.notna(), None).to_dict("records")
    summary = {
        "headline": headline,
        "n_projects": int(len(table)),
        "n_named_hosts": int(named),
        "n_named_villages": named_villages,
        "n_hosts_placed": int(len(hosts)),
        "n_named_hosts_placed": placed_named,
        "n_unresolved": int(len(unresolved)),
        "n_alias_matches": int(hosts["match"].eq("alias").sum()),
        "poverty_villages_in_layer": n_poverty,
        "split": split,
        "totals": totals_records,
        "projects_per_township": {str(k): int(v) for k, v in
                                  hosts.groupby(hosts["township_code"].astype(str))["project_id"]
                                  .nunique().items()},
        "notes": notes,
    }
    if len(unresolved) and "township_code" in unresolved.columns and "township_name" not in unresolved.columns:
        tw_names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
        unresolved.insert(unresolved.columns.get_loc("township_code") + 1, "township_name",
                          unresolved["township_code"].map(
                              lambda c: tw_names.get(str(c)) if isinstance(c, str) and c else None))
    files = {
        "industry/projects.csv": table,
        "industry/projects.gpkg": {"industry_hosts": hosts},
        "industry/unresolved.csv": unresolved,
        "industry/totals.csv": totals,
    }
    return StepResult("industry", files=files,
                      data=IndustryData(projects=table, hosts=hosts, unresolved=unresolved,
                                        totals=totals),
                      summary=summary)
