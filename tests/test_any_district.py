"""Nothing Kaizhou-specific in code: a plan file names its own industry tables (or none) and its own
plan years; the report's indicator columns follow them."""
from __future__ import annotations

import pytest

from kaizhou_gis.errors import PlanError
from kaizhou_gis.industry import PROJECT_COLUMNS, load_projects
from kaizhou_gis.plan import default_plan_path, load_plan
from kaizhou_gis.report import _indicator_rows


@pytest.fixture()
def shipped() -> str:
    return default_plan_path().read_text(encoding="utf-8")


def _other_years(text: str) -> str:
    """The shipped plan moved to a 12th-FYP-like period: 2011-2015, base 2010, targets 2013/2015."""
    return (text.replace("baseline_2015", "baseline_2010").replace("target_2018", "target_2013")
            .replace("target_2020", "target_2015")
            .replace("base_year = { value = 2015,", "base_year = { value = 2010,")
            .replace("plan_period = { value = [2016, 2020],", "plan_period = { value = [2011, 2015],"))


def test_plan_years_come_from_the_plan_file(tmp_path, shipped):
    p = tmp_path / "plan.toml"
    p.write_text(_other_years(shipped), encoding="utf-8")
    plan = load_plan(p)
    assert plan.indicator_years == ("baseline_2010", ["target_2013", "target_2015"])
    assert load_plan(None).indicator_years == ("baseline_2015", ["target_2018", "target_2020"])
    ind = plan.indicators[1]
    entry = {k: ind[k] for k in ("id", "name_zh", "name_en", "kind", "unit", "baseline_2010",
                                 "target_2013", "target_2015", "note", "source")}
    entry.update(status="computed", computed=3, computed_after=None, comment="c")
    header, rows = _indicator_rows({"indicators": [entry]})
    assert header[4:7] == ["2010", "2013 目标 / target", "2015 目标 / target"]
    assert rows[0][4:7] == [135.0, 0.0, 0.0]


def test_plan_years_are_checked(tmp_path, shipped):
    p = tmp_path / "plan.toml"
    p.write_text(_other_years(shipped).replace("base_year = { value = 2010,",
                                               "base_year = { value = 2011,"), encoding="utf-8")
    with pytest.raises(PlanError) as e:
        load_plan(p)
    assert "baseline column baseline_2010 is not meta.base_year = 2011" in str(e.value)
    # one indicator with another year than the others
    text = shipped.replace("\ntarget_2020 = ", "\ntarget_2021 = ", 1)  # the first indicator
    assert text != shipped
    p.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as e:
        load_plan(p)
    msg = str(e.value)
    assert "indicators[1]: year columns ['baseline_2015', 'target_2018', 'target_2020'] differ " \
           "from the first indicator's ['baseline_2015', 'target_2018', 'target_2021']" in msg


def test_industry_table_is_named_by_the_plan(tmp_path, shipped):
    p = tmp_path / "plan.toml"
    p.write_text(shipped.replace('value = "package:data/industry_projects.csv"',
                                 'value = "projects.csv"'), encoding="utf-8")
    with pytest.raises(PlanError) as e:
        load_plan(p)
    assert "industry.projects_table.value: 'projects.csv' is not a file" in str(e.value)
    # a table next to the plan file is found relative to it and read
    src = load_plan(None).path_setting("industry.projects_table")
    (tmp_path / "projects.csv").write_bytes(src.read_bytes())
    plan = load_plan(p)
    assert plan.path_setting("industry.projects_table") == (tmp_path / "projects.csv").resolve()
    assert len(load_projects(plan.path_setting("industry.projects_table"))) == len(load_projects())
    # none: an empty table with the columns
    empty = load_projects(False)
    assert len(empty) == 0 and list(empty.columns)[:len(PROJECT_COLUMNS)] == PROJECT_COLUMNS
