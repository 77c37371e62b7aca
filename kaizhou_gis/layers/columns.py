"""The contract's columns coerced to their types (codes, counts, yes/no), defaults for optional
columns, and the registered poor population per settlement (:func:`estimate_poor_population`).
"""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.errors import format_ids
from kaizhou_gis.layers.contract import _FALSE, _TOWNSHIP_KINDS, _TRUE, SCHEMA, _Col, _ids, _present


def _to_code(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Codes as text: ints and integral floats without ".0"; missing → None. Also the missing mask."""
    if pd.api.types.is_bool_dtype(s):
        t = s.astype("string")
    elif pd.api.types.is_integer_dtype(s):
        t = s.astype("Int64").astype("string")
    elif pd.api.types.is_float_dtype(s):
        integral = s.notna() & (s == np.round(s))
        t = s.astype("string")
        t[integral] = s[integral].astype("int64").astype("string")
    else:
        t = s.map(lambda v: v if v is None or isinstance(v, str) else
                  (str(int(v)) if isinstance(v, (float, np.floating)) and np.isfinite(v)
                   and float(v).is_integer() else str(v)), na_action="ignore").astype("string")
    t = t.str.strip().str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    missing = (t.isna() | (t == "")).to_numpy(dtype=bool)
    out = t.astype(object).where(~missing, None)
    return out, missing


def _to_number(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Numbers, the mask of missing values and the mask of non-numeric text."""
    present = s.map(_present).to_numpy()
    num = pd.to_numeric(s.map(lambda v: str(v).strip().replace(",", "") if isinstance(v, str) else v),
                        errors="coerce")
    bad = present & num.isna().to_numpy()
    return num.astype(float), ~present, bad


def _to_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    def conv(v):
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if not _present(v):
            return False
        t = str(v).strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        return None
    vals = s.map(conv)
    bad = vals.isna().to_numpy()
    return vals.fillna(False).astype(bool), bad


def _check_columns(name: str, gdf: gpd.GeoDataFrame, plan, problems: list[str],
                   notes: list[str]) -> gpd.GeoDataFrame:
    """Coerce the contract's columns to their types, collecting problems; fill optional ones."""
    _, id_col, cols = SCHEMA[name]
    out = gdf.copy()
    for col in cols:
        if col.name not in out.columns:
            if col.required:
                aka = plan.get(f"aliases.{col.name}", [])
                problems.append(
                    f"{name}.{col.name}: required column missing (columns present: "
                    f"{', '.join(map(str, [c for c in gdf.columns if c != gdf.geometry.name][:12]))}); "
                    f"add it or rename a column to '{col.name}'"
                    + (f" (recognized aliases: {', '.join(aka)})" if aka else "") + ".")
                continue
            out[col.name] = _default(name, col.name, out, plan, notes)
            continue
        if col.kind == "code":
            out[col.name] = _code_column(name, col, out, problems, notes)
        elif col.kind in ("int", "float"):
            out[col.name] = _number_column(name, col, out, id_col, problems, notes)
        elif col.kind == "bool":
            out[col.name] = _bool_column(name, col, out, id_col, problems)
        else:
            out[col.name] = _text_column(name, col, out, id_col, problems)
    return out


def _code_column(name: str, col: _Col, out: gpd.GeoDataFrame, problems: list[str],
                 notes: list[str]) -> pd.Series:
    """A code column as text (empty road ids numbered, 12-digit township codes cut to 9)."""
    vals, missing = _to_code(out[col.name])
    if missing.any() and name == "roads" and col.name == "road_id":
        rows = np.flatnonzero(missing)
        vals = vals.copy()
        vals.iloc[rows] = [f"r{i + 1}" for i in rows]
        notes.append(f"roads.road_id: empty in {missing.sum()} row(s); ids r<row> "
                     f"assigned ({format_ids(vals.iloc[rows].tolist())}).")
        missing = np.zeros(len(vals), dtype=bool)
    if missing.any():
        problems.append(f"{name}.{col.name}: missing value in {missing.sum()} row(s) "
                        f"({format_ids(_ids(out, missing, None))}); give every row a code.")
    if col.digits == 9:
        # NBS tables print township codes with 12 digits: 500154001000 -> 500154001
        long = np.array([v is not None and v.isdigit() and len(v) == 12 and v.endswith("000")
                         for v in vals], dtype=bool)
        if long.any():
            vals = vals.copy()
            vals[long] = [v[:9] for v in vals[long]]
            notes.append(f"{name}.{col.name}: {long.sum()} 12-digit township code(s) "
                         f"ending in 000 cut to their 9 digits.")
    if col.digits:
        wrong = np.array([v is not None and not (v.isdigit() and len(v) == col.digits)
                          for v in vals])
        if wrong.any():
            problems.append(
                f"{name}.{col.name}: not a {col.digits}-digit code in {wrong.sum()} row(s) "
                f"({format_ids(vals[wrong].tolist())}); use the {col.digits}-digit "
                f"统计用区划代码 (store codes as text to keep leading zeros).")
    return vals


def _number_column(name: str, col: _Col, out: gpd.GeoDataFrame, id_col: str | None,
                   problems: list[str], notes: list[str]) -> pd.Series:
    """A count (int) or measure (float) column as numbers; an int column with every value a
    finite, non-negative number becomes int64 (rounded), else it stays float."""
    s = out[col.name]
    num, missing, bad = _to_number(s)
    infinite = np.isinf(num.to_numpy())
    if infinite.any():
        problems.append(f"{name}.{col.name}: infinite value (inf) in {infinite.sum()} "
                        f"row(s) ({format_ids(_ids(out, infinite, id_col))}); write the "
                        f"real number.")
        num = num.where(~infinite, np.nan)
    if bad.any():
        problems.append(f"{name}.{col.name}: not a number in {bad.sum()} row(s) "
                        f"({format_ids(_ids(out, bad, id_col))}: "
                        f"{format_ids(s[bad].astype(str).tolist(), 3)}); write plain numbers.")
    if col.kind != "int":
        return num
    if missing.any():
        problems.append(f"{name}.{col.name}: missing value in {missing.sum()} row(s) "
                        f"({format_ids(_ids(out, missing, id_col))}); fill in a "
                        f"number (0 if none).")
    neg = (num < 0).to_numpy()
    if neg.any():
        problems.append(f"{name}.{col.name}: negative in {neg.sum()} row(s) "
                        f"({format_ids(_ids(out, neg, id_col))}); counts must be ≥ 0.")
    ok = num.notna().to_numpy()
    frac = ok & (np.abs(num - np.round(num)) > 1e-9).to_numpy()
    if frac.any():
        notes.append(f"{name}.{col.name}: {frac.sum()} non-integer count(s) rounded "
                     f"({format_ids(_ids(out, frac, id_col))}).")
    if not (bad.any() or missing.any() or neg.any() or infinite.any()
            or (num.abs() > 1e15).any()):
        return np.round(num).astype("int64")
    return num


def _bool_column(name: str, col: _Col, out: gpd.GeoDataFrame, id_col: str | None,
                 problems: list[str]) -> pd.Series:
    """A yes/no column as bool (是/否, 1/0, true/false; empty is no)."""
    s = out[col.name]
    vals, bad = _to_bool(s)
    if bad.any():
        problems.append(f"{name}.{col.name}: not a yes/no value in {bad.sum()} row(s) "
                        f"({format_ids(_ids(out, bad, id_col))}: "
                        f"{format_ids(s[bad].astype(str).tolist(), 3)}); use 是/否, 1/0 or "
                        f"true/false.")
    return vals


def _text_column(name: str, col: _Col, out: gpd.GeoDataFrame, id_col: str | None,
                 problems: list[str]) -> pd.Series:
    """A text column stripped, missing as ""; a required one must not be empty."""
    filled = out[col.name].astype("string").str.strip().fillna("")
    if col.required:
        missing = (filled == "").to_numpy()
        if missing.any():
            problems.append(f"{name}.{col.name}: empty in {missing.sum()} row(s) "
                            f"({format_ids(_ids(out, missing, id_col))}); fill it in.")
    return filled.astype(object)


def _default(name: str, col: str, gdf: gpd.GeoDataFrame, plan, notes: list[str]) -> Any:
    """Value of an optional column the input lacks (noted)."""
    n = len(gdf)
    if name == "boundary" and col == "code":
        value: Any = plan.get("meta.district_code", "")
    elif name == "boundary" and col == "name":
        value = plan.get("meta.district_name", "")
    elif col == "kind" and name in ("townships", "villages") and "name" in gdf.columns:
        names = gdf["name"].astype(str)
        if name == "townships":
            value = names.map(lambda t: next((k for k in _TOWNSHIP_KINDS if t.endswith(k)), "")).tolist()
        else:
            value = np.where(names.str.endswith("社区"), "社区", "村").tolist()
        notes.append(f"{name}.kind: no column; derived from the names.")
        return value
    elif col in ("poverty_village", "deep_poverty"):
        notes.append(f"{name}.{col}: no column; every village counts as not {col.replace('_', ' ')}.")
        return np.zeros(n, dtype=bool)
    elif col in ("elevation_m", "poor_population"):
        return np.full(n, np.nan)  # poor_population: estimated in _poor_population
    elif col == "capacity_households":
        value = plan.get("relocation.sites.capacity_households", 0)
        notes.append(f"{name}.capacity_households: no column; every site takes {value} households "
                     f"(relocation.sites.capacity_households).")
        return np.full(n, int(value), dtype="int64")
    elif col == "name":
        key = SCHEMA[name][1]
        return gdf[key].astype(str).tolist() if key in gdf.columns else [""] * n
    elif col == "road_id":
        notes.append(f"{name}.road_id: no column; ids r1..r{n} assigned in file order.")
        return [f"r{i + 1}" for i in range(n)]
    elif col == "surface":
        return [""] * n  # filled from the class in _normalize_roads
    else:
        value = ""
    return [value] * n


#: ``settlements.poor_population_basis`` values: from the layer, or estimated by the tool.
POOR_BASIS_LAYER = "layer"

POOR_BASIS_ESTIMATED = "estimated"


def estimate_poor_population(s: gpd.GeoDataFrame, plan, problems: list[str], notes: list[str],
                     estimated: list[dict]) -> gpd.GeoDataFrame:
    """Registered poor people (建档立卡贫困人口) per settlement, checked, or estimated where missing.

    The plan's relocation quotas (ch.5) count registered poor people, not all residents. A layer
    without ``poor_population`` (or a row without a value) gets ``population`` x the plan file's
    ``baseline.poverty_incidence_pct``, rounded; ``poor_population_basis`` says which rows are
    estimated, a note and ``estimated`` (for :mod:`kaizhou_gis.provenance`) say so.
    """
    if "population" not in s.columns:
        return s
    s = s.copy()
    if "poor_population" not in s.columns:
        s["poor_population"] = np.nan
    poor = pd.to_numeric(s["poor_population"], errors="coerce").astype(float)
    pop = pd.to_numeric(s["population"], errors="coerce").astype(float)
    neg = (poor < 0).to_numpy()
    if neg.any():
        problems.append(f"settlements.poor_population: negative in {neg.sum()} row(s) "
                        f"({format_ids(_ids(s, neg, 'settlement_id'))}); counts must be ≥ 0.")
    over = (poor > pop + 1e-9).to_numpy()
    if over.any():
        problems.append(f"settlements.poor_population: more registered poor people than residents "
                        f"(population) in {over.sum()} row(s) "
                        f"({format_ids(_ids(s, over, 'settlement_id'))}); poor_population counts "
                        f"the registered poor (建档立卡贫困人口) among the residents, so it must not "
                        f"exceed population.")
    frac = (poor.notna() & (np.abs(poor - np.round(poor)) > 1e-9)).to_numpy()
    if frac.any():
        notes.append(f"settlements.poor_population: {frac.sum()} non-integer count(s) rounded "
                     f"({format_ids(_ids(s, frac, 'settlement_id'))}).")
    missing = poor.isna().to_numpy()
    incidence = float(plan.get("baseline.poverty_incidence_pct", 0.0))
    s["poor_population_basis"] = np.where(missing, POOR_BASIS_ESTIMATED, POOR_BASIS_LAYER)
    if missing.any():
        est = np.round(pop.fillna(0.0).to_numpy() * incidence / 100.0)
        poor = poor.where(~missing, est)
        whole = missing.all()
        where = ("no poor_population column" if whole else
                 f"poor_population empty in {missing.sum()} of {len(s)} row(s) "
                 f"({format_ids(_ids(s, missing, 'settlement_id'))})")
        notes.append(f"settlements.poor_population: {where}; registered poor people estimated as "
                     f"population x the plan's poverty incidence ({incidence:g} %, "
                     f"baseline.poverty_incidence_pct) = {int(est[missing].sum()):,} people "
                     f"(poor_population_basis = estimated). Give the column (建档立卡贫困人口) "
                     f"for the real figures.")
        estimated.append({
            "layer": "settlements", "column": "poor_population", "rows": int(missing.sum()),
            "of": int(len(s)),
            "how_zh": f"{'全部' if whole else f'{int(missing.sum())}个'}自然村缺少建档立卡贫困人口，"
                      f"按规划贫困发生率{incidence:g}%估算（人口×{incidence:g}%）",
            "how_en": f"registered poor people missing for {int(missing.sum())} of {len(s)} "
                      f"settlements; estimated as population x the plan's poverty incidence "
                      f"({incidence:g} %)"})
    if not (neg.any() or over.any()):
        s["poor_population"] = np.round(poor.fillna(0.0)).astype("int64")
    else:
        s["poor_population"] = poor
    return s
