"""Reading layers from PostGIS tables or SQL queries (URL or layers.toml mapping)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.dbio.connect import SURROGATE_KEYS, DbTarget, _check_database, connect, is_db_url, parse_url
from kaizhou_gis.errors import LayerError, format_ids


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
        tables: dict[str, list[str]] = {r[0]: [] for r in cur.fetchall()}
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
                assert src.sql is not None  # a source is a table or an SQL query
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
