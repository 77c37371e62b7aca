"""Road lines → a noded road graph with lengths, surfaces, grades and travel times.

How lines are joined
--------------------
* Every line end point is a node. An interior vertex is a node when another line (or the same
  line a second time) passes through the same coordinate (compared after rounding to
  ``precision_m``, 1 mm by default).
* Digitizing gaps (``snap_tolerance_m`` > 0) are closed by moving line **ends** only, never
  farther than the tolerance from where they were (:func:`kaizhou_gis.network.gaps.close_gaps`): end points of
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
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS
from scipy.sparse.csgraph import connected_components

from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.network.export import network_to_networkx
from kaizhou_gis.network.gaps import Joins, close_gaps, joins_table, line_ends
from kaizhou_gis.network.grid import DemGrid, terrain_class

log = logging.getLogger(__name__)


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
    _check_roads(roads, snap_tolerance_m)
    terrain_slope_deg = terrain_slope_deg or {"hilly": 8.0, "mountain": 20.0}
    lines, line_row, skipped = _road_lines(roads)
    if skipped:
        log.warning("roads: %d row(s) without a usable line geometry are left out of the network: %s",
                    len(skipped), format_ids(skipped))
    n_lines = len(lines)
    if n_lines == 0:
        raise LayerError("roads: no usable LineString geometry; the roads layer must hold lines.")

    # --- 1. gaps closed by moving line ends (never farther than the tolerance) ----------------
    joins = Joins()
    if snap_tolerance_m > 0:
        lines, joins = close_gaps(lines, snap_tolerance_m, precision_m)

    # --- 2. nodes: line ends, and vertices shared by several lines (or met twice by one) ------
    vx = _node_vertices(lines, precision_m)

    # --- 3. edges: runs between consecutive nodes of a line ------------------------------------
    edges = _edge_frame(vx, roads, line_row, paved_surfaces=paved_surfaces, speed_kmh=speed_kmh)
    _add_grades(edges, dem, grade_sample_m=grade_sample_m, terrain_slope_deg=terrain_slope_deg)

    # --- 4. nodes, components, dangles ---------------------------------------------------------
    table = joins_table(joins, roads, line_row, roads.crs)
    net = _with_nodes(vx, edges, table, roads.crs)
    net.nodes["nearest_other_road_m"] = _dangle_distances(net, dangle_check_m)
    net.report = _network_report(net, roads, skipped=skipped, n_lines=n_lines, joins=joins, joins_gdf=table,
                                 snap_tolerance_m=snap_tolerance_m, dangle_check_m=dangle_check_m)
    log.info("network: %d edges, %d nodes, %d components, %d dangles, %d+%d end points snapped",
             len(edges), net.n_nodes, net.report["components"], net.report["dangles"],
             net.report["endpoints_snapped_to_vertex"], net.report["endpoints_snapped_to_segment"])
    return net


def _check_roads(roads: gpd.GeoDataFrame, snap_tolerance_m: float) -> None:
    """Refuse a negative tolerance, missing columns and a geographic CRS, naming the fix."""
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


@dataclass
class _Vertices:
    """Every vertex of the (gap-closed) lines, and which of them are graph nodes."""

    cidx: np.ndarray        # line of each vertex
    is_node: np.ndarray     # line end, or a coordinate shared by several lines (or met twice by one)
    node_of: np.ndarray     # node number of each node vertex (-1 elsewhere)
    xy: np.ndarray          # coordinates, node vertices moved to their node's coordinate
    n_nodes: int


def _node_vertices(lines: np.ndarray, precision_m: float) -> _Vertices:
    """Nodes: line ends, and vertices shared by several lines (or met twice by one), with
    coordinates equal after rounding to ``precision_m`` counting as one."""
    n_lines = len(lines)
    coords, cidx = shapely.get_coordinates(lines, return_index=True)
    starts, ends = line_ends(coords, cidx)
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
    return _Vertices(cidx=cidx, is_node=is_node, node_of=node_of, xy=xy, n_nodes=len(node_roots))


def _edge_frame(vx: _Vertices, roads: gpd.GeoDataFrame, line_row: np.ndarray, *,
                paved_surfaces: list[str], speed_kmh: dict[str, float]) -> gpd.GeoDataFrame:
    """Edges: the runs between consecutive nodes of a line, with their road's attributes,
    length, hardened flag, speed and travel time (no grades yet)."""
    npos = np.flatnonzero(vx.is_node)
    a, b = npos[:-1], npos[1:]
    same = vx.cidx[a] == vx.cidx[b]
    a, b = a[same], b[same]
    counts = b - a + 1
    eid = np.repeat(np.arange(len(a)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    geoms = shapely.linestrings(vx.xy[np.repeat(a, counts) + offs], indices=eid)
    length = shapely.length(geoms)
    good = length > 0
    a, b, geoms, length = a[good], b[good], geoms[good], length[good]
    road_pos = line_row[vx.cidx[a]]

    paved_set = {str(s).strip().lower() for s in paved_surfaces}
    rsurf = roads["surface"].astype(str).str.strip().to_numpy()[road_pos]
    rclass = roads["road_class"].astype(str).str.strip().to_numpy()[road_pos]
    rid = (roads["road_id"].astype(str).to_numpy()[road_pos] if "road_id" in roads.columns
           else np.array([str(i) for i in roads.index[road_pos]]))
    default_speed = speed_kmh.get("other", min(speed_kmh.values()))
    speed = np.array([speed_kmh.get(c, default_speed) for c in rclass], dtype="float64")
    return gpd.GeoDataFrame({
        "edge_id": np.arange(len(a)),
        "u": vx.node_of[a], "v": vx.node_of[b],
        "road_index": roads.index.to_numpy()[road_pos],
        "road_id": rid, "road_class": rclass, "surface": rsurf,
        "paved": np.array([s.lower() in paved_set for s in rsurf], dtype=bool),
        "length_m": length, "speed_kmh": speed,
        "travel_min": length / 1000.0 / speed * 60.0,
    }, geometry=geoms, crs=roads.crs)


def _with_nodes(vx: _Vertices, edges: gpd.GeoDataFrame, joins: gpd.GeoDataFrame, crs) -> RoadNetwork:
    """The network of the edges with its nodes: degree, components (all roads / hardened roads
    only) and dangles; the edges get their component."""
    n_nodes = vx.n_nodes
    npos = np.flatnonzero(vx.is_node)
    first_coord = np.full(n_nodes, -1, dtype=np.int64)
    first_coord[vx.node_of[npos][::-1]] = npos[::-1]
    nxy = vx.xy[first_coord]
    deg = np.bincount(edges["u"], minlength=n_nodes) + np.bincount(edges["v"], minlength=n_nodes)
    net = RoadNetwork(nodes=gpd.GeoDataFrame({"node_id": np.arange(n_nodes), "degree": deg},
                                             geometry=shapely.points(nxy), crs=crs),
                      edges=edges, report={}, joins=joins)
    ones = np.ones(len(edges))
    _, comp = connected_components(net.matrix(ones), directed=False)
    _, pcomp = connected_components(net.matrix(ones, mask=edges["paved"].to_numpy()), directed=False)
    net.nodes["component"] = comp
    net.nodes["paved_component"] = pcomp
    net.nodes["dangle"] = deg == 1
    edges["component"] = comp[edges["u"].to_numpy()]
    return net


def _dangle_distances(net: RoadNetwork, dangle_check_m: float) -> np.ndarray:
    """QA: distance from each dangling end to another road within ``dangle_check_m`` (a missed
    junction, or the end of a bridge); NaN elsewhere."""
    edges = net.edges
    deg = net.nodes["degree"].to_numpy()
    near = np.full(net.n_nodes, np.nan)
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
    return near


def _network_report(net: RoadNetwork, roads: gpd.GeoDataFrame, *, skipped: list[str], n_lines: int,
                    joins: Joins, joins_gdf: gpd.GeoDataFrame, snap_tolerance_m: float,
                    dangle_check_m: float) -> dict[str, Any]:
    """The counts of :attr:`RoadNetwork.report` (``joins_gdf``: the joins as a table)."""
    edges = net.edges
    deg = net.nodes["degree"].to_numpy()
    near = net.nodes["nearest_other_road_m"].to_numpy()
    comp_km = edges.groupby("component")["length_m"].sum().sort_values(ascending=False) / 1000.0
    return {
        "roads_in": int(len(roads)),
        "roads_skipped": len(skipped),
        "roads_skipped_ids": skipped[:20],
        "lines": int(n_lines),
        "edges": int(len(edges)),
        "nodes": int(net.n_nodes),
        "km_total": round(float(edges["length_m"].sum()) / 1000.0, 3),
        "km_paved": round(float(edges.loc[edges["paved"], "length_m"].sum()) / 1000.0, 3),
        "components": int(edges["component"].nunique()),
        "largest_component_km": round(float(comp_km.iloc[0]), 3) if len(comp_km) else 0.0,
        "largest_component_share_pct": (round(float(comp_km.iloc[0] / comp_km.sum() * 100.0), 2)
                                        if len(comp_km) else 0.0),
        "dangles": int((deg == 1).sum()),
        "dangles_near_other_road": int(np.isfinite(near).sum()),
        "dangle_check_m": float(dangle_check_m),
        "endpoints_snapped_to_vertex": int(sum(k == "end_to_end" for k in joins.kind)),
        "endpoints_snapped_to_segment": int(sum(k == "end_to_line" for k in joins.kind)),
        "snap_tolerance_m": float(snap_tolerance_m),
        "joins": int(len(joins_gdf)),
        "joins_max_moved_m": round(float(joins_gdf["moved_m"].max()), 3) if len(joins_gdf) else 0.0,
        "joins_total_moved_m": round(float(joins_gdf["moved_m"].sum()), 3),
    }


def joins_frame(net: RoadNetwork) -> gpd.GeoDataFrame:
    """The network's joins (one row per moved line end) for the GeoPackage."""
    if net.joins is None:  # a RoadNetwork assembled by hand, not by build_network
        raise ValueError("joins_frame: the network has no joins table; build it with build_network")
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
