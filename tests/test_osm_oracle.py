"""Real roads with an oracle: a real OpenStreetMap extract (central Helsinki, ODbL, see
tests/data/osm/README.md), a layer set built around it here, and osmnx on the same ways.

osmnx builds its graph from the OSM XML by node id (no coordinates compared, no snapping);
networkx gives the shortest paths; osmnx's ``nearest_edges`` the snaps. kaizhou-gis reads the
``.osm.pbf`` (pyosmium), joins lines by coordinates and runs its own snapping and Dijkstra.

* snap tolerance 0: 通达/通畅 agree for every village and settlement, snap distances within 0.05 m,
  network distances to the township seat within 0.5 m;
* the default tolerance (5 m): every point whose result differs is explained by a join in the
  network's ``joins`` table (its path to the seat, or its own road, goes through a moved end).
"""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import osmium
import pytest
import rasterio
import shapely
from affine import Affine
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import Point, box

ox = pytest.importorskip("osmnx")

from kaizhou_gis.access import analyse, snap_to_edges  # noqa: E402
from kaizhou_gis.access.points import _along_network  # noqa: E402
from kaizhou_gis.layers import load_layers  # noqa: E402
from kaizhou_gis.plan import load_plan  # noqa: E402

PBF = Path(__file__).parent / "data" / "osm" / "helsinki.osm.pbf"
WORK_CRS = "EPSG:3067"  # ETRS-TM35FIN, metres
TOWNS = ("500154001", "500154002")


# --------------------------------------------------------------------------------------------
# the layer set around the extract
# --------------------------------------------------------------------------------------------
def _bbox():
    b = osmium.io.Reader(str(PBF)).header().box()
    return b.bottom_left.lon, b.bottom_left.lat, b.top_right.lon, b.top_right.lat


def _write_xml_cut_at_missing_nodes(xml: Path) -> None:
    """The extract as OSM XML for osmnx, each highway way cut where its nodes are missing (as
    kaizhou-gis cuts it): part k of way w becomes way w*100+k with the tag kz_id."""
    locs: dict[int, tuple[float, float]] = {}
    ways = []
    for o in osmium.FileProcessor(str(PBF), osmium.osm.NODE | osmium.osm.WAY):
        if o.is_node() and o.location.valid():
            locs[o.id] = (o.location.lon, o.location.lat)
        elif o.is_way() and "highway" in o.tags:
            ways.append((o.id, [n.ref for n in o.nodes], dict(o.tags)))
    used: set[int] = set()
    out_ways = []
    for wid, refs, tags in ways:
        parts, cur = [], []
        for r in refs:
            if r in locs:
                cur.append(r)
            else:
                if len(cur) >= 2:
                    parts.append(cur)
                cur = []
        if len(cur) >= 2:
            parts.append(cur)
        for k, p in enumerate(parts, start=1):
            kz = f"osm{wid}" if len(parts) == 1 else f"osm{wid}-{k}"
            out_ways.append((wid * 100 + k, p, tags | {"kz_id": kz}))
            used.update(p)
    with osmium.SimpleWriter(str(xml)) as w:
        for nid in sorted(used):
            w.add_node(osmium.osm.mutable.Node(id=nid, location=locs[nid], version=1))
        for wid, p, tags in out_ways:
            w.add_way(osmium.osm.mutable.Way(id=wid, nodes=p, tags=tags, version=1))


def _layer_set(folder: Path, seats_lonlat) -> None:
    x0, y0, x1, y1 = _bbox()
    xm = (x0 + x1) / 2
    crs = "EPSG:4326"
    rng = np.random.default_rng(12)
    gpd.GeoDataFrame({"code": ["500154"], "name": ["test district"]},
                     geometry=[box(x0, y0, x1, y1)], crs=crs).to_file(folder / "boundary.gpkg")
    gpd.GeoDataFrame({"township_code": list(TOWNS), "name": ["西镇", "东镇"], "kind": ["镇", "镇"]},
                     geometry=[box(x0, y0, xm, y1), box(xm, y0, x1, y1)],
                     crs=crs).to_file(folder / "townships.gpkg")
    gpd.GeoDataFrame({"township_code": list(TOWNS), "name": ["西镇驻地", "东镇驻地"]},
                     geometry=[Point(p) for p in seats_lonlat], crs=crs).to_file(folder / "township_seats.gpkg")
    # points inside the extract, away from its edge (where ways are cut)
    def pts(n):
        return np.column_stack([rng.uniform(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0), n),
                                rng.uniform(y0 + 0.1 * (y1 - y0), y1 - 0.1 * (y1 - y0), n)])
    v = pts(24)
    vtown = np.where(v[:, 0] < xm, TOWNS[0], TOWNS[1])
    vcode = [f"{t}{200 + i:03d}" for i, t in enumerate(vtown)]
    gpd.GeoDataFrame({"village_code": vcode, "name": [f"村{i}" for i in range(len(v))],
                      "township_code": vtown, "households": 100, "population": 300},
                     geometry=[Point(p) for p in v], crs=crs).to_file(folder / "villages.gpkg")
    s = pts(96)
    stown = np.where(s[:, 0] < xm, 0, 1)
    svill = [vcode[int(np.flatnonzero(vtown == TOWNS[t])[i % int((vtown == TOWNS[t]).sum())])]
             for i, t in enumerate(stown)]
    gpd.GeoDataFrame({"settlement_id": [f"S{i}" for i in range(len(s))], "village_code": svill,
                      "households": 40, "population": 120},
                     geometry=[Point(p) for p in s], crs=crs).to_file(folder / "settlements.gpkg")
    res = 1.0 / 3600
    w, h = int((x1 - x0) / res) + 4, int((y1 - y0) / res) + 4
    with rasterio.open(folder / "dem.tif", "w", driver="GTiff", width=w, height=h, count=1,
                       dtype="float32", crs=crs, transform=Affine(res, 0, x0 - 2 * res, 0, -res, y1 + 2 * res)) as ds:
        ds.write(np.full((h, w), 20.0, dtype="float32"), 1)
    shutil.copy(PBF, folder / "roads.osm.pbf")


# --------------------------------------------------------------------------------------------
# the oracle: osmnx graph of the same ways, networkx shortest paths
# --------------------------------------------------------------------------------------------
class Oracle:
    def __init__(self, xml: Path, plan):
        tags = list(ox.settings.useful_tags_way)
        ox.settings.useful_tags_way = tags + ["surface", "tracktype", "kz_id"]
        try:
            G = ox.graph_from_xml(xml, bidirectional=True, simplify=False, retain_all=True)
        finally:
            ox.settings.useful_tags_way = tags
        excluded = {c.lower() for c in plan["layers.non_vehicle_classes"]}
        drop = [(u, v, k) for u, v, k, d in G.edges(keys=True, data=True)
                if str(d.get("highway", "")).lower() in excluded]
        G.remove_edges_from(drop)
        G.remove_nodes_from([n for n in list(G.nodes) if G.degree(n) == 0])
        self.G = ox.project_graph(G, to_crs=WORK_CRS)
        paved_w = {s.lower() for s in plan["access.paved_surfaces"]}
        unpaved_w = {s.lower() for s in plan["access.unpaved_surfaces"]}
        track_paved = set(plan["access.tracktype_paved"])
        cls_of = {v.lower(): c for c, vals in plan["layers.road_class_values"].items() for v in vals}
        default = plan["layers.default_surface"]

        def paved(d) -> bool:
            s = str(d.get("surface", "") or "").lower()
            if s:
                parts = [p.strip() for p in s.split(";") if p.strip()]
                if all(p in paved_w for p in parts):
                    return True
                if all(p in paved_w or p in unpaved_w for p in parts):
                    return False
            elif d.get("tracktype"):
                return d["tracktype"] in track_paved
            return default.get(cls_of.get(str(d.get("highway")).lower(), "other"), "unpaved") == "paved"

        xy = {n: (d["x"], d["y"]) for n, d in self.G.nodes(data=True)}
        self.xy = xy
        self.U = nx.Graph()
        self.P = nx.Graph()
        for u, v, d in self.G.edges(data=True):
            L = float(np.hypot(xy[u][0] - xy[v][0], xy[u][1] - xy[v][1]))
            for g, ok in ((self.U, True), (self.P, paved(d))):
                if ok and (not g.has_edge(u, v) or g[u][v]["w"] > L):
                    g.add_edge(u, v, w=L)
        for _u, _v, _k, d in self.G.edges(keys=True, data=True):
            d["paved"] = paved(d)
        # every way segment is in the bidirectional MultiDiGraph twice (one per direction)
        self.km_total = sum(float(np.hypot(xy[u][0] - xy[v][0], xy[u][1] - xy[v][1]))
                            for u, v in self.G.edges()) / 2 / 1000

    def seat_nodes(self, centres):
        """Per centre, the node nearest to it that is on the largest network and touches a paved
        road of the largest paved network (so both tools attach the seat at distance 0)."""
        def biggest(g):
            comps = list(nx.connected_components(g))
            km = [sum(d["w"] for _, _, d in g.subgraph(c).edges(data=True)) for c in comps]
            return comps[int(np.argmax(km))]
        cu, cp = biggest(self.U), biggest(self.P)
        cand = np.array(sorted(cu & cp))
        cxy = np.array([self.xy[n] for n in cand])
        return [int(cand[np.argmin(np.hypot(cxy[:, 0] - x, cxy[:, 1] - y))]) for x, y in centres]

    def access(self, pts_xy, seat_of_point, seat_nodes):
        """Snap distance, 通达, 通畅 and network distance (m) to the seat of every point."""
        X, Y = pts_xy[:, 0], pts_xy[:, 1]
        edges, dist = ox.distance.nearest_edges(self.G, X, Y, return_dist=True)
        du = {s: nx.single_source_dijkstra_path_length(self.U, s, weight="w") for s in set(seat_nodes)}
        dp = {s: nx.single_source_dijkstra_path_length(self.P, s, weight="w") for s in set(seat_nodes)}
        out = []
        for (u, v, k), d, (x, y), si in zip(edges, dist, pts_xy, seat_of_point):
            s = seat_nodes[si]
            L = float(np.hypot(self.xy[u][0] - self.xy[v][0], self.xy[u][1] - self.xy[v][1]))
            t = shapely.line_locate_point(shapely.LineString([self.xy[u], self.xy[v]]), Point(x, y))
            net_m = min(t + du[s].get(u, np.inf), L - t + du[s].get(v, np.inf))
            tongda = np.isfinite(net_m)
            tongchang = bool(self.G[u][v][k]["paved"]) and u in dp[s]
            out.append((float(d), bool(tongda), bool(tongchang), float(net_m)))
        return out


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("osm_oracle")
    xml = tmp / "roads.osm"
    _write_xml_cut_at_missing_nodes(xml)
    base = load_plan()
    oracle = Oracle(xml, base)
    x0, y0, x1, y1 = _bbox()
    tr = ox.projection.project_geometry(box(x0, y0, x1, y1), to_crs=WORK_CRS)[0].bounds
    centres = [(tr[0] + (tr[2] - tr[0]) * 0.3, (tr[1] + tr[3]) / 2),
               (tr[0] + (tr[2] - tr[0]) * 0.7, (tr[1] + tr[3]) / 2)]
    seats = oracle.seat_nodes(centres)
    seats_lonlat = gpd.GeoSeries([Point(oracle.xy[s]) for s in seats], crs=WORK_CRS).to_crs(4326)
    folder = tmp / "layers"
    folder.mkdir()
    _layer_set(folder, [(p.x, p.y) for p in seats_lonlat])
    return folder, oracle, seats


@functools.lru_cache(maxsize=4)
def _ours(folder, tol):
    plan = load_plan(overrides={"crs.work": WORK_CRS, "access.snap_tolerance_m": tol,
                                "access.county_seat_code": TOWNS[0]})
    layers = load_layers(folder, plan=plan)
    acc = analyse(layers, plan, dem=None)
    pts = gpd.GeoSeries(list(layers.villages.geometry) + list(layers.settlements.geometry), crs=layers.crs)
    town = list(layers.villages["township_code"]) + \
        [layers.villages.set_index("village_code").loc[c, "township_code"]
         for c in layers.settlements["village_code"]]
    both = acc.villages[["tongda", "tongchang"]].values.tolist() + \
        acc.settlements[["tongda", "tongchang"]].values.tolist()
    snap = snap_to_edges(pts, acc.net.edges)
    rows = np.array([acc.seats.row_of[str(t)] for t in town])
    s = acc.seats.seats
    net_m = _along_network(acc.net, acc.seats.dist_m, rows, snap["edge"].to_numpy(),
                           snap["along_m"].to_numpy(), acc.net.edges["length_m"].to_numpy(),
                           s["edge"].to_numpy(), s["along_m"].to_numpy())
    return dict(layers=layers, acc=acc, pts=pts, town=town, tongda=np.array([b[0] for b in both]),
                tongchang=np.array([b[1] for b in both]), snap=snap["snap_distance_m"].to_numpy(),
                edge=snap["edge"].to_numpy(), net_m=net_m)


def _oracle_results(oracle, ours, seats):
    xy = shapely.get_coordinates(ours["pts"].to_numpy())
    seat_of = [TOWNS.index(str(t)) for t in ours["town"]]
    r = oracle.access(xy, seat_of, seats)
    return (np.array([x[0] for x in r]), np.array([x[1] for x in r]), np.array([x[2] for x in r]),
            np.array([x[3] for x in r]))


def test_tolerance_zero_agrees_with_osmnx(case):
    folder, oracle, seats = case
    ours = _ours(folder, 0.0)
    o_snap, o_da, o_ch, o_m = _oracle_results(oracle, ours, seats)
    n = len(o_snap)
    assert n == 120
    # both tools see the same vehicle network: same total length
    assert ours["acc"].net.report["km_total"] == pytest.approx(oracle.km_total, abs=0.002)
    assert (ours["tongda"] == o_da).all()
    assert (ours["tongchang"] == o_ch).all()
    assert 0 < o_da.sum() < n or o_da.all()  # (informative: the mix is what it is)
    assert np.abs(ours["snap"] - o_snap).max() <= 0.05
    fin = np.isfinite(o_m)
    assert (np.isfinite(ours["net_m"]) == fin).all()
    assert np.abs(ours["net_m"][fin] - o_m[fin]).max() <= 0.5
    assert fin.sum() >= 0.5 * n  # most points reach their seat: the comparison is not empty


def test_default_tolerance_differences_are_explained_by_joins(case):
    folder, oracle, seats = case
    ours = _ours(folder, float(load_plan()["access.snap_tolerance_m"]))
    o_snap, o_da, o_ch, o_m = _oracle_results(oracle, ours, seats)
    net = ours["acc"].net
    joins = net.joins
    assert len(joins) > 0 and (joins["moved_m"] <= 5.0 + 1e-9).all()
    # the geometry is kept: every edge end within 5 m of its own road, no new loop edges
    roads = ours["layers"].roads.set_index("road_id").geometry
    ends = shapely.points(np.vstack([shapely.get_coordinates(shapely.get_point(net.edges.geometry.to_numpy(), i))
                                     for i in (0, -1)]))
    own = np.concatenate([roads.loc[net.edges["road_id"]].to_numpy()] * 2)
    assert shapely.distance(ends, own).max() <= 5.0 + 1e-6
    assert int((net.edges["u"] == net.edges["v"]).sum()) <= \
        int((_ours(folder, 0.0)["acc"].net.edges.pipe(lambda x: x["u"] == x["v"])).sum())
    # nodes where a moved end now sits, and roads that had an end moved
    new_end = shapely.points(shapely.get_coordinates(joins.geometry.to_numpy())[1::2])
    nodes = net.nodes.geometry.to_numpy()
    tree = shapely.STRtree(nodes)
    join_nodes = set(tree.query(new_end, predicate="dwithin", distance=1e-6)[1].tolist())
    join_roads = set(joins["road_id"]) | {r for t in joins["to_road_id"] for r in t.split(";")}
    # shortest-path trees from each seat over the network (predecessors), as access builds it
    e = net.edges
    u, v, L = e["u"].to_numpy(), e["v"].to_numpy(), e["length_m"].to_numpy()
    g = net.matrix(np.maximum(L, 1e-9))
    s = ours["acc"].seats.seats
    pred = {}
    for i, _code in enumerate(TOWNS):
        start = int(u[s.loc[i, "edge"]])
        pred[i] = dijkstra(g, directed=False, indices=start, return_predecessors=True)[1]

    def path_nodes(i, node):
        out = set()
        while node >= 0 and node not in out:
            out.add(int(node))
            node = pred[i][node]
        return out

    differ = ((ours["tongda"] != o_da) | (ours["tongchang"] != o_ch)
              | (np.abs(ours["snap"] - o_snap) > 0.05)
              | ~np.isclose(np.nan_to_num(ours["net_m"], posinf=-1), np.nan_to_num(o_m, posinf=-1), atol=0.5))
    unexplained = []
    for k in np.flatnonzero(differ):
        ed = int(ours["edge"][k])
        i = TOWNS.index(str(ours["town"][k]))
        on_path = path_nodes(i, int(u[ed])) | path_nodes(i, int(v[ed]))
        if not (on_path & join_nodes or e["road_id"].iloc[ed] in join_roads):
            unexplained.append(k)
    assert not unexplained, f"{len(unexplained)} of {int(differ.sum())} differences not explained by a join"
    assert differ.sum() < len(differ)  # most points are unaffected
