"""docs/architecture.md matches the code, and the step graph is checked.

The page's step table names every step of ``pipeline.STEPS`` (and only those) with the same needs
and result type; every module path it names exists; the registry's declarations point at real
functions, layers and plan sections; analysis modules do not import the pipeline.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from kaizhou_gis import layers, pipeline, results
from kaizhou_gis.errors import StepError
from kaizhou_gis.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PKG = ROOT / "kaizhou_gis"
#: modules that run the pipeline (they may import it); every other module is analysis or output
RUNNERS = {"pipeline.py", "cli.py", "batch/run.py", "dbio/tables.py", "web/app.py", "web/workbench.py",
           "web/downloads.py", "web/runs.py"}


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"docs/architecture.md has no '## {title}' section"
    return m.group(1)


def _doc_steps() -> dict[str, dict[str, str]]:
    rows = {}
    for line in _section(DOC.read_text(encoding="utf-8"), "The step graph").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([a-z_]+)`", cells[0]) if line.startswith("|") else None
        if m:
            rows[m.group(1)] = {"module": cells[1].strip("`"), "needs": cells[2],
                                "returns": cells[3]}
    return rows


def test_every_step_in_the_doc_is_registered_and_vice_versa():
    doc = _doc_steps()
    reg = {s.name: s for s in pipeline.STEPS}
    assert list(doc) == list(reg), "the doc's step table lists the registry's steps in run order"
    for name, row in doc.items():
        step = reg[name]
        assert row["module"] == step.target.split(":")[0].replace(".", "/") + ".py", name
        needs = [] if row["needs"] in ("—", "-", "") else [n.strip() for n in row["needs"].split(",")]
        assert needs == list(step.needs), f"{name}: needs in the doc {needs} != registry {step.needs}"
        assert row["returns"].startswith(f"`{step.returns.__name__}`"), name
        fields = re.search(r"\(([^)]*)\)", row["returns"]).group(1).split(", ")
        public = [f.name for f in dataclasses.fields(step.returns) if f.name != "parts"]
        assert fields == public, f"{name}: fields in the doc {fields} != {public}"


def test_every_module_path_named_in_the_doc_exists():
    named = set(re.findall(r"`(kaizhou_gis/[A-Za-z0-9_/.]*)`", DOC.read_text(encoding="utf-8")))
    named |= set(re.findall(r"`(tests/[A-Za-z0-9_/.]*)`", DOC.read_text(encoding="utf-8")))
    assert len(named) > 20
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []


def test_readme_links_the_architecture_page():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_registered_steps_point_at_real_functions_layers_and_plan_sections():
    plan = load_plan()
    known_layers = set(layers.VECTOR_LAYERS) | set(layers.OPTIONAL_LAYERS) | {"dem"}
    for step in pipeline.STEPS:
        fn = pipeline.step_function(step.name)
        assert callable(fn) and fn.__code__.co_varnames[:2] == ("ctx", "needs"), step.name
        assert set(step.layers) <= known_layers, (step.name, set(step.layers) - known_layers)
        assert all(sec in plan.data for sec in step.plan) or step.plan == (pipeline.EVERY_SECTION,), \
            (step.name, step.plan)
        assert dataclasses.is_dataclass(step.returns), step.name
        view = pipeline.township_view_function(step.name)
        assert (view is not None) == (step.township == pipeline.TOWNSHIP_VIEW), step.name
    assert [s.name for s in pipeline.STEPS if s.cached] == ["access", "relocation"]


@pytest.mark.parametrize("steps, message", [
    ([pipeline.Step("a", "m:a", "A", needs=("b",))], "needs b, which is not a step"),
    ([pipeline.Step("a", "m:a", "A", needs=("b",)), pipeline.Step("b", "m:b", "B", needs=("a",))],
     "cycle"),
    ([pipeline.Step("a", "m:a", "A", needs=("a",))], "cycle"),
    ([pipeline.Step("b", "m:b", "B", needs=("a",)), pipeline.Step("a", "m:a", "A")],
     "step 'b' is listed before a"),
    ([pipeline.Step("a", "m:a", "A"), pipeline.Step("a", "m:a", "A")], "listed twice: a"),
    ([pipeline.Step("a", "m:a", "A", township="copy")], "township must be"),
])
def test_a_broken_step_graph_is_an_error(steps, message):
    with pytest.raises(StepError, match=message):
        pipeline.check_steps(steps)


def test_the_registry_passes_its_own_check():
    assert pipeline.check_steps(pipeline.STEPS) == ["industry", "access", "relocation", "maps",
                                                    "report"]


def test_a_step_asking_for_an_undeclared_step_is_an_error():
    asked = []
    needs = results.StepNeeds("relocation", ("access",), lambda n: asked.append(n) or n)
    assert needs.result("access") == "access" and asked == ["access"]
    with pytest.raises(StepError, match="step 'relocation' asked for step 'report' without "
                                        "declaring it"):
        needs.result("report")
    assert asked == ["access"]


def test_township_needs_of_a_step_come_from_the_declared_source():
    ctx = pipeline.Context(layers=None, plan=load_plan(), options={"township": "500154101"})
    rep, maps = ctx.needs_of("report"), ctx.needs_of("maps")
    assert rep.needs == maps.needs == ("access", "relocation", "industry")
    assert rep.views == maps.views == {"access", "relocation"}
    assert rep._resolve.__self__ is ctx              # the report reads the township views
    assert maps._resolve.__self__ is ctx.district    # a township map is drawn from the district
    assert ctx.district is not ctx and ctx.district.township is None


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_analysis_modules_do_not_import_the_pipeline():
    offenders = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                       if str(p.relative_to(PKG)) not in RUNNERS
                       and "kaizhou_gis.pipeline" in _imports(p))
    assert offenders == []
    for step in pipeline.STEPS:
        mod = importlib.import_module(step.target.split(":")[0])
        assert "Context" not in vars(mod), step.target
