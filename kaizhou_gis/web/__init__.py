"""A local web workbench (``kaizhou-gis serve``) for planners who do not use a command line.

* :mod:`kaizhou_gis.web.workbench` holds the state without any HTTP: the layers and plan (read
  once; :meth:`Workbench.reload` re-reads them), the township index (name, pinyin initials,
  code), the runs (the plan's run and each what-if, keyed by their inputs, computed in a small
  thread pool with progress) and the files a run offers for download, written under the cache
  folder only.
* :mod:`kaizhou_gis.web.app` is the Starlette application: pages (Chinese first, English
  alongside), the JSON progress endpoint and the downloads.

Cache folder: ``--cache-dir``, else ``$KAIZHOU_GIS_CACHE``, else ``$XDG_CACHE_HOME/kaizhou-gis/web``
(``~/.cache/kaizhou-gis/web``). Nothing is written anywhere else.
"""
from kaizhou_gis.web.workbench import Workbench, default_cache_dir  # noqa: F401
