"""The yearly schedule of the candidates against the plan's quotas (plan ch.5: 2016-2018)."""
from __future__ import annotations

import pandas as pd

from kaizhou_gis.relocation.labels import BEYOND_QUOTAS_EN, _labelled


def schedule_status(schedule_year: pd.Series, candidate: pd.Series, years) -> pd.Series:
    """A candidate's schedule in words: its year, or "after 2018 / beyond the quotas" when the
    yearly quotas are used up before it; "" for settlements that are not candidates."""
    last = max(int(y) for y in years) if len(years) else None
    out = pd.Series("", index=schedule_year.index, dtype=object)
    has = schedule_year.notna() & candidate
    out[has] = schedule_year[has].astype("Int64").astype(str)
    out[candidate & ~schedule_year.notna()] = BEYOND_QUOTAS_EN.format(year=last)
    return out


def schedule_years(candidates: pd.DataFrame, quotas: dict[str, int], *,
                   count: str | None = None) -> pd.Series:
    """Year of relocation of each candidate settlement, by priority, within the yearly quotas.

    The plan's quotas (ch.5: 2016 7,600; 2017 7,000; 2018 2,300) count **registered poor people**
    (建档立卡贫困人口), so each settlement counts with its ``poor_population``; its other residents
    move with it (同步搬迁) and do not use the quota. Settlements are taken in order of falling
    ``priority`` (then falling elevation, then ``settlement_id``). Each year is filled in that
    order: a settlement goes into the first year whose remaining quota still holds all its
    registered poor (whole settlements only); one that fits no year is left unscheduled (the
    remainder). No year exceeds its quota, and a settlement is only passed over for a
    lower-priority one when it no longer fits the remaining quota. A settlement without
    registered poor people uses no quota and is not scheduled (nothing of the plan's target moves
    with it).

    Parameters
    ----------
    candidates
        Candidate settlements with ``settlement_id``, ``poor_population`` (or ``population``),
        ``priority`` and ``elevation_m``.
    quotas
        Registered poor people per year, e.g. ``{"2016": 7600, "2017": 7000, "2018": 2300}``.
    count : str, optional
        The column counted against the quotas (default ``poor_population`` when present, else
        ``population``).

    Returns
    -------
    pandas.Series
        ``Int64`` years aligned to ``candidates.index``; NA for the remainder.
    """
    years = sorted(quotas, key=int)
    left = {y: int(quotas[y]) for y in years}
    order = candidates.assign(_e=candidates["elevation_m"].fillna(-1e9),
                              _id=candidates["settlement_id"].astype(str)).sort_values(
        ["priority", "_e", "_id"], ascending=[False, False, True], kind="mergesort")
    out = pd.Series(pd.NA, index=candidates.index, dtype="Int64")
    if count is None:
        count = "poor_population" if "poor_population" in candidates.columns else "population"
    for idx, people in zip(order.index, order[count].astype(int)):
        if people <= 0 and count == "poor_population":
            continue
        for y in years:
            if people <= left[y]:
                out[idx] = int(y)
                left[y] -= people
                break
    return out


def schedule_table(full: pd.DataFrame, quotas: dict[str, int]
                   ) -> tuple[list[dict[str, int]], pd.DataFrame, dict[str, int]]:
    """The schedule per year against the quotas and the remainder (candidates without a year).

    Returns
    -------
    (rows, table, remainder)
        ``rows``: one dict per year (``year``, ``quota_poor_people``, ``settlements``,
        ``households``, ``poor_people``, ``accompanying_people``, ``people``); ``table``: the
        same rows, labelled; ``remainder``: the same counts for the unscheduled candidates and
        the registered poor of the largest of them.
    """
    rows = []
    for y in sorted(quotas, key=int):
        sel = (full["schedule_year"] == int(y)).fillna(False).astype(bool)
        rows.append({"year": int(y), "quota_poor_people": int(quotas[y]),
                     "settlements": int(sel.sum()),
                     "households": int(full.loc[sel, "households"].sum()),
                     "poor_people": int(full.loc[sel, "poor_population"].sum()),
                     "accompanying_people": int(full.loc[sel, "accompanying_population"].sum()),
                     "people": int(full.loc[sel, "population"].sum())})
    rest = full["relocation_candidate"] & full["schedule_year"].isna()
    remainder = {"settlements": int(rest.sum()), "households": int(full.loc[rest, "households"].sum()),
                 "poor_people": int(full.loc[rest, "poor_population"].sum()),
                 "accompanying_people": int(full.loc[rest, "accompanying_population"].sum()),
                 "people": int(full.loc[rest, "population"].sum()),
                 "largest_settlement_poor_people": int(full.loc[rest, "poor_population"].max())
                 if rest.any() else 0}
    return rows, _labelled(pd.DataFrame(rows)), remainder
