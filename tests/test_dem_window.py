"""A district's DEM as a window of a province-sized VRT: every DEM read of `validate` and `run`
stays inside the district's window (the layers' extent plus the documented margin), and the
results equal those of the district's own DEM tile.

The VRT is 200,000 x 100,000 cells (20 G cells, 40 GB of Int16 if it were real). Its only real
source is the district's DEM (the synthetic tile with RING nodata cells around it, so it covers the
layers' extent plus the 15 km margin); everything else is sources that point to a file that does
not exist, so a read there fails, and every read is counted through a wrapper so a decimated read
of the whole raster (which GDAL may answer without failing) is caught too. The district's DEM
alone, as a GeoTIFF, gives the reference results.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from kaizhou_gis.cli import main
from kaizhou_gis.demo.synthetic import write_synthetic_districts
from kaizhou_gis.layers import check_layers, dem_window_margin_m
from kaizhou_gis.manifest import layer_fingerprints
from kaizhou_gis.plan import load_plan

NX, NY = 200_000, 100_000          # the VRT's size in cells
OX, OY = 120_000, 60_000           # where the district's DEM sits in it
RING = 250                         # nodata cells around the synthetic tile (> 15 km + 3 cells)


def _source(path: str, x: int, y: int, w: int, h: int) -> str:
    return (f'<ComplexSource><SourceFilename relativeToVRT="0">{path}</SourceFilename>'
            f'<SourceBand>1</SourceBand><SourceProperties RasterXSize="{w}" RasterYSize="{h}" '
            f'DataType="Int16" BlockXSize="256" BlockYSize="256"/>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/>'
            f'<NODATA>-32768</NODATA></ComplexSource>')


#: Cell size of the test DEM (degrees): a power of two, so the province VRT's origin and every
#: window's origin are exact in binary and both DEMs have the very same grid.
CELL = 2.0 ** -10


def padded_dem(tile: Path, out: Path) -> tuple[int, int]:
    """The tile's cells with RING nodata cells on every side, as a GeoTIFF (same tags) on a grid
    of CELL degrees near the tile's own (a bit coarser: the relief is stretched, still
    synthetic). Its size."""
    with rasterio.open(tile) as t:
        z, profile, tags = t.read(1), t.profile, t.tags()
        tr = t.transform
    assert profile["dtype"] == "int16" and profile["nodata"] == -32768
    big = np.full((z.shape[0] + 2 * RING, z.shape[1] + 2 * RING), -32768, dtype="int16")
    big[RING:RING + z.shape[0], RING:RING + z.shape[1]] = z
    left, top = round(tr.c / CELL) * CELL - RING * CELL, round(tr.f / CELL) * CELL + RING * CELL
    profile.update(width=big.shape[1], height=big.shape[0],
                   transform=rasterio.Affine(CELL, 0.0, left, 0.0, -CELL, top))
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(big, 1)
        ds.update_tags(**{k: v for k, v in tags.items() if k != "AREA_OR_POINT"})
    return big.shape[1], big.shape[0]


def province_vrt(dem: Path, vrt: Path, missing: Path) -> None:
    """Write ``vrt``: ``dem`` at (OX, OY) of a NX x NY grid, ``missing`` everywhere else."""
    from html import escape

    with rasterio.open(dem) as t:
        w, h, tr = t.width, t.height, t.transform
        assert t.dtypes[0] == "int16" and t.nodata == -32768 and t.crs.to_epsg() == 4326
        # the province VRT says what it holds, as the tile does (synthetic: the data status)
        meta = "".join(f'<MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in t.tags().items()
                       if k != "AREA_OR_POINT")
    left, top = tr.c - OX * tr.a, tr.f - OY * tr.e
    x1, y1 = OX + w, OY + h
    m = str(missing)
    sources = [_source(str(dem.resolve()), OX, OY, w, h),
               _source(m, 0, 0, NX, OY), _source(m, 0, y1, NX, NY - y1),
               _source(m, 0, OY, OX, h), _source(m, x1, OY, NX - x1, h)]
    vrt.write_text(f'<VRTDataset rasterXSize="{NX}" rasterYSize="{NY}"><SRS>EPSG:4326</SRS>'
                   f"<Metadata>{meta}</Metadata>"
                   f"<GeoTransform>{left!r}, {tr.a!r}, 0, {top!r}, 0, {tr.e!r}</GeoTransform>"
                   f'<VRTRasterBand dataType="Int16" band="1"><NoDataValue>-32768</NoDataValue>'
                   f'{"".join(sources)}</VRTRasterBand></VRTDataset>', encoding="utf-8")


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """(the district's own DEM layers folder, province-VRT layers folder, plan path, DEM size)."""
    d = tmp_path_factory.mktemp("demwin")
    write_synthetic_districts(d, 1, seed=11, townships=2, villages=8, area_km2=150.0)
    syn = d / "900001"
    plain, big = d / "own", d / "province"
    for f in (plain, big):
        f.mkdir()
        for name in ("district.gpkg", "README.md"):
            shutil.copy(syn / name, f / name)
    size = padded_dem(syn / "dem.tif", plain / "dem.tif")
    province_vrt(plain / "dem.tif", big / "dem.vrt", d / "no_such_province_tile.tif")
    return plain, big, syn / "plan.toml", size


@pytest.fixture
def reads(monkeypatch):
    """Every DEM read: (dataset width x height, cells of the window asked for)."""
    seen: list[tuple[int, int]] = []
    orig = rasterio.io.DatasetReader.read

    def read(self, *args, **kw):
        win = kw.get("window")
        if win is None:
            cells = self.width * self.height
        else:
            if not isinstance(win, Window):
                win = Window.from_slices(*win, height=self.height, width=self.width)
            cells = int(win.width) * int(win.height)
        seen.append((self.width * self.height, cells))
        return orig(self, *args, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", read)
    return seen


def test_the_vrt_is_a_trap_outside_the_district(district):
    """Reading the province VRT outside the district's DEM fails (so a run cannot have read
    there without failing), inside it gives the district's cells."""
    plain, big, _, (w, h) = district
    with rasterio.open(big / "dem.vrt") as ds, rasterio.open(plain / "dem.tif") as t:
        assert (ds.width, ds.height) == (NX, NY)
        assert np.array_equal(ds.read(1, window=Window(OX, OY, w, h)), t.read(1))
        assert ds.tags()["source"] == t.tags()["source"]
    for win in (Window(OX - 5, OY, 10, 10), Window(OX, OY + h - 5, 10, 10), Window(0, 0, 4, 4),
                Window(OX + w - 5, OY + 20, 10, 10)):
        with rasterio.open(big / "dem.vrt") as ds, pytest.raises(rasterio.errors.RasterioIOError):
            ds.read(1, window=win)


def _window_cells(plan_path, dem_size) -> int:
    """Upper bound of the district window's cells: the layers' extent (inside the synthetic tile)
    plus the margin on every side, generously."""
    margin_m = dem_window_margin_m(load_plan(plan_path))
    assert margin_m == 15_000.0  # links.max_new_link_km of the synthetic plan
    cell_m = CELL * 111_320 * np.cos(np.radians(28.0))  # narrowest cell side at ~28°N
    pad = int(margin_m / cell_m) + 10
    tile = (dem_size[0] - 2 * RING, dem_size[1] - 2 * RING)
    return (tile[0] + 2 * pad) * (tile[1] + 2 * pad)


def test_validate_reads_only_the_district_window(district, reads):
    plain, big, plan_path, size = district
    plan = load_plan(plan_path)
    a = check_layers(plain, plan=plan)
    n_plain = len(reads)
    b = check_layers(big, plan=plan)
    assert a.ok and b.ok, (a.problems, b.problems)
    assert b.problems == a.problems == []
    note = "dem: only the district's window is read: "
    assert [n for n in b.notes if n.startswith(note) and f"of the DEM's {NX}x{NY} cells" in n]
    assert [n.replace(f"{NX}x{NY}", "{size}") for n in b.notes] == \
        [n.replace(f"{size[0]}x{size[1]}", "{size}") for n in a.notes]
    big_reads = reads[n_plain:]
    assert big_reads, "validate read no DEM cells"
    bound = _window_cells(plan_path, size)
    assert bound < 1_000_000 < NX * NY
    assert max(ds for ds, _ in big_reads) <= bound, big_reads  # no dataset beyond the window read
    assert max(c for _, c in big_reads) <= bound
    # the same window (same place, same size) in both, inside the district's own DEM
    wa, wb = a.layers.dem_window, b.layers.dem_window
    assert wa is not None and wb is not None
    assert (wb[0] - OX, wb[1] - OY, wb[2], wb[3]) == wa
    assert 0 < wa[0] < RING and 0 < wa[1] < RING and wa[2] * wa[3] <= bound
    assert wa[0] + wa[2] < size[0] and wa[1] + wa[3] < size[1]
    with b.layers.open_dem() as ds, a.layers.open_dem() as t:
        assert (ds.width, ds.height) == (wa[2], wa[3]) and ds.transform == t.transform
        assert np.array_equal(ds.read(1), t.read(1)) and ds.crs == t.crs
        assert (ds.read(1) != -32768).sum() > 10_000
    # fingerprinted by the window's cells: the same for both, not the 20 G-cell file
    assert layer_fingerprints(a.layers)["dem"] == layer_fingerprints(b.layers)["dem"]


def _outputs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.name != ".kaizhou-gis.lock"
                  and p.relative_to(folder).parts[0] != ".cache")


def test_run_on_the_province_vrt_equals_the_districts_own_dem(district, tmp_path, reads):
    plain, big, plan_path, size = district
    out_a, out_b = tmp_path / "a" / "out", tmp_path / "b" / "out"
    r = CliRunner().invoke(main, ["run", "--layers", str(plain), "--plan", str(plan_path),
                                  "--out", str(out_a)])
    assert r.exit_code == 0, r.output
    n_plain = len(reads)
    r = CliRunner().invoke(main, ["run", "--layers", str(big), "--plan", str(plan_path),
                                  "--out", str(out_b)])
    assert r.exit_code == 0, r.output
    big_reads = reads[n_plain:]
    bound = _window_cells(plan_path, size)
    assert big_reads and max(ds for ds, _ in big_reads) <= bound
    assert max(c for _, c in big_reads) <= bound
    files = _outputs(out_a)
    assert files == _outputs(out_b) and len(files) > 25
    # byte for byte, but for the names of the inputs (folder, DEM file, DEM size) and the
    # command line and times in manifest.json
    swap = [(str(big), str(plain)), (str(out_b), str(out_a)), ("dem.vrt", "dem.tif"),
            (f"{NX}x{NY}", f"{size[0]}x{size[1]}")]
    differ = []
    for f in files:
        x, y = (out_a / f).read_bytes(), (out_b / f).read_bytes()
        if x == y:
            continue
        try:
            tx, ty = x.decode("utf-8"), y.decode("utf-8")
        except UnicodeDecodeError:
            differ.append(f)
            continue
        for s_from, s_to in swap:
            ty = ty.replace(s_from, s_to)
        if f == "manifest.json":
            ma, mb = _manifest_without_volatile(tx), _manifest_without_volatile(ty)
            if ma != mb:
                differ.append((f, _json_diff(ma, mb)))
        elif tx != ty:
            differ.append(f)
    assert differ == []


def _json_diff(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _json_diff(a.get(k), b.get(k), f"{where}.{k}")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _manifest_without_volatile(text: str) -> dict:
    """manifest.json without times and command lines, the fingerprints that combine the layers'
    source path, and the files' hashes; the layers' own fingerprints (the DEM's: its window's
    cells) stay."""
    m = json.loads(text)
    m.pop("updated", None)
    m.pop("history", None)
    for e in m["steps"].values():
        # (the files' own hashes: the files are compared one by one, input names swapped)
        for k in ("time", "command", "fingerprint", "files"):
            e.pop(k, None)
        e["inputs"].pop("layers_source")
        e["inputs"].pop("fingerprint")
        assert e["inputs"]["layers"]["dem"]
    return m
