"""Plausibility checks: inputs that read fine but would give wrong answers without a word.

The layer loader (:mod:`kaizhou_gis.layers`) and the plan loader (:mod:`kaizhou_gis.plan`) call
these; each adds problems (exit 2, naming the layer, column, ids and the fix) or notes (a warning
and a correct result). Thresholds that are a judgement live in the plan file's ``[checks]``
section:

* DEM values impossible on Earth (below -500 m or above 9,000 m), or far outside the district's
  plausible range (``checks.dem_plausible_m``) at the layers' points, with a hint about units
  (feet); typical void values (-32768, -9999, 32767, float32 lowest) in a DEM without a nodata
  tag are treated as nodata, with a note;
* households and population per settlement and per village beyond plausible bounds (errors) and
  people per household outside ``checks.people_per_household`` (warnings), naming the ids;
* names that decode into mostly non-Chinese characters (mojibake) or hold U+FFFD replacement
  characters in layers that should be Chinese: named as a wrong text encoding;
* longitude and latitude swapped; coordinates that are NaN or infinite, with their row ids;
* NaN/inf and negative values among the plan's thresholds, weights and distances.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import format_ids
from kaizhou_gis.layers.contract import _ids

#: Lowest and highest ground on Earth, with a margin (Dead Sea shore -430 m, Everest 8,849 m).
EARTH_MIN_M, EARTH_MAX_M = -500.0, 9000.0
#: Values DEM producers use for voids when they do not tag a nodata value.
VOID_VALUES = (-32768.0, -9999.0, 32767.0, -32767.0)
FEET_PER_METRE = 3.28084

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
#: Characters Chinese text turns into when its GBK/UTF-8 bytes are decoded as Latin-1/cp1252
#: (Latin-1 supplement, Latin extended, C1 controls, cp1252 punctuation) or the replacement char.
_MOJIBAKE = re.compile(r"[\u0080-\u024f\u02c0-\u02df\u2013-\u2030\u2039\u203a\u20ac\u2122\ufffd]")
_NAME_LAYERS = {"townships": "township_code", "township_seats": "township_code",
                "villages": "village_code", "settlements": "settlement_id", "sites": "site_id",
                "boundary": "code", "roads": "road_id"}


# --------------------------------------------------------------------------------------------
# plan values


def plan_value_problems(flat: dict[str, dict]) -> list[str]:
    """NaN/inf anywhere in a setting, and negative weights (``{key: {"value": ..., "source": ...}}``)."""
    problems = []
    for key, leaf in flat.items():
        v = leaf.get("value")
        where = " (given on the command line)" if str(leaf.get("source", "")).startswith(
            "command-line override") else ""
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else [(None, v)]
        for k, x in items:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                continue
            name = key + (f".{k}" if isinstance(k, str) else f"[{k}]" if k is not None else "")
            if not math.isfinite(x):
                problems.append(f"{name}: {x} is not a usable number{where} (NaN and infinity are "
                                f"refused: a threshold, weight or distance must be a finite "
                                f"number); give a real value.")
            elif key.endswith("weights") and x < 0:
                problems.append(f"{name}: weight {x:g} is negative{where}; weights must be ≥ 0 "
                                f"(and add up to 1).")
    return problems


def option_number(option: str, value: float | None, *, minimum: float | None = 0.0) -> None:
    """Refuse a NaN, infinite or (below ``minimum``) negative number given to a command option."""
    from kaizhou_gis.errors import OptionError

    if value is None:
        return
    if not math.isfinite(value):
        raise OptionError(f"{option} {value}: not a usable number (NaN and infinity are refused); "
                          f"give a finite number, e.g. {option} 800.")
    if minimum is not None and value < minimum:
        raise OptionError(f"{option} {value:g}: must not be below {minimum:g}.")


# --------------------------------------------------------------------------------------------
# coordinates


def nonfinite_rows(gdf) -> np.ndarray:
    """Rows whose geometry has a NaN or infinite coordinate (``Point(108.5, NaN)``)."""
    geoms = gdf.geometry.values
    bad = np.zeros(len(gdf), dtype=bool)
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not usable.any():
        return bad
    coords, index = shapely.get_coordinates(geoms[usable], return_index=True)
    if len(coords):
        finite = np.isfinite(coords).all(axis=1)
        rows = np.flatnonzero(usable)[np.unique(index[~finite])]
        bad[rows] = True
    return bad


def swapped_lonlat(bounds: np.ndarray) -> bool:
    """True when per-row bounds (minx, miny, maxx, maxy) are not lon/lat but their swap is."""
    b = bounds[~np.isnan(bounds).any(axis=1)]
    if not len(b):
        return False
    with np.errstate(invalid="ignore"):
        as_is = (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
        swapped = (b[:, 1] >= -180) & (b[:, 3] <= 180) & (b[:, 0] >= -90) & (b[:, 2] <= 90)
    return bool((~as_is).any() and swapped[~as_is].all())


def swapped_message(name: str, bounds: np.ndarray, ids: list[str] | None = None) -> str:
    b = bounds[~np.isnan(bounds).any(axis=1)]
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    rows = f" in {len(ids)} row(s) ({format_ids(ids)})" if ids else ""
    return (f"{name}.geometry: longitude and latitude are swapped{rows}: x runs {x0:.6g} .. "
            f"{x1:.6g}, which looks like latitude, and y {y0:.6g} .. {y1:.6g}, which looks like "
            f"longitude; swap the two coordinates (e.g. in a table: exchange the lon and lat "
            f"columns before making points; with GDAL: ogr2ogr -dialect sqlite -sql \"SELECT "
            f"ST_FlipCoordinates(geometry), * FROM {name}\" fixed.gpkg input).")


# --------------------------------------------------------------------------------------------
# DEM


def inspect_dem(ds, name: str, problems: list[str], notes: list[str], *,
                max_cells: int = 16_000_000, scope: str = "") -> dict[str, Any]:
    """Read the DEM (decimated to at most ``max_cells``), find untagged voids and impossible values.

    ``ds`` is the dataset to read: the district's window of the DEM (:func:`kaizhou_gis.layers.
    dem_window`) or the whole DEM; ``scope`` says which in the messages (e.g. " in the district's
    window").

    Returns ``{"void_value": v or None, "band": float array with NaN for nodata, "transform":
    affine of the band}``; an empty dict when the data cannot be read (a problem is added).
    """
    from rasterio.enums import Resampling

    scale = max(1.0, math.sqrt(ds.width * ds.height / max_cells))
    h, w = max(1, int(ds.height / scale)), max(1, int(ds.width / scale))
    try:
        raw = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest, masked=False)
    except Exception as e:  # rasterio.errors.RasterioIOError: "Read failed", TIFFReadEncodedTile ...
        problems.append(dem_read_problem(name, e))
        return {}
    transform = ds.transform @ ds.transform.scale(ds.width / w, ds.height / h)
    z = raw.astype("float64")
    nodata = ds.nodata
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        z[raw == nodata] = np.nan
    z[~np.isfinite(z)] = np.nan
    void_value = None
    if nodata is None:
        counts = {v: int(np.count_nonzero(z == v)) for v in VOID_VALUES}
        lowest = int(np.count_nonzero(z < -1e38))  # float32 lowest, another common void
        if lowest:
            counts[float(np.finfo("float32").min)] = lowest
        v, n = max(counts.items(), key=lambda kv: kv[1])
        if n:
            void_value = v
            z[(z == v) | ((z < -1e38) if v < -1e38 else False)] = np.nan
            notes.append(f"warning: dem: {name} declares no nodata value, and {n:,} of its {z.size:,} "
                         f"cells{scope}{' (sampled)' if scale > 1 else ''} hold {v:g}, a typical void "
                         f"value; those cells are treated as nodata (their settlements get no "
                         f"elevation). Tag it to silence this note: gdal_edit.py -a_nodata {v:g} "
                         f"{name}.")
    valid = z[np.isfinite(z)]
    if valid.size:
        lo, hi = float(valid.min()), float(valid.max())
        if lo < EARTH_MIN_M or hi > EARTH_MAX_M:
            problems.append(f"dem: {name} holds values{scope} from {lo:,.0f} to {hi:,.0f}, which no "
                            f"elevation in metres on Earth reaches ({EARTH_MIN_M:,.0f} .. "
                            f"{EARTH_MAX_M:,.0f} m){_unit_hint(lo, hi)}; give a DEM in metres "
                            f"with its voids tagged as nodata.")
    return {"void_value": void_value, "band": z, "transform": transform}


def _unit_hint(lo: float, hi: float) -> str:
    if lo in VOID_VALUES or lo < -1e38:
        return (f" - {lo:g} is a typical void value: the DEM's voids are not its nodata tag "
                f"(set the right one with gdal_edit.py -a_nodata {lo:g})")
    if EARTH_MIN_M <= lo / FEET_PER_METRE and hi / FEET_PER_METRE <= EARTH_MAX_M:
        return (f" - in feet it would be {lo / FEET_PER_METRE:,.0f} .. {hi / FEET_PER_METRE:,.0f} m "
                f"(convert: gdal_calc.py -A dem.tif --calc=\"A*0.3048\" --outfile dem_m.tif)")
    for unit, f in (("decimetres", 10.0), ("centimetres", 100.0)):
        if EARTH_MIN_M <= lo / f and hi / f <= EARTH_MAX_M:
            return f" - in {unit} it would be {lo / f:,.0f} .. {hi / f:,.0f} m (scale it)"
    if lo < EARTH_MIN_M and lo <= -1000:
        return (" - very low values are usually voids of another value than the nodata tag "
                "(set the right one with gdal_edit.py -a_nodata)")
    return ""


def dem_read_problem(name: str, e: Exception) -> str:
    """A clear message for a DEM whose data GDAL cannot read (truncated or corrupt file)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"dem: {name} is truncated or corrupt - GDAL opened it but could not read its "
            f"elevations ({text}); copy or download the file again (compare its size with the "
            f"original) or re-export it, e.g. gdal_translate -of GTiff in.tif dem.tif.")


def dem_point_problems(layers: dict, dem: dict, plan, problems: list[str], notes: list[str]) -> None:
    """Elevations at the layers' points outside the district's plausible range (plan checks)."""
    from kaizhou_gis.crs import transformer

    band, transform = dem.get("band"), dem.get("transform")
    if band is None or dem.get("crs") is None:
        return
    lo, hi = (float(x) for x in plan.get("checks.dem_plausible_m", [EARTH_MIN_M, EARTH_MAX_M]))
    found = []
    for name, id_col in (("township_seats", "township_code"), ("villages", "village_code"),
                         ("settlements", "settlement_id")):
        g = layers.get(name)
        if g is None or g.crs is None or g.empty:
            continue
        pts = g.geometry.values
        usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
        if not usable.any():
            continue
        xy = shapely.get_coordinates(shapely.point_on_surface(pts[usable]))
        x, y = transformer(g.crs, dem["crs"]).transform(xy[:, 0], xy[:, 1])
        assert transform is not None  # set with band by read_dem_sample
        inv = ~transform
        col, row = inv @ (np.asarray(x), np.asarray(y))
        row, col = np.floor(row).astype(int), np.floor(col).astype(int)
        inside = (row >= 0) & (row < band.shape[0]) & (col >= 0) & (col < band.shape[1])
        z = np.full(len(g), np.nan)
        zu = np.full(usable.sum(), np.nan)
        zu[inside] = band[row[inside], col[inside]]
        z[usable] = zu
        with np.errstate(invalid="ignore"):
            out = (z < lo) | (z > hi)
        if out.any():
            found.append((name, _ids(g, out, id_col), z[out]))
    if not found:
        return
    vals = np.concatenate([f[2] for f in found])
    parts = "; ".join(f"{len(ids)} {name} ({format_ids(ids, 3)})" for name, ids, _ in found)
    zmin, zmax = float(vals.min()), float(vals.max())
    hint = ""
    if zmax > hi and lo <= zmax / FEET_PER_METRE <= hi:
        hint = (f" Is the DEM in feet? {zmax:,.0f} ft = {zmax / FEET_PER_METRE:,.0f} m; convert "
                f"it to metres (gdal_calc.py -A dem.tif --calc=\"A*0.3048\" --outfile dem_m.tif).")
    problems.append(f"dem: elevations at {parts} lie outside the district's plausible range "
                    f"{lo:,.0f} .. {hi:,.0f} m (checks.dem_plausible_m in the plan file; found "
                    f"{zmin:,.0f} .. {zmax:,.0f}).{hint} If the values are right, widen "
                    f"checks.dem_plausible_m.")


# --------------------------------------------------------------------------------------------
# counts


def count_problems(layers: dict, plan, problems: list[str], notes: list[str]) -> None:
    """Households and population beyond plausible bounds; implausible people per household."""

    ratio_lo, ratio_hi = (float(x) for x in plan.get("checks.people_per_household", [1.0, 10.0]))
    for name, id_col, what in (("settlements", "settlement_id", "settlement"),
                               ("villages", "village_code", "village")):
        g = layers.get(name)
        if g is None or g.empty:
            continue
        for col in ("households", "population"):
            if col not in g.columns:
                continue
            limit = plan.get(f"checks.{what}_{col}_max")
            v = pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float)
            if limit is None:
                continue
            with np.errstate(invalid="ignore"):
                big = v > float(limit)
            if big.any():
                top = np.nanmax(v[big])
                problems.append(f"{name}.{col}: {big.sum()} {what}(s) with more than {limit:,} "
                                f"{col} ({format_ids(_ids(g, big, id_col))}; largest {top:,.0f}), "
                                f"beyond what one {what} plausibly has (checks.{what}_{col}_max in "
                                f"the plan file); correct the figures (a unit or typing error?) or, "
                                f"if they are right, raise the limit.")
        if {"households", "population"} <= set(g.columns):
            hh = pd.to_numeric(g["households"], errors="coerce").to_numpy(dtype=float)
            pop = pd.to_numeric(g["population"], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = pop / hh
                odd = (hh > 0) & np.isfinite(ratio) & ((ratio < ratio_lo) | (ratio > ratio_hi))
                odd |= (hh == 0) & (pop > 0)
            if odd.any():
                ex = [f"{i}: {p:,.0f} people / {h:,.0f} households"
                      for i, p, h in zip(_ids(g, odd, id_col)[:3], pop[odd][:3], hh[odd][:3])]
                notes.append(f"warning: {name}: {odd.sum()} {what}(s) with an implausible number "
                             f"of people per household (outside {ratio_lo:g} .. {ratio_hi:g}, "
                             f"checks.people_per_household; {'; '.join(ex)}"
                             f"{' ...' if odd.sum() > 3 else ''}); check that households and "
                             f"population are not swapped or mistyped.")


# --------------------------------------------------------------------------------------------
# text encoding


def _looks_mojibake(text: str) -> bool:
    return not _CJK.search(text) and bool(_MOJIBAKE.search(text))


def _repair_hint(samples: list[str], encoding: str | None) -> str:
    """What the names would be in GBK/UTF-8 if their bytes were re-read (e.g. '驷马社区')."""
    tried = [encoding] if encoding else []
    tried += ["latin-1", "cp1252"]
    for wrong in tried:
        for right in ("gb18030", "utf-8"):
            try:
                fixed = [s.encode(wrong).decode(right) for s in samples]
            except (UnicodeError, LookupError):
                continue
            if all(_CJK.search(f) for f in fixed):
                return (f" ('{samples[0]}' is '{fixed[0]}' when its bytes are read as "
                        f"{'GBK' if right == 'gb18030' else 'UTF-8'})")
    return ""


def encoding_problems(layers: dict, plan, problems: list[str], *, encoding: str | None,
                      layer_encodings: dict[str, str | None]) -> None:
    """Names that decoded into mojibake or replacement characters: blame the text encoding.

    Applies to the layers whose names should be Chinese (the plan's district name is Chinese).
    A ``<layer>.kind`` problem of the same layer is dropped: its garbled values come from the
    same wrong decoding, and the fix is the encoding, not the kind column.
    """

    chinese = bool(_CJK.search(str(plan.get("meta.district_name", ""))))
    for name, id_col in _NAME_LAYERS.items():
        g = layers.get(name)
        if g is None or g.empty:
            continue
        text_cols = [c for c in g.columns if c != g.geometry.name and g[c].dtype == object]
        if not text_cols:
            continue
        enc = layer_encodings.get(name) or encoding
        told = (f"the encoding given ({'--encoding ' + encoding if enc == encoding else enc}) "
                f"is likely wrong" if enc else "the file's text encoding was likely guessed wrong")
        fix = ("use the encoding the file was saved in: GBK (GB18030) for Chinese Shapefiles from "
               "ArcGIS/Excel, or UTF-8 (--encoding GBK, or a .cpg file holding GBK)")
        bad_rows = np.zeros(len(g), dtype=bool)
        msg = None
        for col in text_cols:
            s = g[col]
            vals = s.where(s.map(lambda v: isinstance(v, str) and v.strip() != ""), None)
            fffd = vals.map(lambda v: isinstance(v, str) and "\ufffd" in v).to_numpy(dtype=bool)
            if fffd.any():
                bad_rows |= fffd
                ex = vals[fffd].iloc[0]
                msg = msg or (f"{name}.{col}: {fffd.sum()} value(s) hold U+FFFD replacement "
                              f"characters ({format_ids(_ids(g, fffd, id_col))}: '{ex}'), so bytes "
                              f"were lost in decoding; {told}; {fix}.")
            if not chinese or col != "name":
                continue
            present = vals.notna().to_numpy()
            moj = vals.map(lambda v: isinstance(v, str) and _looks_mojibake(v)).to_numpy(dtype=bool)
            if present.sum() and moj.sum() >= max(1, 0.5 * present.sum()):
                bad_rows |= moj
                samples = vals[moj].head(3).tolist()
                msg = (f"{name}.{col}: {moj.sum()} of {present.sum()} names have no Chinese "
                       f"character and look like mis-decoded text ({format_ids(_ids(g, moj, id_col), 3)}"
                       f": {', '.join(repr(x) for x in samples)}){_repair_hint(samples, enc)}; "
                       f"{told}; {fix}.")
        if msg:
            problems[:] = [p for p in problems if not p.startswith(f"{name}.kind:")]
            problems.append(msg)
