"""One cache of pyproj transformers for every step (building one costs 40-250 ms; the steps need
the same few pairs again and again).

``transformer(src, dst)`` is always lon/lat (x, y) ordered. It is keyed by the CRSs' WKT, so two
spellings of one CRS (``"EPSG:4326"``, ``4326``, a ``pyproj.CRS``) share one transformer and two
CRSs that differ in any parameter never do. pyproj transformers are thread-safe (pyproj >= 3.1),
so the web workbench's threads may share them.
"""
from __future__ import annotations

import functools

from pyproj import CRS, Transformer


@functools.lru_cache(maxsize=64)
def _cached(src_wkt: str, dst_wkt: str) -> Transformer:
    src, dst = CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt)
    if src == dst:
        return Transformer.from_pipeline("+proj=noop")
    return Transformer.from_crs(src, dst, always_xy=True)


def transformer(src, dst) -> Transformer:
    """Cached ``always_xy`` transformer from ``src`` to ``dst`` (anything ``pyproj.CRS`` takes);
    the identity (``+proj=noop``) when they are the same CRS."""
    return _cached(CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
