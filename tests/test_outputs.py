"""Writers: encodings, header labels, atomicity."""
from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point

from kaizhou_gis import outputs


@pytest.fixture()
def table():
    gdf = gpd.GeoDataFrame(
        {"village_code": ["500154118201", "500154118202"], "name": ["杨柳村", "中山村"],
         "tags": [["a", "b"], None], "elevation_m": [812.5, float("nan")]},
        geometry=[Point(108.4, 31.2), Point(108.5, 31.3)], crs="EPSG:4326")
    gdf.attrs["labels_zh"] = {"village_code": "村代码", "name": "名称"}
    return gdf


def test_csv_is_utf8_with_bom_and_keeps_leading_zeros(tmp_path, table):
    p = outputs.write_csv(table, tmp_path / "t.csv")
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(p, encoding="utf-8-sig", dtype=str)
    assert list(back.columns) == ["village_code", "name", "tags", "elevation_m"]
    assert back.loc[0, "name"] == "杨柳村"
    assert back.loc[0, "tags"] == "a; b"


@pytest.mark.parametrize("header, first", [("zh", "村代码"), ("both", "village_code 村代码"),
                                           ("en", "village_code")])
def test_header_styles(tmp_path, table, header, first):
    p = outputs.write_csv(table, tmp_path / "t.csv", header=header)
    cols = pd.read_csv(p, encoding="utf-8-sig", nrows=0).columns
    assert cols[0] == first and cols[2] == "tags"


def test_xlsx_sheets_and_gpkg_layers(tmp_path, table):
    outputs.write_xlsx({"candidates": table, "villages": pd.DataFrame({"n": [1]})}, tmp_path / "t.xlsx")
    sheets = pd.read_excel(tmp_path / "t.xlsx", sheet_name=None)
    assert set(sheets) == {"candidates", "villages"}
    assert sheets["candidates"]["name"].tolist() == ["杨柳村", "中山村"]
    outputs.write_gpkg({"a": table, "b": table.iloc[:1]}, tmp_path / "t.gpkg")
    layers = dict(pyogrio.list_layers(tmp_path / "t.gpkg"))
    assert set(layers) == {"a", "b"}
    assert len(gpd.read_file(tmp_path / "t.gpkg", layer="b")) == 1


def test_json_turns_nan_into_null(tmp_path):
    import numpy as np
    outputs.write_json({"x": float("nan"), "n": np.int64(3), "a": np.array([1.5])}, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "n": 3, "a": [1.5]}


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "out" / "report.md"
    outputs.write_text("old complete text", target)
    with pytest.raises(RuntimeError):
        with outputs.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old complete text"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


def test_stale_temp_files_are_cleaned(tmp_path):
    stale = tmp_path / "maps" / ".overview.html.abc123.tmp.html"
    stale.parent.mkdir()
    stale.write_text("partial")
    keep = tmp_path / "maps" / "overview.html"
    keep.write_text("complete")
    removed = outputs.clean_stale_temp(tmp_path)
    # the sweep of the system temp folder may also remove the scratch folder of a run that a
    # test in another process killed a moment ago: only what it removed in the folder counts here
    assert [p for p in removed if p.is_relative_to(tmp_path)] == [stale]
    assert not stale.exists() and keep.exists()


def test_write_product_picks_writer_by_extension(tmp_path, table):
    paths = outputs.write_products(tmp_path, {"a/x.csv": table, "a/x.json": {"k": 1}, "a/x.md": "# t"})
    assert [p.name for p in paths] == ["x.csv", "x.json", "x.md"]
    with pytest.raises(TypeError):
        outputs.write_product(tmp_path, "a/x.bin", object())


def test_scratch_file_is_handed_over_and_moved_into_place(tmp_path):
    """A sheet drawn in a worker waits as a file in the run's scratch folder (ScratchFile): the
    worker's object does not remove it, the receiving one does unless it is written, and
    write_product moves it into place with a new file's mode; a second write copies it."""
    import gc
    import os
    import pickle
    import stat

    from kaizhou_gis.outputs.files import ScratchFile, _scratch_dir

    data = os.urandom(3 * 2**20 + 17)
    made = ScratchFile.of(data, _scratch_dir(), owned=False)  # as a worker makes it
    sent = pickle.dumps(made)
    assert len(sent) < 1000  # only the name travels
    path = made.path
    del made
    gc.collect()
    assert path.exists()  # the worker's object left it for the receiver
    got = pickle.loads(sent)
    assert bytes(got) == data and [len(b) for b in got.blocks()] == [2**20] * 3 + [17]
    out = outputs.write_product(tmp_path, "maps/townships/x.png", got)
    assert out.read_bytes() == data and not path.exists()  # moved, not copied
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~outputs.files._UMASK
    again = outputs.write_product(tmp_path / "b", "x.png", got)  # already placed: copied from there
    assert again.read_bytes() == data and out.exists()
    dropped = pickle.loads(pickle.dumps(ScratchFile.of(b"abc", _scratch_dir(), owned=False)))
    kept_at = dropped.path
    assert bytes(dropped) == b"abc"
    del dropped
    gc.collect()
    assert not kept_at.exists()  # never written: removed with its object


def test_scratch_file_copied_to_another_filesystem_leaves_no_scratch_copy(tmp_path, monkeypatch):
    """``--out`` on another filesystem (rename refused: EXDEV): the file is copied into place and
    its scratch copy removed, so a long-lived process (web workbench, batch worker) does not fill
    the system temp with sheets; a failed write leaves no half file in the scratch folder."""
    import errno
    import os

    from kaizhou_gis.outputs import files
    from kaizhou_gis.outputs.files import ScratchFile, _scratch_dir

    data = os.urandom(2**20 + 3)
    f = ScratchFile.of(data)
    scratch = f.path
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(src) == os.fspath(scratch):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    out = outputs.write_product(tmp_path, "maps/townships/x.pdf", f)
    assert out.read_bytes() == data and not scratch.exists() and f.path == out
    monkeypatch.undo()

    class Full:
        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    before = set(_scratch_dir().iterdir())
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: (os.close(fd), Full())[1])
    with pytest.raises(OSError):
        ScratchFile.of(b"abc")
    assert set(_scratch_dir().iterdir()) == before
