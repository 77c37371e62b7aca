"""Load GeoPackage layers into PostGIS the way ogr2ogr does (an ``ogc_fid`` serial key, a
``wkb_geometry`` column with the layer's SRID), for the database tests."""
from __future__ import annotations

import pandas as pd
import pyogrio
import shapely
from psycopg import sql as S

_TYPES = {"bool": "boolean", "int64": "bigint", "int32": "integer", "float64": "double precision"}


def load_gpkg(conn, gpkg, schema: str, layers=None, rename=None) -> dict[str, int]:
    """Copy ``layers`` of ``gpkg`` into ``schema`` (table names from ``rename`` or the layer)."""
    rename = rename or {}
    counts = {}
    with conn.cursor() as cur:
        for layer in layers or [x[0] for x in pyogrio.list_layers(gpkg)]:
            df = pyogrio.read_dataframe(gpkg, layer=layer)
            srid = df.crs.to_epsg() or 0
            table = rename.get(layer, layer)
            cols = [c for c in df.columns if c != df.geometry.name]
            defs = [S.SQL("ogc_fid serial PRIMARY KEY")]
            for c in cols:
                defs.append(S.SQL("{} {}").format(S.Identifier(c),
                                                  S.SQL(_TYPES.get(str(df[c].dtype), "text"))))
            defs.append(S.SQL("wkb_geometry geometry(Geometry, {})").format(S.Literal(srid)))
            cur.execute(S.SQL("CREATE TABLE {}.{} ({})").format(
                S.Identifier(schema), S.Identifier(table), S.SQL(", ").join(defs)))
            names = [S.Identifier(c) for c in cols] + [S.Identifier("wkb_geometry")]
            wkb = shapely.to_wkb(df.geometry.values, hex=True)
            with cur.copy(S.SQL("COPY {}.{} ({}) FROM STDIN").format(
                    S.Identifier(schema), S.Identifier(table), S.SQL(", ").join(names))) as cp:
                for i in range(len(df)):
                    row = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
                           for v in (df[c].iloc[i] for c in cols)]
                    cp.write_row(row + [None if wkb[i] is None else f"SRID={srid};{wkb[i]}"])
            counts[table] = len(df)
    conn.commit()
    return counts
