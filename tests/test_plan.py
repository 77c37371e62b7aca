"""Plan files: the shipped plan loads; each kind of mistake gives a PlanError naming the key."""
from __future__ import annotations

import re

import pytest

from kaizhou_gis.errors import PlanError
from kaizhou_gis.plan import default_plan_path, load_plan


@pytest.fixture()
def shipped_text() -> str:
    return default_plan_path().read_text(encoding="utf-8")


def write_plan(tmp_path, text: str):
    p = tmp_path / "plan.toml"
    p.write_text(text, encoding="utf-8")
    return p


def replace_line(text: str, key: str, new_line: str) -> str:
    """Replace the line that defines ``key = ...`` (first occurrence) with ``new_line``."""
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.M)
    out, n = pattern.subn(new_line.replace("\\", "\\\\"), text, count=1)
    assert n == 1, key
    return out


def test_shipped_plan_loads_with_plan_numbers():
    plan = load_plan()
    assert plan.name == "开州区"
    assert plan.work_crs == "EPSG:4545"
    assert plan["relocation.threshold_m"] == 800.0
    assert plan["relocation.people_target"] == 16900
    assert sum(plan["relocation.yearly_people"].values()) == 16900
    assert plan["baseline.poverty_villages"] == 135
    assert plan.source("relocation.threshold_m").startswith("derived: ch.5")
    assert plan.is_assumption("access.reach_distance_m")
    assert len(plan.indicators) == 10
    assert "户数" in plan["aliases.households"]
    assert plan["layers.boundary_tolerance_m"] == 100.0
    assert plan.section("relocation.sites")["capacity_households"] == 120


def test_shipped_plan_loads_as_a_user_file(tmp_path, shipped_text):
    plan = load_plan(write_plan(tmp_path, shipped_text))
    assert plan["access.settlement_households_min"] == 30


def test_unknown_key_names_it(tmp_path, shipped_text):
    text = shipped_text.replace(
        "[relocation]\n",
        "[relocation]\nthreshhold_m = { value = 900.0, source = \"typo\" }\n", 1)
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "relocation.threshhold_m: unknown key" in str(e.value)
    assert "1 problem:" in str(e.value)


def test_missing_key_names_it(tmp_path, shipped_text):
    text = replace_line(shipped_text, "reach_distance_m", "")
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "access.reach_distance_m: missing" in str(e.value)


def test_wrong_type_names_it(tmp_path, shipped_text):
    text = replace_line(shipped_text, "threshold_m",
                        'threshold_m = { value = "800 m", source = "ch.5" }')
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "relocation.threshold_m.value: expected a number" in str(e.value)
    assert "'800 m'" in str(e.value)


def test_integer_setting_rejects_fraction(tmp_path, shipped_text):
    text = replace_line(shipped_text, "settlement_households_min",
                        'settlement_households_min = { value = 30.5, source = "ch.1" }')
    with pytest.raises(PlanError, match=r"access\.settlement_households_min\.value"):
        load_plan(write_plan(tmp_path, text))


def test_target_above_100_percent_names_it(tmp_path, shipped_text):
    text = replace_line(shipped_text, "settlement_tongchang_target_pct",
                        'settlement_tongchang_target_pct = { value = 120.0, source = "ch.1" }')
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "access.settlement_tongchang_target_pct.value: 120.0 is not a percentage" in str(e.value)


def test_missing_source_names_it(tmp_path, shipped_text):
    text = replace_line(shipped_text, "snap_tolerance_m", "snap_tolerance_m = { value = 5.0 }")
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "access.snap_tolerance_m: must be a table" in str(e.value) or \
        "access.snap_tolerance_m: missing 'source'" in str(e.value)


def test_every_problem_listed_at_once(tmp_path, shipped_text):
    text = replace_line(shipped_text, "threshold_m", 'threshold_m = { value = "x", source = "s" }')
    text = replace_line(text, "reach_distance_m", "")
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    msg = str(e.value)
    assert "2 problems" in msg
    assert "relocation.threshold_m" in msg and "access.reach_distance_m" in msg


def test_negative_distance_and_yearly_quotas(tmp_path, shipped_text):
    text = replace_line(shipped_text, "reach_distance_m",
                        'reach_distance_m = { value = -1.0, source = "assumption" }')
    text = replace_line(text, "yearly_people",
                        'yearly_people = { value = { 2016 = 7600, 2017 = 7000, 2018 = 2000 }, '
                        'source = "ch.5" }')
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    msg = str(e.value)
    assert "access.reach_distance_m.value: -1.0 must not be negative" in msg
    assert "relocation.yearly_people: the yearly quotas add up to 16600" in msg


def test_override_is_validated_and_cited():
    plan = load_plan(overrides={"relocation.threshold_m": 900.0})
    assert plan["relocation.threshold_m"] == 900.0
    assert plan.source("relocation.threshold_m").startswith("command-line override")
    with pytest.raises(PlanError, match="no such setting"):
        load_plan(overrides={"relocation.nope_m": 1.0})
    with pytest.raises(PlanError, match="access.village_tongchang_target_pct"):
        load_plan(overrides={"access.village_tongchang_target_pct": 101.0})
    with pytest.raises(PlanError, match=r"relocation\.threshold_m\.value: expected a number"):
        load_plan(overrides={"relocation.threshold_m": "high"})


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "none.toml")
    with pytest.raises(PlanError, match="not valid TOML"):
        load_plan(write_plan(tmp_path, "[meta\n"))


def test_plan_error_is_also_a_value_error(tmp_path, shipped_text):
    text = replace_line(shipped_text, "threshold_m", 'threshold_m = { value = true, source = "s" }')
    with pytest.raises(ValueError, match="relocation.threshold_m"):
        load_plan(write_plan(tmp_path, text))


def test_percent_indicator_target_above_100_names_it(tmp_path, shipped_text):
    # indicator 3 (unit %) has target_2018 = 12.0 in the shipped plan
    text = shipped_text.replace("target_2018 = 12.0", "target_2018 = 112.0", 1)
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "indicators[2].target_2018 (indicator 3, unit %): 112.0 is not a percentage" in str(e.value)


def test_geographic_work_crs_names_it(tmp_path, shipped_text):
    text = replace_line(shipped_text, "work", 'work = { value = "EPSG:4490", source = "assumption" }')
    with pytest.raises(PlanError) as e:
        load_plan(write_plan(tmp_path, text))
    assert "crs.work.value: EPSG:4490 is not a projected CRS in metres" in str(e.value)
    ok = replace_line(shipped_text, "work", 'work = { value = "EPSG:32649", source = "assumption" }')
    assert load_plan(write_plan(tmp_path, ok)).work_crs == "EPSG:32649"


def test_plan_file_that_is_a_folder_or_not_utf8(tmp_path, shipped_text):
    with pytest.raises(PlanError, match="cannot be read"):
        load_plan(tmp_path)
    p = tmp_path / "gbk.toml"
    p.write_bytes(shipped_text.encode("gb18030"))
    with pytest.raises(PlanError, match="is not UTF-8 text .*save it as UTF-8"):
        load_plan(p)


def test_surface_and_class_lists_that_contradict_each_other_are_named():
    with pytest.raises(PlanError) as e:
        load_plan(overrides={"access.unpaved_surfaces": ["unpaved", "gravel", "sett"],
                             "layers.non_vehicle_classes": ["footway", "track"]})
    text = str(e.value)
    assert "access.paved_surfaces / access.unpaved_surfaces: sett in both lists" in text
    assert "layers.non_vehicle_classes / layers.road_class_values: track both left out" in text
    with pytest.raises(PlanError, match='first value must be "paved"'):
        load_plan(overrides={"access.paved_surfaces": ["asphalt", "paved"]})
