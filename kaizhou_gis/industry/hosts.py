"""Resolving each project's host text to villages, townships or places (names, aliases, fuzzy hints)."""
from __future__ import annotations

import difflib
import logging
import re

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.admin import townships_of_villages
from kaizhou_gis.errors import LayerError, OptionError, format_ids
from kaizhou_gis.industry.projects import (
    HOST_LABELS_ZH,
    SPLIT_MODES,
    UNRESOLVED_LABELS_ZH,
    load_township_aliases,
    load_village_aliases,
    split_hosts,
)

log = logging.getLogger(__name__)


_TOWNSHIP_SUFFIX = re.compile(r"(街道办事处|街道|镇|乡)$")


def _stem(name: str) -> str:
    return _TOWNSHIP_SUFFIX.sub("", str(name).strip())


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
    resolver = _HostResolver(villages, townships, split, seats, tw_aliases, v_aliases)
    for _, p in projects.iterrows():
        resolver.add_project(p)
    hosts_gdf, unresolved_df = resolver.frames()
    log.info("%d hosts placed, %d unresolved", len(hosts_gdf), len(unresolved_df))
    return hosts_gdf, unresolved_df


HOST_COLUMNS = ["project_id", "host_seq", "host_text", "host_level", "village_code", "village_name",
                "township_code", "township_name", "match", "match_note", "category", "category_en",
                "product", "product_en", "scale", "unit", "project_scale", "scale_basis",
                "scale_assumed_split", "target_year", "part_of", "location", "geometry"]


def _township_reason(tw_text: str, how: str, detail: str) -> str:
    if how == "ambiguous":
        return f"township '{tw_text}' matches several townships ({detail}); name it in full."
    if how == "alias_missing":
        return (f"township '{tw_text}' is mapped to '{detail}' by township_aliases.csv, but the "
                f"townships layer has no township of that name.")
    return (f"township '{tw_text}' is not in the townships layer nor in township_aliases.csv "
            f"(renamed or merged since the plan?); add it to kaizhou_gis/data/township_aliases.csv.")


def _project_fields(p: pd.Series) -> dict:
    return {"project_id": p["project_id"], "category": p["category"],
            "category_en": p["category_en"], "product": p["product"],
            "product_en": p["product_en"], "unit": p["unit"], "project_scale": p["scale"],
            "target_year": p["target_year"], "part_of": p["part_of"]}


class _HostResolver:
    """The lookups :func:`resolve_hosts` places hosts with (villages by township and name, village
    aliases, township points) and the rows it has produced so far (placed and unresolved)."""

    def __init__(self, villages: gpd.GeoDataFrame, townships: gpd.GeoDataFrame, split: str,
                 seats: gpd.GeoDataFrame | None, tw_aliases: pd.DataFrame, v_aliases: pd.DataFrame):
        self.villages = villages
        self.split = split
        self.tindex = _TownshipIndex(townships, tw_aliases)
        self.vil = pd.DataFrame({
            "village_code": villages["village_code"].astype(str).to_numpy(),
            "name": villages["name"].astype(str).str.strip().to_numpy(),
            "township_code": villages["township_code"].astype(str).to_numpy(),
        }, index=villages.index)
        self.by_key: dict[tuple[str, str], list] = {}
        for idx, tc, name in zip(self.vil.index, self.vil["township_code"], self.vil["name"]):
            self.by_key.setdefault((tc, name), []).append(idx)
        self.names_in_township = self.vil.groupby("township_code")["name"].apply(list).to_dict()
        self.valias = {(str(r["township_name"]).strip(), str(r["plan_name"]).strip()):
                       (str(r["name_2023"]).strip(), str(r.get("note", "")).strip())
                       for _, r in v_aliases.iterrows()}
        self.tw_point = townships.set_index(
            townships["township_code"].astype(str)).geometry.representative_point()
        self.seat_point: dict = {}
        if seats is not None and len(seats) and "township_code" in seats.columns:
            self.seat_point = dict(zip(seats["township_code"].astype(str), seats.geometry))
        self.hosts: list[dict] = []
        self.unresolved: list[dict] = []

    def unresolved_row(self, p, token, tw_text, v_text, tw_code, reason, suggestions=""):
        self.unresolved.append({"project_id": p["project_id"], "product": p["product"],
                                "host_text": token, "township_text": tw_text, "village_text": v_text,
                                "township_code": tw_code or "", "reason": reason,
                                "suggestions": suggestions})

    def add_project(self, p: pd.Series) -> None:
        """Place (or report as unresolved) every host of project ``p``, in the plan's order."""
        level = p["host_level"]
        if level == "poverty_villages":
            self._poverty_villages(p)
            return
        if level == "none":
            return
        tokens = split_hosts(p["hosts_text"])
        base = _project_fields(p)
        scale, basis, assumed = _split_scale(p, len(tokens), self.split)
        for seq, token in enumerate(tokens, start=1):
            if level == "place":
                self.unresolved_row(p, token, "", "", "",
                                    "a place (mountain or scenic area), not a township or village; the "
                                    "plan names no village to put it on.")
                continue
            tw_text, _, v_text = token.partition("+")
            tw_text, v_text = tw_text.strip(), v_text.strip()
            code, how, detail = self.tindex.resolve(tw_text)
            if code is None:
                self.unresolved_row(p, token, tw_text, v_text, "", _township_reason(tw_text, how, detail))
                continue
            tw_note = detail if how in ("alias", "stem") else ""
            common = {**base, "host_seq": seq, "host_text": token, "host_level": level,
                      "township_code": code, "township_name": self.tindex.code_to_name[code],
                      "scale": scale, "scale_basis": basis, "scale_assumed_split": assumed}
            if level == "township":
                self._township_host(common, code, tw_note)
            else:
                self._village_host(p, common, tw_text, v_text, how, tw_note)

    def _poverty_villages(self, p: pd.Series) -> None:
        """A project on every poverty village: one host per flagged village."""
        scale, basis, assumed = _split_scale(p, 0, self.split)
        villages = self.villages
        if "poverty_village" not in villages.columns:
            stated = p["n_villages_stated"]
            self.unresolved_row(p, "贫困村" if pd.isna(stated) else f"{int(stated)}个贫困村", "", "", "",
                                "the villages layer has no poverty_village column, so the poverty "
                                "villages this project covers cannot be placed.")
            return
        flag = villages["poverty_village"].fillna(False).astype(bool)
        if not flag.any():
            stated = p["n_villages_stated"]
            self.unresolved_row(p, "贫困村" if pd.isna(stated) else f"{int(stated)}个贫困村", "", "", "",
                                "no village of the villages layer is flagged poverty_village "
                                "(column missing or all false), so the poverty villages this "
                                "project covers cannot be placed.")
            return
        base = _project_fields(p)
        vil = self.vil
        for seq, idx in enumerate(villages.index[flag.to_numpy()], start=1):
            tc = vil.at[idx, "township_code"]
            self.hosts.append({**base, "host_seq": seq, "host_text": "贫困村", "host_level": p["host_level"],
                               "village_code": vil.at[idx, "village_code"],
                               "village_name": vil.at[idx, "name"], "township_code": tc,
                               "township_name": self.tindex.code_to_name.get(tc, ""),
                               "match": "poverty_village",
                               "match_note": "every poverty village of the villages layer",
                               "scale": scale, "scale_basis": basis, "scale_assumed_split": assumed,
                               "location": "village point", "geometry": villages.geometry.loc[idx]})

    def _township_host(self, common: dict, code: str, tw_note: str) -> None:
        """A host named by its township only: placed on the seat, else inside the polygon."""
        if code in self.seat_point:
            geom, where = self.seat_point[code], "township seat"
        else:
            geom, where = self.tw_point.loc[code], "point inside township polygon"
        self.hosts.append({**common, "village_code": "", "village_name": "", "match": "township",
                           "match_note": "; ".join(x for x in ("the plan names the township only",
                                                                tw_note) if x),
                           "location": where, "geometry": geom})

    def _village_host(self, p: pd.Series, common: dict, tw_text: str, v_text: str, how: str,
                      tw_note: str) -> None:
        """A host named 'township+village': the village of that name in that township (or its
        alias); several or none are unresolved, with the reason and close names."""
        code, tw_name = common["township_code"], common["township_name"]
        token = common["host_text"]
        hit = self.by_key.get((code, v_text), [])
        match = "alias" if how == "alias" else "exact"
        notes = [tw_note] if tw_note else []
        if not hit and (tw_name, v_text) in self.valias:
            new, note = self.valias[(tw_name, v_text)]
            hit = self.by_key.get((code, new), [])
            if hit:
                match = "alias"
                notes.append(f"{v_text} → {new}" + (f" ({note})" if note else ""))
        if len(hit) > 1:
            self.unresolved_row(p, token, tw_text, v_text, code,
                                f"{len(hit)} villages named {v_text} in {tw_name} ({code}) "
                                f"({format_ids(self.vil.loc[hit, 'village_code'].tolist())}); "
                                f"the name alone cannot tell which.")
            return
        if not hit:
            reason, sugg = self._not_found(tw_text, v_text, code, tw_name)
            self.unresolved_row(p, token, tw_text, v_text, code, reason, sugg)
            return
        idx = hit[0]
        self.hosts.append({**common, "village_code": self.vil.at[idx, "village_code"],
                           "village_name": self.vil.at[idx, "name"], "match": match,
                           "match_note": "; ".join(notes), "location": "village point",
                           "geometry": self.villages.geometry.loc[idx]})

    def _not_found(self, tw_text: str, v_text: str, code: str, tw_name: str) -> tuple[str, str]:
        """Why no village ``v_text`` was found in township ``code``, and close names to suggest."""
        vil, by_key = self.vil, self.by_key
        elsewhere = [(self.tindex.code_to_name.get(tc, tc), vil.at[i, "village_code"])
                     for (tc, n), idxs in by_key.items() if n == v_text for i in idxs]
        reason = (f"no village named {v_text} in {tw_name} ({code}) in the villages layer "
                  f"(NBS 2023 list): merged or renamed since the plan, or misspelt")
        if elsewhere:
            reason += ("; villages of that name in other townships ("
                       + ", ".join(f"{t} {c}" for t, c in elsewhere)
                       + f") are not used because the plan names {tw_text}")
        close = difflib.get_close_matches(v_text, self.names_in_township.get(code, []),
                                          n=3, cutoff=0.5)
        sugg = ", ".join(f"{n} ({vil.loc[by_key[(code, n)][0], 'village_code']})" for n in close)
        if sugg:
            reason += ("; if a close name is meant, add it to the village aliases table (plan "
                       "file industry.village_aliases)")
        return reason + ".", sugg

    def frames(self) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
        """The placed hosts (typed columns, CRS of the villages) and the unresolved ones."""
        hosts_gdf = gpd.GeoDataFrame(pd.DataFrame(self.hosts, columns=HOST_COLUMNS), geometry="geometry",
                                     crs=self.villages.crs)
        hosts_gdf["host_seq"] = hosts_gdf["host_seq"].astype(int)
        hosts_gdf["scale"] = hosts_gdf["scale"].astype(float)
        hosts_gdf["project_scale"] = hosts_gdf["project_scale"].astype(float)
        hosts_gdf["scale_assumed_split"] = hosts_gdf["scale_assumed_split"].astype(bool)
        hosts_gdf["target_year"] = hosts_gdf["target_year"].astype("Int64")
        hosts_gdf.attrs["labels_zh"] = dict(HOST_LABELS_ZH)
        unresolved_df = pd.DataFrame(self.unresolved, columns=list(UNRESOLVED_LABELS_ZH))
        unresolved_df.attrs["labels_zh"] = dict(UNRESOLVED_LABELS_ZH)
        return hosts_gdf, unresolved_df


def host_township_codes(hosts: pd.DataFrame, village_township: dict[str, str]) -> pd.Series:
    """Township code of each host: its own ``township_code`` where given (township-level hosts
    have no village code), else its village's township (``village_township``: code → code;
    :data:`kaizhou_gis.admin.NO_TOWNSHIP` for a village not in the villages layer)."""
    derived = townships_of_villages(hosts["village_code"], village_township)
    if "township_code" not in hosts:
        return derived
    given = hosts["township_code"].fillna("").astype(str)
    return given.where(given != "", derived)
