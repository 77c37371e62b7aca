"""Many districts at once: each district's full pipeline is one task on a dask.distributed cluster.

``kaizhou-gis batch MANIFEST.toml --out DIR`` reads a manifest of districts, submits one task per
district to a :class:`dask.distributed.Client` (a :class:`~dask.distributed.LocalCluster` of
``--workers`` processes by default, or an existing cluster at ``--scheduler tcp://HOST:8786``
started with ``dask scheduler`` / ``dask worker``), and writes

- ``DIR/<code>/``: the district's outputs, exactly the files and bytes ``kaizhou-gis run --layers
  L --plan P --out DIR/<code>`` writes;
- ``DIR/rollup.csv``, ``.xlsx``, ``.json``: one row per district (figures read from the district's
  own ``report.json``, so the roll-up and the district report agree), failed districts with their
  error;
- ``DIR/rollup.html`` (sortable table and charts) and ``DIR/rollup_map.html`` (district polygons
  coloured by the road-access gap, linking to each district's overview map), both offline;

A rerun skips a district whose outputs are current: the task loads the district's layers and plan,
and when ``DIR/<code>/manifest.json`` (:mod:`kaizhou_gis.manifest`) records every step with the
same input fingerprint and every recorded file is still there with its hash, it writes nothing.
So an interrupted batch resumes where it stopped (``--force`` reruns everything).

The manifest (TOML; paths relative to the manifest file)::

    [defaults]                    # optional, shared by every district
    plan = "plans/chongqing.toml"
    crs = "EPSG:4490"             # CRS of layers that declare none (as --crs)
    encoding = "GBK"              # .dbf without .cpg (as --encoding)
    coords = "wgs84"              # or gcj02
    header = "en"                 # en, zh or both
    field_coords = "wgs84"        # as --field-coords

    [[district]]
    code = "500154"               # folder name under --out; 6-digit district code
    name = "开州区"
    layers = "500154/"            # GeoPackage, folder or TOML mapping of layer files
    plan = "500154/plan.toml"     # overrides the default

A district's error (bad layer, plan error, a crash in a step) is caught on the worker and reported
in the roll-up; the others go on. A worker process that dies is replaced and its task rerun by
dask (``distributed.scheduler.allowed-failures`` times, then ``KilledWorker``, reported as
"worker lost: ..." by :func:`lost_worker_error`); ``--retries`` also reruns a task that raised
outside the pipeline's own handling.
"""
from __future__ import annotations

from kaizhou_gis.batch.manifest import DEFAULT_KEYS, DISTRICT_KEYS, District, read_manifest
from kaizhou_gis.batch.rollup import COUNT_COLUMNS, ROLLUP_COLUMNS, rollup_frame, rollup_row
from kaizhou_gis.batch.run import BatchResult, data_status_text, lost_worker_error, make_client, run_batch, run_district
from kaizhou_gis.batch.write import ROLLUP_FILES, rollup_html, rollup_map_html, write_rollup

#: the names other modules, tests and users import from the package
__all__ = [
    'BatchResult', 'COUNT_COLUMNS', 'DEFAULT_KEYS', 'DISTRICT_KEYS', 'District',
    'ROLLUP_COLUMNS', 'ROLLUP_FILES', 'data_status_text', 'lost_worker_error', 'make_client',
    'read_manifest', 'rollup_frame', 'rollup_html', 'rollup_map_html', 'rollup_row',
    'run_batch', 'run_district', 'write_rollup'
]
