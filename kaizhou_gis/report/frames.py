"""The tables the report is built from, limited to the run's township, and the figures
several sections share (administrative villages, registered poor, calibration marks, works per township)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.access import admin_village_mask
from kaizhou_gis.admin import settlement_townships, village_townships
from kaizhou_gis.figures import pct
from kaizhou_gis.report.common import _bool, _with_layer_columns
from kaizhou_gis.results import StepResult

if TYPE_CHECKING:
    from kaizhou_gis.layers import Layers
    from kaizhou_gis.plan import Plan


def _scope_label(layers: Layers, township: str | None) -> str:
    """The name of the run's township ("" for the district)."""
    if township is None:
        return ""
    tw = layers.townships
    hit = tw[tw["township_code"].astype(str) == str(township)]
    return str(hit["name"].iloc[0]) if len(hit) else str(township)


class _Frames:
    """The tables the report is built from, restricted to ``township`` (None: the district), with
    the plan and the data status (:func:`kaizhou_gis.provenance.data_status`) the sections read."""

    def __init__(self, layers: Layers, plan: Plan, township: str | None, data_status: dict):
        self.layers, self.plan, self.data_status = layers, plan, data_status
        self.problems: list[str] = []
        lay = layers
        self.township = township
        villages = pd.DataFrame(lay.villages.drop(columns="geometry", errors="ignore"))
        self.village_township = village_townships(villages)
        settlements = pd.DataFrame(lay.settlements.drop(columns="geometry", errors="ignore"))
        settlements["township_code"] = settlement_townships(settlements, self.village_township, warn=False)
        self.villages = self._scope(villages)
        self.settlements = self._scope(settlements)
        self.townships = self._scope(pd.DataFrame(lay.townships.drop(columns="geometry",
                                                                     errors="ignore")))

    def _scope(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.township is None or "township_code" not in df:
            return df
        return df[df["township_code"].astype(str) == str(self.township)]

    def scoped_villages(self, df: pd.DataFrame) -> pd.DataFrame:
        """An access/relocation village table with township_code, limited to the run's township."""
        df = _with_layer_columns(pd.DataFrame(df), self.layers.villages,
                                 ["village_code", "township_code", "poverty_village"])
        return self._scope(df)

    def scoped_settlements(self, df: pd.DataFrame) -> pd.DataFrame:
        df = _with_layer_columns(pd.DataFrame(df), self.layers.settlements,
                                 ["settlement_id", "village_code", "households", "population"])
        if "township_code" not in df:  # the steps' tables carry it (same rule)
            df["township_code"] = settlement_townships(df, self.village_township, warn=False)
        return self._scope(df)


def _admin(v: pd.DataFrame) -> pd.DataFrame:
    """The administrative villages (行政村, kind 村) of a village table: indicator 5 counts these."""
    return v[admin_village_mask(v).to_numpy()]


def _poor(s: pd.DataFrame, plan) -> tuple[pd.Series, str]:
    """Registered poor people per settlement and the basis of the figure.

    From ``poor_population`` (the layer's or the loader's estimate, see ``poor_population_basis``);
    a table without it gets the same estimate as the loader (population x the plan's incidence).
    """
    incidence = float(plan["baseline.poverty_incidence_pct"])
    est_text = (f"estimated: population x the plan's poverty incidence {incidence:g} % "
                f"(baseline.poverty_incidence_pct) / 按规划贫困发生率{incidence:g}%估算")
    if "poor_population" in s and pd.to_numeric(s["poor_population"], errors="coerce").notna().all():
        poor = pd.to_numeric(s["poor_population"], errors="coerce").astype("int64")
        basis = s["poor_population_basis"].astype(str) if "poor_population_basis" in s else \
            pd.Series("layer", s.index)
        n_est = int((basis == "estimated").sum())
        if n_est == 0:
            return poor, "layer: settlements.poor_population (建档立卡贫困人口) / 图层给出"
        return poor, f"{est_text} for {n_est:,} of {len(s):,} settlements"
    from kaizhou_gis.layers import estimate_poor_population

    est = estimate_poor_population(pd.DataFrame(s).assign(poor_population=np.nan), plan, [], [], [])
    return est["poor_population"].astype("int64"), est_text


def _calibrated(data_status: dict) -> dict[str, bool]:
    """Figures the synthetic layers were built to match (layers/README.md): shown as calibrated.

    A figure is calibrated when the layer it comes from is synthesized: the poverty-village count
    (villages), village 通畅 now (roads), the share of settlements above the threshold (settlements,
    dem) and the registered poor of the candidates (settlements.poor_population).
    """
    syn = set(data_status.get("synthetic_layers", []))
    return {"poverty_villages": "villages" in syn,
            "village_tongchang_before": "roads" in syn,
            "share_above_threshold": bool({"settlements", "dem"} & syn),
            "registered_poor": "settlements" in syn}


def _cal(flag: bool) -> str:
    """The calibrated mark for a figure (empty when the figure is independent)."""
    return f" [{provenance.CALIBRATED_ZH} / {provenance.CALIBRATED_EN}]" if flag else ""


def _poverty_flag_filled(layers: Layers) -> bool:
    """True when the villages layer had no poverty_village column (the loader filled False and
    noted it): then the layers cannot say how many poverty villages there are."""
    return any(str(n).startswith("villages.poverty_village: no column")
               for n in (getattr(layers, "notes", None) or []))


def _beneficiary_ids(works: pd.DataFrame | None) -> set[str]:
    ids: set[str] = set()
    if works is None or len(works) == 0 or "beneficiaries" not in works:
        return ids
    for b in works["beneficiaries"].dropna().astype(str):
        ids.update(x.strip() for x in b.split(";") if x.strip())
    return ids


def _after_tongchang(villages: pd.DataFrame, acc: StepResult, frames: _Frames) -> float | None:
    """Village 通畅 share after the works: already 通畅 or named as a beneficiary of a work."""
    if "tongchang" not in villages or "village_code" not in villages:
        return None
    ids = _beneficiary_ids(acc.data.works)
    ok = _bool(villages["tongchang"]) | villages["village_code"].astype(str).isin(ids)
    return pct(float(ok.sum()), len(villages))


def _works_in_scope(works, frames: _Frames) -> pd.DataFrame:
    """Works per township, limited to the scope: one row per (work, township served) with ``km``
    and ``cost_yuan`` split evenly over the townships a work serves (the access step's
    ``township_code``, as its townships.csv does), so the report's figures are the access step's.
    Works without ``township_code`` go to the township holding their midpoint."""
    w = pd.DataFrame(works.copy())
    if "township_code" in w and w["township_code"].notna().all():
        codes = w["township_code"].astype(str).str.split(";")
        n = codes.map(len)
        w = w.assign(township_code=codes, km=pd.to_numeric(w["km"], errors="coerce") / n,
                     cost_yuan=pd.to_numeric(w["cost_yuan"], errors="coerce") / n,
                     _share=1.0 / n).explode("township_code")
    else:
        w["township_code"] = _works_township(works, frames.layers.townships)
        w["_share"] = 1.0
    return frames._scope(w)


def _works_township(works, townships) -> pd.Series:
    out = pd.Series("", index=works.index, dtype=object)
    if not hasattr(works, "geometry") or townships is None or len(townships) == 0:
        return out
    import geopandas as gpd

    geoms = works.geometry
    ok = geoms.notna() & ~geoms.is_empty
    if not ok.any():
        return out
    mids = geoms[ok].interpolate(0.5, normalized=True)
    pts = gpd.GeoDataFrame({"i": mids.index}, geometry=mids.values, crs=works.crs)
    tw = townships[["township_code", "geometry"]]
    if tw.crs is not None and pts.crs is not None and tw.crs != pts.crs:
        pts = pts.to_crs(tw.crs)
    hit = gpd.sjoin(pts, tw, how="left", predicate="within")
    hit = hit[~hit["i"].duplicated()]
    miss = hit["township_code"].isna()
    if miss.any():  # on a boundary or outside: the nearest township
        near = gpd.sjoin_nearest(pts[pts["i"].isin(hit.loc[miss, "i"])], tw, how="left")
        near = near[~near["i"].duplicated()]
        hit.loc[miss, "township_code"] = near.set_index("i")["township_code"].reindex(
            hit.loc[miss, "i"]).values
    out.loc[hit["i"].values] = hit["township_code"].astype(str).values
    return out
