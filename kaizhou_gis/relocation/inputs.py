"""The relocation step's inputs: settlements with village and township, road access, poor population."""
from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.admin import NO_TOWNSHIP, settlement_townships
from kaizhou_gis.errors import KaizhouGISError, LayerError, format_ids
from kaizhou_gis.plan import Plan
from kaizhou_gis.results import StepNeeds

log = logging.getLogger(__name__)


def settlement_table(settlements: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
                     townships: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Settlements with their administrative village and township attached.

    Parameters
    ----------
    settlements, villages, townships
        Layers of the layer contract (any CRS; the settlements' CRS is kept).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``settlements`` (same index) with ``village_name``, ``township_code``,
        ``township_name``, ``in_poverty_village`` and ``deep_poverty_village``. A settlement whose
        ``village_code`` is not in the villages layer gets empty names and False flags.
    """
    need = [c for c in ("settlement_id", "village_code", "households", "population")
            if c not in settlements.columns]
    if need:
        raise LayerError(f"settlements: missing column(s) {', '.join(need)}; the relocation step "
                         f"needs settlement_id, village_code, households and population.")
    s = settlements.copy()
    vil = pd.DataFrame(villages.drop(columns=villages.geometry.name)).drop_duplicates("village_code")
    vil = vil.set_index(vil["village_code"].astype(str))
    code = s["village_code"].astype(str)
    s["village_name"] = code.map(vil["name"]).fillna("").astype(str)
    s["township_code"] = settlement_townships(s, villages, warn=False).astype(str)
    tw = pd.Series(townships["name"].astype(str).to_numpy(),
                   index=townships["township_code"].astype(str))
    tw = tw[~tw.index.duplicated()]
    s["township_name"] = s["township_code"].map(tw).fillna("").astype(str)
    for src, dst in (("poverty_village", "in_poverty_village"), ("deep_poverty", "deep_poverty_village")):
        flag = vil[src].fillna(False).astype(bool) if src in vil.columns else pd.Series(False, index=vil.index)
        s[dst] = code.map(flag).fillna(False).astype(bool)
    for c in ("households", "population"):
        s[c] = pd.to_numeric(s[c], errors="coerce").fillna(0).astype("int64")
    missing = s.loc[s["township_code"] == NO_TOWNSHIP, "settlement_id"].astype(str).tolist()
    if missing:
        log.warning("settlements: %d settlement(s) whose village_code is not in the villages layer "
                    "(kept, without township): %s", len(missing), format_ids(missing))
    return s


def access_columns(needs: StepNeeds, settlements: gpd.GeoDataFrame) -> tuple[pd.DataFrame | None, str]:
    """Road access of each settlement from the ``access`` step (``needs``), or None with the reason.

    Returns
    -------
    (table, note)
        ``table`` aligned to ``settlements.index`` with ``tongda``, ``tongchang`` and
        ``network_km_to_seat``; ``note`` says where remoteness came from or why it is unknown.
    """
    try:
        res = needs.result("access")
        acc = res.data.settlements
    except KaizhouGISError as e:
        return None, f"road access unavailable (access step: {' '.join(str(e).split())}); remoteness unknown"
    except Exception as e:  # a bug in another step must not stop the relocation list
        msg = " ".join(str(e).split())
        log.warning("access step crashed (%s: %s); relocation continues without remoteness",
                    type(e).__name__, msg)
        log.debug("access step traceback", exc_info=True)
        return None, f"road access unavailable (access step crashed: {type(e).__name__}: {msg}); remoteness unknown"
    need = {"tongchang", "network_km_to_seat"}
    if acc is None or not need <= set(acc.columns):
        return None, "road access unavailable (access data lacks tongchang/network_km_to_seat); remoteness unknown"
    if "settlement_id" in acc.columns:
        acc = pd.DataFrame(acc).assign(settlement_id=acc["settlement_id"].astype(str))
        acc = acc.drop_duplicates("settlement_id").set_index("settlement_id")
        key = settlements["settlement_id"].astype(str)
        table = pd.DataFrame({c: key.map(acc[c]) if c in acc.columns else np.nan
                              for c in ("tongda", "tongchang", "network_km_to_seat")},
                             index=settlements.index)
    else:
        table = pd.DataFrame(acc).reindex(settlements.index)[
            [c for c in ("tongda", "tongchang", "network_km_to_seat") if c in acc.columns]]
        if "tongda" not in table.columns:
            table["tongda"] = np.nan
    missing = table["tongchang"].isna()
    if missing.all() and len(table):
        return None, "road access unavailable (no settlement matched the access results); remoteness unknown"
    if missing.any():
        log.warning("access results lack %d settlement(s): %s", int(missing.sum()),
                    format_ids(settlements.loc[missing, "settlement_id"].tolist()))
    table["tongda"] = table["tongda"].astype("boolean")
    table["tongchang"] = table["tongchang"].astype("boolean")
    table["network_km_to_seat"] = pd.to_numeric(table["network_km_to_seat"], errors="coerce")
    return table, "from the access step (通畅 and road km to the township seat)"


def with_poor_population(s: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """``s`` with ``poor_population`` (registered poor, 建档立卡贫困人口), its basis and
    ``accompanying_population`` (the other residents, who move with a settlement: 同步搬迁).

    Layers read by :func:`kaizhou_gis.layers.load_layers` already carry ``poor_population``
    (estimated there when the layer lacks it); a frame built otherwise gets the same estimate.
    """
    s = s.copy()
    if "poor_population" not in s.columns or s["poor_population"].isna().any():
        from kaizhou_gis.layers import estimate_poor_population

        notes: list[str] = []
        s = estimate_poor_population(s, plan, [], notes, [])
        for n in notes:
            log.warning("%s", n)
    if "poor_population_basis" not in s.columns:
        s["poor_population_basis"] = "layer"
    s["poor_population"] = pd.to_numeric(s["poor_population"], errors="coerce").fillna(0).astype("int64")
    s["accompanying_population"] = (s["population"] - s["poor_population"]).clip(lower=0).astype("int64")
    return s
