"""The synthetic DEM: a drainage-shaped relief conditioned on the real facts.

How the surface is made (every random draw comes from one seeded generator):

1. **Rivers.** The township seats (which sit in valleys) and an outlet are joined by a minimum
   spanning tree; each tree edge becomes a meandering channel whose bed elevation runs linearly
   between the seats' real elevations. Tributaries grow from springs scattered over the grid to
   the nearest point of the network, their beds rising upstream at a few percent.
2. **Valley floor and distance.** Every cell takes the bed elevation of its nearest channel cell
   (``floor``) and its distance from it (``d``), from one Euclidean distance transform.
3. **Crest level.** The regional pattern comes from a smooth trend (for Kaizhou: the ITU-R P.1511
   1/12 degree grid upsampled). That grid is an areal mean that reads valleys some 260 m too high,
   so it is not used as the surface; it sets how high the ridges between the valleys rise.
4. **Relief.** ``z = floor + (crest - floor) * s`` where ``s`` grows from 0 on the channel to
   about 1 on the divides (an exponential of the distance; optional domain warping) and is modulated by
   ridged multi-octave noise; finer fractal noise adds texture on the slopes.
5. **Calibration and conditioning.** A monotone stretch above ``stretch_from_m`` sets the highest
   summit inside the district; then a radial-basis residual correction (Gaussian kernels of a few
   km, solved so it is exact) makes the DEM pass through every seat's real elevation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from rasterio.transform import Affine, from_origin, rowcol
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from kaizhou_gis.demo import noise
from kaizhou_gis.terrain import slope_deg

log = logging.getLogger(__name__)

#: Cells per degree (3 arc-seconds, like SRTM3).
CELLS_PER_DEGREE = 1200
#: Nodata value of the written DEM.
NODATA = -32768


@dataclass
class DemParams:
    """Knobs of the synthetic relief (documented in layers/README.md)."""

    valley_scale_m: float = 450.0      # e-folding distance of the valley side profile
    floor_halfwidth_m: float = 70.0     # flat valley bottom on each side of a channel
    crest_gain: float = 1.2             # crest = floor + gain * (trend - floor)
    min_relief_m: float = 350.0         # crest at least this far above the floor
    spring_spacing_m: float = 1500.0    # mean spacing of tributary springs
    tributary_grade: tuple[float, float] = (0.015, 0.07)  # bed grade lowland .. upland
    ridged_wavelength_cells: float = 60.0
    detail_amplitude: float = 0.12      # fraction of local relief
    warp_cells: float = 0.0
    max_elevation_m: float = 2560.0     # highest summit inside the district after stretching
    stretch_from_m: float = 1300.0
    seat_kernel_m: float = 1200.0
    target_median_slope_deg: float = 19.0
    floor_smooth_cells: float = 4.0


@dataclass
class Grid:
    """A north-up geographic grid (EPSG:4326)."""

    transform: Affine
    shape: tuple[int, int]

    @cached_property
    def lon(self) -> np.ndarray:
        """Longitude of each column's cell centre (computed once; read-only)."""
        out = self.transform.c + (np.arange(self.shape[1]) + 0.5) * self.transform.a
        out.flags.writeable = False
        return out

    @cached_property
    def lat(self) -> np.ndarray:
        """Latitude of each row's cell centre (computed once; read-only)."""
        out = self.transform.f + (np.arange(self.shape[0]) + 0.5) * self.transform.e
        out.flags.writeable = False
        return out

    @property
    def lat0(self) -> float:
        return float(self.lat.mean())

    @property
    def cell_m(self) -> tuple[float, float]:
        """Approximate (dx, dy) of a cell in metres at the grid's mid latitude."""
        dx = abs(self.transform.a) * 111_320.0 * np.cos(np.radians(self.lat0))
        dy = abs(self.transform.e) * 110_574.0
        return float(dx), float(dy)

    def to_rc(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, col) of lon/lat points."""
        lon = np.asarray(lon, float)
        lat = np.asarray(lat, float)
        col = (lon - self.transform.c) / self.transform.a - 0.5
        row = (lat - self.transform.f) / self.transform.e - 0.5
        return row, col

    def cell_of(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        r, c = rowcol(self.transform, np.atleast_1d(lon), np.atleast_1d(lat), op=np.floor)
        return np.asarray(r, np.int64), np.asarray(c, np.int64)

    def to_xy_m(self, lon, lat) -> np.ndarray:
        """Local metric coordinates (m) of lon/lat points (equirectangular at mid latitude)."""
        dx, dy = self.cell_m
        r, c = self.to_rc(lon, lat)
        return np.column_stack([np.asarray(c) * dx, -np.asarray(r) * dy])


def grid_for_bounds(west: float, south: float, east: float, north: float, *,
                    margin_deg: float = 0.03) -> Grid:
    """3 arc-second grid snapped to whole cells covering the bounds plus a margin."""
    k = CELLS_PER_DEGREE
    w = np.floor((west - margin_deg) * k) / k
    n = np.ceil((north + margin_deg) * k) / k
    e = np.ceil((east + margin_deg) * k) / k
    s = np.floor((south - margin_deg) * k) / k
    width = int(round((e - w) * k))
    height = int(round((n - s) * k))
    return Grid(from_origin(w, n, 1.0 / k, 1.0 / k), (height, width))


def trend_from_coarse(grid: Grid, coarse: np.ndarray, coarse_transform: Affine) -> np.ndarray:
    """Upsample a coarse north-up grid to ``grid`` (cubic, values clamped to the coarse range)."""
    ch, cw = coarse.shape
    clon = coarse_transform.c + (np.arange(cw) + 0.5) * coarse_transform.a
    clat = coarse_transform.f + (np.arange(ch) + 0.5) * coarse_transform.e
    interp = RegularGridInterpolator((clat[::-1], clon), coarse[::-1].astype(float),
                                     method="cubic", bounds_error=False, fill_value=None)
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    out = interp(np.column_stack([la.ravel(), lo.ravel()])).reshape(grid.shape)
    return np.clip(out, coarse.min(), coarse.max())


def _meander(p0: np.ndarray, p1: np.ndarray, rng: np.random.Generator, *, step_m: float = 40.0,
             amplitude: float = 0.12) -> np.ndarray:
    """Points every ~step_m along a meandering line from p0 to p1 (midpoint displacement)."""
    pts = np.array([p0, p1], float)
    length = float(np.hypot(*(p1 - p0)))
    amp = amplitude * length
    while True:
        seg = np.hypot(*(pts[1:] - pts[:-1]).T)
        if seg.max() <= max(step_m * 8, 1.0) or amp < step_m:
            break
        mids = (pts[1:] + pts[:-1]) / 2
        d = pts[1:] - pts[:-1]
        normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(seg[:, None], 1e-9)
        mids += normal * rng.uniform(-amp, amp, len(mids))[:, None] * (seg[:, None] / length)
        new = np.empty((len(pts) + len(mids), 2))
        new[0::2] = pts
        new[1::2] = mids
        pts = new
        amp *= 0.55
    # densify to step_m
    seg = np.hypot(*(pts[1:] - pts[:-1]).T)
    out = [pts[:1]]
    for a, b, L in zip(pts[:-1], pts[1:], seg):
        n = max(int(np.ceil(L / step_m)), 1)
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + (b - a) * t)
    return np.vstack(out)


@dataclass
class Rivers:
    """Channel points (local metres) with bed elevations and a flag for trunk channels."""

    xy: np.ndarray
    bed_m: np.ndarray
    trunk: np.ndarray


def river_network(grid: Grid, nodes_xy: np.ndarray, nodes_elev: np.ndarray,
                  trend: np.ndarray, rng: np.random.Generator, params: DemParams) -> Rivers:
    """Trunk channels (MST over the nodes) plus tributaries grown from scattered springs."""
    n = len(nodes_xy)
    xs, es, trunk = [], [], []
    if n >= 2:
        mst = minimum_spanning_tree(cdist(nodes_xy, nodes_xy)).tocoo()
        for i, j in sorted(zip(mst.row.tolist(), mst.col.tolist())):
            pts = _meander(nodes_xy[i], nodes_xy[j], rng)
            t = np.linspace(0.0, 1.0, len(pts))
            xs.append(pts)
            es.append(nodes_elev[i] + (nodes_elev[j] - nodes_elev[i]) * t)
            trunk.append(np.ones(len(pts), bool))
    else:
        xs.append(nodes_xy.copy())
        es.append(nodes_elev.copy())
        trunk.append(np.ones(len(nodes_xy), bool))
    net_xy = np.vstack(xs)
    net_e = np.concatenate(es)
    dx, dy = grid.cell_m
    H, W = grid.shape
    area = H * dy * W * dx
    n_springs = int(area / params.spring_spacing_m ** 2)
    springs = np.column_stack([rng.uniform(0, W * dx, n_springs), -rng.uniform(0, H * dy, n_springs)])
    # Attach springs nearest-first so that the network grows outward from the trunk.
    sub = net_xy[:: max(1, len(net_xy) // 4000)]
    chunk = max(1, 4_000_000 // max(len(sub), 1))  # bounded temporary: springs x 4000 floats
    d0 = np.concatenate([cdist(springs[i:i + chunk], sub).min(axis=1)
                         for i in range(0, len(springs), chunk)]) if len(springs) else np.zeros(0)
    order = np.argsort(d0, kind="stable")
    lo_g, hi_g = params.tributary_grade
    tmin, tmax = float(np.percentile(trend, 5)), float(np.percentile(trend, 95))
    index = _ChannelIndex(net_xy, net_e, params.spring_spacing_m)
    for k in order:
        sp = springs[k]
        dj, p0, e0 = index.nearest(sp)
        if dj < 0.45 * params.spring_spacing_m:
            continue
        pts = _meander(np.asarray(p0, float), sp, rng, amplitude=0.15)
        r = int(np.clip(-sp[1] / dy, 0, H - 1))
        c = int(np.clip(sp[0] / dx, 0, W - 1))
        u = (trend[r, c] - tmin) / max(tmax - tmin, 1.0)
        grade = lo_g + (hi_g - lo_g) * float(np.clip(u, 0, 1))
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*(pts[1:] - pts[:-1]).T))])
        bed = e0 + grade * along
        xs.append(pts)
        es.append(bed)
        trunk.append(np.zeros(len(pts), bool))
        index.add(pts, bed)
    return Rivers(np.vstack(xs), np.concatenate(es), np.concatenate(trunk))


class _ChannelIndex:
    """The channel points placed so far (positions and bed heights), for the nearest one to a
    spring.

    The points are kept as a few k-d trees (the logarithmic method): the recent points become a
    tree every ``FLUSH_AT`` points and a tree is merged into the next one while that one is at
    most twice its size, so that building costs O(N log^2 N) in all and a spring asks O(log N)
    trees. One rebuild of a single whole tree per 20,000 points was quadratic: a 100x build spent
    18 CPU-minutes there. The nearest point does not depend on how the points are split (a tie
    is between a channel's first point and the point it starts from: same place, same height).
    The points added since the last tree was built are a buffer, with their positions in it by
    square bucket of ``bucket_m``, so that a spring looks only at the recent points that can be
    nearer than the trees' nearest one (those within that distance on both axes).
    """

    FLUSH_AT = 20_000

    def __init__(self, xy: np.ndarray, e: np.ndarray, bucket_m: float):
        self.trees: list[tuple[cKDTree, np.ndarray]] = [(cKDTree(xy), e)]
        self.rx = np.empty(4 * self.FLUSH_AT)
        self.ry = np.empty(4 * self.FLUSH_AT)
        self.re = np.empty(4 * self.FLUSH_AT)
        self.m = 0
        self.bucket_m = bucket_m
        self.buckets: dict[tuple[int, int], list[np.ndarray]] = {}

    def nearest(self, sp: np.ndarray) -> tuple[float, np.ndarray, float]:
        """(distance, position, bed height) of the channel point nearest to ``sp``."""
        d_t, j_t, tree, tree_e = np.inf, -1, self.trees[0][0], self.trees[0][1]
        for t, te in self.trees:
            d, j = t.query(sp)
            if d < d_t:
                d_t, j_t, tree, tree_e = d, j, t, te
        j_r, d_rj = -1, np.inf
        if self.m:
            j_r, d_rj = _nearest_recent(self.rx, self.ry, self.m, self.buckets, self.bucket_m, sp,
                                        float(d_t))
        if j_r >= 0 and d_rj < d_t:
            return float(d_rj), np.array([self.rx[j_r], self.ry[j_r]]), float(self.re[j_r])
        return float(d_t), tree.data[j_t], float(tree_e[j_t])

    def add(self, pts: np.ndarray, bed: np.ndarray) -> None:
        """Add a channel's points ``pts`` with their bed heights."""
        m = self.m
        if m + len(pts) > len(self.rx):
            grow = 2 * (m + len(pts))
            self.rx, self.ry, self.re = (np.concatenate([b[:m], np.empty(grow - m)])
                                         for b in (self.rx, self.ry, self.re))
        self.rx[m:m + len(pts)] = pts[:, 0]
        self.ry[m:m + len(pts)] = pts[:, 1]
        self.re[m:m + len(pts)] = bed
        bx = np.floor(pts[:, 0] / self.bucket_m).astype(np.int64)
        by = np.floor(pts[:, 1] / self.bucket_m).astype(np.int64)
        for key in set(zip(bx.tolist(), by.tolist())):
            sel = np.flatnonzero((bx == key[0]) & (by == key[1])) + m
            self.buckets.setdefault(key, []).append(sel)
        self.m = m = m + len(pts)
        if m > self.FLUSH_AT:
            new_xy = np.column_stack([self.rx[:m], self.ry[:m]])
            new_e = self.re[:m].copy()
            while self.trees and len(self.trees[-1][1]) <= 2 * len(new_e):
                t, te = self.trees.pop()
                new_xy = np.vstack([t.data, new_xy])
                new_e = np.concatenate([te, new_e])
            self.trees.append((cKDTree(new_xy), new_e))
            self.m = 0
            self.buckets = {}


def _calibrated(floor: np.ndarray, base: np.ndarray, inside: np.ndarray, factor: float,
                p: DemParams) -> np.ndarray:
    """``floor + factor * base``, stretched above ``stretch_from_m`` so that the highest cell
    inside is ``max_elevation_m``."""
    zz = np.multiply(base, factor)
    zz += floor                                   # floor + factor * base
    zmax = float(zz[inside].max())
    if zmax > p.stretch_from_m + 1:
        hi = zz > p.stretch_from_m
        zz[hi] = p.stretch_from_m + (zz[hi] - p.stretch_from_m) * (
            (p.max_elevation_m - p.stretch_from_m) / (zmax - p.stretch_from_m))
    return zz


def _nearest_recent(xs: np.ndarray, ys: np.ndarray, m: int,
                    buckets: dict[tuple[int, int], list[np.ndarray]], bucket_m: float,
                    sp: np.ndarray, limit: float) -> tuple[int, float]:
    """(index, distance) of the nearest of the first ``m`` recent points to ``sp`` if one is
    nearer than ``limit`` (the first such index on ties, as ``argmin`` over all ``m`` gives it);
    otherwise (-1, inf) or a point at least ``limit`` away.

    Only points within ``limit`` of ``sp`` on both axes can be nearer, so only the buckets that
    box meets are read; when it meets many (a far spring) all ``m`` points are scanned.
    """
    reach = limit * (1.0 + 1e-9) + 1e-6
    bx0, bx1 = int(np.floor((sp[0] - reach) / bucket_m)), int(np.floor((sp[0] + reach) / bucket_m))
    by0, by1 = int(np.floor((sp[1] - reach) / bucket_m)), int(np.floor((sp[1] + reach) / bucket_m))
    if not np.isfinite(reach) or (bx1 - bx0 + 1) * (by1 - by0 + 1) > 64:
        d = np.hypot(xs[:m] - sp[0], ys[:m] - sp[1])
        j = int(np.argmin(d))
        return j, float(d[j])
    parts = [a for bx in range(bx0, bx1 + 1) for by in range(by0, by1 + 1)
             for a in buckets.get((bx, by), ())]
    if not parts:
        return -1, np.inf
    idx = np.sort(np.concatenate(parts))
    d = np.hypot(xs[idx] - sp[0], ys[idx] - sp[1])
    j = int(np.argmin(d))
    return int(idx[j]), float(d[j])


def synthesize(grid: Grid, trend: np.ndarray, nodes_lonlat: np.ndarray, nodes_elev: np.ndarray,
               seats_lonlat: np.ndarray, seats_elev: np.ndarray, inside: np.ndarray,
               rng: np.random.Generator, params: DemParams | None = None) -> np.ndarray:
    """The DEM (float metres) on ``grid``.

    Parameters
    ----------
    grid : Grid
    trend : ndarray
        Regional elevation trend on the grid (areal-mean elevation, m).
    nodes_lonlat, nodes_elev
        Points the trunk channels join (seats and the outlet) and their bed elevations.
    seats_lonlat, seats_elev
        Points the DEM must pass through exactly (NaN elevations are skipped).
    inside : bool ndarray
        Cells inside the district (the summit calibration looks only there).
    rng : numpy Generator
    params : DemParams
    """
    # One piece on purpose: a linear recipe (channel network -> warped valley distance ->
    # relief -> slope calibration -> conditioning on the seats) where each stage rewrites the same
    # array; the stages are marked by the comments below and use the module's helper functions.
    p = params or DemParams()
    H, W = grid.shape
    dx, dy = grid.cell_m
    nodes_xy = grid.to_xy_m(nodes_lonlat[:, 0], nodes_lonlat[:, 1])
    rivers = river_network(grid, nodes_xy, nodes_elev, trend, rng, p)
    rr = np.clip(np.round(-rivers.xy[:, 1] / dy).astype(np.int64), 0, H - 1)
    cc = np.clip(np.round(rivers.xy[:, 0] / dx).astype(np.int64), 0, W - 1)
    bed = np.full(grid.shape, np.inf)
    np.minimum.at(bed, (rr, cc), rivers.bed_m)
    channel = np.isfinite(bed)
    dist, (ir, ic) = distance_transform_edt(~channel, sampling=(dy, dx), return_indices=True)
    floor = bed[ir, ic]
    del ir, ic
    floor = gaussian_filter(floor, p.floor_smooth_cells)  # no steps where catchments meet
    log.debug("rivers: %d channel cells", int(channel.sum()))
    del bed, channel, rivers

    # Domain-warped distance: valleys wander and widen irregularly.
    if p.warp_cells > 0:
        wx = noise.fractal(grid.shape, rng, beta=2.2) * p.warp_cells
        wy = noise.fractal(grid.shape, rng, beta=2.2) * p.warp_cells
        dist_w = noise.warp(dist, wx, wy)
    else:
        dist_w = dist
    del dist
    # The arithmetic below is, operation for operation, that of
    #   crest = floor + max(crest_gain * (trend - floor), min_relief_m); relief = crest - floor
    #   s = 1 - exp(-max(dist_w - floor_halfwidth_m, 0) / valley_scale_m)
    #   z = floor + relief * s * (0.4 + 0.6 * ridge)
    #       + detail_amplitude * relief * min(3 s, 1) * detail;  z = max(z, floor)
    # done in place (a few grid-sized arrays alive at once instead of a dozen).
    relief = trend - floor
    relief *= p.crest_gain
    np.maximum(relief, p.min_relief_m, out=relief)
    relief += floor                                   # crest
    relief -= floor                                   # relief = crest - floor
    s = dist_w
    s -= p.floor_halfwidth_m
    np.maximum(s, 0.0, out=s)
    np.negative(s, out=s)
    s /= p.valley_scale_m
    np.exp(s, out=s)
    np.subtract(1.0, s, out=s)
    del dist_w
    shape_ = noise.ridged(grid.shape, rng, base_cells=p.ridged_wavelength_cells)
    shape_ *= 0.6
    shape_ += 0.4
    shape_ *= s                                       # s * (0.4 + 0.6 * ridge)
    detail = noise.fractal(grid.shape, rng, beta=1.6)
    shape_ *= relief                                  # relief * shape_
    z = floor + shape_
    del shape_
    s *= 3
    np.minimum(s, 1.0, out=s)
    relief *= p.detail_amplitude
    relief *= s
    relief *= detail
    z += relief
    del relief, s, detail
    np.maximum(z, floor, out=z)

    # Calibration: scale the relief above the valley floor so that the median slope inside the
    # district is target_median_slope_deg, then stretch monotonically above stretch_from_m so
    # that the highest summit is max_elevation_m (bisection on the relief factor).
    z -= floor
    base = z                                          # z - floor
    del z

    lo_f, hi_f = 0.5, 3.0
    for _ in range(9):
        mid = 0.5 * (lo_f + hi_f)
        med = float(np.median(slope_deg(_calibrated(floor, base, inside, mid, p), grid.transform, "EPSG:4326")[inside]))
        if med < p.target_median_slope_deg:
            lo_f = mid
        else:
            hi_f = mid
    factor = 0.5 * (lo_f + hi_f)
    log.info("relief factor %.3f for a median slope of %.1f deg", factor, p.target_median_slope_deg)
    z = _calibrated(floor, base, inside, factor, p)
    del base, floor

    # Conditioning on the seats: Gaussian partition-of-unity residual correction (bounded by the
    # largest residual, no overshoot), then the seat cells themselves set exactly.
    ok = np.isfinite(seats_elev)
    if ok.any():
        s_ll = seats_lonlat[ok]
        target = seats_elev[ok]
        r, c = grid.cell_of(s_ll[:, 0], s_ll[:, 1])
        sel = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        r, c, target = r[sel], c[sel], target[sel]
        resid = target - z[r, c]
        log.debug("seat residuals before conditioning: max |r| = %.1f m", float(np.abs(resid).max()))
        self_check = np.abs(resid)
        log.info("seat conditioning: median |residual| %.1f m, max %.1f m",
                 float(np.median(self_check)), float(self_check.max()))
        sig = p.seat_kernel_m
        num = np.zeros(grid.shape)
        den = np.zeros(grid.shape)
        rad = int(np.ceil(3 * sig / min(dx, dy)))
        for k in range(len(r)):
            r0, r1 = max(r[k] - rad, 0), min(r[k] + rad + 1, H)
            c0, c1 = max(c[k] - rad, 0), min(c[k] + rad + 1, W)
            gy = (np.arange(r0, r1) - r[k]) * dy
            gx = (np.arange(c0, c1) - c[k]) * dx
            gk = np.exp(-((gy[:, None] ** 2 + gx[None, :] ** 2) / sig ** 2))
            num[r0:r1, c0:c1] += resid[k] * gk
            den[r0:r1, c0:c1] += gk
        np.maximum(den, 1.0, out=den)
        num /= den
        del den
        z += num                                      # z + num / max(den, 1)
        del num
        np.maximum(z, float(np.nanmin(nodes_elev)), out=z)
        z[r, c] = target
    return z
