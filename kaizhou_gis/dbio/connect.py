"""PostGIS connection URLs (DSN parsing, passwords from the environment or ~/.pgpass) and connecting."""
from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from kaizhou_gis.errors import DatabaseError, OptionError, format_ids

DB_SCHEMES = ("postgresql://", "postgres://")


#: Surrogate keys added by loaders (ogr2ogr, shp2pgsql, ArcGIS); used for row order, not kept.
SURROGATE_KEYS = ("fid", "ogc_fid", "gid", "objectid")


#: Columns tried, in order, as a result table's primary key (the first unique non-null one).
NATURAL_KEYS = ("settlement_id", "village_code", "site_id", "work_id", "project_id", "edge_id",
                "township_code", "id", "year")


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
        # conninfo_to_dict gives str values; psycopg.connect takes them as libpq keywords
        # (its stub types the named keywords only)
        return psycopg.connect(**info)  # type: ignore[arg-type]
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
