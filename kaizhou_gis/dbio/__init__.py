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

from kaizhou_gis.dbio.connect import DB_SCHEMES, NATURAL_KEYS, SURROGATE_KEYS, DbTarget, connect, is_db_url, parse_url
from kaizhou_gis.dbio.gdb import gdb_writable, write_gdb
from kaizhou_gis.dbio.read import DbLayer, name_columns, read_layer, resolve_url, toml_source
from kaizhou_gis.dbio.runs import write_run_tables
from kaizhou_gis.dbio.tables import ResultTable, _table_name, result_tables, run_manifest, status_text
from kaizhou_gis.dbio.write import RUNS_TABLE, check_writable, write_postgis

#: the names other modules, tests and users import from the package
__all__ = [
    'DB_SCHEMES', 'DbLayer', 'DbTarget', 'NATURAL_KEYS', 'RUNS_TABLE', 'ResultTable',
    'SURROGATE_KEYS', '_table_name', 'check_writable', 'connect', 'gdb_writable', 'is_db_url',
    'name_columns', 'parse_url', 'read_layer', 'resolve_url', 'result_tables', 'run_manifest',
    'status_text', 'toml_source', 'write_gdb', 'write_postgis', 'write_run_tables'
]
