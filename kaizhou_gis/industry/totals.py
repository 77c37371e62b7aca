"""Per-project status and per-product totals of the placed industry projects."""
from __future__ import annotations

import numpy as np
import pandas as pd

from kaizhou_gis.industry.projects import PROJECT_LABELS_ZH, TOTAL_LABELS_ZH


def project_status(projects: pd.DataFrame, hosts: pd.DataFrame, unresolved: pd.DataFrame) -> pd.DataFrame:
    """The project table with ``n_hosts`` (placed), ``n_unresolved`` and ``status`` for every row."""
    out = projects.copy()
    placed = hosts.groupby("project_id").size()
    missing = unresolved.groupby("project_id").size()
    out["n_hosts"] = out["project_id"].map(placed).fillna(0).astype(int)
    out["n_unresolved"] = out["project_id"].map(missing).fillna(0).astype(int)

    def status(r: pd.Series) -> str:
        if r["host_level"] == "none":
            return "district-wide: the plan names no place"
        if r["host_level"] == "place":
            return "not placed: the plan names places that are not villages"
        if r["n_hosts"] == 0:
            return "not placed: no host found"
        if r["n_unresolved"]:
            return "partly placed"
        return "placed"

    out["status"] = out.apply(status, axis=1)
    out.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
    return out


def product_totals(projects: pd.DataFrame, hosts: pd.DataFrame) -> pd.DataFrame:
    """Per product: the plan's total (rows that are not a part of another) and what is placed.

    ``placed_scale`` adds the hosts' ``scale`` where the plan gives a figure per village (or an
    even split was asked for); it is NaN when the plan gives only a total, so the comparison never
    rests on an invented split.
    """
    main = projects[projects["part_of"].eq("") & projects["scale"].notna()]
    rows = []
    for (cat, prod, unit), g in main.groupby(["category", "product", "unit"], sort=False):
        h = hosts[hosts["project_id"].isin(g["project_id"])]
        per_host = h["scale"].notna().any()
        placed = float(h["scale"].sum()) if per_host else np.nan
        if not per_host:
            basis = "plan gives a total only; not placed per village"
        elif h["scale_assumed_split"].any():
            basis = "assumed even split"
        else:
            basis = "; ".join(sorted(set(h.loc[h["scale"].notna(), "scale_basis"])))
        stated = g["n_villages_stated"].dropna()
        rows.append({"category": cat, "product": prod, "product_en": g["product_en"].iloc[0],
                     "unit": unit, "plan_total": float(g["scale"].sum()),
                     "at_least": bool(g["at_least"].any()), "n_projects": len(g),
                     "n_villages_stated": int(stated.sum()) if len(stated) else pd.NA,
                     "n_hosts_named": int(g["n_hosts_named"].sum()),
                     "n_hosts": len(h), "n_unresolved": int(g.get("n_unresolved", pd.Series(0)).sum()),
                     "placed_scale": placed, "placed_basis": basis,
                     "source": "; ".join(sorted(set(g["chapter_section"])))})
    out = pd.DataFrame(rows, columns=list(TOTAL_LABELS_ZH))
    out["n_villages_stated"] = out["n_villages_stated"].astype("Int64")
    out.attrs["labels_zh"] = dict(TOTAL_LABELS_ZH)
    return out
