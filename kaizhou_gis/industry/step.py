"""The ``industry`` pipeline step: reads the plan and layers, resolves the hosts, builds the tables."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

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
    n_poverty, notes = _poverty_villages_note(projects, layers.villages)

    tw = ctx.township
    if tw:
        table, hosts, unresolved = _in_township(table, hosts, unresolved, str(tw))
    totals = product_totals(table, hosts)
    where = ""
    if tw:
        names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"]))
        where = f" in {names.get(str(tw), tw)}"
    summary = _summary(projects, table, hosts, unresolved, totals, where=where, split=split,
                       no_table=table_path is False, n_poverty=n_poverty, notes=notes)
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


def _poverty_villages_note(projects: pd.DataFrame, villages: pd.DataFrame) -> tuple[int | None, list[str]]:
    """The number of poverty villages the layer flags (None without the column) and a note when
    it differs from the number the plan states for its per-poverty-village projects."""
    n_poverty = None
    if "poverty_village" in villages.columns:
        n_poverty = int(villages["poverty_village"].fillna(False).astype(bool).sum())
    stated_poverty = projects.loc[projects["host_level"].eq("poverty_villages"), "n_villages_stated"]
    notes = []
    if n_poverty is not None and len(stated_poverty) and int(stated_poverty.max()) != n_poverty:
        notes.append(f"the plan puts some projects on {int(stated_poverty.max())} poverty villages; "
                     + (f"the villages layer flags {n_poverty}, and those are used." if n_poverty
                        else "the villages layer flags none, so those projects are listed in "
                             "industry/unresolved.csv."))
        log.warning("%s", notes[-1])
    return n_poverty, notes


def _in_township(table: pd.DataFrame, hosts: pd.DataFrame, unresolved: pd.DataFrame,
                 tw: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The projects with a host (placed or not) in township ``tw``, with that township's hosts."""
    keep_ids = set(hosts.loc[hosts["township_code"].astype(str) == tw, "project_id"])
    keep_ids |= set(unresolved.loc[unresolved["township_code"].astype(str) == tw, "project_id"])
    table = table[table["project_id"].isin(keep_ids)].copy()
    hosts = hosts[hosts["township_code"].astype(str) == tw].copy()
    unresolved = unresolved[unresolved["township_code"].astype(str) == tw].copy()
    table.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
    hosts.attrs["labels_zh"] = dict(HOST_LABELS_ZH)
    unresolved.attrs["labels_zh"] = dict(UNRESOLVED_LABELS_ZH)
    return table, hosts, unresolved


def _summary(projects: pd.DataFrame, table: pd.DataFrame, hosts: pd.DataFrame,
             unresolved: pd.DataFrame, totals: pd.DataFrame, *, where: str, split: str,
             no_table: bool, n_poverty: int | None, notes: list[str]) -> dict[str, Any]:
    """The step summary: headline lines and counts (every named host is either placed or
    unresolved, also within one township). Appends to ``notes`` when there is no table."""
    placed_named = int((hosts["host_level"].isin(["village", "township"])).sum())
    pv_ids = set(projects.loc[projects["host_level"].eq("poverty_villages"), "project_id"])
    n_pv_unplaced = int(unresolved["project_id"].isin(pv_ids).sum())
    named = placed_named + len(unresolved) - n_pv_unplaced
    named_villages = int(hosts["host_level"].eq("village").sum()
                         + unresolved["village_text"].ne("").sum())
    place_ids = set(projects.loc[projects["host_level"].eq("place"), "project_id"])
    n_places = int(unresolved["project_id"].isin(place_ids).sum())
    line = f"{len(table)} plan projects (ch.3){where}; {named} named hosts{where}: {placed_named} placed"
    n_not = len(unresolved) - n_pv_unplaced
    if n_not:
        line += (f", {n_not} not ({n_not - n_places} names not found, "
                 f"{n_places} mountain/scenic places; see industry/unresolved.csv)")
    headline = [line]
    if no_table:
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
    return {
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
