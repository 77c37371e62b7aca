"""Road lines → a noded road graph with lengths, surfaces, grades and travel times.

How lines are joined
--------------------
* Every line end point is a node. An interior vertex is a node when another line (or the same
  line a second time) passes through the same coordinate (compared after rounding to
  ``precision_m``, 1 mm by default).
* Digitizing gaps (``snap_tolerance_m`` > 0) are closed by moving line **ends** only, never
  farther than the tolerance from where they were (:func:`_close_gaps`): end points of
  different lines within the tolerance are gathered around a seed end (an existing junction
  first) that every member lies within the tolerance of, so clusters never chain; an end left
  alone that lies within the tolerance of another line (an undershoot at a T-junction, or a new
  link drawn onto a road) moves onto the nearest point of that line, where a vertex is inserted
  (in order along the line). No move makes a line start and end at one point. Every move is
  listed in :attr:`RoadNetwork.joins` (``access.gpkg`` layer ``joins``). With a tolerance of 0
  the edges are exactly the input lines, cut at their nodes.
* Two lines that cross without a shared vertex are **not** joined: bridges and overpasses are
  not junctions.

Lines are then cut at their nodes into edges. Each edge carries ``length_m`` (work CRS metres),
``road_id``/``road_class``/``surface`` of its road, ``paved``, ``speed_kmh`` and ``travel_min``
(class speed from the plan file), ``grade_pct`` (mean absolute grade along the edge from DEM
samples every ``grade_sample_m``), ``max_grade_pct``, ``terrain_slope_deg`` (mean terrain slope
at those samples) and ``terrain`` (flat / hilly / mountain, for unit costs). Nodes of degree 1
are reported as dangles; connected components are computed for the whole graph and for the
paved-only graph.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import scipy.sparse as sp
import shapely
from pyproj import CRS
from rasterio.transform import Affine, rowcol
from rasterio.windows import Window, from_bounds
from scipy.sparse.csgraph import connected_components

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.terrain import floor_cells, slope_deg

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# DEM grid held in memory
# --------------------------------------------------------------------------------------------
@dataclass
class DemGrid:
    """A north-up DEM window in memory: elevations (NaN = no data), transform and CRS.

    Built once per run (:meth:`from_dataset`) and shared by the network (edge grades), the access
    step and the new-link search, so the DEM is read once.
    """

    values: np.ndarray
    transform: Affine
    crs: Any
    _slope: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_dataset(cls, ds: rasterio.io.DatasetReader, bounds: tuple[float, float, float, float],
                     bounds_crs, *, margin_m: float = 0.0, band: int = 1) -> "DemGrid":
        """Read the part of ``ds`` covering ``bounds`` (in ``bounds_crs``) plus ``margin_m``."""
        minx, miny, maxx, maxy = bounds
        minx, miny, maxx, maxy = minx - margin_m, miny - margin_m, maxx + margin_m, maxy + margin_m
        tr = transformer(bounds_crs, ds.crs)
        xs = np.array([minx, maxx, maxx, minx, (minx + maxx) / 2, (minx + maxx) / 2, minx, maxx])
        ys = np.array([miny, miny, maxy, maxy, miny, maxy, (miny + maxy) / 2, (miny + maxy) / 2])
        dx, dy = tr.transform(xs, ys)
        win = from_bounds(min(dx), min(dy), max(dx), max(dy), transform=ds.transform)
        win = win.round_offsets(op="floor").round_lengths(op="ceil")
        col0, row0 = max(0, int(win.col_off) - 1), max(0, int(win.row_off) - 1)
        col1 = min(ds.width, int(win.col_off + win.width) + 1)
        row1 = min(ds.height, int(win.row_off + win.height) + 1)
        if col1 <= col0 or row1 <= row0:
            raise LayerError(f"dem: the DEM {ds.name} does not cover the layers (bounds "
                             f"{bounds} in {bounds_crs}); use a DEM that covers the district.")
        win = Window(col0, row0, col1 - col0, row1 - row0)
        z = ds.read(band, window=win).astype("float64")
        if ds.nodata is not None and np.isfinite(ds.nodata):
            z[z == ds.nodata] = np.nan
        z[~np.isfinite(z)] = np.nan
        return cls(values=z, transform=ds.window_transform(win), crs=CRS(ds.crs))

    @property
    def slope(self) -> np.ndarray:
        """Slope in degrees of every cell (computed on first use)."""
        if self._slope is None:
            self._slope = slope_deg(self.values, self.transform, self.crs)
        return self._slope

    def cells(self, x: np.ndarray, y: np.ndarray, xy_crs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and inside-flag of points given in ``xy_crs``."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        tr = transformer(xy_crs, self.crs) if xy_crs is not None else None
        if tr is not None:
            x, y = tr.transform(x, y)
        rows = np.full(len(x), -1, dtype=np.int64)
        cols = np.full(len(x), -1, dtype=np.int64)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            r, c = rowcol(self.transform, x[ok], y[ok], op=floor_cells)  # (a point on a cell edge: CELL_TOL)
            rows[ok], cols[ok] = np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)
        h, w = self.values.shape
        inside = ok & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        return rows, cols, inside

    def sample(self, x: np.ndarray, y: np.ndarray, xy_crs, *, what: str = "elevation") -> np.ndarray:
        """Elevation (m) or slope (deg) of the cell holding each point; NaN outside / no data."""
        rows, cols, inside = self.cells(x, y, xy_crs)
        grid = self.values if what == "elevation" else self.slope
        out = np.full(len(rows), np.nan)
        out[inside] = grid[rows[inside], cols[inside]]
        return out


def terrain_class(slope_deg_values: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """'flat' / 'hilly' / 'mountain' from mean slope and the plan's ``terrain_slope_deg``.

    Unknown slope (NaN, no DEM) counts as 'mountain', so unit costs err on the high side.
    """
    s = np.asarray(slope_deg_values, dtype="float64")
    out = np.where(s >= thresholds["mountain"], "mountain",
                   np.where(s >= thresholds["hilly"], "hilly", "flat")).astype(object)
    out[~np.isfinite(s)] = "mountain"
    return out


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
@dataclass
class RoadNetwork:
    """A noded road graph.

    Attributes
    ----------
    nodes : GeoDataFrame
        ``node_id`` (= row position), ``degree``, ``component``, ``paved_component``, ``dangle``,
        ``nearest_other_road_m`` (dangles only: distance to another road within the check distance).
    edges : GeoDataFrame
        ``edge_id`` (= row position), ``u``, ``v``, ``road_index`` (index label of the road row),
        ``road_id``, ``road_class``, ``surface``, ``paved``, ``length_m``, ``speed_kmh``,
        ``travel_min``, ``grade_pct``, ``max_grade_pct``, ``terrain_slope_deg``, ``terrain``,
        ``component``.
    report : dict
        Counts: roads used / skipped (with ids), edges, nodes, components, dangles, snaps.
    joins : GeoDataFrame
        One row per line end moved to close a gap (:func:`joins_frame` columns), for review.
    """

    nodes: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    report: dict
    joins: gpd.GeoDataFrame | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def to_networkx(self, *, directed: bool = True):
        """The graph as a networkx ``MultiDiGraph`` in osmnx's conventions (``directed=False``:
        a ``MultiGraph``, one edge per road segment); see :func:`network_to_networkx`."""
        return network_to_networkx(self, directed=directed)

    def matrix(self, weight: np.ndarray, *, mask: np.ndarray | None = None,
               extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               n_extra_nodes: int = 0) -> sp.csr_matrix:
        """Undirected sparse graph (upper triangle) of the edges with the given weights.

        ``mask`` keeps only some edges; ``extra`` = (i, j, w) adds edges, e.g. to virtual nodes
        numbered from ``n_nodes``. Weights must be > 0 (use a tiny epsilon for 'free' edges).
        Parallel edges keep the smallest weight.
        """
        u = self.edges["u"].to_numpy()
        v = self.edges["v"].to_numpy()
        w = np.asarray(weight, dtype="float64")
        keep = u != v
        if mask is not None:
            keep &= np.asarray(mask, dtype=bool)
        i, j, w = u[keep], v[keep], w[keep]
        if extra is not None:
            i = np.concatenate([i, extra[0]])
            j = np.concatenate([j, extra[1]])
            w = np.concatenate([w, extra[2]])
        n = self.n_nodes + n_extra_nodes
        a, b = np.minimum(i, j), np.maximum(i, j)
        # parallel edges: keep the smallest weight (a sparse sum would add them up)
        order = np.lexsort((w, b, a))
        a, b, w = a[order], b[order], w[order]
        first = np.ones(len(a), dtype=bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        return sp.csr_matrix((w[first], (a[first], b[first])), shape=(n, n))


def _road_lines(roads: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Single LineStrings of the roads layer and the row position each came from."""
    geoms = roads.geometry.to_numpy()
    bad_rows = []
    types = shapely.get_type_id(geoms)
    ok = np.isin(types, (1, 5)) & ~shapely.is_empty(geoms)  # LineString, MultiLineString
    if "road_id" in roads.columns:
        ids = roads["road_id"].astype(str).to_numpy()
    else:
        ids = np.array([str(i) for i in roads.index])
    bad_rows = list(ids[~ok])
    parts, row = shapely.get_parts(geoms[ok], return_index=True)
    row = np.flatnonzero(ok)[row]
    keep = (shapely.get_num_coordinates(parts) >= 2) & (shapely.length(parts) > 0)
    bad_rows += [i for i in ids[np.setdiff1d(np.flatnonzero(ok), row[keep])]]
    return parts[keep], row[keep], bad_rows


def _line_ends(coords: np.ndarray, cidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``coords`` of every line's first and last vertex."""
    starts = np.r_[0, np.flatnonzero(np.diff(cidx)) + 1]
    ends = np.r_[starts[1:] - 1, len(coords) - 1]
    return starts, ends


def _insert_vertices(lines: np.ndarray, inserts: dict[int, list[tuple[float, np.ndarray]]]) -> np.ndarray:
    """Lines with extra vertices inserted at given distances along them, in their order along
    the line (whatever the order of ``inserts``), so the line never doubles back."""
    lines = lines.copy()
    for li, items in inserts.items():
        xy = shapely.get_coordinates(lines[li])
        seg = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
        along = np.concatenate([[0.0], np.cumsum(seg)])
        items = sorted(items, key=lambda t: t[0])
        new_d = np.array([d for d, _ in items])
        new_p = np.array([p for _, p in items]).reshape(-1, 2)
        pos = np.searchsorted(along, new_d, side="right")
        pos = np.clip(pos, 1, len(xy) - 1)  # never before the first or after the last vertex
        xy2 = np.insert(xy, pos, new_p, axis=0)
        lines[li] = shapely.linestrings(xy2)
    return lines


@dataclass
class _Joins:
    """Line ends moved to close digitizing gaps (one row per moved line end)."""

    line: list[int] = field(default_factory=list)
    end: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    to_lines: list[tuple[int, ...]] = field(default_factory=list)
    old: list[np.ndarray] = field(default_factory=list)
    new: list[np.ndarray] = field(default_factory=list)

    def add(self, line: int, end: int, kind: str, to_lines, old, new) -> None:
        self.line.append(int(line))
        self.end.append("start" if end == 0 else "end")
        self.kind.append(kind)
        self.to_lines.append(tuple(int(x) for x in to_lines))
        self.old.append(np.asarray(old, dtype="float64"))
        self.new.append(np.asarray(new, dtype="float64"))


def _close_gaps(lines: np.ndarray, tol: float, precision_m: float) -> tuple[np.ndarray, _Joins]:
    """Join line ends across digitizing gaps of at most ``tol`` metres.

    Only line ends move, and none farther than ``tol`` from where it was:

    1. **End to end.** End points (of different lines) within ``tol`` of each other are
       gathered around a *seed*: an existing junction (an end shared by several lines, or lying
       on another line's interior vertex) first, then the end with most lines, then the one
       with most ends around it. Around a junction, ends within ``tol`` of it move onto it
       (it never moves). Around a free end, nearest first, ends within ``tol`` of it move onto
       it; an end farther away joins when every member stays within ``tol`` of the members'
       centre, where they all go (four ends on the corners of a 4 m square meet in its centre,
       2.8 m from each). So clusters do not chain;
       an end already taken stays in its cluster. A cluster never takes both ends of one line,
       nor an end of a line with a vertex at a junction seed (a loop).
    2. **End to line.** An end left alone after step 1 that lies within ``tol`` of another line
       moves to the nearest point of that line, where a vertex is inserted (vertices inserted
       into one line are ordered along it). Nearest gaps first; an end that another end has
       already joined, or that has moved, is not moved (again), and no move may make a line
       start and end at one point.
    """
    joins = _Joins()
    coords, cidx = shapely.get_coordinates(lines, return_index=True)
    starts, ends = _line_ends(coords, cidx)
    keys = np.round(coords / precision_m).astype(np.int64)
    ukeys, vid = np.unique(keys, axis=0, return_inverse=True)
    vid = vid.ravel()
    nk = len(ukeys)
    key_xy = np.empty((nk, 2))
    key_xy[vid] = coords
    is_end = np.zeros(len(coords), dtype=bool)
    is_end[starts] = True
    is_end[ends] = True
    interior = np.bincount(vid[~is_end], minlength=nk) > 0
    # line ends at each end key: (line, 0 = start / -1 = end)
    key_ends: dict[int, list[tuple[int, int]]] = {}
    for li, (a, b) in enumerate(zip(starts, ends)):
        key_ends.setdefault(int(vid[a]), []).append((li, 0))
        key_ends.setdefault(int(vid[b]), []).append((li, -1))
    end_keys = np.array(sorted(key_ends), dtype=np.int64)
    # every line with a vertex at an end key (a move onto a line's own vertex would make a loop)
    key_lines: dict[int, set[int]] = {int(k): set() for k in end_keys}
    at_end_key = np.isin(vid, end_keys)
    for k, li in zip(vid[at_end_key].tolist(), cidx[at_end_key].tolist()):
        key_lines[k].add(li)
    movable = {int(k): not interior[k] for k in end_keys}

    # --- 1. end to end ------------------------------------------------------------------------
    pts = shapely.points(key_xy[end_keys])
    ia, ib = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=tol)
    sel = ia != ib
    ia, ib = end_keys[ia[sel]], end_keys[ib[sel]]
    dist = np.hypot(*(key_xy[ia] - key_xy[ib]).T)
    neigh: dict[int, list[tuple[float, int]]] = {}
    for a, b, d in zip(ia.tolist(), ib.tolist(), dist.tolist()):
        neigh.setdefault(a, []).append((d, b))
    in_cluster: dict[int, int] = {}  # key -> seed key
    order = sorted(neigh, key=lambda k: (movable[k], -len(key_ends[k]), -len(neigh[k]), k))
    clusters: list[tuple[list[int], np.ndarray]] = []  # (members, where they go)
    for s in order:
        if s in in_cluster:
            continue
        taken = set(key_lines[s])
        members = [s]
        rep = key_xy[s]
        # candidates: the seed's neighbours, then theirs (a movable seed may move to the
        # members' centre, which can bring ends two steps away within reach)
        seen = {s}
        cands = []
        for d, n in sorted(neigh[s]):
            seen.add(n)
            cands.append(n)
        if movable[s]:
            for n in list(cands):
                for _, m in sorted(neigh.get(n, [])):
                    if m not in seen:
                        seen.add(m)
                        cands.append(m)
            cands.sort(key=lambda n: (float(np.hypot(*(key_xy[n] - key_xy[s]))), n))
        for n in cands:
            if n in in_cluster or not movable[n] or key_lines[n] & taken:
                continue
            if movable[s]:  # onto the seed if all fit, else to the members' centre
                pts_ = key_xy[members + [n]]
                centre = rep
                if np.hypot(*(pts_ - centre).T).max() > tol:
                    centre = pts_.mean(axis=0)
                    if np.hypot(*(pts_ - centre).T).max() > tol:
                        continue
            else:  # an existing junction stays where it is
                centre = key_xy[s]
                if np.hypot(*(key_xy[n] - centre)) > tol:
                    continue
            members.append(n)
            taken |= key_lines[n]
            rep = centre
        if len(members) > 1:
            for n in members:
                in_cluster[n] = s
            clusters.append((members, np.asarray(rep, dtype="float64")))
    n_moved = 0
    for members, rep in clusters:
        for n in members:
            if np.array_equal(key_xy[n], rep):
                continue
            others = sorted(set().union(*(key_lines[m] for m in members if m != n)))
            for li, e in key_ends[n]:
                joins.add(li, e, "end_to_end", others, key_xy[n], rep)
            coords[vid == n] = rep
            n_moved += 1
    if n_moved:
        lines = shapely.linestrings(coords, indices=cidx)

    # --- 2. end to line -----------------------------------------------------------------------
    cand = np.array([k for k in end_keys.tolist() if k not in in_cluster and movable[k]], dtype=np.int64)
    if len(cand) == 0:
        return lines, joins
    cpts = shapely.points(key_xy[cand])
    qi, ql = shapely.STRtree(lines).query(cpts, predicate="dwithin", distance=tol)
    own = np.array([l in key_lines[int(k)] for k, l in zip(cand[qi].tolist(), ql.tolist())], dtype=bool)
    qi, ql = qi[~own], ql[~own]
    if len(qi) == 0:
        return lines, joins
    d = shapely.distance(cpts[qi], lines[ql])
    along = shapely.line_locate_point(lines[ql], cpts[qi])
    proj = shapely.get_coordinates(shapely.line_interpolate_point(lines[ql], along))
    llen = shapely.length(lines[ql])
    # keys of the current end points of every line (after step 1)
    end_key_now = {}
    for li, (a, b) in enumerate(zip(starts, ends)):
        end_key_now[(li, 0)] = tuple(np.round(coords[a] / precision_m).astype(np.int64))
        end_key_now[(li, -1)] = tuple(np.round(coords[b] / precision_m).astype(np.int64))
    cur_key = {tuple(v): k for k, v in enumerate(ukeys.tolist())}
    done: set[int] = set()      # keys moved in this step
    blocked: set[int] = set()   # keys another end has joined: they stay
    inserts: dict[int, list] = {}
    moves: list[tuple[int, np.ndarray]] = []
    for j in np.lexsort((ql, cand[qi], d)):
        k, l = int(cand[qi[j]]), int(ql[j])
        if k in done or k in blocked:
            continue
        p = proj[j]
        pkey = tuple(np.round(p / precision_m).astype(np.int64))
        # a move that makes one of the moving lines start and end at one point is refused
        if any(end_key_now[(li, -1 if e == 0 else 0)] == pkey for li, e in key_ends[k]):
            continue
        pk = np.array(pkey)
        if pkey != tuple(ukeys[k].tolist()) and any((keys[starts[li]:ends[li] + 1] == pk).all(axis=1).any() for li, _ in key_ends[k]):
            continue  # onto a vertex of its own line: a loop
        at_end = None
        if along[j] <= precision_m or along[j] >= llen[j] - precision_m:
            at_end = cur_key.get(end_key_now[(l, 0 if along[j] <= precision_m else -1)])
            if at_end is not None and at_end in done:
                continue  # that end has moved away
        done.add(k)
        if at_end is not None:
            blocked.add(at_end)
        blocked.add(cur_key.get(pkey, -1))
        inserts.setdefault(l, []).append((float(along[j]), p))
        moves.append((k, p))
        for li, e in key_ends[k]:
            joins.add(li, e, "end_to_line", [l], key_xy[k], p)
    if not moves:
        return lines, joins
    # vertices into the target lines first (positions measured on the lines as they are now)
    for l, items in inserts.items():
        xy = shapely.get_coordinates(lines[l])
        have = {tuple(x) for x in np.round(xy / precision_m).astype(np.int64).tolist()}
        kept = []
        for a, p in items:  # not onto a vertex the line has, nor twice at one point
            pk = tuple(np.round(p / precision_m).astype(np.int64).tolist())
            if pk not in have:
                have.add(pk)
                kept.append((a, p))
        inserts[l] = kept
    lines = _insert_vertices(lines, {l: v for l, v in inserts.items() if v})
    moved_lines: dict[int, list[tuple[int, np.ndarray]]] = {}
    for k, p in moves:
        for li, e in key_ends[k]:
            moved_lines.setdefault(li, []).append((e, p))
    for li, items in moved_lines.items():
        xy = shapely.get_coordinates(lines[li])
        for e, p in items:
            xy[e] = p
        lines[li] = shapely.linestrings(xy)
    return lines, joins


def build_network(roads: gpd.GeoDataFrame, *, snap_tolerance_m: float,
                  paved_surfaces: list[str], speed_kmh: dict[str, float],
                  dem: DemGrid | None = None, grade_sample_m: float = 90.0,
                  terrain_slope_deg: dict[str, float] | None = None,
                  precision_m: float = 0.001, dangle_check_m: float = 0.0) -> RoadNetwork:
    """Join road lines into a graph (see the module docstring for the rules).

    Parameters
    ----------
    roads : GeoDataFrame
        LineStrings in a metric CRS with ``road_id``, ``road_class``, ``surface``.
    snap_tolerance_m : float
        End points closer than this to another line's vertex or segment are joined to it.
    paved_surfaces : list of str
        Surface values that count as hardened (case-insensitive).
    speed_kmh : dict
        Speed by road class; classes not listed use ``speed_kmh["other"]``.
    dem : DemGrid, optional
        For grades and terrain; without it those columns are NaN and terrain is 'mountain'.
    grade_sample_m : float
        Spacing of DEM samples along an edge.
    terrain_slope_deg : dict, optional
        ``{"hilly": deg, "mountain": deg}`` thresholds for the terrain class.
    precision_m : float
        Coordinates equal after rounding to this are the same node.
    dangle_check_m : float
        Dangling ends with another road within this distance are counted and given
        ``nearest_other_road_m`` (possible missed junctions); 0 skips the check.

    Returns
    -------
    RoadNetwork
    """
    if snap_tolerance_m < 0:
        raise LayerError(f"roads: snap tolerance {snap_tolerance_m} m is negative; set "
                         f"access.snap_tolerance_m >= 0 in the plan file.")
    for col in ("road_class", "surface"):
        if col not in roads.columns:
            raise LayerError(f"roads: column '{col}' is missing; add it (see the layer contract: "
                             f"road_id, road_class, surface).")
    if roads.crs is not None and not CRS(roads.crs).is_projected:
        raise LayerError("roads: the layer is in a geographic CRS; reproject it to the plan's work "
                         "CRS (metres) first (layers.load_layers does this).")
    terrain_slope_deg = terrain_slope_deg or {"hilly": 8.0, "mountain": 20.0}
    lines, line_row, skipped = _road_lines(roads)
    if skipped:
        log.warning("roads: %d row(s) without a usable line geometry are left out of the network: %s",
                    len(skipped), format_ids(skipped))
    n_lines = len(lines)
    if n_lines == 0:
        raise LayerError("roads: no usable LineString geometry; the roads layer must hold lines.")

    # --- 1. gaps closed by moving line ends (never farther than the tolerance) ----------------
    joins = _Joins()
    if snap_tolerance_m > 0:
        lines, joins = _close_gaps(lines, snap_tolerance_m, precision_m)
    n_vertex_snaps = sum(k == "end_to_end" for k in joins.kind)
    n_seg_snaps = sum(k == "end_to_line" for k in joins.kind)

    # --- 2. nodes: line ends, and vertices shared by several lines (or met twice by one) ------
    coords, cidx = shapely.get_coordinates(lines, return_index=True)
    starts, ends = _line_ends(coords, cidx)
    keys = np.round(coords / precision_m).astype(np.int64)
    ukeys, root = np.unique(keys, axis=0, return_inverse=True)
    root = root.ravel()
    is_node = np.zeros(len(coords), dtype=bool)
    is_node[starts] = True
    is_node[ends] = True
    pair = root.astype(np.int64) * (n_lines + 1) + cidx
    upair = np.unique(pair)
    lines_per_root = np.bincount((upair // (n_lines + 1)).astype(np.int64), minlength=len(ukeys))
    uses_per_root = np.bincount(root, minlength=len(ukeys))
    multi = (lines_per_root >= 2) | (uses_per_root > lines_per_root)
    is_node |= multi[root]
    node_roots, node_id_of_coord = np.unique(root[is_node], return_inverse=True)
    node_of = np.full(len(coords), -1, dtype=np.int64)
    node_of[is_node] = node_id_of_coord.ravel()
    xy = coords.copy()
    rep_xy = np.empty((len(ukeys), 2))
    rep_xy[root[::-1]] = coords[::-1]  # a node's coordinate: the first of its occurrences
    xy[is_node] = rep_xy[root[is_node]]

    # --- 4. edges: runs between consecutive nodes of a line ------------------------------------
    npos = np.flatnonzero(is_node)
    a, b = npos[:-1], npos[1:]
    same = cidx[a] == cidx[b]
    a, b = a[same], b[same]
    counts = b - a + 1
    eid = np.repeat(np.arange(len(a)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    geoms = shapely.linestrings(xy[np.repeat(a, counts) + offs], indices=eid)
    length = shapely.length(geoms)
    good = length > 0
    a, b, geoms, length = a[good], b[good], geoms[good], length[good]
    road_pos = line_row[cidx[a]]

    paved_set = {str(s).strip().lower() for s in paved_surfaces}
    rsurf = roads["surface"].astype(str).str.strip().to_numpy()[road_pos]
    rclass = roads["road_class"].astype(str).str.strip().to_numpy()[road_pos]
    rid = (roads["road_id"].astype(str).to_numpy()[road_pos] if "road_id" in roads.columns
           else np.array([str(i) for i in roads.index[road_pos]]))
    default_speed = speed_kmh.get("other", min(speed_kmh.values()))
    speed = np.array([speed_kmh.get(c, default_speed) for c in rclass], dtype="float64")
    edges = gpd.GeoDataFrame({
        "edge_id": np.arange(len(a)),
        "u": node_of[a], "v": node_of[b],
        "road_index": roads.index.to_numpy()[road_pos],
        "road_id": rid, "road_class": rclass, "surface": rsurf,
        "paved": np.array([s.lower() in paved_set for s in rsurf], dtype=bool),
        "length_m": length, "speed_kmh": speed,
        "travel_min": length / 1000.0 / speed * 60.0,
    }, geometry=geoms, crs=roads.crs)
    _add_grades(edges, dem, grade_sample_m=grade_sample_m, terrain_slope_deg=terrain_slope_deg)

    # --- 5. nodes, components, dangles ---------------------------------------------------------
    n_nodes = len(node_roots)
    first_coord = np.full(n_nodes, -1, dtype=np.int64)
    first_coord[node_of[npos][::-1]] = npos[::-1]
    nxy = xy[first_coord]
    deg = np.bincount(edges["u"], minlength=n_nodes) + np.bincount(edges["v"], minlength=n_nodes)
    net = RoadNetwork(nodes=gpd.GeoDataFrame({"node_id": np.arange(n_nodes), "degree": deg},
                                             geometry=shapely.points(nxy), crs=roads.crs),
                      edges=edges, report={},
                      joins=_joins_frame(joins, roads, line_row, roads.crs))
    ones = np.ones(len(edges))
    _, comp = connected_components(net.matrix(ones), directed=False)
    _, pcomp = connected_components(net.matrix(ones, mask=edges["paved"].to_numpy()), directed=False)
    net.nodes["component"] = comp
    net.nodes["paved_component"] = pcomp
    net.nodes["dangle"] = deg == 1
    # QA: dangling ends with another road close by (a missed junction, or the end of a bridge)
    near = np.full(n_nodes, np.nan)
    dn = np.flatnonzero(deg == 1)
    if dangle_check_m > 0 and len(dn):
        tree = shapely.STRtree(edges.geometry.to_numpy())
        qi, qt = tree.query(net.nodes.geometry.to_numpy()[dn], predicate="dwithin", distance=dangle_check_m)
        own = (edges["u"].to_numpy()[qt] == dn[qi]) | (edges["v"].to_numpy()[qt] == dn[qi])
        qi, qt = qi[~own], qt[~own]
        if len(qi):
            d = shapely.distance(net.nodes.geometry.to_numpy()[dn[qi]], edges.geometry.to_numpy()[qt])
            best = pd.Series(d).groupby(qi).min()
            near[dn[best.index.to_numpy()]] = best.to_numpy()
    net.nodes["nearest_other_road_m"] = near
    edges["component"] = comp[edges["u"].to_numpy()]
    comp_km = edges.groupby("component")["length_m"].sum().sort_values(ascending=False) / 1000.0
    n_comp = int(edges["component"].nunique())
    net.report = {
        "roads_in": int(len(roads)),
        "roads_skipped": len(skipped),
        "roads_skipped_ids": skipped[:20],
        "lines": int(n_lines),
        "edges": int(len(edges)),
        "nodes": int(n_nodes),
        "km_total": round(float(edges["length_m"].sum()) / 1000.0, 3),
        "km_paved": round(float(edges.loc[edges["paved"], "length_m"].sum()) / 1000.0, 3),
        "components": n_comp,
        "largest_component_km": round(float(comp_km.iloc[0]), 3) if len(comp_km) else 0.0,
        "largest_component_share_pct": (round(float(comp_km.iloc[0] / comp_km.sum() * 100.0), 2)
                                        if len(comp_km) else 0.0),
        "dangles": int((deg == 1).sum()),
        "dangles_near_other_road": int(np.isfinite(near).sum()),
        "dangle_check_m": float(dangle_check_m),
        "endpoints_snapped_to_vertex": int(n_vertex_snaps),
        "endpoints_snapped_to_segment": int(n_seg_snaps),
        "snap_tolerance_m": float(snap_tolerance_m),
        "joins": int(len(net.joins)),
        "joins_max_moved_m": round(float(net.joins["moved_m"].max()), 3) if len(net.joins) else 0.0,
        "joins_total_moved_m": round(float(net.joins["moved_m"].sum()), 3),
    }
    log.info("network: %d edges, %d nodes, %d components, %d dangles, %d+%d end points snapped",
             len(edges), n_nodes, n_comp, net.report["dangles"], n_vertex_snaps, n_seg_snaps)
    return net


def _joins_frame(joins: _Joins, roads: gpd.GeoDataFrame, line_row: np.ndarray, crs) -> gpd.GeoDataFrame:
    """The joins as a table: ``join_id``, ``road_id`` and ``end`` (start/end) of the moved line
    end, ``kind`` (end_to_end: onto another road's end; end_to_line: onto another road's line,
    where a vertex was inserted), ``to_road_id`` (the road(s) joined), ``moved_m``, and a
    LineString from the end's old position to its new one."""
    rid = (roads["road_id"].astype(str).to_numpy() if "road_id" in roads.columns
           else np.array([str(i) for i in roads.index]))
    n = len(joins.line)
    old = np.array(joins.old).reshape(n, 2)
    new = np.array(joins.new).reshape(n, 2)
    geom = shapely.linestrings(np.stack([old, new], axis=1)) if n else np.array([], dtype=object)
    return gpd.GeoDataFrame({
        "join_id": np.arange(1, n + 1, dtype=np.int64),
        "road_id": [rid[line_row[li]] for li in joins.line],
        "end": list(joins.end),
        "kind": list(joins.kind),
        "to_road_id": [";".join(dict.fromkeys(rid[line_row[x]] for x in t)) for t in joins.to_lines],
        "moved_m": np.hypot(*(new - old).T) if n else np.array([], dtype="float64"),
    }, geometry=gpd.GeoSeries(geom, crs=crs), crs=crs)


def joins_frame(net: RoadNetwork) -> gpd.GeoDataFrame:
    """The network's joins (one row per moved line end) for the GeoPackage."""
    return net.joins.reset_index(drop=True)


def _add_grades(edges: gpd.GeoDataFrame, dem: DemGrid | None, *, grade_sample_m: float,
                terrain_slope_deg: dict[str, float]) -> None:
    """Add grade_pct, max_grade_pct, terrain_slope_deg and terrain columns (vectorized)."""
    n = len(edges)
    if dem is None or n == 0:
        edges["grade_pct"] = np.nan
        edges["max_grade_pct"] = np.nan
        edges["terrain_slope_deg"] = np.nan
        edges["terrain"] = terrain_class(np.full(n, np.nan), terrain_slope_deg)
        return
    length = edges["length_m"].to_numpy()
    nseg = np.maximum(1, np.ceil(length / max(grade_sample_m, 1e-6)).astype(np.int64))
    npts = nseg + 1
    eid = np.repeat(np.arange(n), npts)
    k = np.arange(npts.sum()) - np.repeat(np.cumsum(npts) - npts, npts)
    frac = k / np.repeat(nseg, npts)
    pts = shapely.line_interpolate_point(edges.geometry.to_numpy()[eid], frac, normalized=True)
    pxy = shapely.get_coordinates(pts)
    z = dem.sample(pxy[:, 0], pxy[:, 1], edges.crs)
    s = dem.sample(pxy[:, 0], pxy[:, 1], edges.crs, what="slope")
    dz = np.abs(np.diff(z))
    step_ok = eid[1:] == eid[:-1]
    dz = np.where(step_ok, dz, np.nan)
    seg_eid = eid[:-1][step_ok]
    seg_dz = dz[step_ok]
    valid = np.isfinite(seg_dz)
    rise = np.bincount(seg_eid[valid], weights=seg_dz[valid], minlength=n)
    nvalid = np.bincount(seg_eid[valid], minlength=n)
    seg_len = length / nseg
    with np.errstate(invalid="ignore", divide="ignore"):
        grade = np.where(nvalid > 0, rise / (nvalid * seg_len) * 100.0, np.nan)
        mx = np.full(n, -np.inf)
        np.maximum.at(mx, seg_eid[valid], seg_dz[valid] / seg_len[seg_eid[valid]] * 100.0)
        mx[~np.isfinite(mx)] = np.nan
        sv = np.isfinite(s)
        ssum = np.bincount(eid[sv], weights=s[sv], minlength=n)
        scnt = np.bincount(eid[sv], minlength=n)
        smean = np.where(scnt > 0, ssum / np.maximum(scnt, 1), np.nan)
    edges["grade_pct"] = grade
    edges["max_grade_pct"] = mx
    edges["terrain_slope_deg"] = smean
    edges["terrain"] = terrain_class(smean, terrain_slope_deg)


def network_settings(plan) -> dict[str, Any]:
    """Keyword arguments of :func:`build_network` from a plan."""
    return dict(snap_tolerance_m=float(plan["access.snap_tolerance_m"]),
                paved_surfaces=list(plan["access.paved_surfaces"]),
                speed_kmh=dict(plan["access.speed_kmh"]),
                grade_sample_m=float(plan["access.grade_sample_m"]),
                dangle_check_m=float(plan["access.dangle_check_m"]),
                terrain_slope_deg=dict(plan["links.terrain_slope_deg"]))


def dangles_frame(net: RoadNetwork) -> gpd.GeoDataFrame:
    """The dangling nodes (degree 1) with their component, for the GeoPackage."""
    d = net.nodes[net.nodes["dangle"]]
    return d[["node_id", "component", "paved_component", "nearest_other_road_m", "geometry"]] \
        .reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The graph for networkx / osmnx users (RoadNetwork.to_networkx, access.gpkg layer ``nodes``)
# --------------------------------------------------------------------------------------------
#: Columns of the ``nodes`` layer of ``access.gpkg``, and the node attributes of the networkx graph
#: (but ``node_id``, the node key, and ``geometry``, given by ``x``/``y`` as in osmnx).
NODE_COLUMNS = ("node_id", "x", "y", "degree", "component", "paved_component", "dangle")


def nodes_frame(net: RoadNetwork) -> gpd.GeoDataFrame:
    """One row per graph node: ``node_id`` (the ``u``/``v`` of the edges), ``x``, ``y`` (work CRS
    metres), ``degree`` (edge ends at the node, a loop counting twice, as networkx and osmnx's
    ``street_count`` count), ``component``, ``paved_component`` (connected components of all
    roads / of the hardened roads only) and ``dangle`` (degree 1), with a point geometry."""
    n = net.nodes
    xy = shapely.get_coordinates(n.geometry.to_numpy())
    return gpd.GeoDataFrame({
        "node_id": n["node_id"].to_numpy(),
        "x": xy[:, 0], "y": xy[:, 1],
        "degree": n["degree"].to_numpy(),
        "component": n["component"].to_numpy(),
        "paved_component": n["paved_component"].to_numpy(),
        "dangle": n["dangle"].to_numpy(),
    }, geometry=n.geometry.to_numpy(), crs=n.crs)


def edge_osmid(road_id: pd.Series) -> np.ndarray:
    """osmnx's integer ``osmid`` of each edge's road: the OSM way id for roads read from
    OpenStreetMap (``road_id`` ``osm<way id>``), else a negative number, -(1 + the rank of the
    ``road_id`` among the network's other road ids), as OSM editors number objects not (yet) in
    OSM; equal for every edge of one road, never equal for two roads."""
    rid = road_id.astype(str)
    way = rid.str.extract(r"^osm(\d+)$", expand=False)
    out = np.zeros(len(rid), dtype=np.int64)
    is_osm = way.notna().to_numpy()
    out[is_osm] = way[is_osm].astype(np.int64).to_numpy()
    others = rid[~is_osm]
    out[~is_osm] = -1 - np.searchsorted(np.unique(others.to_numpy()), others.to_numpy())
    return out


def network_to_networkx(net: RoadNetwork, *, directed: bool = True):
    """The road graph as a networkx graph following osmnx's conventions.

    * ``directed=True`` (default): an ``nx.MultiDiGraph`` holding every edge in both directions
      (the roads carry no one-way information, so every road is two-way, as osmnx builds a
      two-way street): ``oneway`` False on every edge, ``reversed`` True on the copy running
      from ``v`` to ``u``, whose ``geometry`` is reversed so that it starts at its first node.
      This is the graph osmnx's functions take (``ox.convert.graph_to_gdfs``,
      ``ox.routing.shortest_path``, ``ox.convert.validate_graph`` passes).
      ``directed=False``: an ``nx.MultiGraph`` with each edge once, as stored (``u`` → ``v``).
    * Graph attributes: ``crs`` (the work CRS, a pyproj CRS), ``created_with``, ``simplified``
      (True: nodes are line ends and junctions only; the other vertices are in the geometry).
    * Nodes: keyed by ``node_id`` (int; the ``u``/``v`` of the edges and the ``node_id`` of
      ``access.gpkg`` layers ``nodes`` and ``dangles``), with ``x``, ``y`` (work CRS metres), the
      other columns of :func:`nodes_frame` (``degree``, ``component``, ``paved_component``,
      ``dangle``) and osmnx's ``street_count`` (= ``degree``: every road is two-way).
    * Edges: keyed ``(u, v, key)`` with ``key`` numbering the edges that join the same two nodes
      (from 0, in ``edge_id`` order; both directions of an edge share it, but the second copy of a
      loop, which takes the next free key). Attributes: osmnx's ``osmid`` (:func:`edge_osmid`),
      ``length`` (metres, = ``length_m``), ``geometry`` (LineString, work CRS), ``oneway``,
      ``reversed``, ``speed_kph`` and ``travel_time`` (seconds, = 60 × ``travel_min``), and every
      column of the ``edges`` layer of ``access.gpkg`` (``edge_id``, ``road_id``, ``road_class``,
      ``surface``, ``paved`` = hardened 硬化, ``length_m``, ``speed_kmh``, ``travel_min``,
      ``grade_pct``, ``max_grade_pct``, ``terrain_slope_deg``, ``terrain``, ``component``). As in
      osmnx, a missing value (NaN, e.g. grades without a DEM) is left out of the edge's data.

    ``nx.multi_source_dijkstra_path_length(G, sources, weight="length")`` gives the same
    distances as the access step's csgraph Dijkstra (``tests/test_network_nx.py`` checks it).
    """
    import networkx as nx  # imported on use: the analyses themselves do not need it

    from kaizhou_gis import __version__

    e = net.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    key = pd.DataFrame({"a": lo, "b": hi}).groupby(["a", "b"]).cumcount().to_numpy()
    loop = u == v
    loops_at = pd.Series(loop.astype(np.int64)).groupby(u).transform("sum").to_numpy()
    attrs = e.drop(columns=["u", "v", "road_index", e.geometry.name], errors="ignore")
    attrs = attrs.assign(osmid=edge_osmid(e["road_id"]), length=e["length_m"].to_numpy(),
                         oneway=False, speed_kph=e["speed_kmh"].to_numpy(),
                         travel_time=e["travel_min"].to_numpy() * 60.0)
    geoms = e.geometry.to_numpy()
    g = nx.MultiDiGraph() if directed else nx.MultiGraph()
    g.graph.update(crs=CRS(e.crs) if e.crs is not None else None,
                   created_with=f"kaizhou-gis {__version__}", simplified=True)
    nodes = nodes_frame(net)
    for rec in nodes.drop(columns=nodes.geometry.name).to_dict(orient="records"):
        g.add_node(int(rec.pop("node_id")), **rec, street_count=rec["degree"])

    def data(rec: dict) -> dict:  # osmnx leaves a missing value out of the edge's data
        return {k: x for k, x in rec.items() if not (isinstance(x, float) and np.isnan(x))}

    records = attrs.to_dict(orient="records")
    for i, rec in enumerate(records):
        a, b, k = int(u[i]), int(v[i]), int(key[i])
        g.add_edge(a, b, key=k, **data(rec), reversed=False, geometry=geoms[i])
        if directed:
            back_key = k + int(loops_at[i]) if loop[i] else k
            g.add_edge(b, a, key=back_key, **data(rec), reversed=True,
                       geometry=shapely.reverse(geoms[i]))
    return g
