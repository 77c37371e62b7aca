"""Fuzz tests (hypothesis) of the plan loader and the layer loader: whatever the input, they
either succeed with sane values or raise the tool's own errors (KaizhouGISError), never another
exception."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from kaizhou_gis.errors import KaizhouGISError
from kaizhou_gis.layers import check_layers
from kaizhou_gis.plan import default_plan_path, load_plan

sys.path.insert(0, str(Path(__file__).parent))
import layerset  # noqa: E402

sys.path.pop(0)

PLAN_TEXT = default_plan_path().read_text(encoding="utf-8")
_VALUES = list(re.finditer(r"value = (.*?), source = ", PLAN_TEXT))
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_TOKENS = st.sampled_from([
    "nan", "inf", "-inf", "-1", "0", "-0.0", "1e308", "1e-320", "12", "0.5", "-0.6", "true",
    '"x"', '"="', '""', "[]", "{}", "[1, \"a\"]", "[nan, 1.0]", "{ a = 1 }", "{ elevation = -1 }",
    "[0.0]", "\"EPSG:99999\"", "\"EPSG:4326\"", "2016", "9999999999999999999999",
])


@st.composite
def plan_texts(draw) -> bytes:
    text = PLAN_TEXT
    for _ in range(draw(st.integers(1, 4))):
        m = draw(st.sampled_from(_VALUES))
        token = draw(st.one_of(_TOKENS, st.text(max_size=12)))
        text = text.replace(m.group(0), f"value = {token}, source = ", 1)
    kind = draw(st.sampled_from(["values", "drop_line", "append", "bytes"]))
    if kind == "drop_line":
        lines = text.splitlines()
        del lines[draw(st.integers(0, len(lines) - 1))]
        text = "\n".join(lines)
    elif kind == "append":
        text += "\n" + draw(st.text(max_size=40))
    data = text.encode("utf-8", "surrogatepass")
    if kind == "bytes":
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    return data


@FUZZ
@given(data=plan_texts())
def test_plan_loader_raises_only_its_own_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("plan") / "plan.toml"
    path.write_bytes(data)
    try:
        plan = load_plan(path)
    except KaizhouGISError:
        return
    # a plan that loads holds only finite numbers in its settings, and no negative weights
    for key, leaf in plan.settings().items():
        v = leaf["value"]
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else [v]
        for x in items:
            if isinstance(x, float):
                assert math.isfinite(x), (key, x)
                if key.endswith("weights"):
                    assert x >= 0, (key, x)


@FUZZ
@given(threshold=st.floats(allow_nan=True, allow_infinity=True))
def test_threshold_override_is_finite_or_refused(threshold):
    try:
        plan = load_plan(overrides={"relocation.threshold_m": threshold})
    except KaizhouGISError:
        assert not math.isfinite(threshold) or threshold < 0
        return
    assert math.isfinite(plan["relocation.threshold_m"]) and plan["relocation.threshold_m"] >= 0


_WEIRD_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e12, 1e300, 2.5, -0.0]),
    st.integers(-10**6, 10**13).map(float))
_WEIRD_TEXT = st.one_of(
    st.sampled_from(["", " ", "=1+1", "-", "nan", "inf", "\ufffd\ufffd", "æáÂíÉçÇø", "500154",
                     "500154118201", "村", "社区", "镇", "是", "否", "null"]),
    st.text(max_size=15))
_GEOMS = st.sampled_from(["nan", "inf", "swap", "empty", "none", "line", "far", "ok"])
LAYERS = ("townships", "township_seats", "villages", "settlements", "roads")


def _bad_geometry(kind, geom):
    if kind == "nan":
        return Point(108.4, math.nan)
    if kind == "inf":
        return Point(math.inf, 31.2)
    if kind == "swap":
        c = geom.representative_point()
        return Point(c.y, c.x)
    if kind == "empty":
        return Point()
    if kind == "none":
        return None
    if kind == "line":
        return LineString([(108.40, 31.20), (108.41, 31.21)])
    if kind == "far":
        return Point(-75.0, 40.0)
    return geom


@st.composite
def layer_mutations(draw):
    muts = []
    for _ in range(draw(st.integers(1, 4))):
        layer = draw(st.sampled_from(LAYERS))
        cols = [c for c in layerset.layer_frames()[layer].columns]
        col = draw(st.sampled_from(cols))
        numeric = draw(st.booleans())
        value = draw(_WEIRD_NUMBERS if numeric else _WEIRD_TEXT)
        geom = draw(_GEOMS)
        muts.append((layer, col, value, geom))
    return muts


@pytest.fixture(scope="module")
def plan():
    return load_plan()


@settings(FUZZ, max_examples=15)  # each example writes and reads a layer set (~0.5 s)
@given(muts=layer_mutations())
def test_layer_loader_raises_only_its_own_errors(tmp_path_factory, plan, muts):
    frames = layerset.layer_frames()
    for layer, col, value, geom in muts:
        g = frames[layer]
        if col == "geometry":
            g["geometry"] = [_bad_geometry(geom, x) if i == 0 else x for i, x in enumerate(g.geometry)]
            continue
        if isinstance(value, str):
            g[col] = g[col].astype(str)  # a text column throughout (as a real file would have)
        else:
            g[col] = g[col].map(lambda v: float(v) if isinstance(v, (int, float, np.number))
                                else math.nan).astype(float)
        g.loc[g.index[0], col] = value
    folder = tmp_path_factory.mktemp("layers")
    try:
        layerset.write_layerset(folder, frames)
    except Exception:  # GDAL cannot even store it: nothing to load
        return
    try:
        report = check_layers(folder, plan=plan)
    except KaizhouGISError:
        return
    if not report.ok:
        assert report.problems and all(isinstance(p, str) and p for p in report.problems)
        return
    # what loads is sane: finite coordinates and finite, non-negative, plausible counts
    L = report.layers
    for name in ("villages", "settlements", "township_seats"):
        g = getattr(L, name)
        xy = np.array([(p.x, p.y) for p in g.geometry])
        assert np.isfinite(xy).all()
    for name in ("villages", "settlements"):
        g = getattr(L, name)
        for col in ("households", "population"):
            v = g[col].to_numpy(dtype=float)
            assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1e5).all(), (name, col, v)
