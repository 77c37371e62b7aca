"""Writing result tables into PostGIS: staging tables swapped in one transaction, the runs table."""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import shapely

from kaizhou_gis.dbio.connect import DbTarget, _check_database, connect, parse_url
from kaizhou_gis.dbio.tables import (
    _PG_TYPES,
    ResultTable,
    _column_kind,
    _comment_column,
    _frame_columns,
    _geometry_type,
    _plain_value,
    _primary_key_for,
)
from kaizhou_gis.errors import DatabaseError, format_ids

RUNS_TABLE = "runs"


_NEW = "__kz_new"


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
    defs: list[S.Composable] = [S.SQL("row_no bigint NOT NULL")]
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
                assert geoms is not None  # set with gname
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

    t = parse_url(url, what="--out-db")
    conn = connect(t, what="--out-db")
    schema = t.schema
    try:
        with conn.transaction():
            with conn.cursor() as cur:
                _check_database(conn, t, what="--out-db")
                _create_runs(cur, schema)
                run_id = _next_run_id(cur, schema)
                note = (f"kaizhou-gis run {run_id} ({manifest['started_at']:%Y-%m-%d %H:%M UTC}); "
                        f"{manifest['data_status']}")
                _refuse_foreign_tables(cur, schema, tables)
                _stage_and_swap(cur, schema, tables, srid, note)
                names = [rt.name for rt in tables]
                _insert_run(cur, schema, run_id, manifest, tables)
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


def _next_run_id(cur: Any, schema: str) -> int:
    """Lock the runs table (one writer at a time per schema: a second run waits here for the
    first) and draw the next run id."""
    from psycopg import sql as S

    cur.execute(S.SQL("LOCK TABLE {}.{} IN SHARE ROW EXCLUSIVE MODE").format(
        S.Identifier(schema), S.Identifier(RUNS_TABLE)))
    cur.execute(S.SQL("SELECT nextval(pg_get_serial_sequence({}, 'run_id'))").format(
        S.Literal(f"{_quote_ident(schema)}.{RUNS_TABLE}")))
    return int(cur.fetchone()[0])


def _refuse_foreign_tables(cur: Any, schema: str, tables: list[ResultTable]) -> None:
    """Never replace a table kaizhou-gis did not write (a user's own table)."""
    from psycopg import sql as S

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


def _stage_and_swap(cur: Any, schema: str, tables: list[ResultTable], srid: int, note: str) -> None:
    """Write every table under a temporary name, then swap them in for the old ones."""
    from psycopg import sql as S

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


def _insert_run(cur: Any, schema: str, run_id: int, manifest: dict, tables: list[ResultTable]) -> None:
    """The run's row in the runs table: its manifest and the tables it wrote."""
    from psycopg import sql as S
    from psycopg.types.json import Jsonb

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


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _jsonable(o):
    return json.loads(json.dumps(o, ensure_ascii=False, default=str,
                                 allow_nan=True).replace("NaN", "null"))
