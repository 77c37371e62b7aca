"""Plan files: every threshold and target an analysis uses, with where it comes from.

A plan file is TOML. Each setting is an inline table ``{ value = ..., source = "..." }`` where
``source`` cites the plan chapter (``"ch.5"``), says how it was derived (``"derived: ..."``) or
marks it as an assumption (``"assumption: ..."``). A number setting may add
``adjustable = { min = ..., max = ..., step = ... }``: the web workbench (``kaizhou-gis serve``)
then offers it in its what-if panel within that range. The shipped Kaizhou plan
(``kaizhou_gis/plans/kaizhou.toml``) is also the schema: a user plan file must have the same keys
with values of the same types.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kaizhou_gis.errors import PlanError

DEFAULT_PLAN = "kaizhou"
#: Indicator keys that carry a year: ``baseline_2015``, ``target_2018`` (any years of the plan).
_YEAR_KEY = re.compile(r"(baseline|target)_(\d{4})")
_LEAF_KEYS = {"value", "source"}
#: Optional keys of a setting besides value and source.
_OPTIONAL_LEAF_KEYS = {"note", "adjustable"}
#: Indicator fields that hold a number or the plan's words ("实现脱贫", "基本解决").
_NUMBER_OR_TEXT = ("baseline_2015", "target_2018", "target_2020")


def _is_leaf(node: Any) -> bool:
    return isinstance(node, dict) and _LEAF_KEYS <= set(node) and set(node) <= _LEAF_KEYS | _OPTIONAL_LEAF_KEYS


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "table"
    return type(v).__name__


def _same_type(default: Any, given: Any) -> bool:
    if isinstance(default, bool) or isinstance(given, bool):
        return isinstance(default, bool) and isinstance(given, bool)
    if isinstance(default, int) and not isinstance(default, bool):
        # an integer setting (a count) must stay integral
        return isinstance(given, int) or (isinstance(given, float) and given.is_integer())
    return _type_name(default) == _type_name(given)


@dataclass(frozen=True)
class Plan:
    """A loaded, validated plan file.

    Use ``plan["relocation.threshold_m"]`` for a value, ``plan.source(key)`` for its provenance and
    ``plan.section("relocation.sites")`` for a dict of a section's values.

    :meth:`reading` gives a copy that notes which top-level sections are read through these
    methods (:attr:`sections_read`): the pipeline runs each step on such a copy, so a step's cache
    key holds the sections it declares and a step reading one it does not declare is caught.
    """

    data: dict
    path: str
    _flat: dict = field(default_factory=dict, repr=False)
    #: the sections read through this copy (:meth:`reading`); None: not noted
    _reads: set | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._flat:  # a copy made by reading()
            return
        flat: dict[str, dict] = {}

        def walk(node: dict, prefix: str) -> None:
            for k, v in node.items():
                key = f"{prefix}{k}"
                if _is_leaf(v):
                    flat[key] = v
                elif isinstance(v, dict):
                    walk(v, key + ".")

        walk({k: v for k, v in self.data.items() if k != "indicators"}, "")
        object.__setattr__(self, "_flat", flat)

    def reading(self) -> Plan:
        """The same plan (same values, shared, not copied) noting the sections read from it."""
        return Plan(data=self.data, path=self.path, _flat=self._flat, _reads=set())

    @property
    def sections_read(self) -> frozenset[str]:
        """Top-level sections read through this copy (``"*"``: every section); empty unless made
        by :meth:`reading`."""
        return frozenset(self._reads or ())

    def _note(self, key: str) -> None:
        if self._reads is not None:
            self._reads.add(key.split(".", 1)[0] if key else "*")

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        try:
            return self._flat[key]["value"]
        except KeyError:
            raise PlanError(f"plan {self.path}: no setting '{key}'") from None

    def __contains__(self, key: str) -> bool:
        self._note(key)
        return key in self._flat

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return self._flat[key]["value"] if key in self._flat else default

    def source(self, key: str) -> str:
        self._note(key)
        return self._flat[key]["source"]

    def is_assumption(self, key: str) -> bool:
        return self.source(key).startswith("assumption")

    def section(self, name: str) -> dict[str, Any]:
        """Values of one section (leaves directly under it), e.g. ``section("access")``."""
        self._note(name)
        prefix = name + "."
        return {k[len(prefix):]: v["value"] for k, v in self._flat.items()
                if k.startswith(prefix) and "." not in k[len(prefix):]}

    def settings(self, prefix: str = "") -> dict[str, dict]:
        """Every setting under ``prefix`` as ``{key: {"value": ..., "source": ...}}`` (for reports)."""
        self._note(prefix)
        return {k: dict(v) for k, v in self._flat.items() if k.startswith(prefix)}

    def adjustable(self) -> dict[str, dict]:
        """Settings the plan file marks ``adjustable`` (what-if parameters), in file order:
        ``{key: {"value", "min", "max", "step", "source"}}``."""
        self._note("")
        out = {}
        for k, leaf in self._flat.items():
            adj = leaf.get("adjustable")
            if isinstance(adj, dict):
                out[k] = {"value": leaf["value"], "min": adj["min"], "max": adj["max"],
                          "step": adj.get("step"), "source": leaf["source"]}
        return out

    def path_setting(self, key: str) -> Path | None:
        """A file named by setting ``key`` (relative paths are relative to the plan file;
        ``package:data/x.csv`` is a file shipped with kaizhou-gis), or None when the setting is
        empty (the district has no such table)."""
        v = str(self[key]).strip()
        if not v:
            return None
        if v.startswith("package:"):
            return Path(str(resources.files("kaizhou_gis") / v[len("package:"):]))
        p = Path(v).expanduser()
        return (p if p.is_absolute() else Path(self.path).resolve().parent / p).resolve()

    @property
    def indicator_years(self) -> tuple[str, list[str]]:
        """The indicators' baseline key and target keys in year order, e.g.
        ``("baseline_2015", ["target_2018", "target_2020"])`` (the plan file's own years)."""
        self._note("indicators")
        keys = list(self.data.get("indicators", [{}])[0])
        base = [k for k in keys if _YEAR_KEY.fullmatch(k) and k.startswith("baseline_")]
        targets = sorted((k for k in keys if _YEAR_KEY.fullmatch(k) and k.startswith("target_")),
                         key=lambda k: int(k.rsplit("_", 1)[1]))
        return (base[0] if base else ""), targets

    @property
    def indicators(self) -> list[dict]:
        self._note("indicators")
        return [dict(i) for i in self.data.get("indicators", [])]

    @property
    def work_crs(self) -> str:
        return self["crs.work"]

    @property
    def name(self) -> str:
        return self["meta.district_name"]


def _read_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist; pass an existing TOML file to --plan "
                        f"(copy kaizhou_gis/plans/kaizhou.toml to start one).") from None
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"plan file {path} is not valid TOML: {e}; fix the syntax.") from None
    except UnicodeDecodeError as e:
        raise PlanError(f"plan file {path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                        f"save it as UTF-8 (TOML files must be UTF-8; editors often save "
                        f"Chinese text as GBK).") from None
    except OSError as e:  # a folder, no permission, ...
        raise PlanError(f"plan file {path} cannot be read ({e.strerror or e}); pass a TOML "
                        f"file to --plan.") from None


def default_plan_path() -> Path:
    return Path(str(resources.files("kaizhou_gis") / "plans" / f"{DEFAULT_PLAN}.toml"))


def _check(default: Any, given: Any, where: str, problems: list[str], *, overridden: bool = False) -> None:
    """Check ``given`` against the shipped plan ``default``; ``overridden``: values were replaced by
    overrides (an adjustable range then bounds only the file's own value, not the override)."""
    if _is_leaf(default):
        _check_leaf(default, given, where, problems, overridden=overridden)
        return
    if isinstance(default, dict):
        if not isinstance(given, dict):
            problems.append(f"{where}: expected a table; got {given!r}.")
            return
        for k in sorted(set(given) - set(default)):
            problems.append(f"{where + '.' if where else ''}{k}: unknown key; remove it or check "
                            f"the spelling against kaizhou_gis/plans/kaizhou.toml.")
        for k in sorted(set(default) - set(given)):
            problems.append(f"{where + '.' if where else ''}{k}: missing; copy it from "
                            f"kaizhou_gis/plans/kaizhou.toml and set the district's value.")
        for k in sorted(set(default) & set(given)):
            _check(default[k], given[k], f"{where + '.' if where else ''}{k}", problems,
                   overridden=overridden)
        return
    if isinstance(default, list):  # arrays of tables (indicators)
        _check_table_array(default, given, where, problems)


def _check_leaf(default: dict, given: Any, where: str, problems: list[str], *, overridden: bool) -> None:
    """One setting ``{ value = ..., source = "..." }`` against the shipped one."""
    if not isinstance(given, dict) or "value" not in given:
        problems.append(f"{where}: must be a table {{ value = ..., source = \"...\" }}; "
                        f"got {given!r}.")
        return
    unknown = set(given) - _LEAF_KEYS - _OPTIONAL_LEAF_KEYS
    if unknown:
        problems.append(f"{where}: unknown key(s) {sorted(unknown)}; allowed: value, source, "
                        f"note, adjustable.")
    if "adjustable" in given:
        _check_adjustable(given, where, problems, value_in_range=not overridden)
    if "source" not in given:
        problems.append(f"{where}: missing 'source'; cite the plan chapter or write "
                        f"\"assumption: ...\".")
    dv, gv = default["value"], given["value"]
    if isinstance(dv, dict):
        if not isinstance(gv, dict):
            problems.append(f"{where}.value: expected a table like {dv!r}; got {gv!r}.")
            return
        if not all(k.isdigit() for k in dv):  # year-keyed tables may list other years
            missing, extra = set(dv) - set(gv), set(gv) - set(dv)
            if missing or extra:
                problems.append(f"{where}.value: keys must be {sorted(dv)}; "
                                f"missing {sorted(missing)}, unknown {sorted(extra)}.")
        elif not all(str(k).isdigit() for k in gv):
            problems.append(f"{where}.value: keys must be years like {sorted(dv)}; got {sorted(gv)}.")
        for k, v in gv.items():
            ref = next(iter(dv.values())) if dv else v
            if not _same_type(ref, v):
                problems.append(f"{where}.value.{k}: expected a {_type_name(ref)}; got {v!r}.")
        return
    if isinstance(dv, list):
        if not isinstance(gv, list):
            problems.append(f"{where}.value: expected an array; got {gv!r}.")
        elif dv and any(not _same_type(dv[0], x) for x in gv):
            problems.append(f"{where}.value: every item must be a {_type_name(dv[0])}; got {gv!r}.")
        return
    if not _same_type(dv, gv):
        problems.append(f"{where}.value: expected a {_type_name(dv)} (like {dv!r}); got {gv!r}.")


def _check_table_array(default: list, given: Any, where: str, problems: list[str]) -> None:
    """An array of tables (the indicators): the keys of the first shipped row, one baseline year
    and at least one target year, the same years in every row."""
    if not isinstance(given, list) or not given:
        problems.append(f"{where}: expected a non-empty array of tables.")
        return
    ref = {k: v for k, v in default[0].items() if not _YEAR_KEY.fullmatch(k)}
    first_years = None
    for i, item in enumerate(given):
        if not isinstance(item, dict):
            problems.append(f"{where}[{i}]: expected a table.")
            continue
        years = sorted(k for k in item if _YEAR_KEY.fullmatch(k))
        for k in sorted(set(ref) - set(item)):
            problems.append(f"{where}[{i}].{k}: missing.")
        for k in sorted(set(item) - set(ref) - set(years)):
            problems.append(f"{where}[{i}].{k}: unknown key (year columns are written "
                            f"baseline_YYYY and target_YYYY).")
        if sum(k.startswith("baseline_") for k in years) != 1:
            problems.append(f"{where}[{i}]: needs exactly one baseline_YYYY (the plan's base "
                            f"year); has {[k for k in years if k.startswith('baseline_')]}.")
        if not any(k.startswith("target_") for k in years):
            problems.append(f"{where}[{i}]: needs at least one target_YYYY.")
        if first_years is None:
            first_years = years
        elif years != first_years:
            problems.append(f"{where}[{i}]: year columns {years} differ from the first "
                            f"indicator's {first_years}; give every indicator the same years "
                            f"(nan where the plan gives no number).")
        for k in sorted(set(ref) & set(item)):
            if k in _NUMBER_OR_TEXT:
                if _type_name(item[k]) not in ("number", "string") or isinstance(item[k], bool):
                    problems.append(f"{where}[{i}].{k}: expected a number, the plan's words "
                                    f"(text) or nan; got {item[k]!r}.")
            elif not _same_type(ref[k], item[k]):
                problems.append(f"{where}[{i}].{k}: expected a {_type_name(ref[k])}; got {item[k]!r}.")
        for k in years:  # a number, the plan's words (text) or nan, like _NUMBER_OR_TEXT
            if _type_name(item[k]) not in ("number", "string") or isinstance(item[k], bool):
                problems.append(f"{where}[{i}].{k}: expected a number, the plan's words "
                                f"(text) or nan; got {item[k]!r}.")


def _check_adjustable(leaf: dict, where: str, problems: list[str], *, value_in_range: bool = True) -> None:
    """``adjustable = { min = .., max = .., step = .. }`` on a number setting, value within range."""
    adj, v = leaf["adjustable"], leaf.get("value")

    def num(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if isinstance(v, float) and not math.isfinite(v):  # NaN/inf: the value is wrong, not 'adjustable'
        from kaizhou_gis.layers.checks import plan_value_problems
        problems.extend(plan_value_problems({where: leaf}))
        return
    if not num(v):
        problems.append(f"{where}.adjustable: only number settings can be adjustable; "
                        f"remove 'adjustable' (the value is {v!r}).")
        return
    if not isinstance(adj, dict) or set(adj) - {"min", "max", "step"} or not {"min", "max"} <= set(adj):
        problems.append(f"{where}.adjustable: must be a table {{ min = ..., max = ..., step = ... }} "
                        f"(step optional); got {adj!r}.")
        return
    if not all(num(adj[k]) for k in adj):
        problems.append(f"{where}.adjustable: min, max and step must be numbers; got {adj!r}.")
        return
    lo, hi = adj["min"], adj["max"]
    if lo >= hi:
        problems.append(f"{where}.adjustable: min {lo:g} must be below max {hi:g}.")
    elif value_in_range and not lo <= v <= hi:
        problems.append(f"{where}.adjustable: the value {v:g} is outside min {lo:g} .. max {hi:g}; "
                        f"widen the range or change the value.")
    if "step" in adj and adj["step"] <= 0:
        problems.append(f"{where}.adjustable: step must be positive; got {adj['step']:g}.")


def _check_values(plan: Plan, problems: list[str]) -> None:
    """Range checks that the types alone do not catch."""
    from kaizhou_gis.layers.checks import plan_value_problems

    problems.extend(plan_value_problems(plan._flat))
    for key, leaf in plan._flat.items():
        v = leaf["value"]
        vals = v.values() if isinstance(v, dict) else [v]
        for x in vals:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
                continue
            if key.endswith("_pct") and not 0 <= x <= 100:
                problems.append(f"{key}.value: {x} is not a percentage between 0 and 100.")
            elif (key.endswith(("_m", "_km", "_deg", "_kmh", "_yuan_per_km", "_mb"))
                  or "_min" in key or "capacity" in key) and x < 0:
                problems.append(f"{key}.value: {x} must not be negative.")
    _check_totals(plan, problems)
    _check_percent_indicators(plan, problems)
    _check_road_lists(plan, problems)
    _check_years(plan, problems)
    _check_tables(plan, problems)
    _check_crs(plan, problems)


def _check_totals(plan: Plan, problems: list[str]) -> None:
    """Weights add up to 1; the yearly relocation quotas add up to the target."""
    weights = [k for k in plan._flat if k.endswith("weights")]
    for k in weights:
        w = plan[k]
        if w and abs(sum(w.values()) - 1.0) > 1e-6:
            problems.append(f"{k}.value: weights must add up to 1; they add up to "
                            f"{sum(w.values()):g}.")
    yearly = plan.get("relocation.yearly_people")
    if yearly and sum(yearly.values()) != plan["relocation.people_target"]:
        problems.append(f"relocation.yearly_people: the yearly quotas add up to "
                        f"{sum(yearly.values())}, not relocation.people_target = "
                        f"{plan['relocation.people_target']}; make them agree.")


def _check_percent_indicators(plan: Plan, problems: list[str]) -> None:
    """Indicators in % lie between 0 and 100."""
    for i, ind in enumerate(plan.data.get("indicators", [])):
        if str(ind.get("unit", "")).strip() != "%":
            continue
        for k in [k for k in ind if _YEAR_KEY.fullmatch(k)]:
            x = ind.get(k)
            if isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x) \
                    and not 0 <= x <= 100:
                problems.append(f"indicators[{i}].{k} (indicator {ind.get('id', i + 1)}, "
                                f"unit %): {x} is not a percentage between 0 and 100.")


def _check_road_lists(plan: Plan, problems: list[str]) -> None:
    """Surface and road-class lists do not contradict each other."""
    paved = {str(v).strip().lower() for v in plan.get("access.paved_surfaces", [])}
    unpaved = {str(v).strip().lower() for v in plan.get("access.unpaved_surfaces", [])}
    both = sorted(paved & unpaved)
    if both:
        problems.append(f"access.paved_surfaces / access.unpaved_surfaces: {', '.join(both)} "
                        f"in both lists; keep each surface value in one of them.")
    if plan.get("access.paved_surfaces") and str(plan["access.paved_surfaces"][0]).strip().lower() != "paved":
        problems.append("access.paved_surfaces.value: the first value must be \"paved\" (the "
                        "surface the layer loader and the works give to hardened roads).")
    excluded = {str(v).strip().lower() for v in plan.get("layers.non_vehicle_classes", [])}
    mapped = {str(v).strip().lower() for vals in (plan.get("layers.road_class_values") or {}).values()
              for v in vals}
    clash = sorted(excluded & mapped)
    if clash:
        problems.append(f"layers.non_vehicle_classes / layers.road_class_values: {', '.join(clash)} "
                        f"both left out as carrying no vehicle and mapped to a road class; remove "
                        f"it from one of the two.")


def _check_years(plan: Plan, problems: list[str]) -> None:
    """Indicator years agree with the base year and lie in the plan period."""
    base, targets = plan.indicator_years
    if base and int(base.rsplit("_", 1)[1]) != int(plan["meta.base_year"]):
        problems.append(f"indicators: the baseline column {base} is not meta.base_year = "
                        f"{plan['meta.base_year']}; name it baseline_{plan['meta.base_year']} or "
                        f"fix the base year.")
    p0, p1 = (int(x) for x in plan["meta.plan_period"][:2]) if len(plan["meta.plan_period"]) >= 2 \
        else (None, None)
    if p0 is None or p1 is None or p1 < p0:
        problems.append(f"meta.plan_period.value: {plan['meta.plan_period']!r} must be "
                        f"[first year, last year].")
    else:
        outside = [t for t in targets if not p0 <= int(t.rsplit("_", 1)[1]) <= p1]
        if outside:
            problems.append(f"indicators: target years {outside} are outside meta.plan_period "
                            f"{p0}-{p1}.")


def _check_tables(plan: Plan, problems: list[str]) -> None:
    """The plan's own CSV tables exist."""
    for key in ("industry.projects_table", "industry.township_aliases", "industry.village_aliases"):
        f = plan.path_setting(key)
        if f is not None and not f.is_file():
            problems.append(f"{key}.value: {plan[key]!r} is not a file ({f}); give a CSV path "
                            f"relative to the plan file, or \"\" when the district has none.")


def _check_crs(plan: Plan, problems: list[str]) -> None:
    """The work CRS is projected in metres; both CRSs parse."""
    from pyproj import CRS
    for key in ("crs.work", "crs.map"):
        try:
            crs = CRS.from_user_input(plan[key])
        except Exception as e:  # pyproj raises CRSError
            problems.append(f"{key}.value: {plan[key]!r} is not a CRS ({e}); use an EPSG code "
                            f"like \"EPSG:4545\".")
            continue
        if key == "crs.work":
            unit = crs.axis_info[0].unit_name if crs.axis_info else ""
            if not crs.is_projected or unit not in ("metre", "meter"):
                problems.append(f"crs.work.value: {plan[key]} is not a projected CRS in metres "
                                f"(distances and areas are computed in it); use the district's "
                                f"CGCS2000 3-degree Gauss-Kruger zone, e.g. \"EPSG:4545\" "
                                f"(zone 36, 106.5-109.5E), or a UTM zone.")


def load_plan(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> Plan:
    """Load and validate a plan file (the shipped Kaizhou plan when ``path`` is None).

    ``overrides`` replaces values by dotted key (``{"relocation.threshold_m": 900.0}``), as the
    CLI's ``--threshold-m`` does; they are validated like the file.
    """
    default = _read_toml(default_plan_path())
    if path is None:
        data, where = default, str(default_plan_path())
    else:
        data, where = _read_toml(path), str(path)
        problems: list[str] = []
        _check(default, data, "", problems)
        if problems:
            raise PlanError(_format(where, problems))
    if overrides:
        data = _apply_overrides(data, overrides, where)
        problems = []
        _check(default, data, "", problems, overridden=True)  # an override must keep the setting's type
        if problems:
            raise PlanError(_format(where, problems))
    plan = Plan(data=data, path=where)
    problems = []
    _check_values(plan, problems)
    if problems:
        raise PlanError(_format(where, problems))
    return plan


def with_overrides(plan: Plan, overrides: dict[str, Any]) -> Plan:
    """A copy of a loaded plan with values replaced by dotted key, validated like :func:`load_plan`
    does for ``overrides`` (the file is not read again)."""
    if not overrides:
        return plan
    data = _apply_overrides(plan.data, overrides, plan.path)
    problems: list[str] = []
    _check(_read_toml(default_plan_path()), data, "", problems, overridden=True)
    out = Plan(data=data, path=plan.path)
    if not problems:
        _check_values(out, problems)
    if problems:
        raise PlanError(_format(plan.path, problems))
    return out


def _apply_overrides(data: dict, overrides: dict[str, Any], where: str) -> dict:
    import copy
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.get(p, {})
        leaf = node.get(parts[-1]) if isinstance(node, dict) else None
        if leaf is None or not _is_leaf(leaf):
            raise PlanError(f"plan {where}: cannot override '{key}': no such setting.")
        leaf["value"] = value
        leaf["source"] = f"command-line override (plan file: {leaf['source']})"
    return data


def _format(where: str, problems: list[str]) -> str:
    n = len(problems)
    head = f"plan file {where}: {n} problem{'s' if n != 1 else ''}:"
    return "\n".join([head] + [f"  - {p}" for p in problems])
