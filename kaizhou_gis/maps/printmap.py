"""Print-ready maps: township and district sheets as A3 PDF (and the same sheet as PNG).

A sheet follows the conventions of Chinese planning maps (规划图):

* 图名 (title) at the top, the plan's name under it;
* the map in the plan's metric work CRS (for Kaizhou CGCS2000 / 3-degree Gauss-Kruger CM 108E,
  EPSG:4545) at a round numeric scale (比例尺 1:50 000, chosen so the township fills the frame),
  with a CGCS2000 graticule (经纬网, degrees and minutes on the frame) and a double neatline;
* north arrow pointing to true north (rotated by the meridian convergence), scale bar and
  numeric scale, legend (图例) of the layers drawn;
* notes: data status (synthesized layers are named, in Chinese and English), sources, the CRS,
  date (制图日期: the day the sheet is drawn, or the UTC day of ``SOURCE_DATE_EPOCH`` when that
  is set, the reproducible-builds convention, so the same inputs give the same bytes on any
  day: :func:`sheet_date`) and producing unit (制图单位, ``meta.producing_unit`` of the plan file).

Lines, points and labels are vector; the hillshade is a raster on the sheet's own grid at
``maps.print_hillshade_dpi`` (300 dpi by default): the DEM is resampled (cubic) to a grid of about
half a DEM cell, shaded there and its grey resampled (bicubic) to the printed pixels, so the relief
is smooth and the raster has exactly the printed resolution
(:func:`kaizhou_gis.maps.sheetrelief.sheet_relief`); the PDF holds it as one greyscale image. The PNG is
that PDF rasterized by PDFium at ``maps.png_dpi`` (:func:`kaizhou_gis.maps.sheetpng.sheet_png`): the
file looked at on screen is the drawing that is printed. The PDF is written directly
(:mod:`kaizhou_gis.maps.pdfwriter`), its text in a subset of the CJK font made for the district's
characters (:func:`font_chars`, TrueType outlines) embedded as it is, which keeps it real text in
the PDF (selectable, searchable) and cheap to embed.

:func:`kaizhou_gis.maps.sheet.render_sheet` draws one sheet and returns ``{"pdf": bytes, "png": bytes}``;
:func:`write_township_pdf` is the one-call entry for other tools (e.g. a web workbench).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

from pyproj import CRS

from kaizhou_gis import outputs, provenance
from kaizhou_gis.maps import sheet
from kaizhou_gis.maps.contents import _settings, map_layers
from kaizhou_gis.maps.data import gather_wgs84
from kaizhou_gis.maps.page import attribution_parts
from kaizhou_gis.maps.sheetlayout import SheetText
from kaizhou_gis.maps.sheetpool import SheetPool
from kaizhou_gis.maps.styles import STEP_NAMES_ZH

log = logging.getLogger(__name__)

#: Environment variable (reproducible-builds.org): seconds since 1970-01-01 UTC whose day the
#: sheets show as their date instead of today's.
SOURCE_DATE_ENV = "SOURCE_DATE_EPOCH"


def sheet_date() -> str:
    """The date a sheet shows (ISO): the UTC day of ``$SOURCE_DATE_EPOCH`` when it is set to a
    whole number of seconds, else today's date."""
    raw = os.environ.get(SOURCE_DATE_ENV, "").strip()
    if raw:
        try:
            return _dt.datetime.fromtimestamp(int(raw), _dt.UTC).date().isoformat()
        except (ValueError, OverflowError, OSError):
            log.warning("%s=%r is not a whole number of seconds since 1970; the sheets show "
                        "today's date", SOURCE_DATE_ENV, raw)
    return _dt.date.today().isoformat()


# --------------------------------------------------------------------------------------------
# from the maps step's data
# --------------------------------------------------------------------------------------------

def sheet_text(plan, d, *, title: str, subtitle: str, labels: list | None = None,
               date: str | None = None, data_status: dict | None = None) -> SheetText:
    """The words of a sheet from the plan file and the maps' data (:class:`maps.MapData`)."""
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
        date=date or sheet_date(),
        sources=[s for s in full if s] or ["—"], status=status,
        crs_note=f"{work.name} ({work.to_string()}); 经纬网 graticule: CGCS2000 (EPSG:4490)",
        labels=list(labels or []), banner=banner)


def _work_bounds(gdf, pad_frac: float = 0.0) -> tuple[float, float, float, float]:
    w, s, e, n = (float(v) for v in gdf.total_bounds)
    px, py = (e - w) * pad_frac, (n - s) * pad_frac
    return (w - px, s - py, e + px, n + py)


def township_sheet(ctx, d, specs: list, code: str, *, formats=("pdf", "png"),
                   pool: SheetPool | None = None):
    """The A3 sheet of one township (``{format: bytes}``) from the maps step's data and layers.

    With ``pool`` (a :class:`SheetPool`) the sheet is drawn there and a
    :class:`concurrent.futures.Future` of that dict is returned."""
    plan = ctx.plan
    name = d.township_names.get(code, code)
    text = sheet_text(plan, d, title=f"{plan.name}{name}扶贫规划图",
                      subtitle=f"{name}（{code}）· {plan.get('meta.plan_title', '')} · "
                               f"{plan.get('meta.district_name_en', '')}",
                      labels=_labels(d, code), data_status=getattr(ctx, "data_status", None))
    area = d.work_townships[d.work_townships["township_code"] == code]
    return _draw(plan, d, specs, text, area, ctx.layers, formats=formats, pool=pool)


def district_sheet(ctx, d, specs: list, *, formats=("pdf",), pool: SheetPool | None = None):
    """The A3 overview sheet of the district (with ``pool``: a Future of it, as
    :func:`township_sheet`)."""
    plan = ctx.plan
    tw = d.work_townships
    pts = tw.geometry.representative_point().to_crs(4326)
    labels = [(p.x, p.y, n, "township") for p, n in zip(pts, tw["name"].astype(str))]
    text = sheet_text(plan, d, title=f"{plan.name}扶贫规划总图",
                      subtitle=f"{plan.get('meta.plan_title', '')} · {plan.get('meta.district_name_en', '')}",
                      labels=labels, data_status=getattr(ctx, "data_status", None))
    area = ctx.layers.boundary.to_crs(plan.work_crs)
    return _draw(plan, d, specs, text, area, ctx.layers, formats=formats, pool=pool)


def _draw(plan, d, specs: list, text: SheetText, area, layers, *, formats,
          pool: SheetPool | None):
    """Draw the sheet framing ``area`` (work CRS, drawn highlighted) with the plan's print
    settings and the subset font of :func:`font_chars`: in ``pool`` (a Future) or here, with the
    DEM of ``layers``."""
    cfg = plan.section("maps")
    kwargs = dict(relief_args(plan, area), png_dpi=int(cfg["png_dpi"]), formats=formats,
                  map_crs=_wgs84_specs(d), font_chars=font_chars(plan, d, text))
    if pool is not None:
        return pool.submit(specs, text, **kwargs)
    with layers.open_dem() as dem:
        return sheet.render_sheet(specs, text, dem=dem, **kwargs)


def relief_args(plan, area) -> dict:
    """The arguments of :func:`kaizhou_gis.maps.sheet.render_sheet` that its relief is made from,
    for the sheet framing ``area`` (work CRS; drawn highlighted) with the plan's print settings
    (:data:`kaizhou_gis.maps.reliefs.RELIEF_ARGS` and the highlight)."""
    cfg = plan.section("maps")
    return dict(bounds_xy=_work_bounds(area), work_crs=plan.work_crs,
                highlight=area.geometry.union_all(), hillshade_dpi=int(cfg["print_hillshade_dpi"]),
                azimuth_deg=float(cfg["hillshade_azimuth_deg"]),
                altitude_deg=float(cfg["hillshade_altitude_deg"]))


def sheet_areas(layers, plan, codes: list[str], *, district: bool) -> list:
    """The areas (work CRS) the sheets of a run frame, in the order the maps step draws them:
    the district's boundary (``district``), then each township of ``codes``; as
    :func:`district_sheet` and :func:`township_sheet` take them."""
    areas = [layers.boundary.to_crs(plan.work_crs)] if district else []
    tw = layers.townships
    tw_codes = tw["township_code"].astype(str)
    return areas + [tw[tw_codes == code] for code in codes]


def font_chars(plan, d, text: SheetText) -> frozenset[str]:
    """The characters the subset font of a district's sheets is made for
    (:func:`kaizhou_gis.fonts.subset_family`): those of every sheet of the district, so every
    sheet of a run, drawn in any process, uses the same subset and a sheet's bytes do not depend
    on which other sheets were drawn. From the plan's names, the township, village and seat
    names, the legend's category labels, the notes (``text``: data status, sources, CRS) and the
    fixed words of a sheet; a character missed here still draws, from the full font."""
    # the district's part, the same for every sheet of a run: made again if a frame is replaced
    deps = (plan, d.township_names, d.seats, d.villages, d.work_townships, d.townships, d.hosts)
    cached = d.cache.get("font_chars")
    district = cached[1] if cached and all(a is b for a, b in zip(cached[0], deps)) else None
    if district is None:
        words: list[str] = [plan.name, str(plan.get("meta.plan_title", "")),
                            str(plan.get("meta.district_name_en", "")),
                            *sheet.SHEET_WORDS, "扶贫规划图", "扶贫规划总图",
                            "".join(map(chr, range(0x21, 0x7F)))]  # printable ASCII
        words += [str(v) for v in d.township_names.values()]
        for gdf, col in ((d.seats, "name"), (d.villages, "name"), (d.work_townships, "name"),
                         (d.townships, "name"), (d.hosts, "category"), (d.hosts, "category_en")):
            if gdf is not None and col in gdf.columns:
                words += gdf[col].dropna().astype(str).tolist()
        words += list(_style_words())
        district = _chars(words)
        d.cache["font_chars"] = (deps, district)
    return district | _chars([text.producing_unit, text.date, text.crs_note, text.banner,
                              *text.status, *text.sources])


def _chars(words) -> frozenset[str]:
    return frozenset(ch for w in words for ch in w if not ch.isspace())


def _style_words():
    """Every string of the map styles (legend labels and their prefixes)."""
    from kaizhou_gis.maps import styles

    def walk(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from walk(k)
                yield from walk(x)
        elif isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                yield from walk(x)

    for name, v in vars(styles).items():
        if name.isupper():
            yield from walk(v)


def _wgs84_specs(d) -> str:
    """The CRS of the maps' data; sheets are drawn from WGS84 data, never the GCJ-02 variant."""
    if getattr(d, "basemap", "offline") == "gaode":
        raise ValueError("print sheets need the WGS84 map data: use maps.gather_wgs84(ctx), not the "
                         "GCJ-02 data of the Gaode basemap")
    return "EPSG:4326"


def _labels(d, code: str) -> list[tuple[float, float, str, str]]:
    """The labels of township ``code``'s sheet: its seats, then its villages, in layer order
    (gathered for every township at the first call of a run: ``d.cache``; again if either layer
    is replaced)."""
    cached = d.cache.get("sheet_labels")
    if cached is None or cached[0] is not d.seats or cached[1] is not d.villages:
        by_code: dict[str, list[tuple[float, float, str, str]]] = {}
        for gdf, kind in ((d.seats, "seat"), (d.villages, "village")):
            for c, g, n in zip(gdf["township_code"].astype(str), gdf.geometry, gdf["name"].astype(str)):
                if g is not None and not g.is_empty:
                    by_code.setdefault(c, []).append((g.x, g.y, n, kind))
        cached = d.cache["sheet_labels"] = (d.seats, d.villages, by_code)
    return list(cached[2].get(code, []))


def write_township_pdf(ctx, code: str, path: str | Path, *, png_path: str | Path | None = None) -> Path:
    """Write the A3 PDF sheet of township ``code`` (and optionally its PNG) for a loaded context.

    ``ctx`` is a :class:`kaizhou_gis.pipeline.Context`; the steps the maps need run as needed
    (cached in ``ctx``). Files are written atomically.
    """
    d = gather_wgs84(ctx, ctx.needs_of("maps"))
    specs = map_layers("township", d, _settings(ctx.plan), str(code))
    res = township_sheet(ctx, d, specs, str(code), formats=("pdf", "png") if png_path else ("pdf",))
    outputs.write_bytes(res["pdf"], path)
    if png_path:
        outputs.write_bytes(res["png"], png_path)
    return Path(path)


