"""Resettlement sites: the grid, the vetoes and suitability, and the selection sized to the demand."""
from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import StepError
from kaizhou_gis.plan import Plan
from kaizhou_gis.relocation.labels import _fmt, _labelled
from kaizhou_gis.terrain import point_terrain


def _paved(roads: gpd.GeoDataFrame, plan: Plan) -> gpd.GeoDataFrame:
    paved = {str(v).strip().lower() for v in plan["access.paved_surfaces"]}
    return roads[roads["surface"].astype(str).str.strip().str.lower().isin(paved)]


def _nearest_distance(points: gpd.GeoSeries, targets: gpd.GeoSeries) -> np.ndarray:
    """Distance from each point to the nearest target geometry (NaN when there are none)."""
    out = np.full(len(points), np.nan)
    targets = targets[~(targets.isna() | targets.is_empty)]
    if len(points) == 0 or len(targets) == 0:
        return out
    (ip, it), dist = targets.sindex.nearest(points, return_distance=True, return_all=False)
    out[ip] = dist
    return out


def grid_sites(boundary: gpd.GeoDataFrame, *, spacing_m: float) -> gpd.GeoSeries:
    """Points of a square grid of ``spacing_m`` over the boundary's bounding box (work CRS)."""
    if spacing_m <= 0:
        raise StepError(f"relocation.sites.candidate_spacing_m must be positive; got {spacing_m}.")
    minx, miny, maxx, maxy = boundary.total_bounds
    xs = np.arange(minx + spacing_m / 2, maxx, spacing_m)
    ys = np.arange(maxy - spacing_m / 2, miny, -spacing_m)
    X, Y = np.meshgrid(xs, ys)
    return gpd.GeoSeries(gpd.points_from_xy(X.ravel(), Y.ravel()), crs=boundary.crs)


def evaluate_sites(points: gpd.GeoDataFrame, *, layers, plan: Plan, dem) -> gpd.GeoDataFrame:
    """Vetoes and suitability of candidate resettlement sites.

    Parameters
    ----------
    points
        Site points in the work CRS; a ``township_code`` column is used when present, otherwise
        the township polygon holding the point (or the nearest one) gives it.
    layers
        The :class:`~kaizhou_gis.layers.Layers` (boundary, townships, seats, villages, roads).
    plan
        The plan (``relocation`` and ``relocation.sites``).
    dem
        Open DEM dataset.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``points`` with ``township_code``, ``elevation_m``, ``slope_deg``,
        ``road_distance_m``, ``seat_distance_m``, ``village_distance_m``, ``vetoes`` (text, ""
        when none) and ``suitability`` (0-100, weighted by ``relocation.sites.weights``).
    """
    sp = plan.section("relocation.sites")
    thr = float(plan["relocation.threshold_m"])
    g = points.copy()
    tw = layers.townships[["township_code", layers.townships.geometry.name]].copy()
    tw["township_code"] = tw["township_code"].astype(str)
    if "township_code" not in g.columns or g["township_code"].isna().all():
        g["township_code"] = ""
    g["township_code"] = g["township_code"].fillna("").astype(str)
    blank = g["township_code"] == ""
    if blank.any():
        j = gpd.sjoin_nearest(g.loc[blank, [g.geometry.name]], tw, how="left")
        j = j[~j.index.duplicated()]
        g.loc[blank, "township_code"] = j["township_code"].reindex(g.index[blank]).fillna("").astype(str)
    t = point_terrain(g.geometry, dem, slope_radius_m=float(plan["relocation.slope_window_m"]),
                      relief_radius_m=float(plan["relocation.slope_window_m"]))
    g["elevation_m"] = t["elevation_m"]
    g["slope_deg"] = t["slope_deg"].round(2)
    # the distances are shown to 0.1 m; the suitability is computed from them unrounded, so that
    # coordinate noise far below 0.1 m (a File Geodatabase's 0.1 mm grid) cannot move a
    # distance across a rounding boundary and reorder the sites
    d_road = _nearest_distance(g.geometry, _paved(layers.roads, plan).geometry)
    g["road_distance_m"] = np.round(d_road, 1)
    seats = layers.township_seats.copy()
    seats["township_code"] = seats["township_code"].astype(str)
    seat_geom = seats.drop_duplicates("township_code").set_index("township_code").geometry
    own_seat = gpd.GeoSeries(g["township_code"].map(seat_geom), index=g.index, crs=g.crs)
    d_seat = np.asarray(g.geometry.distance(own_seat, align=False), dtype="float64")
    no_seat = ~np.isfinite(d_seat)
    if no_seat.any():
        d_seat[no_seat] = _nearest_distance(g.geometry[no_seat], seats.geometry)
    g["seat_distance_m"] = np.round(d_seat, 1)
    d_village = _nearest_distance(g.geometry, layers.villages.geometry)
    g["village_distance_m"] = np.round(d_village, 1)
    inside = shapely.contains_xy(shapely.union_all(layers.boundary.geometry.to_numpy()),
                                 g.geometry.x.to_numpy(), g.geometry.y.to_numpy())
    vetoes = []
    for ins, e, s in zip(inside, g["elevation_m"].to_numpy(), g["slope_deg"].to_numpy()):
        v = [] if ins else ["outside the boundary"]
        if np.isnan(e):
            v.append("no elevation")
        elif e > thr:
            v.append(f"elevation {_fmt(e)} m > {_fmt(thr)} m")
        if not np.isnan(s) and s > sp["max_slope_deg"]:
            v.append(f"slope {s:.1f}° > {sp['max_slope_deg']:g}°")
        vetoes.append("; ".join(v))
    g["vetoes"] = vetoes
    w = sp["weights"]
    parts = {
        "slope": (1 - g["slope_deg"] / float(sp["max_slope_deg"])).clip(0, 1),
        "road": pd.Series(1 - d_road / float(sp["road_distance_scale_m"]), index=g.index).clip(0, 1),
        "seat": pd.Series(1 - d_seat / float(sp["seat_distance_scale_m"]), index=g.index).clip(0, 1),
        "villages": pd.Series(1 - d_village / float(sp["village_distance_scale_m"]),
                              index=g.index).clip(0, 1),
    }
    g["suitability"] = (100.0 * sum(w[k] * parts[k].fillna(0) for k in w)).round(1)
    return g


#: Distances (m) within this of each other are equal in the site rules: grid points two steps
#: apart are ``2 x candidate_spacing_m`` apart up to float noise (a few 1e-12 m, decided by the
#: grid's origin, i.e. by the boundary's coordinates), so ``>= min_site_spacing_m`` must not
#: depend on which side of the value the noise falls.
SPACING_TOL_M = 0.001


def _spaced(xy: np.ndarray, chosen: list[np.ndarray], min_spacing_m: float) -> bool:
    """True when point ``xy`` is at least ``min_spacing_m`` (less ``SPACING_TOL_M``) from every
    point in ``chosen``."""
    if not chosen:
        return True
    c = np.asarray(chosen)
    return bool(np.hypot(c[:, 0] - xy[0], c[:, 1] - xy[1]).min() >= min_spacing_m - SPACING_TOL_M)


def _veto_kinds(vetoes: pd.Series) -> dict[str, int]:
    v = vetoes.astype(str)
    return {"elevation": int(v.str.contains("elevation").sum()),
            "slope": int(v.str.contains("slope").sum()),
            "other": int(v.str.contains("outside|no elevation").sum())}


def select_sites(evaluated: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, *,
                 capacity_households: int, min_spacing_m: float, max_distance_km: float,
                 own_before_neighbours: bool = True,
                 township_names: dict[str, str] | None = None
                 ) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Resettlement sites sized to each township's demand, where the demand is.

    1. Each township with households to house gets ``ceil(households / capacity_households)``
       sites: its unvetoed grid points in order of falling suitability, each at least
       ``min_spacing_m`` from the township's sites already taken.
    2. With ``own_before_neighbours``, a township short of sites first takes its remaining
       unvetoed points, nearest to its settlements first, closer than ``min_spacing_m``
       (``spacing_relaxed``; in effect a larger site) before using other townships' ground.
    3. What is still short is covered by unvetoed points of *other* townships (``site_role`` =
       "cover", ``serves_township_code`` = the township covered), nearest to the township's
       households still without room (smallest household-weighted mean distance), each at least
       ``min_spacing_m`` from every site taken so far; then, as a last resort, without the
       spacing. A site's room (``capacity_households``) is given to the township's nearest
       settlements within ``max_distance_km``, and a point is only taken when it is within that
       distance of a settlement still without room. Townships are served most constrained first
       (fewest free feasible points in reach per site still needed).
    What still cannot be covered is the township's ``shortfall_households``.

    Parameters
    ----------
    evaluated
        Output of :func:`evaluate_sites` (``township_code``, ``suitability``, ``vetoes``).
    demand
        Settlements to house (``township_code``, ``households``), same CRS.
    capacity_households
        Households per generated site (> 0).
    min_spacing_m, max_distance_km
        Spacing of the sites; longest allowed move.
    own_before_neighbours
        Step 2 above (``relocation.sites.own_points_before_neighbours``).
    township_names
        Township code -> name, for the site names and the coverage notes.

    Returns
    -------
    (sites, coverage)
        ``sites``: the chosen points with ``site_id`` (``S<host township>-<k>``), ``name``,
        ``rank`` (k), ``capacity_households``, ``serves_township_code`` (the township whose
        demand the site was chosen for), ``for_township`` (its name), ``site_role`` ("own" or
        "cover") and ``source``. ``coverage``: one row per township with demand:
        ``township_code``, ``demand_households``, ``sites_needed``, ``feasible_points``,
        ``own_sites``, ``cover_sites``, ``cover_site_ids``, ``capacity_for_township``,
        ``shortfall_households``, ``site_note``.
    """
    cap = int(capacity_households)
    if cap <= 0:
        raise StepError(f"relocation.sites.capacity_households must be positive; got {cap}.")
    names = township_names or {}
    ev = evaluated.copy()
    ev["township_code"] = ev["township_code"].astype(str)
    ok = ev[ev["vetoes"] == ""].sort_values(["township_code", "suitability"],
                                            ascending=[True, False], kind="mergesort")
    d = demand[demand["households"] > 0]
    hh = d.groupby(d["township_code"].astype(str))["households"].sum().astype(int)
    sel = _SiteSelection(ok, d, hh, cap=cap, min_spacing_m=min_spacing_m,
                         max_m=max_distance_km * 1000.0)
    sel.take_own_spaced()
    own_spaced = dict(sel.own)
    sel.give_first_room()
    if own_before_neighbours:
        for code in sel.order():
            sel.fill(code, True, own_only=True)
    for relaxed in (False, True):
        for code in sel.order():
            sel.fill(code, relaxed)
    out = _site_table(ok, sel.picks, cap, names)
    coverage = _coverage_table(ev, sel, dict(zip(out.index, out["site_id"])), own_spaced, names,
                               min_spacing_m=min_spacing_m, max_distance_km=max_distance_km)
    return out, coverage


def _coverage_table(ev: gpd.GeoDataFrame, sel: _SiteSelection, site_of: dict[Any, str],
                    own_spaced: dict[str, int], names: dict[str, str], *, min_spacing_m: float,
                    max_distance_km: float) -> pd.DataFrame:
    """One row per township with demand: its need, feasible points, own and cover sites, the
    capacity chosen for it and what is still short, with a note saying why (labelled)."""
    hh, cap = sel.hh, sel.cap
    left_over = {c: max(int(sel.rem[c].sum()), 0) for c in hh.index}
    by_tw = ev.groupby("township_code", sort=False).indices
    rows = []
    for code in sorted(hh.index):
        mine = ev.iloc[by_tw.get(code, np.zeros(0, dtype=np.int64))]
        n_ok = int((mine["vetoes"] == "").sum())
        note = _coverage_note(mine, n_ok, own_spaced=own_spaced[code], need=sel.need[code],
                              n_cover=len(sel.cover[code]), n_relaxed=sel.relaxed_n[code],
                              left_over=left_over[code], min_spacing_m=min_spacing_m,
                              max_distance_km=max_distance_km)
        rows.append({"township_code": code, "township_name": names.get(code, code),
                     "demand_households": int(hh[code]), "sites_needed": sel.need[code],
                     "feasible_points": n_ok, "own_sites": sel.own[code], "cover_sites": len(sel.cover[code]),
                     "cover_site_ids": ";".join(site_of[i] for i in sel.cover[code]),
                     "capacity_for_township": (sel.own[code] + len(sel.cover[code])) * cap,
                     "shortfall_households": left_over[code], "site_note": note})
    return _labelled(pd.DataFrame(rows, columns=COVERAGE_COLUMNS))


#: Columns of the per-township coverage table (``site_coverage``).
COVERAGE_COLUMNS = ["township_code", "township_name", "demand_households", "sites_needed",
                    "feasible_points", "own_sites", "cover_sites", "cover_site_ids",
                    "capacity_for_township", "shortfall_households", "site_note"]


class _SiteSelection:
    """The state of :func:`select_sites` while it picks points: the unvetoed points ``ok``
    (by township, falling suitability), the picks so far, and per township the households of
    each settlement not yet given room at a site chosen for it.

    Per township only the points within ``max_m`` of one of its settlements are kept with their
    distances to its settlements (a k-d tree finds them): no other point can be in its reach or
    give room to its settlements, so the work grows with the points near each township, not
    with the district's points times its townships. The spacing from the sites taken so far is
    checked against the sites in the neighbouring cells of a grid of ``min_spacing_m``."""

    def __init__(self, ok: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, hh: pd.Series, *, cap: int,
                 min_spacing_m: float, max_m: float) -> None:
        from scipy.spatial import cKDTree

        self.ok, self.hh, self.cap = ok, hh, cap
        self.min_spacing_m, self.max_m = min_spacing_m, max_m
        self.xy = np.column_stack([ok.geometry.x.to_numpy(), ok.geometry.y.to_numpy()]) if len(ok) \
            else np.zeros((0, 2))
        self.pos = {i: k for k, i in enumerate(ok.index)}
        self.need = {c: -(-int(v) // cap) for c, v in hh.items()}
        self.picks: list[tuple[Any, str, str, bool]] = []  # (index, serves township, role, spacing relaxed)
        self.own: dict[str, int] = {}
        self.free = np.ones(len(ok), dtype=bool)  # not yet taken
        self.spacing = _SpacingGrid(min_spacing_m)
        self.cover: dict[str, list[Any]] = {c: [] for c in hh.index}
        self.relaxed_n: dict[str, int] = {c: 0 for c in hh.index}
        self.tw_ok = ok["township_code"].to_numpy()
        self.suit_all = ok["suitability"].to_numpy()
        # the township's points in ``ok`` order (falling suitability)
        self.tw_points = pd.Series(self.tw_ok).groupby(self.tw_ok, sort=False).indices
        # households of each settlement not yet given room at a site chosen for its township; a
        # site's room goes to the township's nearest settlements within reach (a siting rule only:
        # the households themselves are placed by the assignment LP). ``near[code]``: the points
        # (positions in ``ok``, ascending) within ``max_m`` of a settlement of the township,
        # ``dist[code]``: their distances to its settlements, ``row[code]``: position -> row
        self.dist: dict[str, np.ndarray] = {}
        self.rem: dict[str, np.ndarray] = {}
        self.near: dict[str, np.ndarray] = {}
        self.row: dict[str, dict[int, int]] = {}
        xy = self.xy
        tree = cKDTree(xy) if len(xy) else None
        tw_d = demand["township_code"].astype(str).to_numpy()
        by_tw = pd.Series(tw_d).groupby(tw_d, sort=False).indices
        for code in hh.index:
            pts = demand.iloc[np.asarray(by_tw.get(code, []), dtype=np.int64)]
            sx, sy = pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()
            near = np.zeros(0, dtype=np.int64)
            if tree is not None and len(sx):
                # a slightly larger radius for the tree, then the exact test below
                hits = tree.query_ball_point(np.column_stack([sx, sy]), r=max_m * (1 + 1e-9) + 1e-6)
                near = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))
            d = np.hypot(xy[near, 0][:, None] - sx[None, :], xy[near, 1][:, None] - sy[None, :])
            keep = (d <= max_m).any(axis=1)
            self.near[code], self.dist[code] = near[keep], d[keep]
            self.row[code] = {int(k): r for r, k in enumerate(near[keep])}
            self.rem[code] = pts["households"].to_numpy(dtype=float)

    def take_own_spaced(self) -> None:
        """Step 1: each township's best unvetoed points, ``min_spacing_m`` apart, up to its need."""
        ok, xy = self.ok, self.xy
        for code in sorted(self.hh.index):
            chosen: list[np.ndarray] = []
            for k in self.tw_points.get(code, ()):
                if len(chosen) >= self.need[code]:
                    break
                if _spaced(xy[k], chosen, self.min_spacing_m):
                    chosen.append(xy[k])
                    self.picks.append((ok.index[k], code, "own", False))
            self.own[code] = len(chosen)
        for i, _, _, _ in self.picks:
            self._take(self.pos[i])

    def _take(self, k: int) -> None:
        self.free[k] = False
        self.spacing.add(self.xy[k])

    def give_first_room(self) -> None:
        """The room of the step-1 sites to their townships' nearest settlements."""
        for i, code, _, _ in self.picks:
            self.give_room(code, self.pos[i])

    def give_room(self, code: str, k: int) -> None:
        r = self.row[code].get(int(k))
        if r is None:  # no settlement of the township within reach of the point
            return
        room = float(self.cap)
        d, rem = self.dist[code][r], self.rem[code]
        for j in np.argsort(d, kind="stable"):
            if room <= 0 or d[j] > self.max_m:
                break
            take = min(room, rem[j])
            rem[j] -= take
            room -= take

    def _in_reach(self, code: str) -> np.ndarray:
        """Rows of ``dist[code]`` (points) within reach of a settlement of ``code`` still
        without room."""
        return np.asarray((self.dist[code][:, self.rem[code] > 0] <= self.max_m).any(axis=1), dtype=bool)

    def fill(self, code: str, relaxed: bool, own_only: bool = False) -> None:
        """Points for ``code`` until its households all have room or no point is left."""
        ok, tw_ok = self.ok, self.tw_ok
        near, dist = self.near[code], self.dist[code]
        while self.rem[code].sum() > 0:
            w = self.rem[code]
            rows = np.flatnonzero(self._in_reach(code) & self.free[near])
            if own_only:
                rows = rows[tw_ok[near[rows]] == code]
            k_all = near[rows]
            # household-weighted mean distance, a row at a time (the same value whichever rows
            # are summed together)
            mean_d = (dist[rows] * w).sum(axis=1) / w.sum()
            # strict pass: other townships' points (the own ones failed the spacing already);
            # relaxed pass: the township's own free points first, then the nearest elsewhere
            own_first = (tw_ok[k_all] != code).astype(int) if relaxed else np.zeros(len(k_all), dtype=int)
            pick = None
            for k in k_all[np.lexsort((-self.suit_all[k_all], mean_d, own_first))]:
                if relaxed or self.spacing.spaced(self.xy[k]):
                    pick = int(k)
                    break
            if pick is None:
                return
            self._take(pick)
            is_own = tw_ok[pick] == code
            self.picks.append((ok.index[pick], code, "own" if is_own else "cover", relaxed))
            if is_own:
                self.own[code] += 1
            else:
                self.cover[code].append(ok.index[pick])
            self.relaxed_n[code] += int(relaxed)
            self.give_room(code, pick)

    def order(self) -> list[str]:
        """Townships still short, most constrained first: fewest free feasible points in reach
        per site short."""
        rem = self.rem
        short = [c for c in self.hh.index if rem[c].sum() > 0]
        n_free = {c: int((self.free[self.near[c]] & self._in_reach(c)).sum()) for c in short}
        return sorted(short, key=lambda c: (n_free[c] - math.ceil(rem[c].sum() / self.cap),
                                            -rem[c].sum(), c))


class _SpacingGrid:
    """The sites taken so far, in square cells of at least ``min_spacing_m``: a point closer
    than that to a site lies in the site's cell or one of its eight neighbours."""

    def __init__(self, min_spacing_m: float) -> None:
        self.min_spacing_m = min_spacing_m
        self.size = max(float(min_spacing_m), 1.0) * (1 + 1e-6)
        self.cells: dict[tuple[int, int] | None, list[np.ndarray]] = {}
        self.all: list[np.ndarray] = []

    def _cell(self, xy: np.ndarray) -> tuple[int, int] | None:
        if not np.isfinite(xy).all():
            return None
        return int(math.floor(xy[0] / self.size)), int(math.floor(xy[1] / self.size))

    def add(self, xy: np.ndarray) -> None:
        self.all.append(xy)
        cell = self._cell(xy)
        self.cells.setdefault(cell, []).append(xy)  # key None: a point without coordinates

    def spaced(self, xy: np.ndarray) -> bool:
        """:func:`_spaced` of ``xy`` against every site added."""
        cell = self._cell(xy)
        if cell is None or None in self.cells:  # not finite: compare with every site
            return _spaced(xy, self.all, self.min_spacing_m)
        cx, cy = cell
        near = [p for dx in (-1, 0, 1) for dy in (-1, 0, 1) for p in self.cells.get((cx + dx, cy + dy), ())]
        if not near:
            return True
        return _spaced(xy, near, self.min_spacing_m)


def _site_table(ok: gpd.GeoDataFrame, picks: list[tuple[Any, str, str, bool]], cap: int,
                names: dict[str, str]) -> gpd.GeoDataFrame:
    """The picked points as sites: ids and ranks per host township (own sites first, by falling
    suitability), names, role, capacity."""
    out = ok.loc[[i for i, _, _, _ in picks]].copy()
    out["serves_township_code"] = [c for _, c, _, _ in picks]
    out["site_role"] = [r for _, _, r, _ in picks]
    out["spacing_relaxed"] = [x for _, _, _, x in picks]
    out["_own_first"] = (out["site_role"] != "own").astype(int)
    out["_suit"] = -out["suitability"]
    out = out.sort_values(["township_code", "_own_first", "_suit"], kind="mergesort")
    out["rank"] = out.groupby("township_code").cumcount() + 1
    out["site_id"] = [f"S{c}-{k}" for c, k in zip(out["township_code"], out["rank"])]
    out["for_township"] = [names.get(c, c) for c in out["serves_township_code"]]
    out["name"] = [f"候选安置点 {c}-{k}" if role == "own" else f"候选安置点 {c}-{k}(安置{names.get(s, s)})"
                   for c, k, role, s in zip(out["township_code"], out["rank"], out["site_role"],
                                             out["serves_township_code"])]
    out["capacity_households"] = cap
    out["source"] = "generated"
    return out.drop(columns=["_own_first", "_suit"])


def _coverage_note(mine: pd.DataFrame, n_ok: int, *, own_spaced: int, need: int, n_cover: int,
                   n_relaxed: int, left_over: int, min_spacing_m: float, max_distance_km: float) -> str:
    """The ``site_note`` of a township: why it has the sites it has (``mine``: its grid points)."""
    kinds = _veto_kinds(mine.loc[mine["vetoes"] != "", "vetoes"])
    if n_ok == 0:
        note = (f"no feasible site of its own ({len(mine)} grid point(s), all vetoed: "
                f"{kinds['elevation']} above the elevation threshold, {kinds['slope']} too steep)")
    elif own_spaced < need:
        note = (f"too few feasible points at {min_spacing_m:,.0f} m spacing ({n_ok} feasible, "
                f"{own_spaced} site(s) of {need} needed)")
    else:
        note = "own sites"
    if n_cover:
        note += f"; covered by {n_cover} site(s) in neighbouring townships"
    if n_relaxed:
        note += (f"; {n_relaxed} site(s) closer than {min_spacing_m:,.0f} m to another "
                 f"(the township's own remaining feasible points, or no spaced feasible point "
                 f"left within {max_distance_km:g} km)")
    if left_over:
        note += (f"; {left_over:,} households not covered by a site chosen for it "
                 f"(no further feasible point within {max_distance_km:g} km)")
    return note


def _coverage_user(sites: gpd.GeoDataFrame, demand: pd.DataFrame,
                   names: dict[str, str]) -> pd.DataFrame:
    """Per-township demand beside the capacity of the user's sites in that township."""
    d = demand[demand["households"] > 0]
    hh = d.groupby(d["township_code"].astype(str))["households"].sum().astype(int)
    tw = sites["township_code"].fillna("").astype(str)
    n_sites = tw.value_counts()
    cap = sites["capacity_households"].groupby(tw).sum()
    rows = []
    for code in sorted(hh.index):
        n = int(n_sites.get(code, 0))
        c = int(cap.get(code, 0))
        note = ("no user site in the township" if n == 0 else
                "own sites" if c >= hh[code] else "own sites hold less than the demand")
        rows.append({"township_code": code, "township_name": names.get(code, code),
                     "demand_households": int(hh[code]), "sites_needed": None,
                     "feasible_points": None, "own_sites": n, "cover_sites": 0, "cover_site_ids": "",
                     "capacity_for_township": c, "shortfall_households": max(int(hh[code]) - c, 0),
                     "site_note": note})
    return _labelled(pd.DataFrame(rows, columns=COVERAGE_COLUMNS))
