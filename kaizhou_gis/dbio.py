"""Layers from PostGIS and results into PostGIS or an ArcGIS File Geodatabase.

Reading
    ``--layers postgresql://USER@HOST:PORT/DB?schema=S&dem=/path/dem.tif`` reads the tables of
    schema ``S`` named after the layers (``villages``, ``roads``, ...); a TOML mapping may instead
    give ``database = "postgresql://..."`` and per layer ``{ table = "cun" }`` (``"other.cun"`` for
    another schema) or ``{ sql = "SELECT ..." }``. Each layer keeps its SRID (a column declared
    with SRID 0 gets the SRID its rows carry, or ``--crs``); then the checks of :mod:`layers` run
    as for files, with problems naming ``schema.table.column``. The DEM stays a raster file.

    The password never appears in a URL: libpq takes it from ``PGPASSWORD`` or ``~/.pgpass``
    (``PGPASSFILE``); a URL holding one is refused before anything connects.

Writing
    :func:`write_postgis` writes the result tables of a run into schema ``S`` in **one
    transaction**: new tables are built under temporary names beside the old ones, then the old
    tables are dropped and the new ones renamed, and a row goes into ``S.runs`` (the manifest:
    inputs, plan, parameters, time, data status). PostgreSQL's DDL is transactional, so a reader
    sees the previous run's tables or this run's, never a mix, and a run killed at any point
    leaves the previous tables as they were. Each table gets a primary key (its natural id when
    that is unique, else ``row_no``), ``row_no`` (the CSV's row order), a GiST index on the
    geometry and bilingual comments from the same labels as the CSV headers.

    :func:`write_gdb` writes the same tables into ``results.gdb`` (GDAL's OpenFileGDB driver,
    GDAL >= 3.6) for ArcGIS users, built in a temporary folder and moved into place.

psycopg 3 (with its binary wheel) talks to PostgreSQL: the tables are streamed with COPY and the
geometries travel as EWKB, so neither SQLAlchemy nor GeoAlchemy is needed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import DatabaseError, LayerError, OptionError, format_ids

log = logging.getLogger(__name__)

DB_SCHEMES = ("postgresql://", "postgres://")
#: Surrogate keys added by loaders (ogr2ogr, shp2pgsql, ArcGIS); used for row order, not kept.
SURROGATE_KEYS = ("fid", "ogc_fid", "gid", "objectid")
#: Columns tried, in order, as a result table's primary key (the first unique non-null one).
NATURAL_KEYS = ("settlement_id", "village_code", "site_id", "work_id", "project_id", "edge_id",
                "township_code", "id", "year")
RUNS_TABLE = "runs"
_NEW = "__kz_new"


# --------------------------------------------------------------------------------------------
# URLs and connections


def is_db_url(value: Any) -> bool:
    """True for ``postgresql://...`` (also after ``Path()`` folded the ``//``)."""
    if value is None:
        return False
    s = str(value)
    return s.startswith(DB_SCHEMES) or bool(re.match(r"^postgres(ql)?:/[^/]", s))


def _as_url(value: Any) -> str:
    s = str(value)
    m = re.match(r"^(postgres(?:ql)?):/([^/].*)$", s)
    return f"{m.group(1)}://{m.group(2)}" if m else s


@dataclass(frozen=True)
class DbTarget:
    """A PostgreSQL database and schema, from a URL without a password."""

    url: str          # as given (holds no password)
    conninfo: str     # for libpq, without our own parameters
    schema: str
    dem: str | None
    host: str
    port: str
    dbname: str
    user: str

    def describe(self) -> str:
        return f"postgresql://{self.user + '@' if self.user else ''}{self.host}:{self.port}/" \
               f"{self.dbname}?schema={self.schema}"


def parse_url(url: Any, *, what: str = "--layers") -> DbTarget:
    """Split ``postgresql://USER@HOST:PORT/DB?schema=S&dem=PATH`` (refusing a password)."""
    import psycopg

    url = _as_url(url)
    parts = urllib.parse.urlsplit(url)
    try:
        has_password = parts.password is not None
    except ValueError:
        has_password = False
    if has_password or re.search(r"(^|[?&])password=", parts.query):
        raise OptionError(
            f"{what}: the database URL holds a password; a password must never be on the command "
            f"line (it shows in the process list and shell history). Remove it from the URL and "
            f"set it in the environment (PGPASSWORD) or in ~/.pgpass "
            f"(a line host:port:database:user:password, chmod 600).")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    schema = (query.pop("schema", ["public"]) or ["public"])[-1] or "public"
    dem = (query.pop("dem", [None]) or [None])[-1]
    rest = urllib.parse.urlencode({k: v[-1] for k, v in query.items()})
    conninfo = urllib.parse.urlunsplit(parts._replace(query=rest))
    try:
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as e:
        raise OptionError(f"{what}: {url} is not a valid PostgreSQL URL ({e}); use "
                          f"postgresql://USER@HOST:PORT/DATABASE?schema=SCHEMA.") from None
    if not info.get("dbname"):
        raise OptionError(f"{what}: {url} names no database; use "
                          f"postgresql://USER@HOST:PORT/DATABASE?schema=SCHEMA.")
    return DbTarget(url=url, conninfo=conninfo, schema=schema, dem=dem,
                    host=str(info.get("host") or os.environ.get("PGHOST") or "localhost"),
                    port=str(info.get("port") or os.environ.get("PGPORT") or "5432"),
                    dbname=str(info["dbname"]),
                    user=str(info.get("user") or os.environ.get("PGUSER") or ""))


def _explain_connect(e: Exception, t: DbTarget, what: str) -> str:
    msg = str(e).strip()
    first = next((ln.strip() for ln in reversed(msg.splitlines()) if ln.strip()), msg)
    where = f"{t.host}:{t.port}"
    low = msg.lower()
    if "password authentication failed" in low or "no password supplied" in low \
            or "fe_sendauth" in low or "authentication failed" in low:
        return (f"{what}: PostgreSQL at {where} refused the credentials of user '{t.user}' for "
                f"database '{t.dbname}' ({first}); check the user name and set the right password "
                f"in PGPASSWORD or in ~/.pgpass (a line {t.host}:{t.port}:{t.dbname}:{t.user}:"
                f"PASSWORD, chmod 600).")
    m = re.search(r'database "([^"]+)" does not exist', msg)
    if m:
        return (f"{what}: database '{m.group(1)}' does not exist on {where}; create it "
                f"(createdb -h {t.host} -p {t.port} {m.group(1)}) or fix the database name in the URL.")
    m = re.search(r'role "([^"]+)" does not exist', msg)
    if m:
        return (f"{what}: user '{m.group(1)}' does not exist on {where}; create the role "
                f"(CREATE ROLE ... LOGIN) or fix the user name in the URL.")
    return (f"{what}: cannot reach the PostgreSQL server at {where} ({first}); check the host and "
            f"port in the URL, that the server runs (pg_isready -h {t.host} -p {t.port}) and that "
            f"it accepts connections from this machine (listen_addresses, pg_hba.conf, firewall).")


def connect(t: DbTarget, *, what: str = "--layers"):
    """A psycopg connection (not autocommit), or a DatabaseError that says what to fix."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(t.conninfo)
    info.setdefault("connect_timeout", 10)
    info.setdefault("application_name", "kaizhou-gis")
    try:
        return psycopg.connect(**info)
    except psycopg.OperationalError as e:
        raise DatabaseError(_explain_connect(e, t, what)) from None


def _check_database(conn, t: DbTarget, *, what: str) -> None:
    """PostGIS installed and the schema present, else a DatabaseError with the fix."""
    with conn.cursor() as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
        if cur.fetchone() is None:
            raise DatabaseError(
                f"{what}: database '{t.dbname}' on {t.host}:{t.port} has no PostGIS extension; "
                f"run `CREATE EXTENSION postgis;` in it as its owner or a superuser (Debian: "
                f"install postgresql-<version>-postgis-3 on the server first).")
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (t.schema,))
        if cur.fetchone() is None:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname !~ '^(pg_|information_schema)' "
                        "ORDER BY 1")
            have = [r[0] for r in cur.fetchall()]
            raise DatabaseError(
                f"{what}: schema '{t.schema}' does not exist in database '{t.dbname}' (schemas: "
                f"{format_ids(have, 8)}); fix ?schema= in the URL or create it "
                f"(`CREATE SCHEMA {t.schema};`).")


# --------------------------------------------------------------------------------------------
# reading layers


@dataclass
class DbLayer:
    """One layer in a database: a table (``schema.table``) or a query."""

    target: DbTarget
    schema: str
    table: str | None = None
    sql: str | None = None

    def describe(self) -> str:
        return f"{self.schema}.{self.table}" if self.table else "SQL query"


def _tables_with_geometry(conn, schema: str) -> dict[str, list[str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind IN ('r','v','m','p','f') ORDER BY 1", (schema,))
        tables = {r[0]: [] for r in cur.fetchall()}
        cur.execute("SELECT f_table_name, f_geometry_column FROM geometry_columns "
                    "WHERE f_table_schema = %s", (schema,))
        for tname, col in cur.fetchall():
            tables.setdefault(tname, []).append(col)
    return tables


def resolve_url(url: Any, names: tuple[str, ...], optional: tuple[str, ...],
                problems: list[str]) -> tuple[dict[str, DbLayer], Path | None, DbTarget]:
    """Layer name -> DbLayer for the tables of ``?schema=`` named after the layers; the DEM path."""
    t = parse_url(url)
    conn = connect(t)
    try:
        _check_database(conn, t, what="--layers")
        tables = _tables_with_geometry(conn, t.schema)
    finally:
        conn.close()
    sources: dict[str, DbLayer] = {}
    for name in names + optional:
        if name in tables:
            sources[name] = DbLayer(t, t.schema, name)
        elif name in names:
            problems.append(
                f"{name}: table {t.schema}.{name} not found in database '{t.dbname}' (tables: "
                f"{format_ids(sorted(tables), 8) or 'none'}); load the layer into it "
                f"(ogr2ogr -f PostgreSQL \"PG:dbname={t.dbname}\" villages.shp -nln "
                f"{t.schema}.{name}), or map the layer to its table in a TOML mapping "
                f"({name} = {{ table = \"...\" }} with database = \"postgresql://...\").")
    dem = Path(t.dem).expanduser() if t.dem else None
    if dem is None:
        problems.append("dem: no DEM given with the database layers; add &dem=/path/to/dem.tif to "
                        "the URL, or a 'dem = \"dem.tif\"' line in a TOML mapping.")
    elif not dem.exists():
        problems.append(f"dem: {dem} (from the URL's dem=) does not exist; fix the path.")
        dem = None
    return sources, dem, t


def toml_source(name: str, spec: dict, default_url: str | None, where: str,
                problems: list[str]) -> DbLayer | None:
    """A TOML mapping entry ``{ table = "..." }`` or ``{ sql = "..." }`` as a DbLayer."""
    extra = set(spec) - {"table", "sql", "database", "crs"}
    if extra:
        problems.append(f"layers: {where}: '{name}' has unknown key(s) {sorted(extra)}; a database "
                        f"layer allows table or sql, database, crs.")
        return None
    if ("table" in spec) == ("sql" in spec):
        problems.append(f"layers: {where}: '{name}' needs exactly one of table = \"...\" or "
                        f"sql = \"SELECT ...\".")
        return None
    url = spec.get("database", default_url)
    if not isinstance(url, str) or not is_db_url(url):
        problems.append(f"layers: {where}: '{name}' reads from a database but no database URL is "
                        f"given; add database = \"postgresql://USER@HOST:PORT/DB?schema=S\" at the "
                        f"top of the mapping or in the entry.")
        return None
    t = parse_url(url, what=f"layers: {where}")
    if "table" in spec:
        table = str(spec["table"])
        schema, _, tname = table.rpartition(".")
        return DbLayer(t, schema or t.schema, tname)
    return DbLayer(t, t.schema, sql=str(spec["sql"]))


def _crs_of_srid(cur, srid: int):
    if not srid:
        return None
    cur.execute("SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s", (srid,))
    row = cur.fetchone()
    if row is None:
        return f"EPSG:{srid}"
    auth, code, wkt = row
    if auth and auth.upper() == "EPSG" and code:
        return f"EPSG:{code}"
    return wkt or f"EPSG:{srid}"


def read_layer(name: str, src: DbLayer) -> gpd.GeoDataFrame:
    """Read one layer from the database as a GeoDataFrame in its own SRID."""
    import psycopg
    from psycopg import sql as S

    t = src.target
    conn = connect(t)
    try:
        with conn.cursor() as cur:
            if src.table is not None:
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (src.schema,))
                if cur.fetchone() is None:
                    raise LayerError(f"{name}: schema '{src.schema}' does not exist in database "
                                     f"'{t.dbname}'; fix the schema of {src.describe()}.")
                tables = _tables_with_geometry(conn, src.schema)
                if src.table not in tables:
                    raise LayerError(
                        f"{name}: table {src.describe()} does not exist in database '{t.dbname}' "
                        f"(tables in {src.schema}: {format_ids(sorted(tables), 8) or 'none'}); "
                        f"load it or fix the table name.")
                from_clause = S.SQL("{}.{}").format(S.Identifier(src.schema), S.Identifier(src.table))
            else:
                from_clause = S.SQL("({}) AS kz_q").format(S.SQL(src.sql.strip().rstrip(";")))
            try:
                cur.execute(S.SQL("SELECT * FROM {} LIMIT 0").format(from_clause))
            except psycopg.Error as e:
                raise LayerError(f"{name}: cannot read {src.describe()} in database '{t.dbname}' "
                                 f"({str(e).strip().splitlines()[0]}); fix the query or the "
                                 f"user's rights (GRANT SELECT).") from None
            desc = cur.description
            cur.execute("SELECT oid FROM pg_type WHERE typname = 'geometry'")
            geom_oid = cur.fetchone()[0]
            cols = [d.name for d in desc]
            geoms = [d.name for d in desc if d.type_code == geom_oid]
            if not geoms:
                conn.rollback()
                raise LayerError(f"{name}: {src.describe()} has no geometry column; give the layer "
                                 f"a PostGIS geometry column.")
            gcol = "geometry" if "geometry" in geoms else ("geom" if "geom" in geoms else geoms[0])
            pk = _primary_key(cur, src) if src.table is not None else []
            keep = [c for c in cols if c not in geoms and not (c in pk and c.lower() in SURROGATE_KEYS
                                                               and len(pk) == 1)]
            order = S.SQL(" ORDER BY {}").format(S.SQL(", ").join(map(S.Identifier, pk))) if pk else S.SQL("")
            q = S.SQL("SELECT {cols}ST_AsBinary({g}), ST_SRID({g}) FROM {f}{o}").format(
                cols=S.SQL("").join(S.SQL("{}, ").format(S.Identifier(c)) for c in keep),
                g=S.Identifier(gcol), f=from_clause, o=order)
            try:
                cur.execute(q)
            except psycopg.Error as e:
                raise LayerError(f"{name}: cannot read {src.describe()}.{gcol} in database "
                                 f"'{t.dbname}' ({str(e).strip().splitlines()[0]}); check the "
                                 f"table and the user's rights (GRANT SELECT).") from None
            rows = cur.fetchall()
            srids = sorted({r[-1] for r in rows if r[-1]})
            declared = _declared_srid(cur, src, gcol)
            if declared:
                srid = declared
            elif len(srids) > 1:
                raise LayerError(f"{name}: {src.describe()}.{gcol} mixes SRIDs {srids}; give the "
                                 f"column one SRID (ST_Transform) or read it with a sql query that "
                                 f"transforms the rows.")
            else:
                srid = srids[0] if srids else 0
            crs = _crs_of_srid(cur, srid)
        conn.rollback()
    finally:
        conn.close()
    data = {c: [r[i] for r in rows] for i, c in enumerate(keep)}
    df = pd.DataFrame(data, columns=keep)
    for c in df.columns:
        if df[c].dtype == object:
            vals = df[c].dropna()
            if len(vals) and all(isinstance(v, __import__("decimal").Decimal) for v in vals):
                df[c] = df[c].map(lambda v: None if v is None else float(v)).astype(float)
    wkb = [None if r[-2] is None else bytes(r[-2]) for r in rows]
    geometry = shapely.from_wkb(np.array(wkb, dtype=object)) if rows else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geometry, crs=crs), crs=crs)
    gdf.attrs["db_columns"] = {c: f"{src.describe()}.{c}" for c in keep}
    return gdf


def _primary_key(cur, src: DbLayer) -> list[str]:
    cur.execute("SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s "
                "ORDER BY array_position(i.indkey, a.attnum)", (src.schema, src.table))
    return [r[0] for r in cur.fetchall()]


def _declared_srid(cur, src: DbLayer, gcol: str) -> int:
    if src.table is None:
        return 0
    cur.execute("SELECT srid FROM geometry_columns WHERE f_table_schema = %s AND f_table_name = %s "
                "AND f_geometry_column = %s", (src.schema, src.table, gcol))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] else 0


def name_columns(problems: list[str], start: int, name: str, src: DbLayer) -> None:
    """Make the problems found for a database layer name ``schema.table.column`` too."""
    where = src.describe()
    for i in range(start, len(problems)):
        p = problems[i]
        m = re.match(rf"^{re.escape(name)}\.(\w+)(\s*:|\s)", p)
        if m and src.table is not None:
            problems[i] = f"{name}.{m.group(1)} ({where}.{m.group(1)})" + p[m.end(1):]
        elif p.startswith(f"{name}:") and where not in p:
            problems[i] = f"{name} ({where}):" + p[len(name) + 1:]


# --------------------------------------------------------------------------------------------
# result tables


@dataclass
class ResultTable:
    """One result table: its name in the database / .gdb, the frame and where it comes from."""

    name: str
    frame: pd.DataFrame
    product: str     # e.g. "relocation/settlements.gpkg" or "access/access.gpkg:villages"
    step: str
    title: str
    labels_zh: dict[str, str] = field(default_factory=dict)


def _table_name(rel: str, layer: str | None = None) -> str:
    p = Path(rel)
    folder = p.parent.name or "report"
    stem = p.stem
    if layer is None:
        base = f"{folder}_{stem}" if folder != stem else stem
    elif layer == stem or stem == folder:
        base = f"{folder}_{layer}"
    elif layer.startswith(folder + "_"):
        base = layer
    else:
        base = f"{folder}_{stem}_{layer}"
    return re.sub(r"[^a-z0-9_]", "_", base.lower())[:55]


def _scorecard_table(sc: dict) -> pd.DataFrame:
    """The access scorecard (district, before/after the works) as measure rows."""
    rows = []
    before, after = sc.get("before") or {}, sc.get("after") or {}
    for k, v in before.items():
        if k == "per_township":
            continue
        if isinstance(v, dict):
            for k2, v2 in v.items():
                rows.append({"measure": f"{k}.{k2}", "before": v2, "after": (after.get(k) or {}).get(k2)})
        else:
            rows.append({"measure": k, "before": v, "after": after.get(k)})
    df = pd.DataFrame(rows, columns=["measure", "before", "after"])

    def number(v):
        if isinstance(v, (bool, np.bool_)):
            return float(v)
        return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else None

    def text(v):
        return None if v is None or number(v) is not None else (
            json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v))

    for c in ("before", "after"):  # numbers as numbers; anything else (notes) as text
        df[f"{c}_text"] = df[c].map(text)
        df[c] = df[c].map(number).astype(float)
    df.attrs["labels_zh"] = {"measure": "指标", "before": "工程前", "after": "工程后",
                             "before_text": "工程前（文字）", "after_text": "工程后（文字）"}
    return df


def result_tables(ctx, outcomes) -> list[ResultTable]:
    """Every table the successful steps of a run wrote (CSV, GeoPackage layers, XLSX-only sheets,
    the access and plan scorecards), one per name; a GeoPackage layer replaces the CSV of the same
    table (same rows, plus the geometry)."""
    from kaizhou_gis.pipeline import STEPS

    titles = {s.name: s.title for s in STEPS}
    out: dict[str, ResultTable] = {}

    def add(name, frame, rel, step, replace=False):
        if not isinstance(frame, pd.DataFrame):
            return
        if name in out and not replace:
            return
        out[name] = ResultTable(name, frame, rel, step, titles.get(step, step),
                                dict(frame.attrs.get("labels_zh", {}) or {}))

    for oc in outcomes:
        if oc.status != "ok" or oc.name not in ctx.results:
            continue
        res = ctx.results[oc.name]
        for rel, obj in res.files.items():
            ext = Path(rel).suffix.lower()
            if ext == ".csv":
                add(_table_name(rel), obj, rel, oc.name)
            elif ext == ".gpkg":
                layers = obj if isinstance(obj, dict) else {Path(rel).stem: obj}
                for lname, gdf in layers.items():
                    name = _table_name(rel, lname if isinstance(obj, dict) else None)
                    add(name, gdf, f"{rel}:{lname}" if isinstance(obj, dict) else rel, oc.name,
                        replace=True)
        for rel, obj in res.files.items():
            if Path(rel).suffix.lower() == ".xlsx" and isinstance(obj, dict):
                for sheet, frame in obj.items():
                    add(_table_name(str(Path(rel).parent / sheet)), frame, f"{rel}:{sheet}", oc.name)
            elif rel == "access/scorecard.json" and isinstance(obj, dict):
                add("access_scorecard", _scorecard_table(obj), rel, oc.name)
            elif rel == "report.json" and isinstance(obj, dict):
                ind = pd.DataFrame(obj.get("indicators") or [])
                if len(ind):
                    ind.attrs["labels_zh"] = {"id": "序号", "name_zh": "指标", "name_en": "指标（英文）",
                                              "unit": "单位", "status": "状态"}
                    add("report_indicators", ind, f"{rel}:indicators", oc.name)
                tw = getattr(ctx.results[oc.name].data, "townships", None)
                if isinstance(tw, pd.DataFrame):
                    add("report_townships", tw, f"{rel}:townships", oc.name)
    return list(out.values())


def _plain_value(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple, set)):
        return "; ".join(map(str, v))
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _column_kind(s: pd.Series) -> str:
    """bool, int, float, time or text, as the CSV would show it."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "int"
    if pd.api.types.is_float_dtype(s.dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "time"
    vals = [v for v in s.tolist() if _plain_value(v) is not None]
    if vals and all(isinstance(v, (bool, np.bool_)) for v in vals):
        return "bool"
    if vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in vals):
        return "int"
    if vals and all(isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, (bool, np.bool_)) for v in vals):
        return "float"
    return "text"


_PG_TYPES = {"bool": "boolean", "int": "bigint", "float": "double precision",
             "time": "timestamptz", "text": "text"}


def _frame_columns(rt: ResultTable):
    """(columns, geometry column name or None) of a result table."""
    df = rt.frame
    gname = df.geometry.name if isinstance(df, gpd.GeoDataFrame) and df.geometry.name in df.columns else None
    cols = [c for c in df.columns if c != gname and str(c) != "geometry"]
    return cols, gname


def _primary_key_for(df: pd.DataFrame, cols: list[str]) -> str:
    for k in NATURAL_KEYS:
        if k in cols:
            s = df[k]
            if len(s) and s.notna().all() and s.astype(str).is_unique:
                return k
    return "row_no"


def _geometry_type(gs: gpd.GeoSeries) -> str:
    types = set(gs.dropna().geom_type.unique()) - {None}
    return types.pop() if len(types) == 1 else "Geometry"


def _comment_column(col: str, labels: dict[str, str]) -> str:
    zh = labels.get(col)
    return f"{zh} / {col}" if zh else col


def status_text(status: dict) -> str:
    """The run's data status in one bilingual line (:mod:`kaizhou_gis.provenance` wording)."""
    if not status.get("synthetic"):
        return "无合成数据 / no synthesized input"
    return f"{status['label_zh']} / {status['label_en']}"


def run_manifest(ctx, outcomes, *, started: _dt.datetime, out_dir: str | Path | None = None,
                 command: str | None = None) -> dict:
    """What the ``runs`` table records about a run: the inputs record and data status of
    :mod:`kaizhou_gis.manifest` / :mod:`kaizhou_gis.provenance`, and this run's entries of
    ``<out>/manifest.json`` (files with their hashes)."""
    from kaizhou_gis import __version__, manifest

    inputs = ctx.inputs
    status = ctx.data_status
    steps = {o.name: o.status for o in outcomes}
    entries = {}
    if out_dir is not None:
        recorded = manifest.read_manifest(out_dir).get("steps", {})
        entries = {k: v for k, v in recorded.items() if k.split("@")[0] in steps or k in steps}
    params = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
              for k, v in sorted(ctx.options.items()) if k not in ("tianditu_key",)}
    return {
        "started_at": started, "tool_version": __version__,
        "command": command or manifest.command_line(),
        "layers": str(ctx.layers.source), "plan_name": inputs["plan"]["name"],
        "plan_file": inputs["plan"]["path"], "plan_sha256": inputs["plan"]["file_sha256"],
        "parameters": params | {"overrides": inputs["plan"]["overrides"]},
        "inputs": inputs, "steps": steps,
        "data_status": status_text(status), "synthesized_layers": list(status["synthetic_layers"]),
        "status": status, "step_entries": entries,
        "notes": [str(n) for n in (ctx.layers.notes or [])],
    }


# --------------------------------------------------------------------------------------------
# writing to PostGIS


def check_writable(url: Any) -> DbTarget:
    """Before a run: the server answers, PostGIS is there, the schema exists and the user may
    create tables in it. Raises DatabaseError naming what is wrong and the fix."""
    t = parse_url(url, what="--out-db")
    conn = connect(t, what="--out-db")
    try:
        _check_database(conn, t, what="--out-db")
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, has_schema_privilege(current_user, %s, 'CREATE'), "
                        "has_schema_privilege(current_user, %s, 'USAGE')", (t.schema, t.schema))
            user, can_create, can_use = cur.fetchone()
        if not (can_create and can_use):
            raise DatabaseError(
                f"--out-db: user '{user}' may not create tables in schema '{t.schema}' of database "
                f"'{t.dbname}'; ask its owner to run `GRANT USAGE, CREATE ON SCHEMA {t.schema} TO "
                f"{user};`, or write to a schema of your own. Nothing was written.")
        conn.rollback()
    finally:
        conn.close()
    return t


def _create_runs(cur, schema: str) -> None:
    from psycopg import sql as S

    cur.execute(S.SQL(
        "CREATE TABLE IF NOT EXISTS {}.{} (run_id bigserial PRIMARY KEY, started_at timestamptz NOT NULL, "
        "finished_at timestamptz NOT NULL, tool_version text, command text, layers text, "
        "plan_name text, plan_file text, plan_sha256 text, parameters jsonb, inputs jsonb, "
        "steps jsonb, data_status text, synthesized_layers text[], tables text[], manifest jsonb)"
    ).format(S.Identifier(schema), S.Identifier(RUNS_TABLE)))
    comments = {
        None: "kaizhou-gis 运行记录（每次写入一行）/ kaizhou-gis runs: one row per run written here",
        "run_id": "运行编号 / run id", "started_at": "开始时间 / started at",
        "finished_at": "写入时间 / written at", "tool_version": "程序版本 / tool version",
        "command": "命令 / command", "layers": "输入图层 / input layers",
        "plan_name": "规划 / plan", "plan_file": "规划文件 / plan file",
        "plan_sha256": "规划文件指纹 / plan file SHA-256",
        "parameters": "参数 / parameters", "inputs": "输入（行数、坐标系、指纹）/ inputs (rows, CRS, fingerprints)",
        "steps": "步骤状态 / step status", "data_status": "数据状态（合成数据）/ data status (synthesized data)",
        "synthesized_layers": "含合成数据的图层 / layers with synthesized rows",
        "tables": "本次写入的表 / tables written by this run", "manifest": "完整清单 / full manifest",
    }
    for col, text in comments.items():
        if col is None:
            cur.execute(S.SQL("COMMENT ON TABLE {}.{} IS {}").format(
                S.Identifier(schema), S.Identifier(RUNS_TABLE), S.Literal(text)))
        else:
            cur.execute(S.SQL("COMMENT ON COLUMN {}.{}.{} IS {}").format(
                S.Identifier(schema), S.Identifier(RUNS_TABLE), S.Identifier(col), S.Literal(text)))


def _write_table(cur, schema: str, rt: ResultTable, srid: int, run_note: str) -> None:
    from psycopg import sql as S

    df = rt.frame
    cols, gname = _frame_columns(rt)
    kinds = {c: _column_kind(df[c]) for c in cols}
    pk = _primary_key_for(df, cols)
    tmp = rt.name + _NEW
    defs = [S.SQL("row_no bigint NOT NULL")]
    for c in cols:
        defs.append(S.SQL("{} {}").format(S.Identifier(str(c)), S.SQL(_PG_TYPES[kinds[c]])))
    if gname:
        gtype = _geometry_type(df.geometry)
        defs.append(S.SQL("geometry geometry({}, {})").format(S.SQL(gtype), S.Literal(srid)))
    defs.append(S.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
        S.Identifier(tmp + "_pkey"), S.Identifier(pk)))
    cur.execute(S.SQL("CREATE TABLE {}.{} ({})").format(
        S.Identifier(schema), S.Identifier(tmp), S.SQL(", ").join(defs)))
    names = [S.Identifier("row_no")] + [S.Identifier(str(c)) for c in cols] + \
        ([S.Identifier("geometry")] if gname else [])
    geoms = None
    if gname:
        gs = df.geometry.values
        geoms = shapely.to_wkb(gs, hex=True, include_srid=False)
    converters = [(_to_bool if kinds[c] == "bool" else _to_int if kinds[c] == "int" else _plain_value)
                  for c in cols]
    columns = [df[c].tolist() for c in cols]
    with cur.copy(S.SQL("COPY {}.{} ({}) FROM STDIN").format(
            S.Identifier(schema), S.Identifier(tmp), S.SQL(", ").join(names))) as cp:
        for i in range(len(df)):
            row = [i + 1] + [conv(col[i]) for conv, col in zip(converters, columns)]
            if gname:
                g = geoms[i]
                row.append(None if g is None else f"SRID={srid};{g}")
            cp.write_row(row)
    if gname:
        cur.execute(S.SQL("CREATE INDEX {} ON {}.{} USING gist (geometry)").format(
            S.Identifier(tmp + "_geom_idx"), S.Identifier(schema), S.Identifier(tmp)))
    title = rt.title if "/" in rt.title else f"{rt.title}"
    cur.execute(S.SQL("COMMENT ON TABLE {}.{} IS {}").format(
        S.Identifier(schema), S.Identifier(tmp),
        S.Literal(f"{title}: {rt.product} — {run_note}")))
    labels = dict(rt.labels_zh)
    labels.setdefault("geometry", "几何")
    comments = {"row_no": "行号（与CSV相同的顺序）/ row_no: row order of the CSV"}
    comments.update({str(c): _comment_column(str(c), labels) for c in cols})
    if gname:
        comments["geometry"] = f"几何（SRID {srid}）/ geometry (SRID {srid})"
    for col, text in comments.items():
        cur.execute(S.SQL("COMMENT ON COLUMN {}.{}.{} IS {}").format(
            S.Identifier(schema), S.Identifier(tmp), S.Identifier(col), S.Literal(text)))


def _to_bool(v):
    v = _plain_value(v)
    return None if v is None else bool(v)


def _to_int(v):
    v = _plain_value(v)
    return None if v is None else int(v)


def write_postgis(url: Any, tables: list[ResultTable], manifest: dict, *, srid: int) -> dict:
    """Write the result tables and the ``runs`` row in one transaction (see the module docstring).

    Returns ``{"run_id": ..., "tables": [...], "rows": {...}}``. Raises DatabaseError (nothing
    written) when the server, the rights or the data refuse.
    """
    import psycopg
    from psycopg import sql as S
    from psycopg.types.json import Jsonb

    t = parse_url(url, what="--out-db")
    conn = connect(t, what="--out-db")
    schema = t.schema
    try:
        with conn.transaction():
            with conn.cursor() as cur:
                _check_database(conn, t, what="--out-db")
                _create_runs(cur, schema)
                # one writer at a time per schema: a second run waits here for the first
                cur.execute(S.SQL("LOCK TABLE {}.{} IN SHARE ROW EXCLUSIVE MODE").format(
                    S.Identifier(schema), S.Identifier(RUNS_TABLE)))
                cur.execute(S.SQL("SELECT nextval(pg_get_serial_sequence({}, 'run_id'))").format(
                    S.Literal(f"{_quote_ident(schema)}.{RUNS_TABLE}")))
                run_id = int(cur.fetchone()[0])
                note = (f"kaizhou-gis run {run_id} ({manifest['started_at']:%Y-%m-%d %H:%M UTC}); "
                        f"{manifest['data_status']}")
                # never replace a table kaizhou-gis did not write (a user's own table)
                cur.execute(S.SQL("SELECT DISTINCT unnest(tables) FROM {}.{}").format(
                    S.Identifier(schema), S.Identifier(RUNS_TABLE)))
                ours = {r[0] for r in cur.fetchall()}
                cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
                foreign = sorted({r[0] for r in cur.fetchall()} & {rt.name for rt in tables} - ours)
                if foreign:
                    raise DatabaseError(
                        f"--out-db: schema '{schema}' already holds table(s) "
                        f"{format_ids(foreign)} that kaizhou-gis did not write (not in "
                        f"{schema}.{RUNS_TABLE}); write to another schema, or rename or drop "
                        f"those tables. Nothing was written.")
                # leftovers of a run that died between CREATE and COMMIT cannot exist (the
                # transaction rolled back), but a table with our temporary name might: drop it
                for rt in tables:
                    cur.execute(S.SQL("DROP TABLE IF EXISTS {}.{}").format(
                        S.Identifier(schema), S.Identifier(rt.name + _NEW)))
                    _write_table(cur, schema, rt, srid, note)
                # the swap: old tables out, new ones in (locks held only from here to COMMIT)
                for rt in tables:
                    cur.execute(S.SQL("DROP TABLE IF EXISTS {}.{}").format(
                        S.Identifier(schema), S.Identifier(rt.name)))
                    cur.execute(S.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
                        S.Identifier(schema), S.Identifier(rt.name + _NEW), S.Identifier(rt.name)))
                    for suffix in ("_pkey", "_geom_idx"):
                        cur.execute(S.SQL("ALTER INDEX IF EXISTS {}.{} RENAME TO {}").format(
                            S.Identifier(schema), S.Identifier(rt.name + _NEW + suffix),
                            S.Identifier(rt.name + suffix)))
                names = [rt.name for rt in tables]
                man = {k: (v.isoformat() if isinstance(v, _dt.datetime) else v)
                       for k, v in manifest.items()}
                man["tables"] = {rt.name: {"rows": int(len(rt.frame)), "product": rt.product}
                                 for rt in tables}
                cur.execute(S.SQL(
                    "INSERT INTO {}.{} (run_id, started_at, finished_at, tool_version, command, "
                    "layers, plan_name, plan_file, plan_sha256, parameters, inputs, steps, "
                    "data_status, synthesized_layers, tables, manifest) VALUES "
                    "(%s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(
                        S.Identifier(schema), S.Identifier(RUNS_TABLE)),
                    (run_id, manifest["started_at"], manifest["tool_version"], manifest["command"],
                     manifest["layers"], manifest["plan_name"], manifest["plan_file"],
                     manifest["plan_sha256"], Jsonb(manifest["parameters"]), Jsonb(manifest["inputs"]),
                     Jsonb(manifest["steps"]), manifest["data_status"],
                     manifest["synthesized_layers"], names, Jsonb(_jsonable(man))))
    except psycopg.errors.InsufficientPrivilege as e:
        raise DatabaseError(
            f"--out-db: no permission in schema '{schema}' of database '{t.dbname}' "
            f"({str(e).strip().splitlines()[0]}); the user needs CREATE on the schema and to own "
            f"the earlier result tables (GRANT USAGE, CREATE ON SCHEMA {schema} TO {t.user or 'the user'}; "
            f"ALTER TABLE ... OWNER TO ...). Nothing was written.") from None
    except psycopg.OperationalError as e:
        raise DatabaseError(
            f"--out-db: the connection to {t.host}:{t.port} failed during the write "
            f"({str(e).strip().splitlines()[0]}); nothing was written (the previous results are "
            f"intact). Run again when the server is back.") from None
    except psycopg.Error as e:
        raise DatabaseError(
            f"--out-db: PostgreSQL refused the write ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0]}); nothing was written.") from None
    finally:
        conn.close()
    return {"run_id": run_id, "tables": names, "rows": {rt.name: len(rt.frame) for rt in tables},
            "target": t.describe()}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _jsonable(o):
    return json.loads(json.dumps(o, ensure_ascii=False, default=str,
                                 allow_nan=True).replace("NaN", "null"))


# --------------------------------------------------------------------------------------------
# File Geodatabase


def gdb_writable() -> tuple[bool, str]:
    """Whether the GDAL in use can write a File Geodatabase (OpenFileGDB, GDAL >= 3.6)."""
    import pyogrio

    mode = pyogrio.list_drivers().get("OpenFileGDB", "")
    version = pyogrio.__gdal_version_string__
    ok = "w" in mode
    return ok, (f"GDAL {version}: OpenFileGDB " + ("can write" if ok else
                "cannot write (needs GDAL >= 3.6; upgrade pyogrio)"))


def _gdb_field_name(c: str) -> str:
    n = re.sub(r"\W", "_", str(c))
    if not re.match(r"^[A-Za-z]", n):
        n = "f_" + n
    return n[:64]


def write_gdb(tables: list[ResultTable], out_dir: str | Path) -> Path:
    """Write the result tables into ``out_dir/results.gdb``: built beside it in a hidden folder
    and moved in, so an interrupted run leaves the previous results.gdb whole."""
    import pyogrio

    ok, why = gdb_writable()
    if not ok:
        raise OptionError(f"--format gdb: {why}; write GeoPackage instead (the default outputs).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(".results.*.tmp.gdb"):  # left by a killed run
        shutil.rmtree(old, ignore_errors=True)
    target = out_dir / "results.gdb"
    tmp = out_dir / f".results.{secrets.token_hex(4)}.tmp.gdb"  # OpenFileGDB wants the .gdb
    # 64-bit integers (only where a value needs them) need ArcGIS Pro 3.2 or later
    big = {"layer_options": {"TARGET_ARCGIS_VERSION": "ARCGIS_PRO_3_2_OR_LATER"}}
    try:
        for rt in tables:
            cols, gname = _frame_columns(rt)
            df = rt.frame
            plain = pd.DataFrame({"row_no": np.arange(1, len(df) + 1, dtype="int32")})
            for c in cols:
                kind = _column_kind(df[c])
                vals = [_plain_value(v) for v in df[c].tolist()]
                if kind == "bool":
                    plain[_gdb_field_name(c)] = pd.array([None if v is None else bool(v) for v in vals],
                                                         dtype="boolean")
                elif kind == "int":  # 32-bit when the values fit: every ArcGIS reads those
                    ints = pd.array([None if v is None else int(v) for v in vals], dtype="Int64")
                    fits = ints.dropna().size == 0 or (abs(ints.dropna()).max() < 2**31)
                    plain[_gdb_field_name(c)] = ints.astype("Int32") if fits else ints
                elif kind == "float":
                    plain[_gdb_field_name(c)] = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").astype(float)
                else:
                    plain[_gdb_field_name(c)] = pd.Series(
                        [None if v is None else str(v) for v in vals], dtype=object)
            if gname:
                frame = gpd.GeoDataFrame(plain, geometry=gpd.GeoSeries(df.geometry.values, crs=df.crs))
                gtype = _geometry_type(frame.geometry)
                kw = {"geometry_type": gtype} if gtype != "Geometry" else {"geometry_type": "Unknown"}
                if any(str(frame[c].dtype) == "Int64" for c in plain.columns):
                    kw.update(big)
                pyogrio.write_dataframe(frame, tmp, layer=rt.name, driver="OpenFileGDB",
                                        promote_to_multi=False, **kw)
            else:
                kw = big if any(str(plain[c].dtype) == "Int64" for c in plain.columns) else {}
                pyogrio.write_dataframe(plain, tmp, layer=rt.name, driver="OpenFileGDB", **kw)
        old = None
        if target.exists():
            old = out_dir / f".results.{secrets.token_hex(4)}.tmp.gdb"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_run_tables(ctx, outcomes, out_dir: str | Path, *, out_db: str | None = None,
                     formats=(), started: _dt.datetime | None = None) -> dict:
    """After a run: its result tables into ``out_dir/results.gdb`` (``"gdb" in formats``) and
    into PostGIS (``out_db``). Returns ``{"n_tables", "gdb": path, "postgis": {...}}``."""
    started = started or _dt.datetime.now(_dt.timezone.utc)
    tables = result_tables(ctx, outcomes)
    done: dict[str, Any] = {"n_tables": len(tables)}
    if "gdb" in formats:
        done["gdb"] = write_gdb(tables, out_dir)
    if out_db:
        manifest = run_manifest(ctx, outcomes, started=started, out_dir=out_dir)
        epsg = ctx.layers.crs.to_epsg() if ctx.layers.crs is not None else None
        try:
            done["postgis"] = write_postgis(out_db, tables, manifest, srid=int(epsg or 0))
        except DatabaseError as e:
            raise DatabaseError(f"{e} The file outputs in {Path(out_dir).resolve()} are "
                                f"complete.") from None
    return done
