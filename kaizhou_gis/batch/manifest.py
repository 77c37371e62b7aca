"""Reading a batch manifest (TOML): the districts, their layers, plans and options."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kaizhou_gis.errors import OptionError

#: Manifest keys a district (or ``[defaults]``) may set.
DISTRICT_KEYS = ("code", "name", "layers", "plan", "crs", "encoding", "coords", "header",
                 "field_coords")


DEFAULT_KEYS = ("layers", "plan", "crs", "encoding", "coords", "header", "field_coords")


_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


@dataclass
class District:
    """One district of the manifest, paths resolved."""

    code: str
    name: str = ""
    layers: str | None = None
    plan: str | None = None
    crs: str | None = None
    encoding: str | None = None
    coords: str = "wgs84"
    header: str = "en"
    field_coords: str = "wgs84"


def read_manifest(path: str | Path) -> list[District]:
    """The districts of a batch manifest; :class:`OptionError` naming every problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise OptionError(f"batch manifest {path} does not exist; pass a TOML file listing "
                          f"[[district]] tables (see README, section Province).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise OptionError(f"batch manifest {path} is not valid UTF-8 TOML: {e}; fix the syntax.") from None
    base = path.resolve().parent
    problems: list[str] = []
    for k in sorted(set(data) - {"defaults", "district"}):
        problems.append(f"{k}: unknown top-level key; use [defaults] and [[district]].")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a table.")
        defaults = {}
    for k in sorted(set(defaults) - set(DEFAULT_KEYS)):
        problems.append(f"defaults.{k}: unknown key; allowed: {', '.join(DEFAULT_KEYS)}.")
    items = data.get("district", [])
    if not isinstance(items, list) or not items:
        problems.append("no [[district]] tables; list at least one district.")
        items = []
    out: list[District] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"district[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table.")
            continue
        for k in sorted(set(item) - set(DISTRICT_KEYS)):
            problems.append(f"{where}.{k}: unknown key; allowed: {', '.join(DISTRICT_KEYS)}.")
        merged = {**{k: v for k, v in defaults.items() if k in DEFAULT_KEYS}, **item}
        code = str(merged.get("code", "")).strip()
        if not _CODE.match(code):
            problems.append(f"{where}.code: {code!r} is not a usable code (letters, digits, _ or -; "
                            f"it names the output folder).")
            continue
        where = f"district {code}"
        if code in seen:
            problems.append(f"{where}: listed twice (district[{seen[code]}] and district[{i}]); "
                            f"codes must be unique.")
            continue
        seen[code] = i
        if not merged.get("layers"):
            problems.append(f"{where}: no layers; give layers = \"path\" (GeoPackage, folder or "
                            f"TOML mapping).")
            continue
        for k in ("coords", "field_coords"):
            if merged.get(k, "wgs84") not in ("wgs84", "gcj02"):
                problems.append(f"{where}.{k}: {merged[k]!r}; use wgs84 or gcj02.")
        if merged.get("header", "en") not in ("en", "zh", "both"):
            problems.append(f"{where}.header: {merged['header']!r}; use en, zh or both.")

        def resolve(v):
            if v is None or str(v).strip() == "":
                return None
            p = Path(str(v)).expanduser()
            return str(p if p.is_absolute() else (base / p))
        out.append(District(code=code, name=str(merged.get("name", "")),
                            layers=resolve(merged.get("layers")), plan=resolve(merged.get("plan")),
                            crs=merged.get("crs"), encoding=merged.get("encoding"),
                            coords=str(merged.get("coords", "wgs84")),
                            header=str(merged.get("header", "en")),
                            field_coords=str(merged.get("field_coords", "wgs84"))))
    if problems:
        raise OptionError(f"batch manifest {path}: {len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    return out
