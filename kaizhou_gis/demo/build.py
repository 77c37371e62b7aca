"""Assemble the default layers: real administrative parts + synthesized terrain, places, roads."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.features import geometry_mask
from scipy.ndimage import binary_dilation
from shapely.geometry import Point, Polygon
from shapely.ops import nearest_points

from kaizhou_gis import outputs
from kaizhou_gis.demo import admin as adm
from kaizhou_gis.demo import dem as demmod
from kaizhou_gis.demo import noise, settle
from kaizhou_gis.demo import roads as roadmod
from kaizhou_gis.errors import OptionError
from kaizhou_gis.terrain import slope_deg

log = logging.getLogger(__name__)

#: Where the main river leaves the district (澎溪河 towards 云阳; approximate) and its level.
OUTLET_NEAR_LONLAT = (108.68, 31.08)
OUTLET_ELEVATION_M = 145.0
#: Roads may leave the district by at most this many DEM cells (~80 m each).
ROAD_MARGIN_CELLS = 8
SRC_VILLAGE = "NBS 2023 (code, name); location, households, population: synthetic"
SRC_SETTLEMENT = "synthetic (location, name, households, population, poor_population)"
SRC_TOWNSHIP = "NBS 2023 (code, name); polygon: synthetic (Voronoi of seats clipped to boundary, approximate)"
SRC_ROAD = "synthetic (least-cost path over the synthetic DEM)"


@dataclass
class Built:
    """Everything the build produced (EPSG:4326 vector layers, int16 DEM)."""

    layers: dict[str, gpd.GeoDataFrame]
    dem: np.ndarray
    grid: demmod.Grid
    stats: dict = field(default_factory=dict)


def _fill_elevations(ll: np.ndarray, elev: np.ndarray) -> np.ndarray:
    """Unknown seat elevations: mean of the three nearest known seats (river nodes only)."""
    out = elev.copy()
    known = np.isfinite(elev)
    for i in np.flatnonzero(~known):
        d = np.hypot(*(ll[known] - ll[i]).T)
        out[i] = float(np.mean(elev[known][np.argsort(d)[:3]]))
    return out


@dataclass(frozen=True)
class SyntheticDistrict:
    """What a purely synthetic district looks like (no real parts; every row says ``synthetic``).

    ``code`` is a 6-digit district code (townships get ``code`` + 3 digits, from the 1,000th on
    ``code`` + 1 and so on; villages 3 more), ``lon``/``lat`` the centre, ``area_km2`` the area,
    ``townships`` and ``villages`` the counts.
    """

    code: str = "900000"
    name: str = "合成区"
    lon: float = 108.4
    lat: float = 31.25
    area_km2: float = 3964.0
    townships: int = 40
    villages: int = 535

    @classmethod
    def scaled(cls, scale: int) -> SyntheticDistrict:
        """Kaizhou's size times ``scale`` (``demo-layers --scale K``)."""
        return cls(name=f"合成区x{scale}", area_km2=3964.0 * scale, townships=40 * scale,
                   villages=535 * scale)

    def check(self) -> None:
        if not (len(self.code) == 6 and self.code.isdigit()):
            raise OptionError(f"demo-layers: --code must be 6 digits (a district code such as "
                              f"900001); got {self.code!r}.")
        if not 73.0 <= self.lon <= 135.0 or not 18.0 <= self.lat <= 54.0:
            raise OptionError(f"demo-layers: --center {self.lon},{self.lat} is not in China "
                              f"(lon 73-135, lat 18-54).")
        if self.townships < 1 or self.villages < 2 * self.townships:
            raise OptionError(f"demo-layers: need at least 1 township and 2 villages per township "
                              f"(got {self.townships} townships, {self.villages} villages).")
        if self.area_km2 < 20.0 * self.townships:
            raise OptionError(f"demo-layers: --area-km2 {self.area_km2:g} is too small for "
                              f"{self.townships} townships (at least 20 km2 each).")

    @property
    def work_crs(self) -> str:
        """CGCS2000 3-degree Gauss-Kruger zone (central meridian) nearest the centre."""
        return f"EPSG:{4534 + int(round((self.lon - 75.0) / 3.0))}"


def _synthetic_admin(scale: int, rng: np.random.Generator,
                     spec: SyntheticDistrict | None = None) -> tuple[adm.Admin, np.ndarray]:
    """A purely synthetic district (no real parts): ``spec``, or Kaizhou's size times ``scale``."""
    spec = spec or SyntheticDistrict.scaled(scale)
    area_km2 = spec.area_km2
    lon0, lat0 = spec.lon, spec.lat
    # wobbly ellipse of the right area (equirectangular metres)
    kx = 111_320.0 * np.cos(np.radians(lat0))
    ky = 110_574.0
    th = np.linspace(0, 2 * np.pi, 361)[:-1]
    ph = rng.uniform(0, 2 * np.pi, 2)
    wob = 1.0 + 0.12 * np.sin(3 * th + ph[0]) + 0.06 * np.sin(5 * th + ph[1])
    base_area = 0.5 * np.sum(wob ** 2) * (2 * np.pi / len(th))  # area of r = wob (unit R)
    R = np.sqrt(area_km2 * 1e6 / base_area)
    xs, ys = R * wob * np.cos(th) * 1.2, R * wob * np.sin(th) / 1.2
    poly = Polygon(np.column_stack([lon0 + xs / kx, lat0 + ys / ky]))
    what = (f"benchmark district, scale {scale}" if scale > 1 else
            f"test district {spec.code}, kaizhou-gis demo-layers")
    boundary = gpd.GeoDataFrame({"code": [spec.code], "name": [spec.name],
                                 "source": [f"synthetic ({what})"]},
                                geometry=[poly], crs="EPSG:4326")
    n_t = spec.townships
    # seats: inside the boundary and apart (spacing shrinks for small districts)
    r_deg = R / ky
    inset = min(0.02, 0.25 * r_deg)
    spacing = min(0.03, 0.6 * r_deg / np.sqrt(n_t))
    pts = []
    minx, miny, maxx, maxy = poly.bounds
    inner = poly.buffer(-inset)
    while len(pts) < n_t:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if inner.contains(Point(x, y)):
            if all(np.hypot(x - a, y - b) > spacing for a, b in pts):
                pts.append((x, y))
    n_jd = max(1, int(round(n_t * 0.05)))
    n_x = int(round(n_t * 0.125)) if n_t > 1 else 0
    kinds = ["街道"] * n_jd + ["镇"] * (n_t - n_jd - n_x) + ["乡"] * n_x
    # 统计用区划代码: a township is its county's 6 digits and 3 of its own (001-999); a district
    # of more townships (demo-layers --scale 100: 4,000) spans several synthetic county codes
    codes = [f"{int(spec.code) + i // 999:06d}{i % 999 + 1:03d}" for i in range(n_t)]
    if len(codes[-1]) != 9:
        raise OptionError(f"demo-layers: {n_t} townships need {n_t // 999 + 1} county codes from "
                          f"{spec.code}: use a smaller --code (e.g. 900000).")
    names = [f"合成{i + 1}{k}" for i, k in enumerate(kinds)]
    townships = pd.DataFrame({"township_code": codes, "name": names, "kind": kinds})
    seats = gpd.GeoDataFrame({"township_code": codes, "name": names,
                              "elevation_m": np.nan, "source": "synthetic"},
                             geometry=[Point(x, y) for x, y in pts], crs="EPSG:4326")
    per = rng.multinomial(spec.villages - 2 * n_t, np.full(n_t, 1.0 / n_t)) + 2
    rows = []
    for code, k_t, n_v in zip(codes, kinds, per):
        n_c = max(1, int(round(n_v * (0.6 if k_t == "街道" else 0.12))))
        for j in range(n_v):
            is_c = j < n_c
            vc = f"{code}{j + 1:03d}"
            nm = f"合成{j + 1}{'社区' if is_c else '村'}"
            rows.append({"village_code": vc, "name": nm,
                         "name_full": nm + ("居民委员会" if is_c else "村民委员会"),
                         "township_code": code, "kind": "社区" if is_c else "村"})
    villages = pd.DataFrame(rows)
    empty = pd.DataFrame(columns=["township", "village", "township_code", "village_code", "sentence"])
    return adm.Admin(boundary, townships, seats, villages, empty), np.zeros(0)


#: Shape of the Kaizhou DEM grid (rows, cols); ``--scale K`` grids have K times its cell count.
BASE_GRID_SHAPE = (1111, 1227)


def _scaled_grid(grid: demmod.Grid, scale: int) -> demmod.Grid:
    """A grid with ``scale`` times the Kaizhou DEM's cells, centred on ``grid`` and covering it."""
    k = np.sqrt(scale)
    h = max(int(round(BASE_GRID_SHAPE[0] * k)), grid.shape[0])
    w = max(int(round(BASE_GRID_SHAPE[1] * k)), grid.shape[1])
    tr = grid.transform
    west = tr.c - ((w - grid.shape[1]) // 2) * tr.a
    north = tr.f - ((h - grid.shape[0]) // 2) * tr.e
    return demmod.Grid(Affine(tr.a, 0.0, west, 0.0, tr.e, north), (h, w))


def build_layers(*, seed: int, scale: int = 1, district: SyntheticDistrict | None = None) -> Built:
    """Build every layer in memory (no file is written here).

    ``scale=1`` without ``district`` builds the Kaizhou layers (real parts + synthesized);
    ``scale=K`` a synthetic district K times Kaizhou's size; ``district`` any synthetic district.
    """
    # One piece on purpose: a linear recipe (admin -> grid -> DEM -> villages -> settlements
    # -> poverty -> roads -> assemble) whose random streams are drawn in this order; the shipped
    # layers' bytes depend on that order, and each stage already calls its own module (adm, demmod,
    # settle, roads), so splitting further would only pass a dozen locals between helpers.
    ss = np.random.SeedSequence(seed)
    # five independent streams (the fifth is reserved for the roads, which are not random)
    r_admin, r_dem, r_village, r_settle, _ = (np.random.default_rng(s) for s in ss.spawn(5))
    real = scale == 1 and district is None
    if real:
        a = adm.read_admin()
    else:
        a, _ = _synthetic_admin(scale, r_admin, district)
    bpoly = a.boundary.geometry.iloc[0]
    grid = demmod.grid_for_bounds(*bpoly.bounds)
    if not real and district is None:
        grid = _scaled_grid(grid, scale)
    inside = ~geometry_mask([bpoly], out_shape=grid.shape, transform=grid.transform)
    if real:
        coarse, ctr = adm.itur_trend_source()
        trend = demmod.trend_from_coarse(grid, coarse, ctr)
    else:
        trend = noise.fractal(grid.shape, r_dem, beta=3.0)
        trend *= 380.0
        trend += 650.0                                # 650 + 380 * fractal
    seats = a.seats
    ll = np.column_stack([seats.geometry.x, seats.geometry.y])
    if not real:
        r, c = grid.cell_of(ll[:, 0], ll[:, 1])
        seats = seats.copy()
        seats["elevation_m"] = np.round(160.0 + 0.45 * np.maximum(trend[r, c] - 300.0, 0.0))
        a.seats = seats
    elev = seats["elevation_m"].to_numpy(dtype=float)
    node_elev = _fill_elevations(ll, elev)
    op = nearest_points(bpoly.exterior, Point(*OUTLET_NEAR_LONLAT))[0] if real else \
        nearest_points(bpoly.exterior, Point(bpoly.bounds[2], bpoly.centroid.y))[0]
    cx, cy = bpoly.centroid.x, bpoly.centroid.y
    vx, vy = op.x - cx, op.y - cy
    norm = float(np.hypot(vx, vy))
    outlet = (op.x + 0.02 * vx / norm, op.y + 0.02 * vy / norm)
    nodes = np.vstack([ll, [outlet]])
    nodes_e = np.concatenate([node_elev, [OUTLET_ELEVATION_M]])
    params = demmod.DemParams()
    z = demmod.synthesize(grid, trend, nodes, nodes_e, ll, elev, inside, r_dem, params)
    del trend  # grid-sized arrays: each is dropped as soon as it is used up
    dem = np.round(z).astype(np.int16)
    del z
    zf = dem.astype(float)
    slope = slope_deg(zf, grid.transform, "EPSG:4326")

    # townships, villages, settlements
    tpolys = settle.township_polygons(seats, a.boundary)
    townships = a.townships.copy()
    tgdf = gpd.GeoDataFrame(townships.assign(source=SRC_TOWNSHIP if real else "synthetic"),
                            geometry=tpolys.to_numpy(), crs="EPSG:4326")
    sp = settle.SettleParams()
    if district is not None:  # Kaizhou's rural population per village
        sp = settle.SettleParams(rural_population=int(round(1_140_000 * district.villages / 535)))
    villages = a.villages.copy()
    vrc, tid = settle.place_villages(grid, zf, slope, tgdf, seats, villages, r_village, sp)
    kind = townships.set_index("township_code")["kind"]
    sizes = settle.village_sizes(villages, kind, r_village, sp)
    villages = villages.join(sizes)
    vlon, vlat = settle._jitter(grid, vrc["row"].to_numpy(), vrc["col"].to_numpy(),
                                tgdf.set_index("township_code").geometry.reindex(villages["township_code"]).to_numpy(),
                                r_village)
    sets = settle.place_settlements(grid, zf, slope, tid, tgdf, villages, vrc, r_settle, sp)
    del slope, tid
    spoly = tgdf.set_index("township_code").geometry.reindex(
        villages["township_code"].to_numpy()[sets["vidx"]]).to_numpy()
    slon, slat = settle._jitter(grid, sets["row"].to_numpy(), sets["col"].to_numpy(), spoly, r_settle)
    # keep settlement households below the village total (the rest lives at the village centre)
    vh = villages["households"].to_numpy()
    tot = sets.groupby("vidx")["households"].sum()
    cap = pd.Series(0.85 * vh[tot.index], index=tot.index)
    f = (cap / tot).clip(upper=1.0)
    sf = sets["vidx"].map(f).to_numpy()
    sets["households"] = np.maximum(np.floor(sets["households"] * sf), 1).astype(np.int64)
    sets["population"] = np.maximum(np.floor(sets["population"] * sf), 1).astype(np.int64)

    # poverty: plan-named + ranking of elevation and remoteness
    county = seats.index[seats["township_code"] == (adm.COUNTY_SEAT_CODE if real else seats["township_code"].iat[0])][0]
    cxy = grid.to_xy_m(seats.geometry.x.loc[county], seats.geometry.y.loc[county])[0]
    vxy = grid.to_xy_m(vlon, vlat)
    v_elev = zf[vrc["row"], vrc["col"]]
    s_elev = pd.Series(zf[sets["row"], sets["col"]]).groupby(sets["vidx"]).mean()
    mean_elev = pd.Series(v_elev, index=range(len(villages)))
    mean_elev.loc[s_elev.index] = (mean_elev.loc[s_elev.index] + 2 * s_elev) / 3
    dist_km = np.hypot(vxy[:, 0] - cxy[0], vxy[:, 1] - cxy[1]) / 1000.0
    score = pd.Series(0.6 * mean_elev.rank(pct=True).to_numpy()
                      + 0.4 * pd.Series(dist_km).rank(pct=True).to_numpy(), index=villages.index)
    if district is None:
        sp_n = settle.SettleParams(n_poverty=135 * scale, n_deep=34 * scale)
    else:  # Kaizhou's shares of poverty and deep-poverty villages
        nv = len(villages)
        sp_n = settle.SettleParams(n_poverty=max(1, int(round(nv * 135 / 535))),
                                   n_deep=max(1, int(round(nv * 34 / 535))))
    pov = settle.poverty_flags(villages, a.plan_poverty, score, sp_n)
    villages = villages.join(pov)

    # registered poor people per settlement (deterministic: the random streams stay as they were)
    seat_of = pd.Series(np.arange(len(seats)), index=seats["township_code"].to_numpy())
    seat_xy = grid.to_xy_m(ll[:, 0], ll[:, 1])
    s_seat = seat_xy[seat_of.reindex(villages["township_code"].to_numpy()[sets["vidx"]]).to_numpy()]
    s_xy0 = grid.to_xy_m(slon, slat)
    sets["poor_population"] = settle.poor_population(
        sets["population"].to_numpy(), zf[sets["row"], sets["col"]],
        np.hypot(*(s_xy0 - s_seat).T) / 1000.0,
        villages["poverty_village"].to_numpy(dtype=bool)[sets["vidx"]],
        villages["deep_poverty"].to_numpy(dtype=bool)[sets["vidx"]])

    # roads
    W = grid.shape[1]
    sr, sc = grid.cell_of(ll[:, 0], ll[:, 1])
    seat_cells = sr * W + sc
    village_cells = vrc["row"].to_numpy() * W + vrc["col"].to_numpy()
    settle_cells = sets["row"].to_numpy() * W + sets["col"].to_numpy()
    unpave_order = np.lexsort((-score.to_numpy(), ~villages["poverty_village"].to_numpy(),
                               (villages["kind"] != "村").to_numpy()))
    s_xy = grid.to_xy_m(slon, slat)
    own = vxy[sets["vidx"].to_numpy()]
    s_rem = (pd.Series(zf[sets["row"], sets["col"]]).rank(pct=True).to_numpy()
             + pd.Series(np.hypot(*(s_xy - own).T)).rank(pct=True).to_numpy())
    remote_order = np.argsort(-s_rem, kind="stable")
    target = ((sets["households"] >= 30) | (sets["population"] >= 100)).to_numpy()
    rp = roadmod.RoadParams()
    rr = roadmod.build_roads(grid, zf, seat_cells, ll, int(np.flatnonzero(seats.index == county)[0]),
                             village_cells, np.column_stack([vlon, vlat]), unpave_order,
                             settle_cells, np.column_stack([slon, slat]), target, remote_order,
                             rp, mask=binary_dilation(inside, iterations=ROAD_MARGIN_CELLS))

    # assemble layers
    seats_out = seats.copy()
    seats_out["is_county_seat"] = seats_out.index == county
    vg = gpd.GeoDataFrame({
        "village_code": villages["village_code"], "name": villages["name"],
        "name_full": villages["name_full"], "township_code": villages["township_code"],
        "township_name": villages["township_code"].map(townships.set_index("township_code")["name"]),
        "kind": villages["kind"], "households": villages["households"].astype("int64"),
        "population": villages["population"].astype("int64"),
        "poverty_village": villages["poverty_village"].astype(bool),
        "deep_poverty": villages["deep_poverty"].astype(bool),
        "poverty_source": villages["poverty_source"],
        "source": SRC_VILLAGE if real else "synthetic"},
        geometry=gpd.points_from_xy(vlon, vlat), crs="EPSG:4326")
    vname = villages["name"].to_numpy()[sets["vidx"]]
    sg = gpd.GeoDataFrame({
        "settlement_id": sets["settlement_id"],
        "name": [f"{n}{k}组" for n, k in zip(vname, sets["seq"])],
        "village_code": sets["village_code"], "households": sets["households"].astype("int64"),
        "population": sets["population"].astype("int64"),
        "poor_population": sets["poor_population"].astype("int64"), "source": SRC_SETTLEMENT},
        geometry=gpd.points_from_xy(slon, slat), crs="EPSG:4326")
    roads = rr.roads.assign(source=SRC_ROAD)
    stats = {
        "villages_tongchang_pct": 100 * float(rr.village_tongchang.mean()),
        "villages_tongda_pct": 100 * float(rr.village_tongda.mean()),
        "settlements_target_tongda_pct": 100 * float(rr.settlement_tongda[target].mean()),
        "settlements_target_tongchang_pct": 100 * float(rr.settlement_tongchang[target].mean()),
        "settlements": len(sg),
        "settlement_poor_population": int(sg["poor_population"].sum()),
        "roads_km": float(roads["length_km"].sum()),
        "seats_connected": rr.seats_connected,
    }
    log.info("demo layers: %s", stats)
    layers = {"boundary": a.boundary, "townships": tgdf, "township_seats": seats_out,
              "villages": vg, "settlements": sg, "roads": roads}
    if real:
        pp = a.plan_poverty
        stats["plan_poverty_unmatched"] = pp.loc[pp["village_code"] == "", ["township", "village"]].values.tolist()
    return Built(layers, dem, grid, stats)


def write_layers(built: Built, out_dir: Path) -> list[Path]:
    """Write ``kaizhou.gpkg`` and ``dem.tif`` through :mod:`kaizhou_gis.outputs`."""
    from kaizhou_gis.demo import DEM_NAME, GPKG_NAME

    out_dir.mkdir(parents=True, exist_ok=True)
    layers = {name: gdf.reset_index(drop=True) for name, gdf in built.layers.items()}
    gpkg = outputs.write_gpkg(layers, out_dir / GPKG_NAME)
    tif = outputs.write_geotiff(built.dem, out_dir / DEM_NAME, transform=built.grid.transform,
                                crs="EPSG:4326", nodata=demmod.NODATA,
                                tags={"source": "synthetic DEM (kaizhou-gis demo-layers); see layers/README.md",
                                      "units": "metre"})
    return [gpkg, tif]
