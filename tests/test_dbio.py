"""Layers from PostGIS and File Geodatabases; results into PostGIS and results.gdb.

The PostGIS tests run against a real server: the one ``KAIZHOU_TEST_PG_DSN`` names (``.ci/run``
starts one), else a throwaway cluster started here (tests/pgserver.py); they are skipped with the
reason where neither is possible. The File Geodatabase tests need only GDAL (pyogrio).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from kaizhou_gis.cli import main
from kaizhou_gis.layers import DEFAULT_LAYERS_DIR, load_layers
from kaizhou_gis.pipeline import Context, run_steps
from kaizhou_gis.plan import load_plan

sys.path.insert(0, str(Path(__file__).parent))
import pgserver  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GPKG = DEFAULT_LAYERS_DIR / "kaizhou.gpkg"
DEM = DEFAULT_LAYERS_DIR / "dem.tif"
STEPS = ["industry", "access", "relocation", "report"]
TABLE_DIRS = ("industry", "access", "relocation")
PW = "kz-" + secrets.token_hex(6)


# --------------------------------------------------------------------------------------------
# fixtures


def _run_api(layers_path, out_dir):
    plan = load_plan(None)
    layers = load_layers(layers_path, plan=plan)
    ctx = Context(layers=layers, plan=plan, options={"header": "en", "township": None})
    outcomes = run_steps(ctx, STEPS, out_dir)
    assert all(o.status == "ok" for o in outcomes), [(o.name, o.message) for o in outcomes]
    return ctx, outcomes


@pytest.fixture(scope="module")
def gpkg_run(shipped_run):
    """The reference outputs: the table-producing steps' files (industry/, access/, relocation/,
    report.json) of the session's ``kaizhou-gis run`` on the shipped GeoPackage (read only).
    ``run`` writes them as these four steps alone do (the same steps on the same layers and
    plan); only report.json's ``inputs`` (what else is in the folder) differs, which the
    comparisons leave out."""
    return shipped_run.out


@pytest.fixture(scope="module")
def pg_admin():
    """Superuser DSN of a PostgreSQL server with PostGIS (skip with the reason when none)."""
    psycopg = pytest.importorskip("psycopg")
    dsn = os.environ.get("KAIZHOU_TEST_PG_DSN")
    base = None
    if not dsn:
        base = Path(tempfile.mkdtemp(prefix="kz-pg-"))
        try:
            dsn = pgserver.start(base)
        except pgserver.Unavailable as e:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip(f"no PostgreSQL test server: {e}")
    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as e:
        pytest.skip(f"PostgreSQL test server not reachable ({str(e).strip()[:200]})")
    yield dsn
    if base is not None:
        pgserver.stop(base)
        shutil.rmtree(base, ignore_errors=True)


class DB:
    """A fresh database with PostGIS, a login role and the shipped layers in schema src."""

    def __init__(self, admin_dsn: str):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        info = conninfo_to_dict(admin_dsn)
        self.host, self.port = info.get("host", "127.0.0.1"), str(info.get("port", 5432))
        self.name = "kz_" + secrets.token_hex(4)
        self.user = "kz_" + secrets.token_hex(4)
        self.admin_dsn = admin_dsn
        with psycopg.connect(admin_dsn, autocommit=True) as c:
            c.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{PW}'")
            c.execute(f"CREATE DATABASE {self.name} OWNER {self.user}")
        self.admin = make_conninfo(admin_dsn, dbname=self.name)
        with psycopg.connect(self.admin) as c:
            c.execute("CREATE EXTENSION postgis")
            for s in ("src", "res"):
                c.execute(f"CREATE SCHEMA {s} AUTHORIZATION {self.user}")
            c.commit()
        with psycopg.connect(make_conninfo(self.admin, user=self.user, password=PW)) as c:
            from pgload import load_gpkg
            self.loaded = load_gpkg(c, GPKG, "src")

    def url(self, schema, *, user=None, dem=True, db=None, port=None):
        u = (f"postgresql://{user or self.user}@{self.host}:{port or self.port}/{db or self.name}"
             f"?schema={schema}")
        return u + (f"&dem={DEM}" if dem else "")

    def connect(self):
        import psycopg
        return psycopg.connect(self.admin)

    def query(self, q, args=()):
        with self.connect() as c:
            return c.execute(q, args).fetchall()


@pytest.fixture(scope="module")
def db(pg_admin):
    return DB(pg_admin)


@pytest.fixture()
def pgenv(monkeypatch, tmp_path):
    """The password in PGPASSWORD (never in a URL); no ~/.pgpass of the machine interferes."""
    monkeypatch.setenv("PGPASSWORD", PW)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    return {"PGPASSWORD": PW, "PGPASSFILE": str(tmp_path / "no-pgpass")}


def _cli(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


# --------------------------------------------------------------------------------------------
# comparing tables


def _text(v) -> str:
    """A value as the CSV shows it."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def _num(v) -> str:
    """_text, with whole numbers written without a decimal point."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return _text(v)


def _csv(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _compare_file_outputs(a: Path, b: Path, *, tol_m: float = 1e-6) -> int:
    """Every CSV and GeoPackage layer of the table steps equal in a and b (geometries within
    ``tol_m`` metres); returns the rows compared."""
    rows = 0
    for d in TABLE_DIRS:
        for f in sorted((a / d).glob("*.csv")):
            x, y = _csv(f), _csv(b / d / f.name)
            pd.testing.assert_frame_equal(x, y, obj=f"{d}/{f.name}")
            rows += len(x)
        for f in sorted((a / d).glob("*.gpkg")):
            for layer, _ in pyogrio.list_layers(f):
                x = pyogrio.read_dataframe(f, layer=layer)
                y = pyogrio.read_dataframe(b / d / f.name, layer=layer)
                pd.testing.assert_frame_equal(pd.DataFrame(x.drop(columns="geometry")),
                                              pd.DataFrame(y.drop(columns="geometry")),
                                              obj=f"{d}/{f.name}:{layer}")
                tol = tol_m if x.crs is None or x.crs.is_projected else tol_m / 1e5
                assert shapely.equals_exact(x.geometry.values, y.geometry.values, tol).all(), layer
                rows += len(x)
    return rows


def _db_table(conn, schema, table):
    cur = conn.execute(f'SELECT * FROM {schema}."{table}" ORDER BY row_no')
    cols = [d.name for d in cur.description]
    return cols, cur.fetchall()


# --------------------------------------------------------------------------------------------
# PostGIS


def test_run_from_postgis_into_postgis_matches_the_file_outputs(db, pgenv, gpkg_run, tmp_path):
    # the table-producing steps through the API (the CLI's --out-db and --format gdb go through
    # the same dbio.write_run_tables; the CLI is exercised by the tests below)
    import json

    from kaizhou_gis.dbio import write_run_tables

    out = tmp_path / "out"
    ctx, outcomes = _run_api(db.url("src"), out)
    assert ctx.layers.source == db.url("src", dem=False)
    done = write_run_tables(ctx, outcomes, out, out_db=db.url("res", dem=False), formats=("gdb",))
    assert done["postgis"]["rows"]["relocation_settlements"] == 1823
    # 1. the run from the database gives the same outputs as the run from the GeoPackage
    compared = _compare_file_outputs(gpkg_run, out)
    assert compared > 10_000
    # 2. every result table read back equals the file it came from, row by row
    with db.connect() as c:
        run_id, tables, status, synth, inputs = c.execute(
            "SELECT run_id, tables, data_status, synthesized_layers, inputs FROM res.runs "
            "ORDER BY run_id DESC LIMIT 1").fetchone()
        for must in ("relocation_settlements", "relocation_candidates", "relocation_villages",
                     "relocation_townships", "relocation_sites", "relocation_assignment",
                     "access_villages", "access_settlements", "access_townships", "access_works",
                     "industry_projects", "access_scorecard", "report_indicators"):
            assert must in tables
        assert "SYNTHETIC DATA" in status and "合成数据" in status and "settlements" in synth
        assert len(inputs["layers"]["villages"]) == 64 and len(inputs["layers"]["dem"]) == 64
        assert inputs["plan"]["name"] == "开州区"
        row = c.execute("SELECT row_to_json(r)::text FROM res.runs r WHERE run_id = %s",
                        (run_id,)).fetchone()[0]
        assert PW not in row and "password" not in row.lower()
        assert json.loads(row)["layers"] == db.url("src", dem=False)
        checked = 0
        for d in TABLE_DIRS:
            for f in sorted((out / d).glob("*.csv")):
                table = f"{d}_{f.stem}"
                cols, rows = _db_table(c, "res", table)
                csv = _csv(f)
                assert [x for x in cols if x not in ("row_no", "geometry")] == list(csv.columns), table
                got = pd.DataFrame([[_text(v) for v in r[1:len(csv.columns) + 1]] for r in rows],
                                   columns=csv.columns)
                pd.testing.assert_frame_equal(got, csv, obj=table)
                checked += len(csv)
        # every GeoPackage layer: attributes and geometry
        from kaizhou_gis.dbio import _table_name
        for d in TABLE_DIRS:
            for f in sorted((out / d).glob("*.gpkg")):
                for layer, _ in pyogrio.list_layers(f):
                    table = _table_name(f"{d}/{f.name}", layer)
                    ref = pyogrio.read_dataframe(f, layer=layer)
                    cols, rows = _db_table(c, "res", table)
                    attrs = [x for x in ref.columns if x != "geometry"]
                    assert [x for x in cols if x not in ("row_no", "geometry")] == attrs, table
                    # a GeoPackage keeps a whole-number column with gaps as REAL (2017.0), the
                    # database as bigint (2017): same number
                    got = [[_num(v) for v in r[1:len(attrs) + 1]] for r in rows]
                    want = [[_num(v) for v in r] for r in ref[attrs].itertuples(index=False)]
                    assert got == want, table
                    wkb = c.execute(f'SELECT ST_AsBinary(geometry) FROM res."{table}" '
                                    f'ORDER BY row_no').fetchall()
                    back = shapely.from_wkb([None if x[0] is None else bytes(x[0]) for x in wkb])
                    assert shapely.equals_exact(back, ref.geometry.values, 1e-9).all(), table
                    checked += len(ref)
        gpkg = pyogrio.read_dataframe(out / "relocation" / "settlements.gpkg")
        cols, rows = _db_table(c, "res", "relocation_settlements")
        assert len(rows) == len(gpkg) == 1823
        back = c.execute("SELECT ST_AsBinary(geometry), ST_SRID(geometry), settlement_id, "
                         "elevation_m FROM res.relocation_settlements ORDER BY row_no").fetchall()
        geoms = shapely.from_wkb([bytes(x[0]) for x in back])
        assert shapely.equals_exact(geoms, gpkg.geometry.values, 1e-9).all()
        assert {x[1] for x in back} == {4545}
        assert [x[2] for x in back] == gpkg["settlement_id"].tolist()
        np.testing.assert_array_equal([x[3] for x in back], gpkg["elevation_m"].to_numpy())
        # keys, spatial indexes, bilingual comments
        pk = c.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                       "AND a.attnum = ANY(i.indkey) WHERE i.indisprimary "
                       "AND i.indrelid = 'res.relocation_candidates'::regclass").fetchall()
        assert pk == [("settlement_id",)]
        gist = c.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'res' "
                         "AND indexdef LIKE '%USING gist (geometry)%'").fetchone()[0]
        assert gist >= 8
        comment = c.execute("SELECT col_description('res.relocation_candidates'::regclass, "
                            "(SELECT attnum FROM pg_attribute WHERE attrelid = "
                            "'res.relocation_candidates'::regclass AND attname = 'elevation_m'))"
                            ).fetchone()[0]
        assert comment == "海拔(米) / elevation_m"
        tcomment = c.execute("SELECT obj_description('res.relocation_candidates'::regclass)").fetchone()[0]
        assert "高山生态扶贫搬迁" in tcomment and "Relocation" in tcomment and "SYNTHETIC DATA" in tcomment
    assert checked > 15_000
    # 3. results.gdb holds the same tables with the same rows
    gdb = out / "results.gdb"
    names = {x[0] for x in pyogrio.list_layers(gdb)}
    assert set(tables) <= names
    g = pyogrio.read_dataframe(gdb, layer="relocation_candidates")
    csv = _csv(out / "relocation" / "candidates.csv")
    assert g["settlement_id"].tolist() == csv["settlement_id"].tolist()
    assert g["population"].astype(int).tolist() == csv["population"].astype(int).tolist()


def test_a_run_killed_during_the_write_leaves_the_previous_results(db, pgenv, tmp_path):
    import psycopg

    with db.connect() as c:
        c.execute("CREATE SCHEMA kill AUTHORIZATION " + db.user)
        c.commit()
    url = db.url("kill", dem=False)
    r = _cli(["industry", "--out", tmp_path / "a", "--out-db", url])
    assert r.exit_code == 0, r.output
    before = {t: db.query(f'SELECT * FROM kill."{t}" ORDER BY row_no')
              for t in ("industry_projects", "industry_hosts", "industry_totals")}
    runs_before = db.query("SELECT run_id FROM kill.runs")
    assert len(before["industry_hosts"]) > 100 and len(runs_before) == 1
    # a reader in the middle of a transaction holds the old table: the writer loads its new
    # tables, then waits at the swap; we kill it there
    reader = psycopg.connect(db.admin)
    reader.execute("SELECT count(*) FROM kill.industry_projects").fetchone()
    env = dict(os.environ, PYTHONPATH=str(REPO), **pgenv)
    proc = subprocess.Popen([sys.executable, "-m", "kaizhou_gis", "industry", "--out",
                             str(tmp_path / "b"), "--out-db", url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        waiting = False
        for _ in range(600):
            if proc.poll() is not None:
                break
            rows = db.query("SELECT wait_event_type, query FROM pg_stat_activity WHERE "
                            "application_name = 'kaizhou-gis' AND datname = %s", (db.name,))
            if any(w == "Lock" and "DROP TABLE" in q for w, q in rows):
                waiting = True
                break
            time.sleep(0.2)
        assert waiting, proc.communicate()[0].decode(errors="replace")[-2000:]
        # the new tables exist only inside the writer's transaction
        assert db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'kill' "
                        "AND tablename LIKE '%%__kz_new'")[0][0] == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.rollback()
        reader.close()
    for _ in range(100):  # the server notices the dropped connection and rolls back
        if not db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'kaizhou-gis' "
                        "AND datname = %s", (db.name,)):
            break
        time.sleep(0.1)
    after = {t: db.query(f'SELECT * FROM kill."{t}" ORDER BY row_no') for t in before}
    assert after == before
    assert db.query("SELECT run_id FROM kill.runs") == runs_before
    assert db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'kill' "
                    "AND tablename LIKE '%%__kz_new'")[0][0] == 0
    # and the next run goes through
    r = _cli(["industry", "--out", tmp_path / "c", "--out-db", url])
    assert r.exit_code == 0, r.output
    assert len(db.query("SELECT run_id FROM kill.runs")) == 2


def test_toml_mapping_with_table_and_sql_and_pgpass(db, tmp_path, monkeypatch):
    import psycopg

    with db.connect() as c:  # villages under another name, roads through a query
        c.execute("CREATE SCHEMA IF NOT EXISTS other AUTHORIZATION " + db.user)
        c.execute("DROP TABLE IF EXISTS other.cun")
        c.execute("CREATE TABLE other.cun AS SELECT * FROM src.villages")
        c.execute("ALTER TABLE other.cun OWNER TO " + db.user)
        c.commit()
    base = db.url("src", dem=False)
    (tmp_path / "layers.toml").write_text(
        f'database = "{base}"\n'
        'boundary = { table = "boundary" }\ntownships = { table = "townships" }\n'
        'township_seats = { table = "township_seats" }\nvillages = { table = "other.cun" }\n'
        'settlements = { table = "settlements" }\n'
        'roads = { sql = "SELECT road_id, road_class, surface, wkb_geometry FROM src.roads '
        'WHERE road_class IS NOT NULL ORDER BY ogc_fid" }\n'
        f'dem = "{DEM}"\n', encoding="utf-8")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{db.host}:{db.port}:{db.name}:{db.user}:{PW}\n")
    pgpass.chmod(0o600)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    r = _cli(["validate", "--layers", tmp_path / "layers.toml"])
    assert r.exit_code == 0, r.output
    assert "other.cun" in r.output and "SQL query" in r.output
    layers = load_layers(tmp_path / "layers.toml", plan=load_plan(None))
    assert len(layers.villages) == 535 and len(layers.roads) == 4083
    ref = load_layers(None, plan=load_plan(None))
    assert layers.roads["road_id"].tolist() == ref.roads["road_id"].tolist()
    assert shapely.equals_exact(layers.villages.geometry.values, ref.villages.geometry.values, 1e-6).all()
    del psycopg


def test_column_problems_name_schema_table_column(db, pgenv):
    with db.connect() as c:
        c.execute("CREATE SCHEMA IF NOT EXISTS bad AUTHORIZATION " + db.user)
        for t in ("boundary", "townships", "township_seats", "settlements", "roads", "villages"):
            c.execute(f"CREATE TABLE IF NOT EXISTS bad.{t} AS SELECT * FROM src.{t}")
            c.execute(f"ALTER TABLE bad.{t} OWNER TO {db.user}")
        c.execute("ALTER TABLE bad.villages DROP COLUMN IF EXISTS households")
        c.execute("UPDATE bad.settlements SET village_code = NULL WHERE settlement_id IN "
                  "(SELECT settlement_id FROM bad.settlements ORDER BY settlement_id LIMIT 2)")
        c.commit()
    r = _cli(["validate", "--layers", db.url("bad")])
    assert r.exit_code == 2
    assert "villages.households (bad.villages.households)" in r.output
    assert "settlements.village_code (bad.settlements.village_code): missing value in 2 row(s)" in r.output


@pytest.mark.parametrize("case", ["layers", "out-db"])
def test_errors_exit_2_with_the_fix_and_nothing_written(db, pgenv, tmp_path, case):
    import psycopg

    out = tmp_path / "out"

    def attempt(url, **kw):
        args = (["industry", "--layers", url, "--out", out] if case == "layers" else
                ["industry", "--out", out, "--out-db", url])
        r = _cli(args)
        assert r.exit_code == 2, r.output
        assert not out.exists() or not any(out.rglob("*.csv")), list(out.rglob("*"))
        return r.output

    dem = case == "layers"
    # unreachable server: a port nobody listens on
    port = pgserver._free_port()
    msg = attempt(db.url("src", port=port, dem=dem))
    assert f"cannot reach the PostgreSQL server at {db.host}:{port}" in msg and "pg_isready" in msg
    # a password in the URL is refused and never echoed
    leaked = db.url("src", dem=dem).replace(f"{db.user}@", f"{db.user}:{PW}@")
    msg = attempt(leaked)
    assert "holds a password" in msg and "PGPASSWORD" in msg and PW not in msg
    # wrong credentials
    os.environ["PGPASSWORD"] = "wrong-" + PW
    msg = attempt(db.url("src", dem=dem))
    assert "refused the credentials" in msg and ".pgpass" in msg and PW not in msg
    os.environ["PGPASSWORD"] = PW
    # missing schema
    msg = attempt(db.url("nowhere", dem=dem))
    assert "schema 'nowhere' does not exist" in msg and "CREATE SCHEMA nowhere" in msg
    # no PostGIS in the database
    nopostgis = "kz_nogis_" + secrets.token_hex(3)
    with psycopg.connect(db.admin_dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {nopostgis} OWNER {db.user}")
    msg = attempt(db.url("public", db=nopostgis, dem=dem))
    assert "has no PostGIS extension" in msg and "CREATE EXTENSION postgis" in msg
    if case == "layers":
        # missing table
        with db.connect() as c:
            c.execute("CREATE SCHEMA IF NOT EXISTS noroads AUTHORIZATION " + db.user)
            for t in ("boundary", "townships", "township_seats", "settlements", "villages"):
                c.execute(f"CREATE TABLE IF NOT EXISTS noroads.{t} AS SELECT * FROM src.{t}")
                c.execute(f"ALTER TABLE noroads.{t} OWNER TO {db.user}")
            c.commit()
        msg = attempt(db.url("noroads"))
        assert "roads: table noroads.roads not found" in msg and "ogr2ogr" in msg
    else:
        # no permission to create tables: a reader role; the previous results stay
        reader = "kz_ro_" + secrets.token_hex(3)
        with db.connect() as c:
            c.execute(f"CREATE ROLE {reader} LOGIN PASSWORD '{PW}'")
            c.execute(f"GRANT CONNECT ON DATABASE {db.name} TO {reader}")
            c.execute(f"CREATE SCHEMA IF NOT EXISTS shared AUTHORIZATION {db.user}")
            c.execute(f"GRANT USAGE ON SCHEMA shared TO {reader}")
            c.commit()
        msg = attempt(db.url("shared", user=reader, dem=False))
        assert f"user '{reader}' may not create tables in schema 'shared'" in msg
        assert f"GRANT USAGE, CREATE ON SCHEMA shared TO {reader}" in msg
        # may create, but the earlier results belong to someone else: refused inside the
        # transaction, nothing written
        r = _cli(["industry", "--out", tmp_path / "first", "--out-db", db.url("shared", dem=False)])
        assert r.exit_code == 0, r.output
        with db.connect() as c:
            c.execute(f"GRANT CREATE ON SCHEMA shared TO {reader}")
            c.commit()
        hosts = db.query("SELECT * FROM shared.industry_hosts ORDER BY row_no")
        r = _cli(["industry", "--out", tmp_path / "second", "--out-db",
                  db.url("shared", user=reader, dem=False)])
        assert r.exit_code == 2, r.output
        msg = r.output
        assert "no permission in schema 'shared'" in msg and "Nothing was written" in msg
        assert "file outputs in" in msg  # the files of the run are written, as without --out-db
        assert db.query("SELECT * FROM shared.industry_hosts ORDER BY row_no") == hosts
        assert len(db.query("SELECT * FROM shared.runs")) == 1
        assert db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'shared' "
                        "AND tablename LIKE '%%__kz_new'")[0][0] == 0
        # a table of the same name that kaizhou-gis did not write is never replaced
        with db.connect() as c:
            c.execute(f"CREATE SCHEMA IF NOT EXISTS mine AUTHORIZATION {db.user}")
            c.execute("CREATE TABLE IF NOT EXISTS mine.industry_projects (note text)")
            c.execute("INSERT INTO mine.industry_projects VALUES ('my own table')")
            c.execute(f"ALTER TABLE mine.industry_projects OWNER TO {db.user}")
            c.commit()
        r = _cli(["industry", "--out", tmp_path / "third", "--out-db", db.url("mine", dem=False)])
        assert r.exit_code == 2, r.output
        assert "already holds table(s) industry_projects that kaizhou-gis did not write" in r.output
        assert db.query("SELECT note FROM mine.industry_projects") == [("my own table",)]
        assert db.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'mine'")[0][0] == 1


# --------------------------------------------------------------------------------------------
# File Geodatabase


def _write_gdb(path: Path, rename: dict[str, str] | None = None) -> None:
    """The shipped layers into a File Geodatabase, with GDAL's default coordinate grid (1e-9
    degree for lon/lat, about 0.1 mm: every coordinate moves by up to ~0.07 mm)."""
    rename = rename or {}
    opts = {"TARGET_ARCGIS_VERSION": "ARCGIS_PRO_3_2_OR_LATER"}  # 64-bit integer fields
    for layer, _ in pyogrio.list_layers(GPKG):
        df = pyogrio.read_dataframe(GPKG, layer=layer)
        pyogrio.write_dataframe(df, path, layer=rename.get(layer, layer), driver="OpenFileGDB",
                                layer_options=opts)


#: Figures computed from coordinates may differ in the last digit they are written with: a
#: coordinate grid moves points by <= 0.1 mm, which moves a distance, a length or a cost by a
#: like amount (a 1e-7 share of it at most), and that crosses a rounding boundary of the shown
#: digits now and then (25.9715 km shown as 25.971 or 25.972, a cost of 6,426,992.5 yuan as ...92 or
#: ...93). So a number written with decimals may differ by one unit of its last shown decimal or
#: by 1e-6 of its value, whichever is larger; everything else (ids, names, statuses, counts,
#: yes/no, reasons, which rows) must be equal. Values written at full precision (the GeoPackage
#: layers' lengths, distances, grades) may differ by ABS_TOL: a length or distance in metres moves
#: by at most twice the 0.1 mm grid (2e-4 m); minutes, grades and km move by less.
REL_TOL = 1e-6
ABS_TOL = 1e-3


def _is_float_text(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return "." in v or "e" in v.lower()


def _close(x: str, y: str) -> bool:
    if x == y:
        return True
    if not (_is_float_text(x) and _is_float_text(y)):
        return False
    a, b = float(x), float(y)
    # the last shown digit (a whole number written as 712969.0: the yuan)
    unit = max(10.0 ** -len(t.split(".")[1].split("e")[0].rstrip("0")) if "." in t else 1.0
               for t in (x, y))
    return abs(a - b) <= max(unit, ABS_TOL, REL_TOL * max(abs(a), abs(b))) * (1 + 1e-9)


def _compare_values(x, y, where: str, diffs: list, counts: dict) -> None:
    """JSON-like values equal, numbers with a decimal part within the tolerance above."""
    if isinstance(x, dict) and isinstance(y, dict):
        if set(x) != set(y):
            diffs.append((where, "keys", sorted(set(x) ^ set(y))))
        for k in sorted(set(x) & set(y), key=str):
            _compare_values(x[k], y[k], f"{where}.{k}", diffs, counts)
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            diffs.append((where, "length", (len(x), len(y))))
        for i, (u, v) in enumerate(zip(x, y)):
            _compare_values(u, v, f"{where}[{i}]", diffs, counts)
    else:
        counts["values"] += 1
        if isinstance(x, float) or isinstance(y, float):
            if x is not None and y is not None and not isinstance(x, bool) and not isinstance(y, bool):
                if x == y or _close(repr(float(x)), repr(float(y))):
                    counts["within_tolerance"] += int(x != y)
                    return
        if x != y:
            diffs.append((where, x, y))


def _compare_frames(x: pd.DataFrame, y: pd.DataFrame, where: str, diffs: list, counts: dict) -> None:
    """Two tables of text cells: same columns and rows, cells equal (numbers as above)."""
    if list(x.columns) != list(y.columns) or len(x) != len(y):
        diffs.append((where, "shape", (list(x.columns), len(x)), (list(y.columns), len(y))))
        return
    counts["rows"] += len(x)
    for c in x.columns:
        a, b = x[c].to_numpy(), y[c].to_numpy()
        for i in np.flatnonzero(a != b):
            if _close(a[i], b[i]):
                counts["within_tolerance"] += 1
            else:
                diffs.append((where, c, i, a[i], b[i]))
        counts["cells"] += len(a)


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: [_text(v) for v in df[c]] for c in df.columns})


def _compare_run_outputs(a: Path, b: Path, *, tol_m: float = 1e-3) -> tuple[list, dict]:
    """Every CSV, GeoPackage layer and JSON result of the table steps, and report.json, of two
    runs: (differences, counts). Geometries within ``tol_m`` metres (1 mm: the grid's 0.1 mm
    noise, with margin; a real difference, e.g. another road edge or site, is metres)."""
    diffs: list = []
    counts = {"files": 0, "rows": 0, "cells": 0, "values": 0, "geometries": 0, "within_tolerance": 0}
    import json
    for d in TABLE_DIRS:
        names = sorted(p.name for p in (a / d).iterdir())
        assert names == sorted(p.name for p in (b / d).iterdir()), d
        for f in sorted((a / d).glob("*.csv")):
            _compare_frames(_csv(f), _csv(b / d / f.name), f"{d}/{f.name}", diffs, counts)
            counts["files"] += 1
        for f in sorted((a / d).glob("*.json")):
            _compare_values(json.loads(f.read_text(encoding="utf-8")),
                            json.loads((b / d / f.name).read_text(encoding="utf-8")),
                            f"{d}/{f.name}", diffs, counts)
            counts["files"] += 1
        for f in sorted((a / d).glob("*.gpkg")):
            assert pyogrio.list_layers(f).tolist() == pyogrio.list_layers(b / d / f.name).tolist()
            for layer, _ in pyogrio.list_layers(f):
                x = pyogrio.read_dataframe(f, layer=layer)
                y = pyogrio.read_dataframe(b / d / f.name, layer=layer)
                _compare_frames(_text_frame(x.drop(columns="geometry")),
                                _text_frame(y.drop(columns="geometry")), f"{d}/{f.name}:{layer}",
                                diffs, counts)
                if len(x) == len(y):
                    tol = tol_m if x.crs is None or x.crs.is_projected else tol_m / 1e5
                    ok = shapely.equals_exact(x.geometry.values, y.geometry.values, tol)
                    ok |= x.geometry.isna().to_numpy() & y.geometry.isna().to_numpy()
                    diffs += [(f"{d}/{f.name}:{layer}", "geometry", i) for i in np.flatnonzero(~ok)]
                    counts["geometries"] += len(x)
            counts["files"] += 1
    ra = json.loads((a / "report.json").read_text(encoding="utf-8"))
    rb = json.loads((b / "report.json").read_text(encoding="utf-8"))
    # the report's record of its inputs names the layer files and hashes their bytes and rows
    # (a .gdb is other files, its coordinates other bytes): provenance, not results
    for r in (ra, rb):
        r.pop("inputs", None)
        r.pop("provenance", None)
    _compare_values(ra, rb, "report.json", diffs, counts)
    counts["files"] += 1
    return diffs, counts


def test_layers_from_a_file_geodatabase_give_the_gpkg_outputs(gpkg_run, tmp_path):
    """The shipped layers written into a .gdb by GDAL give the GeoPackage's outputs.

    A File Geodatabase stores coordinates on an integer grid: GDAL's default for lon/lat is 1e-9
    degree (about 0.1 mm), so every coordinate comes back moved by up to ~0.07 mm. Where two
    choices are equally good (a village on a junction, equally near every edge meeting there;
    grid sites exactly min_site_spacing_m apart) the steps decide by documented rules, not by
    that noise (tests/test_ties.py), so every output is the same: ids, statuses, assignment
    rows, works, all equal; numbers equal to their last shown digit (see ``REL_TOL``).
    """
    gdb = tmp_path / "county.gdb"
    _write_gdb(gdb)
    shutil.copy(DEM, tmp_path / "dem.tif")
    assert {x[0] for x in pyogrio.list_layers(gdb)} >= {"villages", "roads", "settlements"}
    plan = load_plan(None)
    got, ref = load_layers(gdb, plan=plan), load_layers(None, plan=plan)
    moved = 0.0
    for name in ("boundary", "townships", "township_seats", "villages", "settlements", "roads"):
        a, b = getattr(ref, name), getattr(got, name)
        # (a .gdb has no boolean fields: an extra yes/no column comes back as 1/0)
        pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                      pd.DataFrame(b.drop(columns="geometry")), obj=name,
                                      check_dtype=False)
        # (a .gdb keeps polygons as MultiPolygon: compare shapes, not types)
        h = shapely.hausdorff_distance(a.geometry.values, b.geometry.values)
        assert (h < 1e-3).all(), name
        moved = max(moved, float(h.max()))
    assert moved > 1e-5  # the default grid did move the coordinates (else this tests nothing)
    out = tmp_path / "out"
    _run_api(gdb, out)
    diffs, counts = _compare_run_outputs(gpkg_run, out)
    print(f"gdb vs gpkg: {counts}; coordinates moved up to {moved * 1000:.3f} mm; "
          f"differences {len(diffs)}")
    assert diffs == []
    assert counts["files"] >= 20 and counts["rows"] > 10_000 and counts["geometries"] > 5_000


def test_gdb_layer_names_mapped_by_toml(tmp_path):
    gdb = tmp_path / "县数据.gdb"
    _write_gdb(gdb, {"villages": "CUN_P", "settlements": "ZRC_P"})
    (tmp_path / "map.toml").write_text(
        "\n".join([f'{n} = {{ path = "{gdb.name}", layer = "{layer}" }}' for n, layer in
                   [("boundary", "boundary"), ("townships", "townships"),
                    ("township_seats", "township_seats"), ("villages", "CUN_P"),
                    ("settlements", "ZRC_P"), ("roads", "roads")]] + [f'dem = "{DEM}"']) + "\n",
        encoding="utf-8")
    r = _cli(["validate", "--layers", tmp_path / "map.toml"])
    assert r.exit_code == 0, r.output
    assert "县数据.gdb:CUN_P" in r.output
    layers = load_layers(tmp_path / "map.toml", plan=load_plan(None))
    assert len(layers.villages) == 535 and len(layers.settlements) == 1823


def test_results_gdb_is_replaced_whole(tmp_path):
    r = _cli(["industry", "--out", tmp_path, "--format", "gdb"])
    assert r.exit_code == 0, r.output
    gdb = tmp_path / "results.gdb"
    names = sorted(x[0] for x in pyogrio.list_layers(gdb))
    assert names == ["industry_hosts", "industry_projects", "industry_totals", "industry_unresolved"]
    hosts = pyogrio.read_dataframe(gdb, layer="industry_hosts")
    ref = pyogrio.read_dataframe(tmp_path / "industry" / "projects.gpkg", layer="industry_hosts")
    assert len(hosts) == len(ref) > 100
    assert hosts["row_no"].tolist() == list(range(1, len(ref) + 1))
    assert hosts["project_id"].astype(str).tolist() == ref["project_id"].astype(str).tolist()
    # a File Geodatabase stores coordinates on a 0.1 mm grid (GDAL's default XY resolution)
    assert shapely.equals_exact(hosts.geometry.values, ref.geometry.values, 1e-3).all()
    # a second run replaces it; no temporary folder is left
    r = _cli(["industry", "--out", tmp_path, "--format", "gdb"])
    assert r.exit_code == 0, r.output
    assert not list(tmp_path.glob(".results.*"))
