"""Synthetic locations and sizes: township polygons, village points, settlements, poverty flags.

Everything here is synthesized (``source`` says so) from one seeded generator; names and codes
come from the real NBS list. Rules (also in layers/README.md):

- Township polygons: Voronoi cells of the seats (metric CRS), clipped to the district boundary.
- Villages: placed inside their township on gentle slopes, spread by k-means over a slope-weighted
  sample of the township's DEM cells; communities (社区) near the township seat.
- Households and population: 村 populations lognormal, scaled to the plan's rural population;
  households from a household size around the plan's 3.1.
- Settlements (自然村): a few per 村 in the village's territory (nearest-village cells), on gentle
  slopes, with lognormal (skewed) sizes; the share above the relocation threshold outside the
  街道 is calibrated to the plan's 25.6 %.
- Poverty villages: the villages the plan names as 贫困村 (``poverty_source = plan``), the rest by
  a deterministic ranking of elevation and remoteness (``synthetic``); deep poverty: the top of
  the same ranking.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.features import rasterize
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from kaizhou_gis.demo.dem import Grid

log = logging.getLogger(__name__)

WORK_CRS = "EPSG:4545"


@dataclass
class SettleParams:
    """Knobs of the synthetic settlement pattern (documented in layers/README.md)."""

    rural_population: int = 1_140_000       # plan: 119,207 poor / 10.45 % incidence
    people_per_household: float = 3.1       # plan file baseline.people_per_household
    village_pop_sigma: float = 0.35
    community_pop_median: tuple[float, float] = (4500.0, 2200.0)  # in 街道, elsewhere
    settlements_per_village: tuple[int, float] = (2, 2.4)   # fixed + Poisson mean, per 村
    settlements_per_community: float = 0.8  # Poisson mean, 社区 outside 街道
    settlements_per_street_village: tuple[int, float] = (1, 1.5)
    settlement_hh_median: float = 27.0
    settlement_hh_sigma: float = 0.85
    high_share: float = 0.256               # plan ch.5: 340 of 1,329 natural villages > 800 m
    threshold_m: float = 800.0
    community_radius_m: float = 1800.0
    gentle_slope_deg: float = 12.0          # e-folding slope of the site weight
    settlement_min_dist_m: float = 350.0
    n_poverty: int = 135
    n_deep: int = 34


def township_polygons(seats: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Voronoi cells of the seats clipped to the boundary, aligned with ``seats`` (EPSG:4326)."""
    s = seats.to_crs(WORK_CRS)
    b = boundary.to_crs(WORK_CRS).geometry.union_all()
    cells = shapely.voronoi_polygons(shapely.MultiPoint(list(s.geometry)), extend_to=b.buffer(5000))
    parts = list(cells.geoms)
    out = []
    for pt in s.geometry:
        cell = next(c for c in parts if c.contains(pt))
        g = shapely.make_valid(cell.intersection(b))
        if g.geom_type == "GeometryCollection":  # keep the polygonal parts only
            g = shapely.union_all([p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")])
        out.append(g)
    # detached slivers (a Voronoi cell cut by a concave boundary) join the township they touch most
    for i, g in enumerate(out):
        if g.geom_type != "MultiPolygon":
            continue
        parts = sorted(g.geoms, key=lambda q: -q.area)
        keep = [parts[0]]
        for part in parts[1:]:
            shared = [(out[j].boundary.intersection(part.boundary).length, j)
                      for j in range(len(out)) if j != i]
            length, j = max(shared)
            if length > 0 and part.area < 0.05 * parts[0].area:
                out[j] = shapely.union_all([out[j], part])
            else:
                keep.append(part)
        out[i] = shapely.union_all(keep)
    return gpd.GeoSeries(out, index=seats.index, crs=WORK_CRS).to_crs("EPSG:4326")


def township_cells(tid: np.ndarray, n: int):
    """``cells_of(i)``: (rows, cols) of the cells of township ``i`` (``tid == i + 1``) in
    row-major order, as ``np.nonzero(tid == i + 1)`` gives them; one sort for all townships
    instead of one scan of the grid per township."""
    flat = tid.ravel()
    inside = np.flatnonzero(flat > 0)
    order = inside[np.argsort(flat[inside], kind="stable")]
    starts = np.searchsorted(flat[order], np.arange(1, n + 2))
    w = tid.shape[1]

    def cells_of(i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(order[starts[i]:starts[i + 1]], w)

    return cells_of


def _positions(df: pd.DataFrame) -> dict:
    """Row position of each index label."""
    return {label: i for i, label in enumerate(df.index)}


def _weights(slope: np.ndarray, gentle: float) -> np.ndarray:
    return np.exp(-np.asarray(slope) / gentle)


def _spread(xy: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator,
            exclude: set[int]) -> list[int]:
    """Indices of k cells spread over a weighted cell set (k-means on a weighted sample)."""
    keep = np.ones(len(xy), dtype=bool)
    keep[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = False
    avail = np.flatnonzero(keep)
    if len(avail) == 0:
        return []
    k = min(k, len(avail))
    p = w[avail] / w[avail].sum()
    m = min(len(avail), max(40 * k, 400))
    sample = rng.choice(avail, size=m, replace=False, p=p)
    if k == 1:
        cent = xy[sample].mean(axis=0, keepdims=True)
    else:
        cent, _ = kmeans2(xy[sample], k, minit="++", seed=rng, iter=20)
    chosen: list[int] = []
    tree = cKDTree(xy[sample])
    for cpt in cent:
        _, nn = tree.query(cpt, k=min(12, len(sample)))
        nn = np.atleast_1d(nn)
        cands = [int(sample[j]) for j in nn if int(sample[j]) not in chosen]
        if not cands:
            continue
        # the gentlest of the nearest sampled cells
        best = max(cands[:6], key=lambda i: w[i])
        chosen.append(best)
    return chosen


def _jitter(grid: Grid, rows: np.ndarray, cols: np.ndarray, polys, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Random lon/lat inside each cell; falls back to the cell centre when outside ``polys``."""
    a, e = grid.transform.a, grid.transform.e
    fx = rng.uniform(0.15, 0.85, len(rows))
    fy = rng.uniform(0.15, 0.85, len(rows))
    lon = grid.transform.c + (cols + fx) * a
    lat = grid.transform.f + (rows + fy) * e
    clon = grid.transform.c + (cols + 0.5) * a
    clat = grid.transform.f + (rows + 0.5) * e
    inside = shapely.contains_xy(polys, lon, lat) if polys is not None else np.ones(len(rows), bool)
    return np.where(inside, lon, clon), np.where(inside, lat, clat)


def place_villages(grid: Grid, z: np.ndarray, slope: np.ndarray, townships: gpd.GeoDataFrame,
                   seats: gpd.GeoDataFrame, villages: pd.DataFrame, rng: np.random.Generator,
                   p: SettleParams) -> tuple[pd.DataFrame, np.ndarray]:
    """Village points (lon, lat, row, col) aligned with ``villages``; and the township id grid."""
    tid = rasterize(((g, i + 1) for i, g in enumerate(townships.geometry)), out_shape=grid.shape,
                    transform=grid.transform, fill=0, dtype="int32")
    lon_c, lat_c = grid.lon, grid.lat
    out = np.full((len(villages), 2), -1, dtype=np.int64)
    seat_rc = {}
    for code, g in zip(seats["township_code"], seats.geometry):
        r, c = grid.cell_of(g.x, g.y)
        seat_rc[code] = (int(r[0]), int(c[0]))
    cells_of = township_cells(tid, len(townships))
    pos_of = _positions(villages)
    for i, code in enumerate(townships["township_code"]):
        rr, cc = cells_of(i)
        xy = grid.to_xy_m(lon_c[cc], lat_c[rr])
        w = _weights(slope[rr, cc], p.gentle_slope_deg)
        sr, sc = seat_rc[code]
        sxy = grid.to_xy_m(lon_c[sc], lat_c[sr])[0]
        dseat = np.hypot(xy[:, 0] - sxy[0], xy[:, 1] - sxy[1])
        seat_idx = int(np.argmin(dseat))
        used = {seat_idx}
        vs = villages[villages["township_code"] == code]
        comm = vs[vs["kind"] == "社区"]
        vill = vs[vs["kind"] == "村"]
        if len(comm):
            near = dseat <= max(p.community_radius_m, np.sort(dseat)[min(len(dseat) - 1, 8 * len(comm))])
            wc = np.where(near, w, 0.0) + 1e-12
            picks = _spread(xy, wc, len(comm), rng, used)
            used.update(picks)
            for vi, k in zip(comm.index, picks):
                out[pos_of[vi]] = (rr[k], cc[k])
        if len(vill):
            # keep villages out of the town centre: weight grows with distance from the seat
            wv = w * np.clip(dseat / 1500.0, 0.05, 1.0)
            picks = _spread(xy, wv, len(vill), rng, used)
            used.update(picks)
            for vi, k in zip(vill.index, picks):
                out[pos_of[vi]] = (rr[k], cc[k])
    if (out < 0).any():
        missing = villages["village_code"].to_numpy()[(out < 0).any(axis=1)].tolist()
        raise RuntimeError(f"could not place villages {missing[:5]}")
    return pd.DataFrame(out, index=villages.index, columns=["row", "col"]), tid


def village_sizes(villages: pd.DataFrame, township_kind: pd.Series, rng: np.random.Generator,
                  p: SettleParams) -> pd.DataFrame:
    """households, population per village (村 scaled to the rural population)."""
    n = len(villages)
    is_v = (villages["kind"] == "村").to_numpy()
    street = township_kind.reindex(villages["township_code"]).to_numpy() == "街道"
    pop = np.zeros(n)
    raw = rng.lognormal(0.0, p.village_pop_sigma, n)
    pop[is_v] = raw[is_v] / raw[is_v].sum() * p.rural_population
    med = np.where(street, p.community_pop_median[0], p.community_pop_median[1])
    pop[~is_v] = med[~is_v] * rng.lognormal(0.0, 0.4, n)[~is_v]
    pop = np.round(pop).astype(np.int64)
    # exact rural total: put the rounding difference on the largest village
    diff = p.rural_population - int(pop[is_v].sum())
    j = np.flatnonzero(is_v)[np.argmax(pop[is_v])]
    pop[j] += diff
    size = np.where(is_v, rng.normal(p.people_per_household, 0.15, n), rng.normal(2.8, 0.15, n))
    hh = np.maximum(np.round(pop / np.clip(size, 2.2, 4.2)).astype(np.int64), 1)
    return pd.DataFrame({"households": hh, "population": pop}, index=villages.index)


def place_settlements(grid: Grid, z: np.ndarray, slope: np.ndarray, tid: np.ndarray,
                      townships: gpd.GeoDataFrame, villages: pd.DataFrame, vrc: pd.DataFrame,
                      rng: np.random.Generator, p: SettleParams) -> pd.DataFrame:
    """Settlement rows (settlement_id, village_code, row, col, households, population)."""
    # One piece on purpose: counts per village -> territories -> candidate cells ->
    # calibrated high-site probability -> weighted draw; the random stream is consumed in this order
    # and the shipped settlements' bytes depend on it. The stages are marked below.
    lon_c, lat_c = grid.lon, grid.lat
    kind_of = dict(zip(townships["township_code"], townships["kind"]))
    n_set = np.zeros(len(villages), dtype=np.int64)
    for k, (_vi, v) in enumerate(villages.iterrows()):
        street = kind_of[v["township_code"]] == "街道"
        if v["kind"] == "村":
            base, lam = p.settlements_per_street_village if street else p.settlements_per_village
            n_set[k] = base + rng.poisson(lam)
        else:
            n_set[k] = 0 if street else rng.poisson(p.settlements_per_community)
    # territories: nearest village of the same township, per cell
    terr: dict[int, np.ndarray] = {}
    cells_of = township_cells(tid, len(townships))
    v_of_t = pd.Series(np.arange(len(villages))).groupby(villages["township_code"].to_numpy()).agg(list)
    for i, code in enumerate(townships["township_code"]):
        idx = np.asarray(v_of_t.get(code, []), dtype=np.int64)
        if len(idx) == 0:
            continue
        rr, cc = cells_of(i)
        cell_xy = grid.to_xy_m(lon_c[cc], lat_c[rr])
        vxy = grid.to_xy_m(lon_c[vrc["col"].to_numpy()[idx]], lat_c[vrc["row"].to_numpy()[idx]])
        _, nn = cKDTree(vxy).query(cell_xy)
        for j, k in enumerate(idx):
            sel = nn == j
            terr[k] = np.column_stack([rr[sel], cc[sel]])
    # candidate cells per village, excluding the village's own cell surroundings
    cand: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k in range(len(villages)):
        if n_set[k] == 0 or k not in terr:
            continue
        cells = terr[k]
        vxy = grid.to_xy_m(lon_c[vrc["col"].iat[k]], lat_c[vrc["row"].iat[k]])[0]
        cxy = grid.to_xy_m(lon_c[cells[:, 1]], lat_c[cells[:, 0]])
        d = np.hypot(cxy[:, 0] - vxy[0], cxy[:, 1] - vxy[1])
        ok = d >= p.settlement_min_dist_m
        if ok.sum() < n_set[k]:
            ok = d > 0
        cells, cxy = cells[ok], cxy[ok]
        w = _weights(slope[cells[:, 0], cells[:, 1]], p.gentle_slope_deg)
        high = z[cells[:, 0], cells[:, 1]] > p.threshold_m
        cand[k] = (cells, w, high)
    # calibrate the probability of a high (above-threshold) site outside the 街道
    ks = [k for k in cand for _ in range(n_set[k])]
    ph = np.array([(cand[k][1] * cand[k][2]).sum() / cand[k][1].sum() for k in ks])
    outside = np.array([kind_of[villages["township_code"].iat[k]] != "街道" for k in ks])
    # no site at or below the threshold in the territory: the settlement is high whatever happens
    forced = np.array([not (~cand[k][2]).any() for k in ks])
    lo, hi = 0.0, 50.0
    for _ in range(60):
        lam = 0.5 * (lo + hi)
        q = np.where(forced, 1.0, np.minimum(1.0, lam * ph))
        if q[outside].mean() < p.high_share:
            lo = lam
        else:
            hi = lam
    q = np.where(forced, 1.0, np.minimum(1.0, 0.5 * (lo + hi) * ph))
    # draw without replacement in proportion to q (Efraimidis-Spirakis keys), so the realized
    # count outside the 街道 equals the target
    n_high = int(round(p.high_share * outside.sum()))
    want_high = forced.copy()
    quota = n_high - int((forced & outside).sum())
    free_idx = np.flatnonzero(outside & ~forced & (q > 0))
    keys = rng.uniform(0, 1, len(free_idx)) ** (1.0 / np.maximum(q[free_idx], 1e-12))
    pick = free_idx[np.argsort(-keys, kind="stable")[:max(quota, 0)]]
    want_high[pick] = True
    rows = []
    used = np.zeros(grid.shape, dtype=bool)  # cells already holding a settlement
    for j, k in enumerate(ks):
        cells, w, high = cand[k]
        m = high if want_high[j] else ~high
        if not m.any():
            m = np.ones(len(cells), bool)
        ww = np.where(m, w, 0.0)
        free = ~used[cells[:, 0], cells[:, 1]]
        ww = ww * free
        if ww.sum() <= 0:
            ww = w * free + 1e-12
        pick = int(rng.choice(len(cells), p=ww / ww.sum()))
        r, c = int(cells[pick, 0]), int(cells[pick, 1])
        used[r, c] = True
        rows.append((k, r, c))
    df = pd.DataFrame(rows, columns=["vidx", "row", "col"])
    df["village_code"] = villages["village_code"].to_numpy()[df["vidx"]]
    df["seq"] = df.groupby("vidx").cumcount() + 1
    df["settlement_id"] = df["village_code"] + "-" + df["seq"].map(lambda s: f"{s:02d}")
    elev = z[df["row"], df["col"]]
    hh = rng.lognormal(np.log(p.settlement_hh_median), p.settlement_hh_sigma, len(df))
    hh *= np.where(elev > p.threshold_m, 0.8, 1.0)
    df["households"] = np.clip(np.round(hh), 4, 400).astype(np.int64)
    df["population"] = np.round(df["households"] * rng.uniform(2.7, 3.5, len(df))).astype(np.int64)
    return df


def poverty_flags(villages: pd.DataFrame, plan_matches: pd.DataFrame, score: pd.Series,
                  p: SettleParams) -> pd.DataFrame:
    """poverty_village, deep_poverty, poverty_source for each village.

    ``score`` ranks villages for the synthetic part (higher = poorer); plan-named villages are
    always flagged; communities (社区) never.
    """
    named = set(plan_matches.loc[plan_matches["village_code"] != "", "village_code"])
    is_v = villages["kind"] == "村"
    pv = villages["village_code"].isin(named) & is_v
    rest = score[is_v & ~pv].sort_values(ascending=False, kind="stable")
    n_more = max(p.n_poverty - int(pv.sum()), 0)
    extra = rest.index[:n_more]
    source = pd.Series("", index=villages.index)
    source[pv] = "plan"
    source[extra] = "synthetic"
    poverty = source != ""
    deep_rank = score[poverty].sort_values(ascending=False, kind="stable")
    deep = pd.Series(False, index=villages.index)
    deep[deep_rank.index[:p.n_deep]] = True
    return pd.DataFrame({"poverty_village": poverty, "deep_poverty": deep,
                         "poverty_source": source}, index=villages.index)


@dataclass(frozen=True)
class PoorParams:
    """How the synthetic registered poor people (建档立卡贫困人口) per settlement are drawn.

    No survey gives them offline, so they follow the plan's figures: the district incidence
    10.45 % (ch.1; 119,207 registered poor) is the base rate of a settlement in an ordinary
    village, low (at or below ``low_m``) and next to its township seat; poverty villages, deep-poverty
    villages, high and remote places have more (ch.5: the relocation targets the poor of
    高寒边远山区 and 深山峡谷). Deterministic (no random draw), so the other layers are unchanged.
    """

    base_incidence: float = 0.1045          # plan ch.1: 贫困发生率 10.45 %
    poverty_village_factor: float = 1.8     # in a 贫困村
    deep_poverty_factor: float = 1.3        # in a 深度贫困村 (on top)
    low_m: float = 600.0                    # elevation factor 1 at or below ...
    high_m: float = 1200.0                  # ... rising linearly to high_factor at and above
    high_factor: float = 3.0
    remote_km: float = 15.0                 # straight-line km to the township seat for ...
    remote_factor: float = 1.5              # ... the full remoteness factor (linear from 1 at 0 km)
    max_incidence: float = 0.6              # no settlement above this share


def poor_population(population: np.ndarray, elevation_m: np.ndarray, seat_km: np.ndarray,
                    poverty_village: np.ndarray, deep_poverty: np.ndarray,
                    p: PoorParams = PoorParams()) -> np.ndarray:
    """Synthetic registered poor people per settlement (int64, ≤ population).

    incidence = base × (poverty_village_factor if 贫困村) × (deep_poverty_factor if 深度贫困村)
    × (1 + (high_factor − 1) × clip((elevation − low_m) / (high_m − low_m), 0, 1))
    × (1 + (remote_factor − 1) × clip(seat_km / remote_km, 0, 1)), capped at max_incidence;
    people = population × incidence, rounded half up.
    """
    pop = np.asarray(population, dtype=float)
    h = np.clip((np.asarray(elevation_m, dtype=float) - p.low_m) / (p.high_m - p.low_m), 0.0, 1.0)
    r = np.clip(np.asarray(seat_km, dtype=float) / p.remote_km, 0.0, 1.0)
    inc = (p.base_incidence
           * np.where(np.asarray(poverty_village, dtype=bool), p.poverty_village_factor, 1.0)
           * np.where(np.asarray(deep_poverty, dtype=bool), p.deep_poverty_factor, 1.0)
           * (1.0 + (p.high_factor - 1.0) * np.nan_to_num(h))
           * (1.0 + (p.remote_factor - 1.0) * r))
    inc = np.minimum(inc, p.max_incidence)
    return np.minimum(np.floor(pop * inc + 0.5), pop).astype(np.int64)
