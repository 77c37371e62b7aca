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
from rasterio.transform import Affine
from rasterio.windows import transform as window_transform
from scipy.sparse.csgraph import connected_components
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
from kaizhou_gis.terrain import cell_size_m


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
    dist: Any
    pred: Any
    nearest: Any
    src_of_cell: dict[int, int]
    src_cells: np.ndarray | None = None


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
    ok: np.ndarray
    dd: np.ndarray
    cell0: np.ndarray
    own_k: int = 0


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
        hh, ww = int(win.height), int(win.width)
        if hh * ww > WHOLE_WINDOW_MAX_CELLS and max(hh, ww) > TILE_CELLS + 2 * TILE_MARGIN:
            _search_tiled(s, win, geoms, L, near, idx, txy, tx, ty, to_paved, out)
            continue
        found = _search_window(s, win, geoms, L, near)
        ends = _end_cells(s, found, idx, txy, tx, ty)
        for j, i in enumerate(idx):
            out[i] = _traced_link(s, found, ends, j, txy[j], to_paved)


def _sources(s: LinkSearch, win, geoms: np.ndarray, L: np.ndarray, near: np.ndarray) -> _Searched:
    """The DEM window ``win`` and the sources of its search, points every ``sample_m`` along
    the source lines ``near`` (no search yet: ``dist``, ``pred``, ``nearest`` are None)."""
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
    src_cells = points_to_cells(np.column_stack([sx, sy]), tr, (h, w))
    src_of_cell: dict[int, int] = {}
    for si_, c in enumerate(src_cells.tolist()):
        if c >= 0 and c not in src_of_cell:
            src_of_cell[c] = si_
    return _Searched(r0=r0, c0=c0, h=h, w=w, tr=tr, sub=sub, gmax=s.max_grade_pct / 100.0,
                     sxy=sxy, rep=rep, dist=None, pred=None, nearest=None, src_of_cell=src_of_cell,
                     src_cells=src_cells)


def _search_window(s: LinkSearch, win, geoms: np.ndarray, L: np.ndarray, near: np.ndarray) -> _Searched:
    """The hairpin cell graph of the DEM window and one multi-source Dijkstra from points every
    ``sample_m`` along the source lines ``near``."""
    f = _sources(s, win, geoms, L, near)
    matrix = _switchback_graph(f.sub, f.tr, s.dem.crs, max_grade_pct=s.max_grade_pct,
                               terrain_max_pct=s.switchback_terrain_max_pct, slope_weight=s.slope_weight)
    f.dist, f.pred, f.nearest = search_matrix(matrix, f.src_cells)
    return f


# --------------------------------------------------------------------------------------------
# The search of a large window, tile by tile
# --------------------------------------------------------------------------------------------
#: A window of more than ``WHOLE_WINDOW_MAX_CELLS`` cells and larger than a tile's (``TILE_CELLS``
#: plus ``TILE_MARGIN`` on each side) is searched tile by tile: the one search over a window of
#: 12 M cells peaks at about 1.5 GB, and is faster than the tiles below that (a 10x district's
#: 9.9 M-cell window: 36.9 CPU-s in one search, 46.4 in tiles of 2,048, 59.5 in tiles of 512, the
#: same links). Tile by tile: the candidates of each square of ``TILE_CELLS`` cells are searched over the
#: box of their cells plus a margin of ``TILE_MARGIN`` cells (doubled for the candidates whose
#: answer it does not prove, over the box of their cells, see :func:`_search_tiled`). At 90 m
#: cells a tile is 184 km a side (a part of 5.3 M cells, ~0.6 GB while searched), the margin 11.5 km.
WHOLE_WINDOW_MAX_CELLS = 12_000_000
TILE_CELLS = 2048
TILE_MARGIN = 128


class _InWindow:
    """The result array ``a`` of a search over the part (rows ``wr0``.., columns ``wc0``..,
    ``wh`` x ``ww`` cells) of a window ``fw_w`` cells wide, read by flat index of the window:
    ``fill`` outside the part; with ``cells``, values that are flat indices of the part (the
    predecessors, the nearest sources) are turned into flat indices of the window."""

    def __init__(self, a: np.ndarray, wr0: int, wc0: int, wh: int, ww: int, fw_w: int, fill,
                 cells: bool = False):
        self.a, self.wr0, self.wc0, self.wh, self.ww, self.fw_w = a, wr0, wc0, wh, ww, fw_w
        self.fill, self.cells = fill, cells

    def __getitem__(self, k):
        k = np.asarray(k, dtype=np.int64)
        r, c = np.divmod(k, self.fw_w)
        r, c = r - self.wr0, c - self.wc0
        inside = (r >= 0) & (r < self.wh) & (c >= 0) & (c < self.ww)
        v = np.where(inside, self.a[np.where(inside, r * self.ww + c, 0)], self.fill)
        if self.cells:
            vr, vc = np.divmod(v, self.ww)
            v = np.where(v >= 0, (vr + self.wr0) * self.fw_w + vc + self.wc0, v)
        return v[()] if v.ndim == 0 else v


def _search_tiled(s: LinkSearch, win, geoms: np.ndarray, L: np.ndarray, near: np.ndarray,
                  idx: np.ndarray, txy: np.ndarray, tx, ty, to_paved: bool, out: list) -> None:
    """The search of :func:`_search_window` over a large window ``win``, tile by tile, with the
    same links (and reasons) as the one search over the whole window.

    The candidates in each square of :data:`TILE_CELLS` cells are searched over the box of their
    cells plus a margin (the part of the window), with the edge costs of the whole window (the same cell
    sizes) and the sources that lie in the part. A candidate's answer from a part is the whole
    window's when the part proves it:

    * its chosen end cell (its own, or the nearest reachable within the limit) costs less than
      any path from outside the part could: a step's cost is at least its horizontal length,
      and a path from a cell outside the part crosses at least as many rows (columns) of the
      part, each at least the smallest cell height (width) of the window, as lie between the
      cell and that side. Such a cost is the whole window's least cost, and every least-cost
      path lies inside the part (the same path, the same source);
    * every end cell it would prefer (its own cell, and the nearer cells of the ring) that the
      part cannot reach is unreachable in the whole window too: the cell's connected part of
      the part's cell graph holds no source and no cell on a side of the part that borders the
      rest of the window, so it is the cell's whole connected part of the window's graph.

    The other candidates are searched again (over the box of their cells) with twice the margin,
    until the part is the whole window (which proves everything). Memory is that of one part, not of the whole window.
    """
    f = _sources(s, win, geoms, L, near)
    h, w = f.h, f.w
    dx, dy = cell_size_m(f.tr, s.dem.crs, h)  # the window's, as its one graph would use
    step_min = (float(np.min(dx)), float(np.min(dy)))
    ends = _end_geometry(s, f, idx, txy, tx, ty)
    cells = f.src_cells
    assert cells is not None  # set by _sources
    src_rc = np.divmod(cells[cells >= 0], w)
    cell0 = ends.cell0
    R = int(round((ends.flat.shape[1] ** 0.5 - 1) / 2))  # the end cells' reach around the point's cell
    margin = np.full(len(idx), TILE_MARGIN, dtype=np.int64)
    pending = np.arange(len(idx))
    size = TILE_CELLS
    while len(pending):
        retry = []
        tile = np.where(cell0 >= 0, (cell0 // w) // size * (w // size + 1) + (cell0 % w) // size, -1)
        for t in np.unique(tile[pending]).tolist():
            js = pending[tile[pending] == t]
            if t < 0:  # the point lies outside the window: no end cell, no link
                _choose(ends, js, _InWindow(np.zeros(1), 0, 0, 0, 0, w, np.inf))
                for j in js.tolist():
                    out[idx[j]] = _traced_link(s, f, ends, j, txy[j], to_paved)
                continue
            r, c = np.divmod(cell0[js], w)  # the part: the points' cells plus the margin
            m = int(margin[js].max())
            wr0, wr1 = max(0, int(r.min()) - m), min(h, int(r.max()) + 1 + m)
            wc0, wc1 = max(0, int(c.min()) - m), min(w, int(c.max()) + 1 + m)
            part = _search_part(s, f, wr0, wr1, wc0, wc1, dx, dy, src_rc)
            _choose(ends, js, part.dist)
            for j in js.tolist():
                if _proved(ends, j, part, (wr0, wr1, wc0, wc1), (h, w), step_min):
                    out[idx[j]] = _traced_link(s, part, ends, j, txy[j], to_paved)
                    continue
                retry.append(j)
                # twice the margin, or more: when the part reached the chosen end cell at cost D
                # (a path of the whole window too, so its least cost is at most D), a margin that
                # holds every path of cost D to it (which proves it if the chosen cell stays)
                got = float(ends.cost[j, ends.best[j]])
                need = math.ceil(got / min(step_min)) + R + 2 if math.isfinite(got) else 0
                margin[j] = max(2 * m, min(need, max(h, w)))
            del part
        pending = np.asarray(retry, dtype=np.int64)
        size = max(1, TILE_CELLS // 8)  # the points searched again: in smaller groups

@dataclass
class _Part(_Searched):
    """A search over a part of a window (rows ``wr0``..``wr1``, columns ``wc0``..``wc1``):
    ``dist``, ``pred``, ``nearest`` read by flat index of the window (:class:`_InWindow`);
    ``labels`` the connected parts of the part's cell graph (computed when first asked)."""

    wr0: int = 0
    wr1: int = 0
    wc0: int = 0
    wc1: int = 0
    matrix: Any = None
    labels: np.ndarray | None = None


def _search_part(s: LinkSearch, f: _Searched, wr0: int, wr1: int, wc0: int, wc1: int,
                 dx: np.ndarray, dy: np.ndarray, src_rc) -> _Part:
    """One multi-source search over the part rows ``wr0:wr1``, columns ``wc0:wc1`` of the window
    of ``f``, from the window's sources that lie in the part."""
    wh, ww = wr1 - wr0, wc1 - wc0
    z = f.sub[wr0:wr1, wc0:wc1]
    tr = f.tr @ Affine.translation(wc0, wr0)
    matrix = _switchback_graph(z, tr, s.dem.crs, max_grade_pct=s.max_grade_pct,
                               terrain_max_pct=s.switchback_terrain_max_pct, slope_weight=s.slope_weight,
                               cell_sizes=(dx[wr0:wr1], dy[wr0:wr1]))
    sr, sc = src_rc
    inside = (sr >= wr0) & (sr < wr1) & (sc >= wc0) & (sc < wc1)
    dist, pred, nearest = search_matrix(matrix, (sr[inside] - wr0) * ww + (sc[inside] - wc0))
    w = f.w
    return _Part(r0=f.r0, c0=f.c0, h=f.h, w=w, tr=f.tr, sub=f.sub, gmax=f.gmax, sxy=f.sxy, rep=f.rep,
                 dist=_InWindow(dist, wr0, wc0, wh, ww, w, np.inf),
                 pred=_InWindow(pred, wr0, wc0, wh, ww, w, -9999, cells=True),
                 nearest=_InWindow(nearest, wr0, wc0, wh, ww, w, -9999, cells=True),
                 src_of_cell=f.src_of_cell, wr0=wr0, wr1=wr1, wc0=wc0, wc1=wc1, matrix=matrix)


def _proved(ends: _Ends, j: int, part: _Part, box: tuple[int, int, int, int], shape: tuple[int, int],
            step_min: tuple[float, float]) -> bool:
    """Whether the part ``box`` (rows wr0:wr1, columns wc0:wc1 of a window of ``shape``) proves
    candidate ``j``'s answer (see :func:`_search_tiled`)."""
    wr0, wr1, wc0, wc1 = box
    h, w = shape
    open_ = (wr0 > 0, wr1 < h, wc0 > 0, wc1 < w)  # sides bordering the rest of the window
    if not any(open_):
        return True
    ok = ends.ok[j]
    cost = ends.cost[j]
    b = int(ends.best[j])
    fin = np.isfinite(cost)
    # the end cells preferred to the chosen one: the own cell, then the ring by distance (and
    # by position among equal distances, as argmin)
    k = np.arange(len(cost))
    if not fin.any():
        before = ok
    elif b == ends.own_k:
        before = np.zeros(len(cost), dtype=bool)
    else:
        dd = ends.dd[j]
        before = ok & ((k == ends.own_k) | (dd < dd[b]) | ((dd == dd[b]) & (k < b)))
    unreached = before & ~fin
    if unreached.any():
        if part.labels is None:
            part.labels = connected_components(part.matrix, directed=True, connection="weak")[1]
        lab = part.labels.reshape(part.wr1 - part.wr0, part.wc1 - part.wc0)
        edge = []
        if open_[0]:
            edge.append(lab[0])
        if open_[1]:
            edge.append(lab[-1])
        if open_[2]:
            edge.append(lab[:, 0])
        if open_[3]:
            edge.append(lab[:, -1])
        touching = np.unique(np.concatenate(edge))
        r, c = np.divmod(ends.flat[j][unreached], w)
        r, c = r - wr0, c - wc0
        if not ((r >= 0) & (r < lab.shape[0]) & (c >= 0) & (c < lab.shape[1])).all():
            return False  # an end cell outside the part
        if np.isin(lab[r, c], touching).any():
            return False
    if not fin.any():
        return True
    r, c = divmod(int(ends.flat[j, b]), w)
    dxm, dym = step_min
    bound = min([(r - wr0 + 1) * dym] * open_[0] + [(wr1 - r) * dym] * open_[1]
                + [(c - wc0 + 1) * dxm] * open_[2] + [(wc1 - c) * dxm] * open_[3])
    # any path from outside the part costs at least ``bound`` (less a float margin)
    return bool(cost[b] < bound * (1.0 - 1e-9))


def _end_geometry(s: LinkSearch, f: _Searched, idx: np.ndarray, txy: np.ndarray, tx, ty) -> _Ends:
    """Candidate end cells of each point: its own cell and the cells around it within the limit
    (``ok``), with their distance to the point (``dd``); no costs yet (see :func:`_choose`)."""
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
    return _Ends(flat=flat, ex=ex.reshape(flat.shape), ey=ey.reshape(flat.shape), own=own,
                 cost=np.full(flat.shape, np.inf), best=np.zeros(len(flat), dtype=np.int64), csize=csize,
                 ok=ok, dd=dd, own_k=int(np.flatnonzero(own)[0]), cell0=cell0)


def _choose(ends: _Ends, rows: np.ndarray, dist) -> None:
    """The costs of the end cells of the points ``rows`` from a search's ``dist`` and the chosen
    end: the point's own cell when reachable, otherwise the reachable cell nearest to it."""
    cost = np.where(ends.ok[rows], dist[ends.flat[rows]], np.inf)
    reach_ok = np.isfinite(cost)
    ring_key = np.where(reach_ok, ends.dd[rows], np.inf)
    ends.cost[rows] = cost
    ends.best[rows] = np.where(reach_ok[:, ends.own_k], ends.own_k, np.argmin(ring_key, axis=1))


def _end_cells(s: LinkSearch, f: _Searched, idx: np.ndarray, txy: np.ndarray, tx, ty) -> _Ends:
    """Candidate end cells: the point's own cell and the cells around it within the limit; the
    point's own cell when reachable, otherwise the reachable cell nearest to the point."""
    ends = _end_geometry(s, f, idx, txy, tx, ty)
    _choose(ends, np.arange(len(idx)), f.dist)
    return ends


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
                      slope_weight: float, cell_sizes=None) -> sp.csr_matrix:
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
                            step_cost=step_cost, cell_sizes=cell_sizes)


def _cell_metres(transform, crs, height: int) -> tuple[float, float]:
    """Median cell width and height of a grid in metres."""
    from kaizhou_gis.terrain import cell_size_m

    dx, dy = cell_size_m(transform, crs, height)
    return float(np.median(dx)), float(np.median(dy))
