"""Imported once by the fork server that the local dask workers of ``kaizhou-gis batch`` start
from (:func:`kaizhou_gis.batch.run.make_client`): every module a district's pipeline imports, so
a worker process (and one that replaces a killed worker) begins with them in memory instead of
importing GeoPandas, matplotlib, SciPy, fontTools and the steps again (about 3 CPU-s a worker).

It only imports; it starts no thread and opens no file, as a fork server's module must."""
from __future__ import annotations

import fontTools.subset  # noqa: F401 - the print sheets' subset font (kaizhou_gis.fonts)
import matplotlib.backends.backend_agg  # noqa: F401 - the sheets and the report's charts
import matplotlib.figure  # noqa: F401

import kaizhou_gis.layers  # noqa: F401
import kaizhou_gis.manifest  # noqa: F401
from kaizhou_gis.batch.run import import_steps  # run_district, the task itself

import_steps()  # the module of every step (through the pipeline, which only runners import)
