"""Finding the layers: a GeoPackage, a folder of per-layer files, a TOML mapping (with optional
PostGIS tables), the DEM next to them, and the default layers folder.
"""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyogrio
from pyproj import CRS

from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers.contract import (
    DEFAULT_LAYER_FILES,
    DEFAULT_LAYERS_DIR,
    OPTIONAL_LAYERS,
    RASTER_SUFFIXES,
    VECTOR_LAYERS,
    VECTOR_SUFFIXES,
)
from kaizhou_gis.layers.osm import _is_osm

#: one logger for the layer package (its messages read "kaizhou_gis.layers: ..." as before the split)
log = logging.getLogger("kaizhou_gis.layers")


@dataclass
class _Source:
    """Where one layer comes from."""

    path: Path
    layer: str | None = None
    crs: str | None = None
    encoding: str | None = None
    coords: str | None = None
    #: DEM tiles mosaicked on the fly (a folder of SRTM .hgt / GeoTIFF tiles)
    tiles: tuple[Path, ...] = ()
    #: a table or query in PostGIS (:class:`kaizhou_gis.dbio.DbLayer`) instead of a file
    db: Any = None

    def describe(self) -> str:
        if self.db is not None:
            return self.db.describe()
        if self.tiles:
            return f"{self.path.name}/ ({len(self.tiles)} tiles)" if self.path.is_dir() \
                else f"{len(self.tiles)} tiles ({self.tiles[0].name}, ...)"
        return f"{self.path.name}" + (f":{self.layer}" if self.layer else "")


def _known_encoding(name: str) -> bool:
    """True when Python (and so, for the usual names, GDAL's iconv) knows the text encoding."""
    import codecs
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _gpkg_layers(path: Path) -> list[str]:
    try:
        return [str(x[0]) for x in pyogrio.list_layers(path)]
    except Exception as e:  # pyogrio raises DataSourceError and friends
        log.debug("cannot list layers of %s: %s", path, e)
        return []


def _raster_tiles(folder: Path) -> list[Path]:
    """Raster files in a folder (DEM tiles), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in RASTER_SUFFIXES or _is_srtm(p)))


def _is_srtm(p: Path) -> bool:
    """An SRTM tile: ``N31E108.hgt`` or as downloaded, ``N31E108.SRTMGL1.hgt.zip`` (GDAL reads
    the zip directly)."""
    return p.name.lower().endswith((".hgt", ".hgt.zip"))


def _find_dem(folder: Path) -> _Source | None:
    """The DEM next to the layers: ``dem.<tif|hgt|vrt|...>``; else a ``dem/`` folder of tiles;
    else the SRTM ``*.hgt`` tiles in the folder (several are mosaicked on the fly)."""
    for suffix in RASTER_SUFFIXES:
        p = folder / f"dem{suffix}"
        if p.is_file():
            return _Source(p)
    for sub in (folder / "dem", folder / "DEM"):
        if sub.is_dir():
            tiles = _raster_tiles(sub)
            if len(tiles) == 1:
                return _Source(tiles[0])
            if tiles:
                return _Source(sub, tiles=tuple(tiles))
    hgts = sorted(p for p in folder.iterdir() if p.is_file() and _is_srtm(p))
    if len(hgts) == 1:
        return _Source(hgts[0])
    if hgts:
        return _Source(hgts[0], tiles=tuple(hgts))
    for suffix in RASTER_SUFFIXES:
        p = folder / f"DEM{suffix}"
        if p.is_file():
            return _Source(p)
    return None


def _holds_layers(folder: Path) -> bool:
    """True for a folder with a GeoPackage or a per-layer file of the layer contract."""
    if not folder.is_dir():
        return False
    return any(p.is_file() and (p.suffix.lower() == ".gpkg"
                                or p.name.split(".")[0] in VECTOR_LAYERS + OPTIONAL_LAYERS)
               for p in folder.iterdir())


def default_layers_dir(*, package_dir: Path | None = None, cwd: Path | None = None) -> Path:
    """The folder of the default layers (no ``--layers``).

    ``layers/`` next to the package (a source checkout or an editable install) when it holds
    layers, else ``layers/`` in the current folder (after a non-editable ``pip install .`` the
    package lives in site-packages without the layers, so run from the repository root).
    ``package_dir`` (the ``kaizhou_gis`` folder) and ``cwd`` stand in for the real ones in tests.

    Raises
    ------
    LayerError
        Neither folder holds layers; the message names both places, the expected files and
        ``--layers``.
    """
    package_dir = Path(package_dir) if package_dir is not None \
        else Path(__file__).resolve().parent.parent
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    places = list(dict.fromkeys([package_dir.parent / "layers", cwd.resolve() / "layers"]))
    for folder in places:
        if _holds_layers(folder):
            return folder
    raise LayerError(
        f"layers: no --layers given and no default layers found (looked for "
        f"{' and '.join(str(p) for p in places)}). The shipped Kaizhou layers are "
        f"layers/{DEFAULT_LAYER_FILES[0]} (the vector layers {', '.join(VECTOR_LAYERS)}) and "
        f"layers/{DEFAULT_LAYER_FILES[1]} (the DEM) in the repository: run the command from the "
        f"repository root, or pass --layers PATH (a GeoPackage, a folder of per-layer files "
        f"with a DEM, a TOML mapping or a postgresql:// URL), or rebuild them with "
        f"`kaizhou-gis demo-layers --out layers`.")


def _resolve(path: Path, problems: list[str]) -> tuple[dict[str, _Source], _Source | None, Path]:
    """Layer name → source, the DEM source and the folder holding README.md."""
    sources: dict[str, _Source] = {}
    if not path.exists():
        hint = (" Build the shipped layers with `kaizhou-gis demo-layers` or pass --layers."
                if path.resolve() == DEFAULT_LAYERS_DIR else "")
        problems.append(f"layers: {path} does not exist; pass an existing GeoPackage, folder or "
                        f"TOML mapping to --layers.{hint}")
        return sources, None, path.parent
    if path.is_file() and path.suffix.lower() == ".toml":
        return _resolve_toml(path, problems)
    if path.is_file() or (path.is_dir() and path.suffix.lower() == ".gdb"):  # .gdb: a File Geodatabase
        folder = path.parent
        names = _gpkg_layers(path)
        for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
            if name in names:
                sources[name] = _Source(path, name)
        if not names:
            problems.append(f"layers: {path} is not a readable multi-layer vector file; pass a "
                            f"GeoPackage holding the layers {', '.join(VECTOR_LAYERS)}, a folder, "
                            f"or a TOML mapping.")
        return sources, _find_dem(folder), folder
    folder = path
    gpkgs = sorted(folder.glob("*.gpkg"))
    gpkgs.sort(key=lambda p: p.name != "kaizhou.gpkg")  # the shipped name first
    for g in gpkgs:
        if g.stem in VECTOR_LAYERS + OPTIONAL_LAYERS:
            continue  # a per-layer file, handled below
        names = _gpkg_layers(g)
        for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
            if name in names and name not in sources:
                sources[name] = _Source(g, name)
    for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
        for suffix in VECTOR_SUFFIXES:
            hits = [p for p in (folder / f"{name}{suffix}", folder / f"{name}{suffix.upper()}")
                    if p.exists()]
            if hits:
                sources[name] = _Source(hits[0])  # a per-layer file wins over a layer in a GeoPackage
                break
    if "roads" not in sources:
        osm = sorted({p for p in folder.iterdir() if p.is_file() and _is_osm(p)})
        if len(osm) == 1:
            sources["roads"] = _Source(osm[0])
            log.info("roads: using the OSM extract %s", osm[0].name)
        elif len(osm) > 1:
            problems.append(f"roads: several OSM files in {folder} ({format_ids([p.name for p in osm])}) "
                            f"and no roads.* file; name the one to use roads.osm.pbf (or give "
                            f"'roads = \"...\"' in a TOML mapping).")
    return sources, _find_dem(folder), folder


def _resolve_toml(path: Path, problems: list[str]) -> tuple[dict[str, _Source], _Source | None, Path]:
    folder = path.parent
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        problems.append(f"layers: {path} is not valid TOML: {e}; fix the syntax.")
        return {}, None, folder
    database = data.pop("database", None)
    if isinstance(data.get("layers"), dict):
        data = data["layers"]
        database = data.pop("database", database)
    sources: dict[str, _Source] = {}
    dem: _Source | None = None
    allowed = set(VECTOR_LAYERS) | set(OPTIONAL_LAYERS) | {"dem"}
    for name, spec in data.items():
        if name not in allowed:
            problems.append(f"layers: {path}: unknown layer '{name}'; use "
                            f"{', '.join(sorted(allowed))}.")
            continue
        if isinstance(spec, str):
            spec = {"path": spec}
        if isinstance(spec, dict) and ("table" in spec or "sql" in spec) and name != "dem":
            from kaizhou_gis import dbio
            db = dbio.toml_source(name, spec, database, path.name, problems)
            if db is not None:
                sources[name] = _Source(Path(db.describe()), crs=spec.get("crs"), db=db)
            continue
        if not _toml_entry_ok(path, name, spec, problems):
            continue
        p = Path(spec["path"]).expanduser()
        if not p.is_absolute():
            p = folder / p
        coords = spec.get("coords")
        if coords is not None and coords not in ("wgs84", "gcj02"):
            problems.append(f"layers: {path}: '{name}'.coords = {coords!r}; use \"wgs84\" or \"gcj02\".")
            coords = None
        src = _Source(p, spec.get("layer"), spec.get("crs"), spec.get("encoding"), coords)
        if not p.exists():
            problems.append(f"{name}: file {p} (from {path.name}) does not exist; fix the path "
                            f"in {path.name}.")
            continue
        if name == "dem":
            dem = _toml_dem(src, path, problems)
        else:
            if src.layer is None and p.suffix.lower() in (".gpkg", ".gdb"):
                names = _gpkg_layers(p)
                src.layer = name if name in names else (names[0] if len(names) == 1 else None)
            sources[name] = src
    return sources, dem, folder


def _toml_entry_ok(path: Path, name: str, spec, problems: list[str]) -> bool:
    """Check one file entry of a TOML mapping (keys, value types, CRS, encoding); False when
    the entry cannot be used (its problem added)."""
    if not isinstance(spec, dict) or "path" not in spec:
        problems.append(f"layers: {path}: '{name}' must be a file path or a table "
                        f"{{ path = \"...\", layer = \"...\" }}.")
        return False
    extra = set(spec) - {"path", "layer", "crs", "encoding", "coords"}
    if extra:
        problems.append(f"layers: {path}: '{name}' has unknown key(s) {sorted(extra)}; "
                        f"allowed: path, layer, crs, encoding, coords.")
    mistyped = [k for k in ("path", "crs", "encoding", "coords")
                if k in spec and not isinstance(spec[k], str)]
    if "layer" in spec and (not isinstance(spec["layer"], (str, int))
                            or isinstance(spec["layer"], bool)):
        mistyped.append("layer")
    if mistyped:
        problems.append(f"layers: {path}: '{name}'.{', '.join(mistyped)} must be text "
                        f"(quoted, e.g. path = \"villages.shp\", crs = \"EPSG:4490\").")
        return False
    if spec.get("crs") is not None:
        try:
            CRS.from_user_input(spec["crs"])
        except Exception as e:  # pyproj CRSError
            problems.append(f"layers: {path}: '{name}'.crs = {spec['crs']!r} is not a CRS "
                            f"({e}); use an EPSG code like \"EPSG:4490\".")
            return False
    if spec.get("encoding") is not None and not _known_encoding(spec["encoding"]):
        problems.append(f"layers: {path}: '{name}'.encoding = {spec['encoding']!r} is not a "
                        f"known text encoding; use e.g. \"GBK\", \"GB18030\" or \"UTF-8\".")
        return False
    return True


def _toml_dem(src: _Source, path: Path, problems: list[str]) -> _Source | None:
    """The DEM entry of a TOML mapping: a raster file, or a folder of tiles (one tile: that
    file; none: a problem and None)."""
    if not src.path.is_dir():
        return src
    tiles = _raster_tiles(src.path)
    if not tiles:
        problems.append(f"dem: the folder {src.path} (from {path.name}) holds no raster "
                        f"tiles; put the SRTM .hgt or GeoTIFF tiles in it.")
        return None
    if len(tiles) == 1:
        return _Source(tiles[0], crs=src.crs)
    src.tiles = tuple(tiles)
    return src


def _attribution(folder: Path) -> str:
    """The attribution section of README.md next to the layers ("" when there is none)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return ""
    text = readme.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    out: list[str] = []
    level = None
    for line in lines:
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and level is not None and len(m.group(1)) <= level:
            break
        if m and level is None and re.search(r"attribution|署名|数据来源|licen[cs]e", m.group(2), re.I):
            level = len(m.group(1))
            continue
        if level is not None:
            out.append(line)
    return "\n".join(out).strip()
