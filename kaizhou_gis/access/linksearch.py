"""Least-cost new links over the DEM: one multi-source search per group of points from points
every ``access.grade_sample_m`` along the roads they may link to, over the hairpin cell graph
(see :mod:`kaizhou_gis.access.works` for the method and the hairpin model)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from rasterio.windows import transform as window_transform
from shapely.geometry import LineString

from kaizhou_gis.network import DemGrid, terrain_class
from kaizhou_gis.network.costpath import (
    cell_centres,
    grid_cost_matrix,
    points_to_cells,
    search_matrix,
    step_attributes,
    trace,
    window_for,
)


@dataclass(frozen=True)
class LinkSearch:
    """What every least-cost link search over the DEM shares: the candidates (``cand``), the DEM,
    the transformers to and from its CRS, and the limits (``limit``: per candidate, how far from
    the point the link may end)."""

    cand: pd.DataFrame
    dem: DemGrid
    to_dem: Any
    from_dem: Any
    no_link: str
    max_grade_pct: float
    max_link_km: float
    slope_weight: float
    sample_m: float
    end_max_m: float
    limit: np.ndarray
    switchback_terrain_max_pct: float
    cost_per_km: dict
    terrain_slope_deg: dict


@dataclass
class _Searched:
    """One multi-source search over a DEM window (origin ``r0``, ``c0``; ``h`` × ``w`` cells)."""

    r0: int
    c0: int
    h: int
    w: int
    tr: Any
    sub: np.ndarray
    gmax: float
    sxy: np.ndarray
    rep: np.ndarray
    dist: np.ndarray
    pred: np.ndarray
    nearest: np.ndarray
    src_of_cell: dict[int, int]


@dataclass
class _Ends:
    """Candidate end cells around each point (rows: points of the group) and the chosen one."""

    flat: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    own: np.ndarray
    cost: np.ndarray
    best: np.ndarray
    csize: float


def search_groups(s: LinkSearch, groups, out: list, geoms: np.ndarray, L: np.ndarray) -> None:
    """Run one DEM search per group (candidate rows, source edges, to_paved) and fill ``out``.

    The sources are points every ``sample_m`` along the group's source lines ``geoms`` (lengths
    ``L``) within ``max_link_km`` of the group's points."""
    for idx, sel, to_paved in groups:
        txy = shapely.get_coordinates(s.cand.geometry.to_numpy()[idx])
        tx, ty = s.to_dem.transform(txy[:, 0], txy[:, 1])
        win = window_for(list(zip(tx, ty, strict=True)), s.max_link_km * 1000.0, transform=s.dem.transform,
                         crs=s.dem.crs, shape=s.dem.values.shape)
        # sources: points every sample_m along the paved edges of the seat's paved network
        bx = shapely.box(*shapely.bounds(shapely.multipoints(txy)))
        near = sel[shapely.dwithin(geoms[sel], bx, s.max_link_km * 1000.0)]
        if len(near) == 0:
            for i in idx:
                out[i] = {"reason": f"no {'paved ' if to_paved else ''}road of the seat's network "
                                    f"within {s.max_link_km:g} km"}
            continue
        found = _search_window(s, win, geoms, L, near)
        ends = _end_cells(s, found, idx, txy, tx, ty)
        for j, i in enumerate(idx):
            out[i] = _traced_link(s, found, ends, j, txy[j], to_paved)


def _search_window(s: LinkSearch, win, geoms: np.ndarray, L: np.ndarray, near: np.ndarray) -> _Searched:
    """The hairpin cell graph of the DEM window and one multi-source Dijkstra from points every
    ``sample_m`` along the source lines ``near``."""
    nseg = np.maximum(1, np.ceil(L[near] / s.sample_m).astype(np.int64))
    npts = nseg + 1
    rep = np.repeat(near, npts)
    k = np.arange(npts.sum()) - np.repeat(np.cumsum(npts) - npts, npts)
    pts = shapely.line_interpolate_point(geoms[rep], k / np.repeat(nseg, npts), normalized=True)
    sxy = shapely.get_coordinates(pts)
    sx, sy = s.to_dem.transform(sxy[:, 0], sxy[:, 1])
    r0, c0 = int(win.row_off), int(win.col_off)
    h, w = int(win.height), int(win.width)
    sub = s.dem.values[r0:r0 + h, c0:c0 + w]
    tr = window_transform(win, s.dem.transform)
    matrix = _switchback_graph(sub, tr, s.dem.crs, max_grade_pct=s.max_grade_pct,
                               terrain_max_pct=s.switchback_terrain_max_pct, slope_weight=s.slope_weight)
    src_cells = points_to_cells(np.column_stack([sx, sy]), tr, (h, w))
    dist, pred, nearest = search_matrix(matrix, src_cells)
    del matrix
    src_of_cell: dict[int, int] = {}
    for si_, c in enumerate(src_cells.tolist()):
        if c >= 0 and c not in src_of_cell:
            src_of_cell[c] = si_
    return _Searched(r0=r0, c0=c0, h=h, w=w, tr=tr, sub=sub, gmax=s.max_grade_pct / 100.0,
                     sxy=sxy, rep=rep, dist=dist, pred=pred, nearest=nearest, src_of_cell=src_of_cell)


def _end_cells(s: LinkSearch, f: _Searched, idx: np.ndarray, txy: np.ndarray, tx, ty) -> _Ends:
    """Candidate end cells: the point's own cell and the cells around it within the limit; the
    point's own cell when reachable, otherwise the reachable cell nearest to the point."""
    h, w, tr = f.h, f.w, f.tr
    cell0 = points_to_cells(np.column_stack([tx, ty]), tr, (h, w))
    csize = float(np.nanmin([abs(v) for v in _cell_metres(tr, s.dem.crs, h)]))
    R = int(math.ceil(s.end_max_m / max(csize, 1e-6)))
    dr, dc = np.mgrid[-R:R + 1, -R:R + 1]
    dr, dc = dr.ravel(), dc.ravel()
    rr = (cell0 // w)[:, None] + dr[None, :]
    cc = (cell0 % w)[:, None] + dc[None, :]
    inside = (cell0[:, None] >= 0) & (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    flat = np.where(inside, rr * w + cc, 0)
    cen = np.asarray(cell_centres(flat.ravel(), tr, (h, w)), dtype="float64")
    ex, ey = s.from_dem.transform(cen[:, 0], cen[:, 1])
    dd = np.hypot(ex.reshape(flat.shape) - txy[:, 0:1], ey.reshape(flat.shape) - txy[:, 1:2])
    own = (dr == 0) & (dc == 0)
    ok = inside & ((dd <= s.limit[idx][:, None]) | own[None, :])
    cost = np.where(ok, f.dist[flat], np.inf)
    own_k = int(np.flatnonzero(own)[0])
    reach_ok = np.isfinite(cost)
    ring_key = np.where(reach_ok, dd, np.inf)
    best = np.where(reach_ok[:, own_k], own_k, np.argmin(ring_key, axis=1))
    return _Ends(flat=flat, ex=ex.reshape(flat.shape), ey=ey.reshape(flat.shape), own=own, cost=cost, best=best,
                 csize=csize)


def _traced_link(s: LinkSearch, f: _Searched, ends: _Ends, j: int, pt: np.ndarray, to_paved: bool) -> dict:
    """The link of the group's ``j``-th point (at ``pt``) traced back from its end cell, or the
    reason there is none."""
    b_ = ends.best[j]
    if not np.isfinite(ends.cost[j, b_]):
        return {"reason": s.no_link}
    cell = int(ends.flat[j, b_])
    cells = trace(f.pred, cell)
    a_, b2 = np.asarray(cells[:-1]), np.asarray(cells[1:])
    if len(cells) > 1:
        step_corr, g = step_attributes(f.sub, f.tr, s.dem.crs, a_, b2)
        step_road = _road_length(step_corr, g, f.gmax)
        step_grade = np.minimum(g, f.gmax) * 100.0
        step_tgrade = g * 100.0
    else:
        step_road = step_grade = step_tgrade = step_corr = np.zeros(0)
    length = float(step_road.sum())
    mgrade = float(step_grade.max()) if len(step_grade) else 0.0
    tgrade = float(step_tgrade.max()) if len(step_tgrade) else 0.0
    corridor = float(step_corr.sum())
    if length > s.max_link_km * 1000.0:
        return {"reason": f"the shortest new link under {s.max_grade_pct:g} % grade is "
                          f"{length / 1000:.1f} km, longer than {s.max_link_km:g} km"}
    s_idx = f.src_of_cell.get(int(f.nearest[cell]), f.src_of_cell.get(cells[0], -1))
    cxy = np.asarray(cell_centres(cells, f.tr, (f.h, f.w)), dtype="float64").reshape(-1, 2)
    wx, wy = s.from_dem.transform(cxy[:, 0], cxy[:, 1])
    wxy = np.column_stack([wx, wy])
    end = pt if ends.own[b_] else np.array([ends.ex[j, b_], ends.ey[j, b_]])
    wxy = np.vstack([f.sxy[s_idx], wxy[1:-1], end]) if len(wxy) >= 2 else np.vstack([f.sxy[s_idx], end])
    line = LineString(wxy)
    if len(wxy) > 2:  # Douglas-Peucker at half a cell: cell-centre zig-zags go
        line = line.simplify(0.5 * ends.csize, preserve_topology=False)
    if line.length <= 0:
        return {"reason": "the point lies on the paved network already"}
    rc = np.divmod(np.asarray(cells), f.w)
    sl = s.dem.slope[f.r0:f.r0 + f.h, f.c0:f.c0 + f.w][rc[0], rc[1]]
    mean_slope = float(np.nanmean(sl)) if np.isfinite(sl).any() else np.nan
    terr = terrain_class(np.array([mean_slope]), s.terrain_slope_deg)[0]
    # road length = drawn corridor + hairpin lengthening where the terrain is steeper
    km = (line.length + max(0.0, length - corridor)) / 1000.0
    return {"geometry": line, "km": km, "terrain": terr, "cost": km * s.cost_per_km[terr],
            "max_grade_pct": mgrade, "max_terrain_grade_pct": tgrade,
            "hairpin_km": max(0.0, length - corridor) / 1000.0,
            "path_m": float(np.hypot(*(end - pt))), "to_paved": to_paved, "reason": "",
            # the cell path, for joining a later link onto this one (join_link)
            "cells": (rc[0] + f.r0) * s.dem.values.shape[1] + (rc[1] + f.c0),
            "centres": np.column_stack([wx, wy]), "end": end, "cell_slope": sl,
            "step_road_m": step_road, "step_corridor_m": step_corr,
            "step_grade_pct": step_grade, "step_terrain_grade_pct": step_tgrade,
            "simplify_m": 0.5 * ends.csize, "source_line": int(f.rep[s_idx])}


def _road_length(h: np.ndarray, g: np.ndarray, gmax: float) -> np.ndarray:
    """Road length of steps of horizontal length ``h`` over terrain grade ``g``: ``h`` where
    ``g`` is at most ``gmax``, else ``h * g / gmax`` (hairpins at the maximum grade)."""
    return h * np.maximum(1.0, g / gmax)


def _switchback_graph(dem: np.ndarray, transform, crs, *, max_grade_pct: float, terrain_max_pct: float,
                      slope_weight: float) -> sp.csr_matrix:
    """Cost matrix of the cell graph whose steps may cross terrain up to ``terrain_max_pct`` by
    hairpin bends.

    A step of horizontal length h over terrain grade g > max grade is climbed by a road of length
    h * g / max grade at the maximum grade (switchbacks); gentler steps keep length h and grade g.
    Step cost = road length * (1 + slope_weight * road grade). With ``terrain_max_pct`` equal to
    ``max_grade_pct`` this is the plain grade-limited graph.

    Only the costs are kept (:func:`~kaizhou_gis.network.costpath.grid_cost_matrix`); the length
    and grades of a traced path's steps come from
    :func:`~kaizhou_gis.network.costpath.step_attributes` and :func:`_road_length`.
    """
    gmax = max_grade_pct / 100.0

    def step_cost(h: np.ndarray, g: np.ndarray) -> np.ndarray:
        return _road_length(h, g, gmax) * (1.0 + slope_weight * np.minimum(g, gmax))

    return grid_cost_matrix(dem, transform, crs, max_grade_pct=max(terrain_max_pct, max_grade_pct),
                            step_cost=step_cost)


def _cell_metres(transform, crs, height: int) -> tuple[float, float]:
    """Median cell width and height of a grid in metres."""
    from kaizhou_gis.terrain import cell_size_m

    dx, dy = cell_size_m(transform, crs, height)
    return float(np.median(dx)), float(np.median(dy))
