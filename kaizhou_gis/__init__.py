"""kaizhou-gis: GIS spatial-planning pipeline for a district poverty-alleviation plan."""
from __future__ import annotations

__version__ = "0.1.0"

from kaizhou_gis.errors import KaizhouGISError, LayerError, PlanError  # noqa: E402

__all__ = ["__version__", "KaizhouGISError", "LayerError", "PlanError"]
