"""The plan's industry projects (ch.3 发展产业扶贫) placed on their host villages.

The projects are a hand-built table shipped with the package
(``kaizhou_gis/data/industry_projects.csv``, one row per project with the plan's sentence it comes
from; see ``kaizhou_gis/data/README.md``). :func:`resolve_hosts` finds every host the plan names on
the villages layer by township *and* village name, because a village name alone is ambiguous
(Kaizhou has two 中山村, two 石龙村, two 龙王村, two 双丰村). Old township names (白泉乡, 满月乡,
镇安镇) are mapped through ``township_aliases.csv``; plan spellings that differ from the official
list through ``village_aliases.csv``. A host that cannot be placed is kept in the ``unresolved``
table with the reason and the closest names in its township.

Where the plan gives one total over several villages ("16890头 in 32 poverty villages including A,
B, C"), the total stays on the project and each host's ``scale`` is empty; only with
``split="even"`` is the total divided evenly, and every such host says ``scale_assumed_split``.
"""
from __future__ import annotations

import difflib
import logging
import re
from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.admin import townships_of_villages
from kaizhou_gis.errors import LayerError, OptionError, PlanError, format_ids
from kaizhou_gis.results import IndustryData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)

#: How the hosts of a project are given (column ``host_level`` of the project table).
HOST_LEVELS = ("village", "township", "place", "poverty_villages", "none")
SPLIT_MODES = ("none", "even")
_HOST_SEP = re.compile(r"[、;；]")
_TOWNSHIP_SUFFIX = re.compile(r"(街道办事处|街道|镇|乡)$")

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


# --------------------------------------------------------------------------------------------
# package data
# --------------------------------------------------------------------------------------------
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


def _stem(name: str) -> str:
    return _TOWNSHIP_SUFFIX.sub("", str(name).strip())


# --------------------------------------------------------------------------------------------
# resolution
# --------------------------------------------------------------------------------------------
class _TownshipIndex:
    """Township name → code lookups on the townships layer, with the alias table."""

    def __init__(self, townships: pd.DataFrame, aliases: pd.DataFrame):
        self.code_to_name = dict(zip(townships["township_code"].astype(str),
                                     townships["name"].astype(str)))
        self.by_name: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for code, name in self.code_to_name.items():
            self.by_name.setdefault(name, []).append(code)
            self.by_stem.setdefault(_stem(name), []).append(code)
        self.alias: dict[str, tuple[str, str]] = {}
        for _, a in aliases.iterrows():
            entry = (str(a["name_2023"]).strip(), str(a.get("note", "")).strip())
            self.alias[str(a["plan_name"]).strip()] = entry
            self.alias.setdefault(_stem(a["plan_name"]), entry)

    def resolve(self, text: str) -> tuple[str | None, str, str]:
        """``(code, how, note)``; code None when not found or ambiguous (``how`` says which)."""
        t = text.strip()
        codes = self.by_name.get(t, [])
        if len(codes) == 1:
            return codes[0], "exact", ""
        if not codes and (t in self.alias or _stem(t) in self.alias):
            new, note = self.alias.get(t) or self.alias[_stem(t)]
            codes = self.by_name.get(new, [])
            if len(codes) == 1:
                return codes[0], "alias", f"{t} → {new}" + (f" ({note})" if note else "")
            return None, "alias_missing", new
        if not codes:
            codes = self.by_stem.get(_stem(t), [])
            if len(codes) == 1:
                name = self.code_to_name[codes[0]]
                return codes[0], "stem", f"{t} → {name} (the plan writes the name without 镇/乡/街道)"
        if len(codes) > 1:
            return None, "ambiguous", ", ".join(f"{self.code_to_name[c]} ({c})" for c in codes)
        return None, "missing", ""


def _split_scale(project: pd.Series, n_named: int, split: str) -> tuple[float, str, bool]:
    """Per-host scale of one project, its basis, and whether it is an assumed split."""
    total, per_host = project["scale"], project["scale_per_host"]
    n_stated = project["n_villages_stated"]
    if pd.notna(per_host):
        return float(per_host), "plan: figure per village", False
    if pd.isna(total):
        return np.nan, "plan gives no scale", False
    if split == "even":
        divisor = int(n_stated) if pd.notna(n_stated) and int(n_stated) > 0 else n_named
        basis = "stated" if pd.notna(n_stated) and int(n_stated) > 0 else "named"
        if divisor > 0:
            return (float(total) / divisor,
                    f"assumed even split: {total:g} / {divisor} villages ({basis})", True)
    if n_named == 1 and (pd.isna(n_stated) or int(n_stated) == 1):
        return float(total), "plan: the whole total is in this one named host", False
    if pd.notna(n_stated):
        over = f"the {n_named} named hosts" if int(n_stated) == n_named else \
            f"{int(n_stated)} villages ({n_named} named)"
    else:
        over = f"the {n_named} named hosts and any others the plan implies (等)"
    return np.nan, f"plan: total {total:g} over {over}; not split", False


def _check_layer(gdf: pd.DataFrame, layer: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise LayerError(f"{layer}: missing column(s) {', '.join(missing)}; the industry step needs "
                         f"them to find the plan's host villages by township and name.")


def resolve_hosts(projects: pd.DataFrame, villages: gpd.GeoDataFrame, townships: gpd.GeoDataFrame,
                  *, split: str = "none", seats: gpd.GeoDataFrame | None = None,
                  township_aliases: pd.DataFrame | None = None,
                  village_aliases: pd.DataFrame | None = None,
                  ) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Place every host the projects name on the villages layer, by township and village name.

    Parameters
    ----------
    projects
        Project table as from :func:`load_projects`.
    villages
        Villages layer (``village_code``, ``name``, ``township_code``, point geometry;
        ``poverty_village`` for projects on every poverty village).
    townships
        Townships layer (``township_code``, ``name``, polygons).
    split
        ``"none"`` (default) keeps a total over several villages on the project and leaves each
        host's ``scale`` empty; ``"even"`` divides it by the number of villages the plan states
        (else the number of named hosts) and flags ``scale_assumed_split``.
    seats
        Township seats (``township_code``, points) to place township-level hosts; without them
        (or for a township without a seat) a point inside the township polygon is used.
    township_aliases, village_aliases
        Alias tables (default: the shipped ones).

    Returns
    -------
    hosts : geopandas.GeoDataFrame
        One row per placed host (CRS of ``villages``): project_id, host_seq, host_text,
        host_level, village_code ("" for township hosts), village_name, township_code,
        township_name, match (exact/alias/township/poverty_village), match_note, category,
        category_en, product, product_en, scale, unit, project_scale, scale_basis,
        scale_assumed_split, target_year, part_of, location.
    unresolved : pandas.DataFrame
        One row per named host that could not be placed: project_id, product, host_text,
        township_text, village_text, township_code ("" when the township is unknown too),
        reason, suggestions.
    """
    if split not in SPLIT_MODES:
        raise OptionError(f"industry split '{split}': unknown; use one of {', '.join(SPLIT_MODES)} "
                          f"(plan setting industry.split or the split option).")
    _check_layer(villages, "villages", ["village_code", "name", "township_code"])
    _check_layer(townships, "townships", ["township_code", "name"])
    tw_aliases = load_township_aliases() if township_aliases is None else township_aliases
    v_aliases = load_village_aliases() if village_aliases is None else village_aliases
    tindex = _TownshipIndex(townships, tw_aliases)

    vil = pd.DataFrame({
        "village_code": villages["village_code"].astype(str).to_numpy(),
        "name": villages["name"].astype(str).str.strip().to_numpy(),
        "township_code": villages["township_code"].astype(str).to_numpy(),
    }, index=villages.index)
    by_key: dict[tuple[str, str], list] = {}
    for idx, tc, name in zip(vil.index, vil["township_code"], vil["name"]):
        by_key.setdefault((tc, name), []).append(idx)
    names_in_township = vil.groupby("township_code")["name"].apply(list).to_dict()
    valias = {(str(r["township_name"]).strip(), str(r["plan_name"]).strip()):
              (str(r["name_2023"]).strip(), str(r.get("note", "")).strip())
              for _, r in v_aliases.iterrows()}

    tw_point = townships.set_index(townships["township_code"].astype(str)).geometry.representative_point()
    seat_point = {}
    if seats is not None and len(seats) and "township_code" in seats.columns:
        seat_point = dict(zip(seats["township_code"].astype(str), seats.geometry))

    hosts: list[dict] = []
    unresolved: list[dict] = []

    def project_fields(p: pd.Series) -> dict:
        return {"project_id": p["project_id"], "category": p["category"],
                "category_en": p["category_en"], "product": p["product"],
                "product_en": p["product_en"], "unit": p["unit"], "project_scale": p["scale"],
                "target_year": p["target_year"], "part_of": p["part_of"]}

    def unresolved_row(p, token, tw_text, v_text, tw_code, reason, suggestions=""):
        unresolved.append({"project_id": p["project_id"], "product": p["product"],
                           "host_text": token, "township_text": tw_text, "village_text": v_text,
                           "township_code": tw_code or "", "reason": reason,
                           "suggestions": suggestions})

    def township_reason(tw_text: str, how: str, detail: str) -> str:
        if how == "ambiguous":
            return f"township '{tw_text}' matches several townships ({detail}); name it in full."
        if how == "alias_missing":
            return (f"township '{tw_text}' is mapped to '{detail}' by township_aliases.csv, but the "
                    f"townships layer has no township of that name.")
        return (f"township '{tw_text}' is not in the townships layer nor in township_aliases.csv "
                f"(renamed or merged since the plan?); add it to kaizhou_gis/data/township_aliases.csv.")

    for _, p in projects.iterrows():
        level = p["host_level"]
        tokens = split_hosts(p["hosts_text"])
        base = project_fields(p)
        if level == "poverty_villages":
            scale, basis, assumed = _split_scale(p, 0, split)
            if "poverty_village" not in villages.columns:
                stated = p["n_villages_stated"]
                unresolved_row(p, "贫困村" if pd.isna(stated) else f"{int(stated)}个贫困村", "", "", "",
                               "the villages layer has no poverty_village column, so the poverty "
                               "villages this project covers cannot be placed.")
                continue
            flag = villages["poverty_village"].fillna(False).astype(bool)
            if not flag.any():
                stated = p["n_villages_stated"]
                unresolved_row(p, "贫困村" if pd.isna(stated) else f"{int(stated)}个贫困村", "", "", "",
                               "no village of the villages layer is flagged poverty_village "
                               "(column missing or all false), so the poverty villages this "
                               "project covers cannot be placed.")
                continue
            for seq, idx in enumerate(villages.index[flag.to_numpy()], start=1):
                tc = vil.at[idx, "township_code"]
                hosts.append({**base, "host_seq": seq, "host_text": "贫困村", "host_level": level,
                              "village_code": vil.at[idx, "village_code"],
                              "village_name": vil.at[idx, "name"], "township_code": tc,
                              "township_name": tindex.code_to_name.get(tc, ""),
                              "match": "poverty_village",
                              "match_note": "every poverty village of the villages layer",
                              "scale": scale, "scale_basis": basis, "scale_assumed_split": assumed,
                              "location": "village point", "geometry": villages.geometry.loc[idx]})
            continue
        if level == "none":
            continue
        scale, basis, assumed = _split_scale(p, len(tokens), split)
        for seq, token in enumerate(tokens, start=1):
            if level == "place":
                unresolved_row(p, token, "", "", "",
                               "a place (mountain or scenic area), not a township or village; the "
                               "plan names no village to put it on.")
                continue
            tw_text, _, v_text = token.partition("+")
            tw_text, v_text = tw_text.strip(), v_text.strip()
            code, how, detail = tindex.resolve(tw_text)
            if code is None:
                unresolved_row(p, token, tw_text, v_text, "", township_reason(tw_text, how, detail))
                continue
            tw_name = tindex.code_to_name[code]
            tw_note = detail if how in ("alias", "stem") else ""
            if level == "township":
                if code in seat_point:
                    geom, where = seat_point[code], "township seat"
                else:
                    geom, where = tw_point.loc[code], "point inside township polygon"
                hosts.append({**base, "host_seq": seq, "host_text": token, "host_level": level,
                              "village_code": "", "village_name": "", "township_code": code,
                              "township_name": tw_name, "match": "township",
                              "match_note": "; ".join(x for x in ("the plan names the township only",
                                                                   tw_note) if x),
                              "scale": scale, "scale_basis": basis, "scale_assumed_split": assumed,
                              "location": where, "geometry": geom})
                continue
            hit = by_key.get((code, v_text), [])
            match = "alias" if how == "alias" else "exact"
            notes = [tw_note] if tw_note else []
            if not hit and (tw_name, v_text) in valias:
                new, note = valias[(tw_name, v_text)]
                hit = by_key.get((code, new), [])
                if hit:
                    match = "alias"
                    notes.append(f"{v_text} → {new}" + (f" ({note})" if note else ""))
            if len(hit) > 1:
                unresolved_row(p, token, tw_text, v_text, code,
                               f"{len(hit)} villages named {v_text} in {tw_name} ({code}) "
                               f"({format_ids(vil.loc[hit, 'village_code'].tolist())}); "
                               f"the name alone cannot tell which.")
                continue
            if not hit:
                elsewhere = [(tindex.code_to_name.get(tc, tc), vil.at[i, "village_code"])
                             for (tc, n), idxs in by_key.items() if n == v_text for i in idxs]
                reason = (f"no village named {v_text} in {tw_name} ({code}) in the villages layer "
                          f"(NBS 2023 list): merged or renamed since the plan, or misspelt")
                if elsewhere:
                    reason += ("; villages of that name in other townships ("
                               + ", ".join(f"{t} {c}" for t, c in elsewhere)
                               + f") are not used because the plan names {tw_text}")
                close = difflib.get_close_matches(v_text, names_in_township.get(code, []),
                                                  n=3, cutoff=0.5)
                sugg = ", ".join(f"{n} ({vil.loc[by_key[(code, n)][0], 'village_code']})" for n in close)
                if sugg:
                    reason += ("; if a close name is meant, add it to the village aliases table (plan "
                               "file industry.village_aliases)")
                unresolved_row(p, token, tw_text, v_text, code, reason + ".", sugg)
                continue
            idx = hit[0]
            hosts.append({**base, "host_seq": seq, "host_text": token, "host_level": level,
                          "village_code": vil.at[idx, "village_code"], "village_name": vil.at[idx, "name"],
                          "township_code": code, "township_name": tw_name, "match": match,
                          "match_note": "; ".join(notes), "scale": scale, "scale_basis": basis,
                          "scale_assumed_split": assumed, "location": "village point",
                          "geometry": villages.geometry.loc[idx]})

    host_cols = ["project_id", "host_seq", "host_text", "host_level", "village_code", "village_name",
                 "township_code", "township_name", "match", "match_note", "category", "category_en",
                 "product", "product_en", "scale", "unit", "project_scale", "scale_basis",
                 "scale_assumed_split", "target_year", "part_of", "location", "geometry"]
    hosts_gdf = gpd.GeoDataFrame(pd.DataFrame(hosts, columns=host_cols), geometry="geometry",
                                 crs=villages.crs)
    hosts_gdf["host_seq"] = hosts_gdf["host_seq"].astype(int)
    hosts_gdf["scale"] = hosts_gdf["scale"].astype(float)
    hosts_gdf["project_scale"] = hosts_gdf["project_scale"].astype(float)
    hosts_gdf["scale_assumed_split"] = hosts_gdf["scale_assumed_split"].astype(bool)
    hosts_gdf["target_year"] = hosts_gdf["target_year"].astype("Int64")
    hosts_gdf.attrs["labels_zh"] = dict(HOST_LABELS_ZH)
    unresolved_df = pd.DataFrame(unresolved, columns=list(UNRESOLVED_LABELS_ZH))
    unresolved_df.attrs["labels_zh"] = dict(UNRESOLVED_LABELS_ZH)
    log.info("%d hosts placed, %d unresolved", len(hosts_gdf), len(unresolved_df))
    return hosts_gdf, unresolved_df


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def host_township_codes(hosts: pd.DataFrame, village_township: dict[str, str]) -> pd.Series:
    """Township code of each host: its own ``township_code`` where given (township-level hosts
    have no village code), else its village's township (``village_township``: code → code;
    :data:`kaizhou_gis.admin.NO_TOWNSHIP` for a village not in the villages layer)."""
    derived = townships_of_villages(hosts["village_code"], village_township)
    if "township_code" not in hosts:
        return derived
    given = hosts["township_code"].fillna("").astype(str)
    return given.where(given != "", derived)


def project_status(projects: pd.DataFrame, hosts: pd.DataFrame, unresolved: pd.DataFrame) -> pd.DataFrame:
    """The project table with ``n_hosts`` (placed), ``n_unresolved`` and ``status`` for every row."""
    out = projects.copy()
    placed = hosts.groupby("project_id").size()
    missing = unresolved.groupby("project_id").size()
    out["n_hosts"] = out["project_id"].map(placed).fillna(0).astype(int)
    out["n_unresolved"] = out["project_id"].map(missing).fillna(0).astype(int)

    def status(r: pd.Series) -> str:
        if r["host_level"] == "none":
            return "district-wide: the plan names no place"
        if r["host_level"] == "place":
            return "not placed: the plan names places that are not villages"
        if r["n_hosts"] == 0:
            return "not placed: no host found"
        if r["n_unresolved"]:
            return "partly placed"
        return "placed"

    out["status"] = out.apply(status, axis=1)
    out.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
    return out


def product_totals(projects: pd.DataFrame, hosts: pd.DataFrame) -> pd.DataFrame:
    """Per product: the plan's total (rows that are not a part of another) and what is placed.

    ``placed_scale`` adds the hosts' ``scale`` where the plan gives a figure per village (or an
    even split was asked for); it is NaN when the plan gives only a total, so the comparison never
    rests on an invented split.
    """
    main = projects[projects["part_of"].eq("") & projects["scale"].notna()]
    rows = []
    for (cat, prod, unit), g in main.groupby(["category", "product", "unit"], sort=False):
        h = hosts[hosts["project_id"].isin(g["project_id"])]
        per_host = h["scale"].notna().any()
        placed = float(h["scale"].sum()) if per_host else np.nan
        if not per_host:
            basis = "plan gives a total only; not placed per village"
        elif h["scale_assumed_split"].any():
            basis = "assumed even split"
        else:
            basis = "; ".join(sorted(set(h.loc[h["scale"].notna(), "scale_basis"])))
        stated = g["n_villages_stated"].dropna()
        rows.append({"category": cat, "product": prod, "product_en": g["product_en"].iloc[0],
                     "unit": unit, "plan_total": float(g["scale"].sum()),
                     "at_least": bool(g["at_least"].any()), "n_projects": len(g),
                     "n_villages_stated": int(stated.sum()) if len(stated) else pd.NA,
                     "n_hosts_named": int(g["n_hosts_named"].sum()),
                     "n_hosts": len(h), "n_unresolved": int(g.get("n_unresolved", pd.Series(0)).sum()),
                     "placed_scale": placed, "placed_basis": basis,
                     "source": "; ".join(sorted(set(g["chapter_section"])))})
    out = pd.DataFrame(rows, columns=list(TOTAL_LABELS_ZH))
    out["n_villages_stated"] = out["n_villages_stated"].astype("Int64")
    out.attrs["labels_zh"] = dict(TOTAL_LABELS_ZH)
    return out


# --------------------------------------------------------------------------------------------
# pipeline step
# --------------------------------------------------------------------------------------------
def run(ctx: StepContext, needs: StepNeeds) -> StepResult[IndustryData]:
    """Pipeline step ``industry``: the project table, the host points and what could not be placed.

    Files (relative to ``--out``): ``industry/projects.csv``, ``industry/projects.gpkg`` (layer
    ``industry_hosts``), ``industry/unresolved.csv``, ``industry/totals.csv``. With ``--township``
    only the projects with a host in that township are kept, with that township's hosts.
    """
    split = ctx.options.get("split") or ctx.plan.get("industry.split", "none")
    layers = ctx.layers
    table_path = _plan_table(ctx.plan, "industry.projects_table")
    projects = load_projects(table_path)
    hosts, unresolved = resolve_hosts(
        projects, layers.villages, layers.townships, split=split, seats=layers.township_seats,
        township_aliases=load_township_aliases(_plan_table(ctx.plan, "industry.township_aliases")),
        village_aliases=load_village_aliases(_plan_table(ctx.plan, "industry.village_aliases")))
    table = project_status(projects, hosts, unresolved)

    n_poverty = None
    if "poverty_village" in layers.villages.columns:
        n_poverty = int(layers.villages["poverty_village"].fillna(False).astype(bool).sum())
    stated_poverty = projects.loc[projects["host_level"].eq("poverty_villages"), "n_villages_stated"]
    notes = []
    if n_poverty is not None and len(stated_poverty) and int(stated_poverty.max()) != n_poverty:
        notes.append(f"the plan puts some projects on {int(stated_poverty.max())} poverty villages; "
                     + (f"the villages layer flags {n_poverty}, and those are used." if n_poverty
                        else "the villages layer flags none, so those projects are listed in "
                             "industry/unresolved.csv."))
        log.warning("%s", notes[-1])

    tw = ctx.township
    if tw:
        keep_ids = set(hosts.loc[hosts["township_code"].astype(str) == str(tw), "project_id"])
        keep_ids |= set(unresolved.loc[unresolved["township_code"].astype(str) == str(tw), "project_id"])
        table = table[table["project_id"].isin(keep_ids)].copy()
        hosts = hosts[hosts["township_code"].astype(str) == str(tw)].copy()
        unresolved = unresolved[unresolved["township_code"].astype(str) == str(tw)].copy()
        table.attrs["labels_zh"] = dict(PROJECT_LABELS_ZH)
        hosts.attrs["labels_zh"] = dict(HOST_LABELS_ZH)
        unresolved.attrs["labels_zh"] = dict(UNRESOLVED_LABELS_ZH)

    totals = product_totals(table, hosts)
    # every named host is either placed or unresolved (also within one township)
    placed_named = int((hosts["host_level"].isin(["village", "township"])).sum())
    pv_ids = set(projects.loc[projects["host_level"].eq("poverty_villages"), "project_id"])
    n_pv_unplaced = int(unresolved["project_id"].isin(pv_ids).sum())
    named = placed_named + len(unresolved) - n_pv_unplaced
    named_villages = int(hosts["host_level"].eq("village").sum()
                         + unresolved["village_text"].ne("").sum())
    where = ""
    if tw:
        names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"]))
        where = f" in {names.get(str(tw), tw)}"
    place_ids = set(projects.loc[projects["host_level"].eq("place"), "project_id"])
    n_places = int(unresolved["project_id"].isin(place_ids).sum())
    line = f"{len(table)} plan projects (ch.3){where}; {named} named hosts{where}: {placed_named} placed"
    n_not = len(unresolved) - n_pv_unplaced
    if n_not:
        line += (f", {n_not} not ({n_not - n_places} names not found, "
                 f"{n_places} mountain/scenic places; see industry/unresolved.csv)")
    headline = [line]
    if table_path is False:
        headline = [f"no industry projects table: the plan file's industry.projects_table is "
                    f"empty, so there are no projects to place (the tables are written empty)"]
        notes.append(headline[0])
    if n_pv_unplaced:
        headline.append(f"{n_pv_unplaced} per-poverty-village projects not placed: the villages "
                        f"layer flags no poverty village")
    pv = hosts[hosts["host_level"].eq("poverty_villages")]
    if len(pv):
        headline.append(f"{pv['village_code'].nunique()} poverty villages carry the per-village "
                        f"projects (photovoltaic stations, e-commerce stations)")
    if split == "even":
        headline.append("scales over several villages split evenly (assumed; see scale_basis)")

    totals_records = totals.astype(object).where(totals.notna(), None).to_dict("records")
    summary = {
        "headline": headline,
        "n_projects": int(len(table)),
        "n_named_hosts": int(named),
        "n_named_villages": named_villages,
        "n_hosts_placed": int(len(hosts)),
        "n_named_hosts_placed": placed_named,
        "n_unresolved": int(len(unresolved)),
        "n_alias_matches": int(hosts["match"].eq("alias").sum()),
        "poverty_villages_in_layer": n_poverty,
        "split": split,
        "totals": totals_records,
        "projects_per_township": {str(k): int(v) for k, v in
                                  hosts.groupby(hosts["township_code"].astype(str))["project_id"]
                                  .nunique().items()},
        "notes": notes,
    }
    if len(unresolved) and "township_code" in unresolved.columns and "township_name" not in unresolved.columns:
        tw_names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
        unresolved.insert(unresolved.columns.get_loc("township_code") + 1, "township_name",
                          unresolved["township_code"].map(lambda c: tw_names.get(str(c)) if isinstance(c, str) and c else None))
    files = {
        "industry/projects.csv": table,
        "industry/projects.gpkg": {"industry_hosts": hosts},
        "industry/unresolved.csv": unresolved,
        "industry/totals.csv": totals,
    }
    return StepResult("industry", files=files,
                      data=IndustryData(projects=table, hosts=hosts, unresolved=unresolved,
                                        totals=totals),
                      summary=summary)
