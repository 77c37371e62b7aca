"""Property-based tests of the network builder (hypothesis): over random sets of lines, gap
closing keeps the geometry. Every edge vertex lies within the snap tolerance of its own road; no
join moves an end farther than the tolerance; the edges are at most as long as the input plus the
joins' moves; no edge is a loop that its road did not already make; with tolerance 0 the edges are
exactly the input lines."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizhou_gis.network import build_network

SPEEDS = {"village": 20.0, "other": 20.0}
X0, Y0 = 500_000.0, 3_400_000.0

# coordinates on a 0.5 m grid in a 40 m square: ends often fall within a few metres of each other
coord = st.tuples(st.integers(0, 80), st.integers(0, 80)).map(lambda t: (t[0] * 0.5, t[1] * 0.5))
line = st.lists(coord, min_size=2, max_size=5).filter(
    lambda pts: shapely.LineString(pts).length > 0)
line_sets = st.lists(line, min_size=1, max_size=8)


def _roads(lines):
    return gpd.GeoDataFrame({"road_id": [f"R{i}" for i in range(len(lines))],
                             "road_class": "village", "surface": "paved"},
                            geometry=[shapely.LineString([(X0 + x, Y0 + y) for x, y in ln])
                                      for ln in lines], crs="EPSG:4545")


def _build(gdf, tol):
    return build_network(gdf, snap_tolerance_m=tol, paved_surfaces=["paved"], speed_kmh=SPEEDS)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(lines=line_sets, tol=st.sampled_from([1.0, 2.5, 5.0]))
def test_gap_closing_keeps_geometry(lines, tol):
    gdf = _roads(lines)
    net = _build(gdf, tol)
    src = gdf.set_index("road_id").geometry
    e = net.edges
    # every vertex of every edge lies within the tolerance of its own road
    for rid, g in zip(e["road_id"], e.geometry):
        d = shapely.distance(shapely.points(shapely.get_coordinates(g)), src[rid])
        assert d.max() <= tol + 1e-6
    j = net.joins
    assert (j["moved_m"] <= tol + 1e-9).all()
    # total length: at most the input plus what the joins moved
    assert e["length_m"].sum() <= gdf.length.sum() + j["moved_m"].sum() + 1e-6
    assert (e["length_m"] > 0).all()
    # no loop edge that the same lines do not already make without snapping
    loops = int((e["u"] == e["v"]).sum())
    assert loops <= int((_build(gdf, 0.0).edges.pipe(lambda x: x["u"] == x["v"])).sum())
    # a join joins: the moved end sits on a node shared with the road(s) it names
    if len(j):
        new_end = shapely.points(shapely.get_coordinates(j.geometry.to_numpy())[1::2])
        assert shapely.distance(new_end[:, None], net.nodes.geometry.to_numpy()[None, :]).min(axis=1).max() < 1e-6


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(lines=line_sets)
def test_tolerance_zero_is_the_input_geometry(lines):
    gdf = _roads(lines)
    net = _build(gdf, 0.0)
    assert len(net.joins) == 0
    assert net.edges["length_m"].sum() == pytest.approx(gdf.length.sum(), abs=1e-6)
    # each road's edges put together are exactly the road
    for rid, g in gdf.set_index("road_id").geometry.items():
        parts = net.edges.loc[net.edges["road_id"] == rid].geometry.to_numpy()
        assert shapely.equals(shapely.union_all(parts), shapely.union_all([g]))
        assert shapely.get_coordinates(parts).tolist() == \
            [c for c in shapely.get_coordinates(parts).tolist()]  # no vertex invented
        own = {tuple(c) for c in np.round(shapely.get_coordinates(g), 6).tolist()}
        assert {tuple(c) for c in np.round(shapely.get_coordinates(parts), 6).tolist()} <= own
