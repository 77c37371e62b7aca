"""What a step left out, counted the same way for the console summary and the report.

Every input row stays in the full tables with its status; these counts say how many rows the
analysis could not use, why, and which file lists them.
"""
from __future__ import annotations

import pandas as pd

#: Reason text (access tables) of a point with no road within reach.
BEYOND_REACH = "no road within"
NO_LOCATION = "no location"


def relocation(settlements: pd.DataFrame, unassigned: pd.DataFrame | None = None) -> dict:
    """Settlements without elevation, and households that could not be placed at a site."""
    status = settlements["status"].astype(str) if "status" in settlements else pd.Series(dtype=str)
    un = unassigned if unassigned is not None else pd.DataFrame()
    return {"no_elevation": int((status == "no_elevation").sum()),
            "unplaced_settlements": int(len(un)),
            "unplaced_households": int(pd.to_numeric(un.get("households"), errors="coerce")
                                       .fillna(0).sum()) if len(un) else 0}


def relocation_lines(d: dict) -> list[str]:
    out = []
    if d["no_elevation"]:
        out.append(f"{d['no_elevation']:,} settlement(s) without elevation (outside the DEM or on "
                   f"its nodata), never candidates: status no_elevation in relocation/settlements.gpkg")
    if d["unplaced_settlements"]:
        out.append(f"{d['unplaced_households']:,} household(s) of {d['unplaced_settlements']:,} "
                   f"settlement(s) not placed at a site: relocation/unassigned.csv, with the reason")
    return out


def _reasons(t: pd.DataFrame, prefix: str) -> int:
    if t is None or "reason" not in t:
        return 0
    return int(t["reason"].astype(str).str.startswith(prefix).sum())


def access(villages: pd.DataFrame, settlements: pd.DataFrame) -> dict:
    """Villages and settlements with no road within reach, or without a location."""
    return {"villages_beyond_reach": _reasons(villages, BEYOND_REACH),
            "settlements_beyond_reach": _reasons(settlements, BEYOND_REACH),
            "villages_no_location": _reasons(villages, NO_LOCATION),
            "settlements_no_location": _reasons(settlements, NO_LOCATION)}


def access_lines(d: dict, reach_m: float) -> list[str]:
    out = []
    if d["villages_beyond_reach"] or d["settlements_beyond_reach"]:
        out.append(f"{d['villages_beyond_reach']:,} village(s) and {d['settlements_beyond_reach']:,} "
                   f"settlement(s) beyond reach (no road within {reach_m:g} m): reason in "
                   f"access/villages.csv and access/settlements.csv")
    if d["villages_no_location"] or d["settlements_no_location"]:
        out.append(f"{d['villages_no_location']:,} village(s) and {d['settlements_no_location']:,} "
                   f"settlement(s) without a location: reason in access/villages.csv and "
                   f"access/settlements.csv")
    return out
