"""Reading vector files: Shapefile text encodings (no .cpg, cut field names), GeoParquet, OSM,
layer metadata, and the Chinese/English column aliases of the contract.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers.contract import SCHEMA
from kaizhou_gis.layers.osm import _is_osm, read_osm_roads
from kaizhou_gis.layers.sources import _Source


def _guess_dbf_encoding(shp: Path) -> str | None:
    """Encoding for a Shapefile whose .dbf has neither a .cpg nor a language-driver id.

    GDAL then assumes ISO-8859-1, which garbles Chinese. Returns ``"UTF-8"`` or ``"GB18030"``
    (a superset of GBK) when the text bytes say so, None when GDAL's own choice is right.
    """
    if any(shp.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((shp.with_suffix(s) for s in (".dbf", ".DBF") if shp.with_suffix(s).exists()), None)
    if dbf is None:
        return None
    with open(dbf, "rb") as f:
        head = f.read(32)
        if len(head) < 32 or head[29] != 0:  # GDAL honours a language-driver id
            return None
        header_len = int.from_bytes(head[8:10], "little")
        f.seek(header_len)
        body = f.read(4_000_000)
    if all(b < 0x80 for b in body):
        return None
    # Text cut at a field's width leaves a broken character at the end of some values, so
    # count broken characters instead of asking for a clean decode: GBK text read as UTF-8
    # breaks at nearly every character, UTF-8 text only where a value was cut.
    n_high = sum(1 for b in body if b >= 0x80)
    broken = {enc: body.decode(enc, errors="replace").count("\ufffd")
              for enc in ("utf-8", "gb18030")}
    if broken["utf-8"] <= max(1, n_high // 60):  # at most ~1 in 20 Chinese characters
        return "UTF-8"
    if broken["gb18030"] <= max(1, n_high // 40):
        return "GB18030"
    return None


def _layer_metadata(src: _Source) -> dict:
    """GDAL layer metadata of one vector source ({} when the format has none)."""
    if src.db is not None or _is_osm(src.path) or src.path.suffix.lower() in (".parquet", ".geoparquet"):
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "more than one layer": the metadata is optional
            info = pyogrio.read_info(src.path, **({"layer": src.layer} if src.layer else {}))
    except Exception:  # formats without layers or metadata
        return {}
    meta = info.get("layer_metadata") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _read_vector(name: str, src: _Source, encoding: str | None, notes: list[str],
                 bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    if src.db is not None:
        from kaizhou_gis import dbio
        return dbio.read_layer(name, src.db)
    suffix = src.path.suffix.lower()
    enc = src.encoding or encoding
    if suffix in (".parquet", ".geoparquet"):
        try:
            return gpd.read_parquet(src.path)
        except ImportError as e:
            raise LayerError(f"{name}: reading GeoParquet ({src.path.name}) needs pyarrow: {e}; "
                             f"`pip install pyarrow`, or convert the file to GeoPackage.") from None
    if _is_osm(src.path):
        return read_osm_roads(src.path, notes=notes, bbox=bbox)
    if suffix == ".shp" and enc is None:
        enc = _guess_dbf_encoding(src.path)
        if enc is not None:
            notes.append(f"{name}: {src.path.name} has no .cpg; its text was read as {enc} "
                         f"(pass --encoding if names look wrong).")
    kwargs: dict[str, Any] = {}
    if src.layer is not None:
        kwargs["layer"] = src.layer
    if enc is not None and suffix in (".shp", ".dbf", ".csv"):
        kwargs["encoding"] = enc
    try:
        return pyogrio.read_dataframe(src.path, **kwargs)
    except UnicodeDecodeError:
        if suffix not in (".shp", ".dbf"):
            raise
    # A .dbf field name cut to 10 bytes in the middle of a character (户籍人口 in UTF-8 is 12
    # bytes), or text not in the encoding the .cpg names, stops pyogrio: read the bytes as
    # Latin-1 and decode them here.
    kwargs["encoding"] = "ISO-8859-1"
    raw = pyogrio.read_dataframe(src.path, **kwargs)
    geom = raw.geometry.name
    text_cols = [c for c in raw.columns if c != geom and (pd.api.types.is_object_dtype(raw[c])
                                                          or pd.api.types.is_string_dtype(raw[c]))]
    values = [v.encode("latin-1") for c in text_cols for v in raw[c] if isinstance(v, str)]
    names = [str(c).encode("latin-1") for c in raw.columns if c != geom]
    chosen = next((c for c in dict.fromkeys([enc or "UTF-8", "GB18030"])
                   if all(_decodes_but_cut_end(v, c) for v in values)), None)
    if chosen is None:
        raise LayerError(f"{name}: the text in {src.path.name} is neither {enc or 'UTF-8'} nor "
                         f"GBK; pass its encoding with --encoding (or `encoding = \"...\"` in a "
                         f"TOML mapping), or fix the .cpg file.")

    def fix(v):
        return v.encode("latin-1").decode(chosen, errors="ignore") if isinstance(v, str) else v

    new_names: dict[str, str] = {}
    for c in raw.columns:
        if c == geom:
            continue
        base = n = fix(c).strip() or "field"
        k = 2
        while n in new_names.values():  # 户籍人口 and 户籍人数 both cut to 户籍人
            n, k = f"{base}_{k}", k + 1
        new_names[c] = n
    for c in text_cols:
        raw[c] = raw[c].map(fix)
    raw = raw.rename(columns=new_names)
    if chosen != (enc or "UTF-8"):
        notes.append(f"{name}: the text in {src.path.name} is not {enc or 'UTF-8'} (as its .cpg "
                     f"or --encoding says) but {chosen}; read as {chosen}.")
    cut = [n.decode(chosen, errors="ignore") for n in names if not _decodes_but_cut_end(n, chosen, True)]
    if cut:
        notes.append(f"{name}: {src.path.name} has field names cut inside a character "
                     f"({format_ids(cut)}); the cut characters were dropped.")
    return raw


def _decodes_but_cut_end(raw: bytes, encoding: str, strict: bool = False) -> bool:
    """True when ``raw`` is valid ``encoding`` text, at worst with its last character cut off
    (a .dbf field of N bytes cuts longer text anywhere); ``strict`` allows no cut."""
    try:
        raw.decode(encoding)
        return True
    except UnicodeDecodeError as e:
        return not strict and e.end == len(raw) and len(raw) - e.start < 4
    except LookupError:
        return False


#: Per layer, alias words preferred and avoided when several aliases of one column are present
#: (a settlements table often has both 自然村名 and its village's 村名).
_ALIAS_HINTS = {
    "settlements": (("自然村", "组"), ("乡镇", "街道")),
    "villages": (("村",), ("自然村", "乡镇", "街道", "组")),
    "townships": (("乡镇", "街道", "镇"), ("村", "组")),
    "township_seats": (("乡镇", "街道", "镇"), ("村", "组")),
}


def _dbf_cuts(alias: str) -> list[str]:
    """``alias`` as a Shapefile field name cut to 10 bytes (UTF-8 and GBK), when that changes it."""
    out = []
    for enc in ("utf-8", "gb18030"):
        try:
            raw = alias.encode(enc)
        except UnicodeEncodeError:
            continue
        if len(raw) > 10:
            cut = raw[:10].decode(enc, errors="ignore").strip()
            if len(cut) >= 2 and cut not in out:
                out.append(cut)
    return out


def _apply_aliases(gdf: gpd.GeoDataFrame, name: str, aliases: dict[str, list[str]],
                   notes: list[str]) -> gpd.GeoDataFrame:
    """Rename columns with known Chinese/English aliases to the contract's names."""
    wanted = [c.name for c in SCHEMA[name][2]]
    present = set(gdf.columns)
    lower = {str(c).strip().lower(): c for c in gdf.columns if c != gdf.geometry.name}
    rename: dict[str, str] = {}
    prefer, avoid = _ALIAS_HINTS.get(name, ((), ()))

    def rank(alias: str) -> int:
        if any(h in alias for h in avoid):
            return 2
        return 0 if any(h in alias for h in prefer) else 1

    for col in wanted:
        if col in present:
            continue
        listed = sorted((str(a).strip() for a in aliases.get(col, [])), key=rank)
        # Shapefile (.dbf) field names are cut to 10 bytes: village_code -> village_co,
        # 户籍人口 (12 bytes in UTF-8) -> 户籍人; exact names first, cut ones after
        cands = [col, col[:10]] + listed + [t for a in listed for t in _dbf_cuts(a)]
        for cand in cands:
            hit = lower.get(str(cand).strip().lower())
            if hit is not None and hit not in rename and hit not in wanted:
                rename[hit] = col
                break
    if rename:
        notes.append(f"{name}: columns renamed: " +
                     ", ".join(f"{a} → {b}" for a, b in rename.items()) + ".")
        gdf = gdf.rename(columns=rename)
    return gdf
