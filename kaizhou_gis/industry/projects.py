"""The industry projects table and the township/village alias tables (package data or the plan's own tables)."""
from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pandas as pd

from kaizhou_gis.errors import PlanError, format_ids

#: How the hosts of a project are given (column ``host_level`` of the project table).
HOST_LEVELS = ("village", "township", "place", "poverty_villages", "none")


SPLIT_MODES = ("none", "even")


_HOST_SEP = re.compile(r"[、;；]")


PROJECT_COLUMNS = [
    "project_id", "chapter_section", "category", "category_en", "product", "product_en",
    "varieties", "scale", "scale_max", "unit", "at_least", "scale_per_host", "target_year",
    "n_villages_stated", "host_level", "hosts_text", "part_of", "source_sentence", "notes",
]


PROJECT_LABELS_ZH = {
    "project_id": "项目编号", "chapter_section": "规划章节", "category": "类别", "category_en": "类别(英文)",
    "product": "产品/项目", "product_en": "产品(英文)", "varieties": "品种", "scale": "规模",
    "scale_max": "规模上限", "unit": "单位", "at_least": "以上", "scale_per_host": "每村规模",
    "target_year": "目标年份", "n_villages_stated": "规划所述村数", "host_level": "实施地类型",
    "hosts_text": "规划所列实施地", "part_of": "所属项目", "source_sentence": "规划原文",
    "notes": "说明", "n_hosts_named": "所列实施地数", "n_hosts": "已定位实施地数",
    "n_unresolved": "未定位实施地数", "status": "状态",
}


HOST_LABELS_ZH = {
    "project_id": "项目编号", "host_seq": "序号", "host_text": "规划所列实施地", "host_level": "实施地类型",
    "village_code": "村代码", "village_name": "村名", "township_code": "乡镇代码",
    "township_name": "乡镇", "match": "匹配方式", "match_note": "匹配说明", "category": "类别",
    "category_en": "类别(英文)", "product": "产品/项目", "product_en": "产品(英文)", "scale": "本村规模",
    "unit": "单位", "project_scale": "项目总规模", "scale_basis": "规模依据",
    "scale_assumed_split": "规模为假设均分", "target_year": "目标年份", "part_of": "所属项目",
    "location": "位置来源",
}


UNRESOLVED_LABELS_ZH = {
    "project_id": "项目编号", "product": "产品/项目", "host_text": "规划所列实施地",
    "township_text": "规划所写乡镇", "village_text": "规划所写村", "township_code": "乡镇代码",
    "reason": "原因", "suggestions": "相近名称",
}


TOTAL_LABELS_ZH = {
    "category": "类别", "product": "产品/项目", "product_en": "产品(英文)", "unit": "单位",
    "plan_total": "规划总规模", "at_least": "以上", "n_projects": "项目数",
    "n_villages_stated": "规划所述村数", "n_hosts_named": "所列实施地数", "n_hosts": "已定位实施地数",
    "n_unresolved": "未定位实施地数", "placed_scale": "已落到村的规模", "placed_basis": "落村依据",
    "source": "来源",
}


def _read_data_csv(name: str) -> pd.DataFrame:
    ref = resources.files("kaizhou_gis") / "data" / name
    with ref.open("r", encoding="utf-8") as f:
        return pd.read_csv(f, dtype=str, keep_default_na=False)


_ALIAS_COLUMNS = {"township_aliases.csv": ["plan_name", "name_2023", "code_2016", "code_2023", "note"],
                  "village_aliases.csv": ["township_name", "plan_name", "name_2023",
                                          "village_code_2023", "note"]}


def _read_table(path, name: str) -> pd.DataFrame:
    """A table named by the plan file (``industry.*``): the file, or the shipped one when ``path``
    is None, or an empty table with the right columns when ``path`` is False (no such table)."""
    if path is None:
        return _read_data_csv(name)
    if path is False:
        cols = PROJECT_COLUMNS if name == "industry_projects.csv" else _ALIAS_COLUMNS[name]
        return pd.DataFrame({c: pd.Series(dtype=str) for c in cols})
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise PlanError(f"{path}: cannot read this table named in the plan file ({e}); give a "
                        f"UTF-8 CSV with the columns of kaizhou_gis/data/{name}.") from None


def _plan_table(plan, key: str):
    """The argument for :func:`_read_table` from plan setting ``key`` (False when it is empty)."""
    if plan is None or key not in plan:
        return None
    p = plan.path_setting(key)
    return False if p is None else p


def _to_bool(values: pd.Series, column: str, table: str) -> pd.Series:
    v = values.str.strip().str.lower()
    bad = ~v.isin(["true", "false", ""])
    if bad.any():
        raise PlanError(f"{table}: column {column} must be true/false; rows "
                        f"{format_ids(values.index[bad].tolist())} are not; fix the data file.")
    return v.eq("true")


def load_projects(path=None) -> pd.DataFrame:
    """The plan's industry projects, one row per project: the CSV ``path`` (the plan file's
    ``industry.projects_table``), the shipped Kaizhou table when None, none when False.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`PROJECT_COLUMNS` with numbers as floats (``scale``, ``scale_max``,
        ``scale_per_host``; NaN where the plan gives none), ``target_year`` and
        ``n_villages_stated`` as nullable Int64, ``at_least`` as bool, plus ``n_hosts_named`` (how
        many hosts ``hosts_text`` lists). ``attrs["labels_zh"]`` holds Chinese column labels.

    Raises
    ------
    PlanError
        If the table breaks its own rules (duplicate ids, unknown host level, a ``part_of`` that
        names no project, a village host without ``+``, a non-numeric scale).
    """
    table = "kaizhou_gis/data/industry_projects.csv" if path is None else str(path)
    raw = _read_table(path, "industry_projects.csv")
    missing = [c for c in PROJECT_COLUMNS if c not in raw.columns]
    if missing:
        raise PlanError(f"{table}: missing column(s) {', '.join(missing)}; restore them.")
    df = raw[PROJECT_COLUMNS].copy()
    for c in PROJECT_COLUMNS:
        df[c] = df[c].astype(str).str.strip()
    problems: list[str] = []
    ids = df["project_id"]
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        problems.append(f"project_id: duplicated ids {format_ids(dup)}; make them unique.")
    for c in ("scale", "scale_max", "scale_per_host"):
        num = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
        bad = df[c].ne("") & num.isna()
        if bad.any():
            problems.append(f"{c}: not a number in {format_ids(ids[bad].tolist())}.")
        df[c] = num.astype(float)
    for c in ("target_year", "n_villages_stated"):
        num = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
        bad = (df[c].ne("") & num.isna()) | (num.notna() & (num % 1 != 0))
        if bad.any():
            problems.append(f"{c}: not a whole number in {format_ids(ids[bad].tolist())}.")
        df[c] = num.round().astype("Int64")
    df["at_least"] = _to_bool(df["at_least"], "at_least", table)
    bad = ~df["host_level"].isin(HOST_LEVELS)
    if bad.any():
        problems.append(f"host_level: unknown in {format_ids(ids[bad].tolist())}; use one of "
                        f"{', '.join(HOST_LEVELS)}.")
    bad = df["part_of"].ne("") & ~df["part_of"].isin(set(ids))
    if bad.any():
        problems.append(f"part_of: names no project in {format_ids(ids[bad].tolist())}.")
    tokens = df["hosts_text"].map(split_hosts)
    bad = df["host_level"].eq("village") & tokens.map(
        lambda ts: not ts or any("+" not in t for t in ts)).astype(bool)
    if bad.any():
        problems.append(f"hosts_text: village hosts must be written 镇名+村名 in "
                        f"{format_ids(ids[bad].tolist())}.")
    bad = df["host_level"].isin(["township", "place"]) & tokens.map(lambda ts: not ts).astype(bool)
    if bad.any():
        problems.append(f"hosts_text: empty for township/place hosts in {format_ids(ids[bad].tolist())}.")
    if problems:
        raise PlanError(f"{table}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    df["n_hosts_named"] = tokens.map(len).astype(int)
    df.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
    return df


def load_township_aliases(path=None) -> pd.DataFrame:
    """Old township names the plan uses → NBS 2023 names (``township_aliases.csv``; ``path`` as in
    :func:`load_projects`)."""
    return _read_table(path, "township_aliases.csv")


def load_village_aliases(path=None) -> pd.DataFrame:
    """Plan spellings of village names → NBS 2023 names within a township (``village_aliases.csv``;
    ``path`` as in :func:`load_projects`)."""
    return _read_table(path, "village_aliases.csv")


def split_hosts(text: str) -> list[str]:
    """Host tokens of a ``hosts_text`` cell: ``"金峰镇+中山村、大进镇"`` → ``["金峰镇+中山村", "大进镇"]``."""
    return [t.strip() for t in _HOST_SEP.split(str(text or "")) if t.strip()]
