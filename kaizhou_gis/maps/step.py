"""The maps step: the district maps and the township maps (HTML) and their print sheets of a run
(:func:`run`, registered in :data:`kaizhou_gis.pipeline.STEPS`)."""
from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import geopandas as gpd
import numpy as np

from kaizhou_gis.errors import LayerError, OptionError, format_ids
from kaizhou_gis.maps import printmap, sheetpool
from kaizhou_gis.maps.background import Background, hillshade_sun, make_background
from kaizhou_gis.maps.contents import COMPACT_NOTE, MapSettings, _map_rows, _settings, map_layers
from kaizhou_gis.maps.data import MapData, gather, gather_wgs84
from kaizhou_gis.maps.mapassets import render_chunks
from kaizhou_gis.maps.page import build_map
from kaizhou_gis.maps.styles import BASEMAPS, DISTRICT_MAPS, MAP_TITLES
from kaizhou_gis.outputs.files import ScratchFile
from kaizhou_gis.outputs.writers import HtmlPage, PageSpool
from kaizhou_gis.results import MapsData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# the step
# --------------------------------------------------------------------------------------------

def _bounds_of(gdf: gpd.GeoDataFrame, pad_frac: float = 0.03) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a layer, padded by a fraction of its size."""
    w, s, e, n = gdf.total_bounds
    if not np.all(np.isfinite([w, s, e, n])):
        raise LayerError("maps: a layer to frame a map has no geometry; every township needs a "
                         "polygon in the townships layer and the boundary layer a polygon.")
    px, py = (e - w) * pad_frac, (n - s) * pad_frac
    return (float(w - px), float(s - py), float(e + px), float(n + py))


def _options(ctx: StepContext) -> tuple[str, str | None]:
    basemap = ctx.options.get("basemap") or "offline"
    if basemap not in BASEMAPS:
        raise OptionError(f"--basemap {basemap}: unknown basemap; use one of {', '.join(BASEMAPS)}.")
    key = ctx.options.get("tianditu_key") or None
    if key is not None and not re.fullmatch(r"[0-9A-Za-z]{8,64}", str(key)):
        raise OptionError("--tianditu-key: a Tianditu key is 8-64 letters and digits (e.g. the "
                          "32-character key from console.tianditu.gov.cn); check the value.")
    if basemap == "tianditu" and not key:
        raise OptionError("--basemap tianditu needs a Tianditu key: pass --tianditu-key K "
                          "(free at console.tianditu.gov.cn), or use --basemap offline.")
    return basemap, key


def prepare(ctx: StepContext):
    """Start making the print sheets' reliefs of this run (:mod:`kaizhou_gis.maps.reliefs`) while
    the steps before the maps run: the district sheet's and, unless ``--no-prints``, every
    township sheet's (``--township``: only that township's, no district sheet). None (nothing
    started) where reliefs cannot be made ahead (one CPU or ``KAIZHOU_GIS_WORKERS=1``, not the
    main thread, a daemon process such as a dask worker), when there is no sheet to draw or the
    DEM cannot be read: the maps step then shades its sheets itself and reports any problem."""
    from kaizhou_gis.maps import reliefs

    if not reliefs.available():
        return None
    L, plan = ctx.layers, ctx.plan
    codes = sorted(L.townships["township_code"].astype(str))
    if ctx.options.get("prints", True) is False:  # --no-prints: no township sheets
        codes = []
    elif ctx.township is not None:
        codes = [str(ctx.township)] if str(ctx.township) in codes else []
    areas = printmap.sheet_areas(L, plan, codes, district=ctx.township is None)
    jobs = [printmap.relief_args(plan, a) for a in areas if len(a)]
    # an area with no polygon has no frame: its sheet fails in the maps step, which names it
    jobs = [j for j in jobs if np.all(np.isfinite(j["bounds_xy"]))]
    if not jobs:
        return None
    try:
        with L.open_dem() as ds:
            dem = sheetpool.DemArray(ds.read(1, masked=False), ds.transform, ds.crs, ds.nodata)
    except Exception:  # noqa: BLE001 - no DEM to shade: the steps that read it say why
        log.debug("maps: no reliefs made ahead (the DEM cannot be read)", exc_info=True)
        return None
    return reliefs.ReliefPrefetch(dem, jobs)


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[MapsData]:
    """Build the district maps and the township maps (HTML + PNG) of the run.

    ``files`` holds each page rendered as an :class:`~kaizhou_gis.outputs.writers.HtmlPage`
    (rendered once, as soon as it is built, piece by piece, and kept compressed in a scratch
    file until it is written, so that one page's layers are in memory at a time) and each print
    sheet's PDF and PNG as a :class:`~kaizhou_gis.outputs.files.ScratchFile` (the file a worker
    left in the run's scratch folder; bytes where there is no such folder); ``data.sizes_mb``
    holds the page sizes (the folium objects are not kept).
    With ``ctx.township`` set only that township's map and PNG are built. This wrapper is the
    only part of the maps that reads the run's context: the parts below get plain data.
    """
    basemap, tianditu_key = _options(ctx)
    plan = ctx.plan
    st = _settings(plan)
    # a township's map is drawn from the district's results (its candidates, sites, works and
    # access are the district run's), so it is the same page as the district run's township map
    d = gather(ctx.district, needs)
    d_print = d if basemap != "gaode" else gather_wgs84(ctx.district, needs)  # sheets are drawn from WGS84 data
    codes = sorted(d.townships["township_code"].astype(str))
    # print sheets are drawn in worker processes while this one builds the HTML pages; each file
    # keeps its place in `files` (its future is swapped for the file once drawn: _take_drawn)
    pool = sheetpool.SheetPool(ctx, reliefs=getattr(ctx, "prepared", {}).get("maps"))
    if ctx.township is not None:
        if str(ctx.township) not in codes:
            raise OptionError(f"--township {ctx.township}: not in the townships layer; use one of "
                              f"{', '.join(codes[:5])} ...")
        codes = [str(ctx.township)]
    files: dict[str, Any] = {}
    spool = PageSpool()  # the rendered pages wait there, compressed, until they are written
    sheets: list[tuple[str, str, Any]] = []
    pages = _Pages(d, st, plan.section("maps"), plan_name=plan.name,
                   plan_title=plan.get("meta.plan_title", ""), boundary=ctx.layers.boundary,
                   open_dem=ctx.layers.open_dem, basemap=basemap, tianditu_key=tianditu_key)
    with pool, contextlib.closing(pages):  # a failure cancels the sheets not drawn yet
        if ctx.township is None:
            for rel, page in pages.district():
                files[rel] = HtmlPage(render_chunks(page.get_root()), spool)
            files["maps/overview.pdf"] = printmap.district_sheet(
                ctx, d_print, map_layers("overview", d_print, st), formats=("pdf",), pool=pool)
            sheets.append(("maps/overview.pdf", "pdf", files["maps/overview.pdf"]))
        _check_codes(codes)
        prints = ctx.options.get("prints", True) is not False  # --no-prints: HTML maps only
        for code in codes:
            page, specs = pages.township(code)
            files[f"maps/townships/{code}.html"] = HtmlPage(render_chunks(page.get_root()), spool)
            del page
            if not prints:
                continue
            sheet = printmap.township_sheet(ctx, d_print, specs if d_print is d else
                                            map_layers("township", d_print, st, code), code, pool=pool)
            for fmt in ("pdf", "png"):
                files[f"maps/townships/{code}.{fmt}"] = sheet
                sheets.append((f"maps/townships/{code}.{fmt}", fmt, sheet))
            sheets = _take_drawn(files, sheets)
        _take_drawn(files, sheets, wait=True)
    sizes = {rel: page.size / 2**20 for rel, page in files.items() if isinstance(page, HtmlPage)}
    summary = _summary(plan.section("maps"), d, files, sizes, basemap, prints=prints)
    return StepResult("maps", files=files, data=MapsData(sizes_mb=sizes),
                      summary=summary)


class _Pages:
    """The HTML pages of the maps (folium maps; rendered by :func:`_render`), from the maps' data
    ``d``, the map settings ``st``, the plan's ``maps`` section ``cfg``, the district boundary
    layer and ``open_dem`` (a context manager of the DEM as a rasterio dataset, for the hillshade
    backgrounds)."""

    def __init__(self, d: MapData, st: MapSettings, cfg, *, plan_name: str, plan_title: str,
                 boundary: gpd.GeoDataFrame, open_dem: Callable[[], contextlib.AbstractContextManager], basemap: str,
                 tianditu_key: str | None):
        self.d, self.st, self.cfg = d, st, cfg
        self.plan_name, self.plan_title, self.boundary = plan_name, plan_title, boundary
        self.open_dem = open_dem
        self.basemap, self.tianditu_key = basemap, tianditu_key
        self.sun = hillshade_sun(cfg)
        self.tw_work = d.work_townships.set_index("township_code")
        self._stack = contextlib.ExitStack()
        self._dem: Any = None

    def district(self) -> Iterator[tuple[str, Any]]:
        """The district maps, one at a time: ``("maps/<kind>.html", folium map)``."""
        d = self.d
        bounds_ll = _bounds_of(d.boundary)
        bg = self._background(_bounds_of(self.boundary.to_crs(4326)), int(self.cfg["hillshade_district_px"]),
                              self.boundary.geometry)
        for kind in DISTRICT_MAPS:
            zh, en = MAP_TITLES[kind]
            specs = map_layers(kind, d, self.st)
            notes = [COMPACT_NOTE.format(n=self.st.detail_max)] if any(s.compact for s in specs) else []
            yield f"maps/{kind}.html", build_map(
                kind, d, specs, title_zh=f"{self.plan_name} {zh}", title_en=en,
                subtitle=self.plan_title, bounds=bounds_ll, background=bg,
                basemap=self.basemap, tianditu_key=self.tianditu_key, notes=notes)
            del specs

    def township(self, code: str) -> tuple[Any, list]:
        """The township's map (a folium map) and its layers (specs)."""
        d = self.d
        name = d.township_names.get(code, code)
        sub = d.townships.iloc[_map_rows(d, self.st).rows("townships", code)]
        if sub.geometry.isna().all() or sub.geometry.is_empty.all():
            raise LayerError(f"townships: township_code {code} ({name}) has no polygon; add its "
                             f"outline to the townships layer.")
        bounds = _bounds_of(sub, 0.06)
        outline = self.tw_work.loc[[code]]
        bg = self._background(_bounds_of(outline.to_crs(4326), 0.06), int(self.cfg["hillshade_township_px"]),
                              outline.geometry)
        specs = map_layers("township", d, self.st, code)
        title = f"{self.plan_name} {name}"
        subtitle = f"{name} ({code}) · {self.plan_title}"
        return build_map("township", d, specs, title_zh=title, title_en="Township map",
                         subtitle=subtitle, bounds=bounds, background=bg, basemap=self.basemap,
                         tianditu_key=self.tianditu_key), specs

    def _background(self, bounds_ll: tuple[float, float, float, float], width_px: int,
                    inside: gpd.GeoSeries) -> Background | None:
        """The hillshade background of a map (None without a readable DEM). The DEM is opened
        once for all the maps (:meth:`close` closes it)."""
        if self._dem is None:
            try:
                self._dem = self._stack.enter_context(self.open_dem())
            except Exception as e:  # the maps are still useful without relief
                log.warning("maps: no hillshade (%s)", e)
                return None
        return make_background(self._dem, bounds_ll, width_px=width_px, inside=inside,
                               basemap=self.basemap, **self.sun)

    def close(self) -> None:
        """Close the DEM opened for the backgrounds."""
        self._stack.close()
        self._dem = None


def _check_codes(codes: list[str]) -> None:
    bad = [c for c in codes if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", c)]
    if bad:
        raise LayerError(f"townships: township_code {format_ids(bad)} cannot name a map file; codes must "
                         f"be digits (9-digit 统计用区划代码), fix the townships layer.")


def _take_drawn(files: dict[str, Any], sheets: list[tuple[str, str, Any]], *,
                wait: bool = False) -> list[tuple[str, str, Any]]:
    """Swap the future of each sheet file that is drawn (with ``wait``: of every one, in order)
    for the file, as soon as it is drawn, so that the sheets drawn while the pages are built do
    not pile up in memory: a worker's sheet is already a :class:`ScratchFile`, one drawn here
    goes into one. Returns those not drawn yet. A sheet that failed is left for the pass with
    ``wait``, which raises the first failure in the order of the sheets, with its own error."""
    left = []
    for rel, fmt, sheet in sheets:
        if hasattr(sheet, "result") and not wait and (not sheet.done() or sheet.exception() is not None):
            left.append((rel, fmt, sheet))
            continue
        data = (sheet.result() if hasattr(sheet, "result") else sheet)[fmt]
        if isinstance(data, bytes):
            try:
                data = ScratchFile.of(data)
            except OSError:  # no scratch folder: kept in memory until written
                pass
        files[rel] = data
    return left


def _summary(cfg, d: MapData, files: dict[str, Any], sizes: dict[str, float], basemap: str, *,
             prints: bool = True) -> dict[str, Any]:
    """The step's summary: counts, sizes against the budget, missing layers."""
    over = []
    for rel, mb in sizes.items():
        limit = float(cfg["township_max_mb"] if "/townships/" in rel else cfg["district_max_mb"])
        if mb > limit:
            over.append(f"{rel} {mb:.2f} MB > {limit:g} MB")
            log.warning("maps: %s is %.2f MB, over the %.1f MB budget", rel, mb, limit)
    n_html = sum(1 for r in files if r.endswith(".html"))
    n_tw = sum(1 for r in files if r.startswith("maps/townships/") and r.endswith(".html"))
    sheets = ("(+ A3 PDF and PNG sheets; district PDF)" if prints else
              "(township print sheets left out: --no-prints; district PDF)")
    headline = [f"{n_html - n_tw} district maps, {n_tw} township maps {sheets}"
                + (f", basemap {basemap}" if basemap != "offline" else ", offline")]
    if sizes:
        headline.append(f"largest page {max(sizes.values()):.2f} MB"
                        + (f"; OVER BUDGET: {', '.join(over[:3])}" if over else " (within budget)"))
    if d.missing:
        headline.append("missing layers: " + ", ".join(sorted(d.missing)))
    return {"headline": headline, "maps": n_html, "township_maps": n_tw, "sizes_mb": sizes,
            "over_budget": over, "missing_layers": dict(d.missing), "basemap": basemap,
            "township_prints": prints,
            "synthesized_layers": d.synthesized}
