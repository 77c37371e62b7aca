"""Print-ready maps: township and district sheets as A3 PDF (and the same sheet as PNG).

A sheet follows the conventions of Chinese planning maps (规划图):

* 图名 (title) at the top, the plan's name under it;
* the map in the plan's metric work CRS (for Kaizhou CGCS2000 / 3-degree Gauss-Kruger CM 108E,
  EPSG:4545) at a round numeric scale (比例尺 1:50 000, chosen so the township fills the frame),
  with a CGCS2000 graticule (经纬网, degrees and minutes on the frame) and a double neatline;
* north arrow pointing to true north (rotated by the meridian convergence), scale bar and
  numeric scale, legend (图例) of the layers drawn;
* notes: data status (synthesized layers are named, in Chinese and English), sources, the CRS,
  date and producing unit (制图单位, ``meta.producing_unit`` of the plan file).

Lines, points and labels are vector; the hillshade is a raster computed on the sheet's own grid at
``maps.print_hillshade_dpi`` (300 dpi by default): the DEM is resampled (cubic) to the cell size of
one printed pixel and shaded there, so the relief is smooth and the raster has exactly the
printed resolution. The PNG is the same sheet rasterized at ``print.png_dpi``.

:func:`render_sheet` draws one sheet and returns ``{"pdf": bytes, "png": bytes}``;
:func:`write_township_pdf` is the one-call entry for other tools (e.g. a web workbench).
"""
from __future__ import annotations

import datetime as _dt
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer

from kaizhou_gis.crs import transformer

log = logging.getLogger(__name__)

MM_PER_IN = 25.4
A3_MM = (420.0, 297.0)  # landscape (width, height)
#: Scale denominators that read well on a sheet (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5 × 10^k).
_NICE = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5)
#: Graticule intervals in arc minutes.
_GRATICULE_MIN = (0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 60, 120)


def nice_scale(min_denominator: float) -> int:
    """The smallest round scale denominator ≥ ``min_denominator`` (e.g. 43 210 → 50 000)."""
    if not math.isfinite(min_denominator) or min_denominator <= 0:
        raise ValueError(f"no scale for denominator {min_denominator!r}")
    exp = 10 ** math.floor(math.log10(min_denominator))
    for f in _NICE + (10.0,):
        if f * exp >= min_denominator - 1e-9:
            return int(round(f * exp))
    return int(round(10 * exp))  # pragma: no cover


def format_scale(denominator: int) -> str:
    """``1:50 000`` (a thin space as thousands separator, as Chinese map sheets print it)."""
    return "1:" + f"{int(denominator):,}".replace(",", " ")


@dataclass
class Layout:
    """Sheet geometry in millimetres (origin bottom left)."""

    orientation: str  # "landscape" or "portrait"
    page_mm: tuple[float, float]
    frame_mm: tuple[float, float, float, float]  # x, y, width, height of the map frame
    panel_mm: tuple[float, float, float, float]  # legend / notes panel
    scale: int
    extent: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the work CRS


def _frames(orientation: str) -> tuple[tuple[float, float], tuple, tuple]:
    if orientation == "landscape":
        pw, ph = A3_MM
        frame = (16.0, 16.0, 292.0, ph - 16.0 - 34.0)
        panel = (16.0 + 292.0 + 10.0, 16.0, pw - 16.0 - 292.0 - 10.0 - 12.0, ph - 16.0 - 34.0)
    else:
        pw, ph = A3_MM[::-1]
        frame = (16.0, 110.0, pw - 16.0 - 12.0, ph - 110.0 - 36.0)
        panel = (16.0, 12.0, pw - 16.0 - 12.0, 88.0)
    return (pw, ph), frame, panel


def plan_layout(bounds_xy: tuple[float, float, float, float]) -> Layout:
    """Orientation and scale for an area (work-CRS metres): the one that shows it largest."""
    xmin, ymin, xmax, ymax = bounds_xy
    w, h = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    best = None
    for orientation in ("landscape", "portrait"):
        page, frame, panel = _frames(orientation)
        need = max(w / (frame[2] / 1000.0), h / (frame[3] / 1000.0)) * 1.04  # 2 % margin each side
        if best is None or need < best[0]:
            best = (need, orientation, page, frame, panel)
    need, orientation, page, frame, panel = best
    scale = nice_scale(need)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    hw, hh = frame[2] / 1000.0 * scale / 2, frame[3] / 1000.0 * scale / 2
    return Layout(orientation, page, frame, panel, scale, (cx - hw, cy - hh, cx + hw, cy + hh))


@dataclass
class SheetText:
    """The words on a sheet."""

    title: str
    subtitle: str
    producing_unit: str
    date: str
    sources: list[str]
    status: list[str]
    crs_note: str
    labels: list[tuple[float, float, str, str]] = field(default_factory=list)  # lon, lat, text, kind
    #: One line for the title block when input is synthesized (zh + en), else "".
    banner: str = ""


# --------------------------------------------------------------------------------------------
# hillshade on the sheet's grid
# --------------------------------------------------------------------------------------------

def grid_transform(extent: tuple[float, float, float, float], width_px: int, height_px: int):
    """North-up affine transform of a ``width_px`` × ``height_px`` grid over ``extent``."""
    from affine import Affine

    xmin, ymin, xmax, ymax = extent
    return Affine((xmax - xmin) / width_px, 0.0, xmin, 0.0, -(ymax - ymin) / height_px, ymax)


def sheet_hillshade(dem, work_crs: str, extent: tuple[float, float, float, float], width_px: int,
                    height_px: int, *, azimuth_deg: float, altitude_deg: float) -> np.ndarray | None:
    """Shaded relief (0-1, NaN outside the DEM) on a ``width_px`` × ``height_px`` grid over
    ``extent`` in the work CRS. The DEM is resampled (cubic, so the relief has no facets) to the grid, then shaded."""
    from rasterio.warp import Resampling, reproject

    from kaizhou_gis.hillshade import hillshade

    transform = grid_transform(extent, width_px, height_px)
    z = np.full((height_px, width_px), np.nan, dtype="float32")
    src_crs = dem.crs if dem.crs is not None else CRS.from_epsg(4326)
    reproject(source=dem.read(1, masked=False).astype("float32"), destination=z,
              src_transform=dem.transform, src_crs=src_crs, src_nodata=dem.nodata,
              dst_transform=transform, dst_crs=work_crs, dst_nodata=np.nan,
              resampling=Resampling.cubic)
    ok = np.isfinite(z)
    if not ok.any():
        return None
    filled = np.where(ok, z, np.float32(np.nanmean(z)))
    shade = hillshade(filled, transform, CRS(work_crs), azimuth_deg=azimuth_deg,
                      altitude_deg=altitude_deg).astype("float32")
    shade[~ok] = np.nan
    return shade


def shade_to_grey(shade: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """Grey uint8 relief for print: light (paper stays readable), faded outside ``inside``."""
    v = 255.0 - 0.62 * (255.0 * (1.0 - np.nan_to_num(shade, nan=1.0)))
    v = np.clip(v, 0, 255)
    if inside is not None:
        v = np.where(inside, v, 255.0 - (255.0 - v) * 0.35)
    return v.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# the sheet
# --------------------------------------------------------------------------------------------

def _graticule_step_min(span_deg: float) -> float:
    for m in _GRATICULE_MIN:
        if span_deg * 60.0 / m <= 6:
            return m
    return _GRATICULE_MIN[-1]


def _dms(value_deg: float, hemi: tuple[str, str]) -> str:
    sign = hemi[0] if value_deg >= 0 else hemi[1]
    v = abs(value_deg)
    d = int(math.floor(v + 1e-9))
    m = (v - d) * 60.0
    if abs(m - round(m)) < 1e-6:
        return f"{d}°{int(round(m)):02d}′{sign}"
    s = (m - math.floor(m)) * 60.0
    return f"{d}°{int(math.floor(m)):02d}′{s:02.0f}″{sign}"


def _nice_bar_m(scale: int, max_mm: float) -> float:
    """A round scale-bar length (m) at most ``max_mm`` long on paper."""
    max_m = max_mm / 1000.0 * scale
    exp = 10 ** math.floor(math.log10(max_m))
    for f in (5, 2, 1):
        if f * exp <= max_m:
            return f * exp
    return exp


def render_sheet(specs: list, text: SheetText, *, bounds_xy: tuple[float, float, float, float],
                 work_crs: str, dem=None, highlight=None, hillshade_dpi: int = 300,
                 png_dpi: int = 200, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                 legend_entries: list | None = None, formats: tuple[str, ...] = ("pdf", "png"),
                 map_crs: str = "EPSG:4326") -> dict[str, bytes]:
    """Draw one A3 sheet of ``specs`` (:class:`kaizhou_gis.maps.LayerSpec`, lat/lon in
    ``map_crs``) framing ``bounds_xy`` (work CRS); returns ``{format: bytes}``.

    ``highlight`` (a shapely geometry in the work CRS) is the area shown at full strength; the
    hillshade outside it is faded.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon as MplPolygon, Rectangle

    from kaizhou_gis.fonts import cjk_rc

    lay = plan_layout(bounds_xy)
    pw, ph = lay.page_mm
    fx, fy, fw, fh = lay.frame_mm
    xmin, ymin, xmax, ymax = lay.extent
    to_work = transformer(map_crs, work_crs)
    to_geo = transformer(work_crs, "EPSG:4490")  # CGCS2000 geographic

    def tr(latlon: np.ndarray) -> np.ndarray:
        x, y = to_work.transform(latlon[:, 1], latlon[:, 0])
        return np.column_stack([x, y])

    with matplotlib.rc_context(cjk_rc()):
        fig = Figure(figsize=(pw / MM_PER_IN, ph / MM_PER_IN))
        FigureCanvasAgg(fig)
        ax = fig.add_axes([fx / pw, fy / ph, fw / pw, fh / ph])
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_linewidth(0.6)
        ax.set_facecolor("white")

        # hillshade raster at the print resolution
        if dem is not None:
            wpx = int(round(fw / MM_PER_IN * hillshade_dpi))
            hpx = int(round(fh / MM_PER_IN * hillshade_dpi))
            shade = sheet_hillshade(dem, work_crs, lay.extent, wpx, hpx, azimuth_deg=azimuth_deg,
                                    altitude_deg=altitude_deg)
            if shade is not None:
                inside = None
                if highlight is not None and not highlight.is_empty:
                    from rasterio.features import geometry_mask
                    inside = geometry_mask([highlight], out_shape=shade.shape,
                                           transform=grid_transform(lay.extent, wpx, hpx), invert=True)
                grey = shade_to_grey(shade, inside)
                ax.imshow(np.dstack([grey, grey, grey]), extent=(xmin, xmax, ymin, ymax),
                          origin="upper", interpolation="none", zorder=0)

        from kaizhou_gis.maps import LAYER_Z as draw_order  # the HTML maps' order: seats on top
        for s in sorted(specs, key=lambda s: draw_order.get(s.key, 5)):
            if not s.show or not s.data:
                continue
            z = draw_order.get(s.key, 5)
            used = sorted({row[1] for row in s.data})
            if s.kind in ("line", "polygon"):
                for k in used:
                    c = s.cats[k]
                    segs = []
                    for row in s.data:
                        if row[1] == k:
                            segs.extend(tr(np.asarray(q, dtype=float)) for q in _flatten(row[0]) if len(q) >= 2)
                    lw = float(c.get("weight", 1.0)) * (0.55 if s.kind == "line" else 0.6)
                    ls = (0, (4, 3)) if c.get("dash") else "solid"
                    ax.add_collection(LineCollection(segs, colors=c.get("stroke", c["color"]),
                                                     linewidths=lw, linestyles=ls, zorder=z))
            else:
                for k in used:
                    c = s.cats[k]
                    rows = [row for row in s.data if row[1] == k]
                    pts = tr(np.array([row[0] for row in rows], dtype=float))
                    sizes = np.array([(row[2] or s.radius) for row in rows], dtype=float)
                    # co-located markers side by side (maps.spread_colocated), in paper units
                    m_per_pt = 25.4 / 72.0 / 1000.0 * lay.scale
                    for j, row in enumerate(rows):
                        if len(row) > 4 and row[4]:
                            k, n, ring = row[4]
                            a = 2 * math.pi * k / n
                            pts[j, 0] += ring * 0.55 * m_per_pt * math.sin(a)
                            pts[j, 1] += ring * 0.55 * m_per_pt * math.cos(a)
                    marker = "s" if s.key == "sites" else ("*" if s.key == "seats" else "o")
                    ms = (sizes * 0.55) ** 2 * (3.0 if marker == "*" else 1.0)
                    ax.scatter(pts[:, 0], pts[:, 1], s=ms, c=c["color"], marker=marker,
                               edgecolors=c.get("stroke", "#222222"), linewidths=0.35, zorder=z)
        if highlight is not None and not highlight.is_empty:
            import shapely
            for poly in shapely.get_parts(highlight):
                if poly.geom_type == "Polygon":
                    ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, fill=False,
                                            ec="#000000", lw=1.6, zorder=2.5))

        # labels (vector text)
        for lon, lat, label, kind in text.labels:
            x, y = to_work.transform(lon, lat)
            if not (xmin <= x <= xmax and ymin <= y <= ymax):
                continue
            style = {"seat": dict(fontsize=8, fontweight="normal", dx=0, dy=220 * lay.scale / 50000),
                     "township": dict(fontsize=7.5, fontweight="normal", dx=0, dy=0),
                     "village": dict(fontsize=5.5, fontweight="normal", dx=0, dy=130 * lay.scale / 50000)}[kind]
            ax.text(x + style["dx"], y + style["dy"], label, fontsize=style["fontsize"],
                    fontweight=style["fontweight"], ha="center", va="bottom", zorder=9,
                    color="#111111", clip_on=True,
                    # a light box, not a stroked halo: path effects would turn the text into
                    # outlines, and labels must stay text (searchable, selectable)
                    bbox=dict(boxstyle="square,pad=0.08", fc="white", ec="none", alpha=0.65))

        # graticule in CGCS2000 degrees
        _graticule(ax, fig, lay, to_geo, pw, ph)

        # north arrow (true north: rotated by the meridian convergence at the centre)
        cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
        lon0, lat0 = to_geo.transform(cx, cy)
        back = transformer("EPSG:4490", work_crs)
        nx, ny = back.transform(lon0, lat0 + 0.01)
        conv = math.degrees(math.atan2(nx - cx, ny - cy))  # clockwise from grid north
        _north_arrow(fig, (fx + fw - 14.0) / pw, (fy + fh - 26.0) / ph, ph / pw, conv)

        # outer neatline (外图廓)
        fig.add_artist(Rectangle(((fx - 9.0) / pw, (fy - 9.0) / ph), (fw + 18.0) / pw, (fh + 18.0) / ph,
                                 transform=fig.transFigure, fill=False, lw=1.6, ec="black"))

        # title (图名) and subtitle
        fig.text(0.5, (ph - 9.0) / ph, text.title, ha="center", va="top", fontsize=22, fontweight="normal")
        fig.text(0.5, (ph - 20.0) / ph, text.subtitle, ha="center", va="top", fontsize=10, color="#333333")
        if text.banner:  # data status in the title block (the notes panel has the full text)
            fig.text(0.5, (ph - 2.5) / ph, text.banner, ha="center", va="top", fontsize=8,
                     color="#a01010", fontweight="bold")

        # panel: scale, legend, notes
        px, py, pwid, phgt = lay.panel_mm
        scale_text = f"比例尺 Scale {format_scale(lay.scale)}"
        bar_m = _nice_bar_m(lay.scale, min(pwid * 0.8, 80.0))
        bar_mm = bar_m / lay.scale * 1000.0
        top = py + phgt
        fig.text(px / pw, (top - 2.0) / ph, scale_text, fontsize=11, fontweight="normal", va="top")
        by = top - 15.0
        n_seg = 4
        for i in range(n_seg):
            fig.add_artist(Rectangle(((px + i * bar_mm / n_seg) / pw, by / ph), bar_mm / n_seg / pw, 1.6 / ph,
                                     transform=fig.transFigure, fc="black" if i % 2 == 0 else "white",
                                     ec="black", lw=0.5))
        for i in (0, n_seg // 2, n_seg):
            v = bar_m * i / n_seg
            lab = f"{v / 1000:g}" if bar_m >= 1000 else f"{v:g}"
            fig.text((px + i * bar_mm / n_seg) / pw, (by + 2.3) / ph, lab, fontsize=7, ha="center", va="bottom")
        fig.text((px + bar_mm + 2.0) / pw, (by + 0.8) / ph, "km" if bar_m >= 1000 else "m", fontsize=7,
                 va="center")

        handles = legend_entries if legend_entries is not None else legend_handles(specs, Line2D)
        notes = _notes_text(text)
        if lay.orientation == "landscape":
            leg_top = (top - 24.0) / ph
            if handles:
                fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(px / pw, leg_top),
                           fontsize=7.2, title="图例 Legend", title_fontsize=9, frameon=True,
                           alignment="left", borderaxespad=0.0, handlelength=2.2)
            fig.text(px / pw, (py + 1.0) / ph, notes, fontsize=6.2, va="bottom", linespacing=1.35,
                     wrap=False)
        else:
            if handles:
                fig.legend(handles=handles, loc="upper left", bbox_to_anchor=((px + 100.0) / pw, top / ph),
                           fontsize=7, title="图例 Legend", title_fontsize=9, frameon=True, ncol=2,
                           alignment="left", borderaxespad=0.0, handlelength=2.2)
            fig.text(px / pw, (by - 6.0) / ph, notes, fontsize=6.2, va="top", linespacing=1.35)

        out = {}
        meta = {"Title": text.title, "Author": text.producing_unit, "Subject": text.subtitle,
                "Creator": "kaizhou-gis"}
        if "pdf" in formats:  # no CreationDate: the same map gives the same bytes
            meta["CreationDate"] = None
            buf = io.BytesIO()
            fig.savefig(buf, format="pdf", metadata=meta)
            out["pdf"] = buf.getvalue()
        if "png" in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=png_dpi, pil_kwargs={"compress_level": 3},
                        metadata={"Title": text.title, "Software": "kaizhou-gis"})
            out["png"] = buf.getvalue()
    return out


def _flatten(geom: list) -> list:
    if not geom:
        return []
    if isinstance(geom[0][0], (int, float)):
        return [geom]
    out = []
    for g in geom:
        out.extend(_flatten(g))
    return out


def _graticule(ax, fig, lay: Layout, to_geo: Transformer, pw: float, ph: float) -> None:
    """Graticule lines (CGCS2000 lon/lat) over the map and their labels on the frame."""
    xmin, ymin, xmax, ymax = lay.extent
    gx = np.linspace(xmin, xmax, 60)
    gy = np.linspace(ymin, ymax, 60)
    edge_x = np.concatenate([gx, np.full(60, xmax), gx[::-1], np.full(60, xmin)])
    edge_y = np.concatenate([np.full(60, ymin), gy, np.full(60, ymax), gy[::-1]])
    lons, lats = to_geo.transform(edge_x, edge_y)
    step = _graticule_step_min(max(max(lons) - min(lons), max(lats) - min(lats))) / 60.0
    back = transformer(to_geo.target_crs, to_geo.source_crs)
    fx, fy, fw, fh = lay.frame_mm
    style = dict(color="#4d4d4d", lw=0.35, ls=(0, (6, 3)), zorder=1.2)
    lon_vals = np.arange(math.ceil(min(lons) / step) * step, max(lons) + 1e-12, step)
    lat_vals = np.arange(math.ceil(min(lats) / step) * step, max(lats) + 1e-12, step)
    lat_line = np.linspace(min(lats) - step, max(lats) + step, 80)
    lon_line = np.linspace(min(lons) - step, max(lons) + step, 80)
    for lon in lon_vals:
        x, y = back.transform(np.full_like(lat_line, lon), lat_line)
        ax.plot(x, y, **style)
        xb = float(np.interp(ymin, y, x))  # where the meridian meets the bottom edge
        if xmin < xb < xmax:
            fig.text((fx + (xb - xmin) / (xmax - xmin) * fw) / pw, (fy - 1.5) / ph,
                     _dms(lon, ("E", "W")), fontsize=6.5, ha="center", va="top")
            xt = float(np.interp(ymax, y, x))
            if xmin < xt < xmax:
                fig.text((fx + (xt - xmin) / (xmax - xmin) * fw) / pw, (fy + fh + 1.5) / ph,
                         _dms(lon, ("E", "W")), fontsize=6.5, ha="center", va="bottom")
    for lat in lat_vals:
        x, y = back.transform(lon_line, np.full_like(lon_line, lat))
        ax.plot(x, y, **style)
        yl = float(np.interp(xmin, x, y))
        if ymin < yl < ymax:
            fig.text((fx - 1.5) / pw, (fy + (yl - ymin) / (ymax - ymin) * fh) / ph,
                     _dms(lat, ("N", "S")), fontsize=6.5, ha="right", va="center", rotation=90)
        yr = float(np.interp(xmax, x, y))
        if ymin < yr < ymax:
            fig.text((fx + fw + 1.5) / pw, (fy + (yr - ymin) / (ymax - ymin) * fh) / ph,
                     _dms(lat, ("N", "S")), fontsize=6.5, ha="left", va="center", rotation=90)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def _north_arrow(fig, x: float, y: float, aspect: float, rotation_deg: float) -> None:
    """A north arrow at figure coordinates (x, y), rotated clockwise by ``rotation_deg``."""
    from matplotlib.patches import Polygon as MplPolygon

    size = 0.028
    r = math.radians(rotation_deg)

    def rot(px, py):  # in units of the sheet's height (aspect corrects x)
        qx = px * math.cos(r) + py * math.sin(r)
        qy = -px * math.sin(r) + py * math.cos(r)
        return x + qx * aspect, y + qy

    left = [rot(0, size), rot(-size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    right = [rot(0, size), rot(size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    fig.add_artist(MplPolygon(left, closed=True, transform=fig.transFigure, fc="black", ec="black", lw=0.6))
    fig.add_artist(MplPolygon(right, closed=True, transform=fig.transFigure, fc="white", ec="black", lw=0.6))
    tx, ty = rot(0, size * 1.25)
    fig.text(tx, ty, "北\nN", ha="center", va="bottom", fontsize=9, fontweight="normal", linespacing=1.0)


def legend_handles(specs: list, Line2D=None) -> list:
    """matplotlib legend handles of the visible layers' categories that occur on the sheet."""
    if Line2D is None:
        from matplotlib.lines import Line2D
    from kaizhou_gis.maps import PNG_LEGEND_PREFIX

    handles, seen = [], set()
    for s in specs:
        if not s.show or not s.data:
            continue
        used = sorted({row[1] for row in s.data})
        for k in used:
            c = s.cats[k]
            prefix = PNG_LEGEND_PREFIX.get(s.key)
            label = f"{prefix} {c['label']}" if prefix else c["label"]
            if s.key == "townships" and len(s.cats) > 1 and k == 0:
                continue
            if label in seen:
                continue
            seen.add(label)
            if s.kind in ("line", "polygon"):
                handles.append(Line2D([], [], color=c.get("stroke", c["color"]),
                                      lw=max(float(c.get("weight", 1.0)) * 0.7, 0.8),
                                      ls=(0, (4, 3)) if c.get("dash") else "-", label=label))
            else:
                marker = "s" if s.key == "sites" else ("*" if s.key == "seats" else "o")
                handles.append(Line2D([], [], ls="", marker=marker, markersize=6 if marker != "*" else 9,
                                      markerfacecolor=c["color"], markeredgecolor=c.get("stroke", "#222222"),
                                      markeredgewidth=0.5, label=label))
    return handles


def wrap_wide(text: str, width: int) -> list[str]:
    """Wrap text to ``width`` columns counting Chinese (wide) characters as two columns."""
    import unicodedata

    lines, cur, cols = [], "", 0
    for word in _tokens(text):
        w = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in word)
        if cols + w > width and cur.strip():
            lines.append(cur.rstrip())
            cur, cols = word.lstrip(), w if not word.startswith(" ") else w - 1
        else:
            cur, cols = cur + word, cols + w
    if cur.strip():
        lines.append(cur.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Latin words (with their leading space) stay whole; every Chinese character is a token."""
    import re

    return re.findall(r"\s*[\u2e80-\u9fff\uff00-\uffef\u3000-\u303f]|\s*[^\s\u2e80-\u9fff\uff00-\uffef\u3000-\u303f]+", text)


def _notes_text(text: SheetText, width: int = 78) -> str:
    lines = []
    for s in text.status:
        lines.extend(wrap_wide(s, width))
    lines.append("数据来源 Sources:")
    for s in text.sources:
        lines.extend("  " + w for w in wrap_wide(s, width - 2))
    lines.extend(wrap_wide(f"坐标系 CRS: {text.crs_note}", width))
    lines.append(f"制图单位 Producing unit: {text.producing_unit}    制图日期 Date: {text.date}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# from the maps step's data
# --------------------------------------------------------------------------------------------

def sheet_text(plan, d, *, title: str, subtitle: str, labels: list | None = None,
               date: str | None = None, data_status: dict | None = None) -> SheetText:
    """The words of a sheet from the plan file and the maps' data (:class:`maps.MapData`)."""
    from kaizhou_gis.maps import STEP_NAMES_ZH, attribution_parts

    from kaizhou_gis import provenance

    full, _ = attribution_parts(d.attribution)
    if data_status is not None:  # the run's one wording (kaizhou_gis.provenance)
        lines = provenance.banner_lines(data_status)
        status = (["数据状态 Data status: 示意 ILLUSTRATIVE"] + lines if lines else
                  [f"数据状态：{provenance.REAL_ZH}", f"Data status: {provenance.REAL_EN}"])
    elif d.synthesized:
        status = ["数据状态：部分图层为合成数据（" + "、".join(d.synthesized) + "），成果不代表实际情况。",
                  "Data status: synthesized layers (" + ", ".join(d.synthesized)
                  + "); results show how the method works, not facts on the ground."]
    else:
        status = [f"数据状态：{provenance.REAL_ZH}", f"Data status: {provenance.REAL_EN}"]
    for step, why in d.missing.items():
        status.append(f"缺少图层 missing: {STEP_NAMES_ZH.get(step, step)} — {why[:100]}")
    banner = ""
    if data_status is not None and data_status.get("synthetic"):
        banner = (f"⚠ {provenance.MARK_ZH}：{provenance.SHORT_ZH}，"
                  f"合成图层 {'、'.join(data_status['synthetic_layers'])} — "
                  f"{provenance.MARK_EN}: {provenance.SHORT_EN}, synthesized layers "
                  f"{', '.join(data_status['synthetic_layers'])}")
    elif data_status is None and d.synthesized:
        banner = (f"⚠ {provenance.MARK_ZH}：{'、'.join(d.synthesized)} — {provenance.MARK_EN}: "
                  f"{', '.join(d.synthesized)}")
    work = CRS(plan.work_crs)
    return SheetText(
        title=title, subtitle=subtitle,
        producing_unit=str(plan.get("meta.producing_unit", "")),
        date=date or _dt.date.today().isoformat(),
        sources=[s for s in full if s] or ["—"], status=status,
        crs_note=f"{work.name} ({work.to_string()}); 经纬网 graticule: CGCS2000 (EPSG:4490)",
        labels=list(labels or []), banner=banner)


def _work_bounds(gdf, pad_frac: float = 0.0) -> tuple[float, float, float, float]:
    w, s, e, n = (float(v) for v in gdf.total_bounds)
    px, py = (e - w) * pad_frac, (n - s) * pad_frac
    return (w - px, s - py, e + px, n + py)


def township_sheet(ctx, d, specs: list, code: str, *, formats=("pdf", "png"),
                   pool: "SheetPool | None" = None):
    """The A3 sheet of one township (``{format: bytes}``) from the maps step's data and layers.

    With ``pool`` (a :class:`SheetPool`) the sheet is drawn there and a
    :class:`concurrent.futures.Future` of that dict is returned."""
    plan = ctx.plan
    cfg = plan.section("maps")
    mcfg = plan.section("maps")
    name = d.township_names.get(code, code)
    tw = d.work_townships[d.work_townships["township_code"] == code]
    labels = _labels(d, code)
    text = sheet_text(plan, d, title=f"{plan.name}{name}扶贫规划图",
                      subtitle=f"{name}（{code}）· {plan.get('meta.plan_title', '')} · "
                               f"{plan.get('meta.district_name_en', '')}",
                      labels=labels, data_status=getattr(ctx, "data_status", None))
    kwargs = dict(bounds_xy=_work_bounds(tw), work_crs=plan.work_crs,
                  highlight=tw.geometry.union_all(), hillshade_dpi=int(cfg["print_hillshade_dpi"]),
                  png_dpi=int(cfg["png_dpi"]), azimuth_deg=float(mcfg["hillshade_azimuth_deg"]),
                  altitude_deg=float(mcfg["hillshade_altitude_deg"]), formats=formats,
                  map_crs=_wgs84_specs(d))
    if pool is not None:
        return pool.submit(specs, text, **kwargs)
    with ctx.layers.open_dem() as dem:
        return render_sheet(specs, text, dem=dem, **kwargs)


def district_sheet(ctx, d, specs: list, *, formats=("pdf",), pool: "SheetPool | None" = None):
    """The A3 overview sheet of the district (with ``pool``: a Future of it, as
    :func:`township_sheet`)."""
    plan = ctx.plan
    cfg = plan.section("maps")
    mcfg = plan.section("maps")
    labels = []
    tw = d.work_townships
    pts = tw.geometry.representative_point().to_crs(4326)
    for p, n in zip(pts, tw["name"].astype(str)):
        labels.append((p.x, p.y, n, "township"))
    boundary = ctx.layers.boundary.to_crs(plan.work_crs)
    text = sheet_text(plan, d, title=f"{plan.name}扶贫规划总图",
                      subtitle=f"{plan.get('meta.plan_title', '')} · {plan.get('meta.district_name_en', '')}",
                      labels=labels, data_status=getattr(ctx, "data_status", None))
    kwargs = dict(bounds_xy=_work_bounds(boundary), work_crs=plan.work_crs,
                  highlight=boundary.geometry.union_all(), hillshade_dpi=int(cfg["print_hillshade_dpi"]),
                  png_dpi=int(cfg["png_dpi"]), azimuth_deg=float(mcfg["hillshade_azimuth_deg"]),
                  altitude_deg=float(mcfg["hillshade_altitude_deg"]), formats=formats,
                  map_crs=_wgs84_specs(d))
    if pool is not None:
        return pool.submit(specs, text, **kwargs)
    with ctx.layers.open_dem() as dem:
        return render_sheet(specs, text, dem=dem, **kwargs)


# --------------------------------------------------------------------------------------------
# drawing many sheets: the DEM read once, sheets drawn in worker processes
# --------------------------------------------------------------------------------------------

#: Environment variable: most worker processes drawing print sheets (default: the CPUs this
#: process may use; ``1`` draws them in the process itself).
WORKERS_ENV = "KAIZHOU_GIS_WORKERS"


@dataclass
class DemArray:
    """A DEM band held in memory with what :func:`sheet_hillshade` reads of a dataset."""

    values: np.ndarray
    transform: object
    crs: object
    nodata: float | None

    def read(self, band: int = 1, masked: bool = False) -> np.ndarray:
        return self.values


_WORKER_DEM: DemArray | None = None


def _init_worker(dem: DemArray | None) -> None:
    global _WORKER_DEM
    _WORKER_DEM = dem


def _render_in_worker(specs, text, kwargs) -> dict[str, bytes]:
    return render_sheet(specs, text, dem=_WORKER_DEM, **kwargs)


def sheet_workers() -> int:
    """How many worker processes draw sheets: ``$KAIZHOU_GIS_WORKERS`` or the usable CPUs; 1 (in
    this process) outside the main thread or in a daemon process (a web request, a dask worker),
    where forking is not safe or not allowed."""
    import multiprocessing
    import os
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            multiprocessing.current_process().daemon or not hasattr(os, "fork"):
        return 1
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("%s=%r is not a whole number; using the CPU count", WORKERS_ENV, env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class SheetPool:
    """Draws print sheets, in ``workers`` forked processes when more than one, with the DEM read
    once (every sheet reads the same full band, so the bytes are those of :func:`render_sheet`
    on the open dataset). Results come back as futures; callers keep their own order, so the
    output does not depend on which sheet finishes first.

    Use as a context manager: ``with SheetPool(ctx, workers=2) as pool: fut = pool.submit(...)``.
    """

    def __init__(self, ctx, *, workers: int | None = None):
        self.workers = sheet_workers() if workers is None else max(1, int(workers))
        with ctx.layers.open_dem() as ds:
            self.dem = DemArray(ds.read(1, masked=False), ds.transform, ds.crs, ds.nodata)
        self._ex = None
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._ex = ProcessPoolExecutor(max_workers=self.workers,
                                           mp_context=multiprocessing.get_context("fork"),
                                           initializer=_init_worker, initargs=(self.dem,))

    def submit(self, specs, text, **kwargs):
        from concurrent.futures import Future

        if self._ex is not None:
            return self._ex.submit(_render_in_worker, specs, text, kwargs)
        fut: Future = Future()
        try:
            fut.set_result(render_sheet(specs, text, dem=self.dem, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(e)
        return fut

    def close(self, *, cancel: bool = False) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=cancel)
            self._ex = None

    def __del__(self) -> None:  # a step that failed half-way leaves no worker behind
        try:
            self.close(cancel=True)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass

    def __enter__(self) -> "SheetPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


def _wgs84_specs(d) -> str:
    """The CRS of the maps' data; sheets are drawn from WGS84 data, never the GCJ-02 variant."""
    if getattr(d, "basemap", "offline") == "gaode":
        raise ValueError("print sheets need the WGS84 map data: use maps.gather_wgs84(ctx), not the "
                         "GCJ-02 data of the Gaode basemap")
    return "EPSG:4326"


def _labels(d, code: str) -> list[tuple[float, float, str, str]]:
    out = []
    seats = d.seats[d.seats["township_code"].astype(str) == code]
    for g, n in zip(seats.geometry, seats["name"].astype(str)):
        if g is not None and not g.is_empty:
            out.append((g.x, g.y, n, "seat"))
    v = d.villages[d.villages["township_code"].astype(str) == code]
    for g, n in zip(v.geometry, v["name"].astype(str)):
        if g is not None and not g.is_empty:
            out.append((g.x, g.y, n, "village"))
    return out


def write_township_pdf(ctx, code: str, path: str | Path, *, png_path: str | Path | None = None) -> Path:
    """Write the A3 PDF sheet of township ``code`` (and optionally its PNG) for a loaded context.

    ``ctx`` is a :class:`kaizhou_gis.pipeline.Context`; the steps the maps need run as needed
    (cached in ``ctx``). Files are written atomically.
    """
    from kaizhou_gis import maps, outputs

    d = maps.gather_wgs84(ctx, ctx.needs_of("maps"))
    specs = maps.map_layers("township", d, maps._settings(ctx.plan), str(code))
    res = township_sheet(ctx, d, specs, str(code), formats=("pdf", "png") if png_path else ("pdf",))
    outputs.write_bytes(res["pdf"], path)
    if png_path:
        outputs.write_bytes(res["png"], png_path)
    return Path(path)


__all__ = ["render_sheet", "township_sheet", "district_sheet", "SheetPool", "write_township_pdf", "plan_layout",
           "nice_scale", "format_scale", "sheet_text", "legend_handles"]
