"""The parts of report.json that need no run context: the plan's settings and the layers'
provenance. The sections (:mod:`.indicators`, :mod:`.sections`, :mod:`.townships`) take the
tables (:class:`.frames._Frames`) and the steps' results; :mod:`.step` assembles them."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from kaizhou_gis import provenance

if TYPE_CHECKING:
    from kaizhou_gis.layers import Layers

#: Steps whose results the report reads.
SOURCE_STEPS = ("access", "relocation", "industry")


def settings_table(plan) -> list[dict]:
    """Every plan setting with its value and source (assumptions marked)."""
    rows = []
    for key, leaf in plan.settings().items():
        rows.append({"key": key, "value": leaf["value"], "source": leaf["source"],
                     "assumption": str(leaf["source"]).startswith("assumption")})
    return rows


def provenance_section(lay: Layers) -> dict:
    """Where the layers come from and which of their rows are synthesized."""
    layers = []
    for name in ("boundary", "townships", "township_seats", "villages", "settlements", "roads",
                 "sites"):
        gdf = getattr(lay, name, None)
        if gdf is None:
            continue
        src = gdf["source"].fillna("").astype(str) if "source" in gdf else pd.Series("", gdf.index)
        synth = src.map(provenance.is_synthetic_text).astype(bool)
        layers.append({"layer": name, "rows": int(len(gdf)), "synthesized_rows": int(synth.sum()),
                       "sources": {k: int(v) for k, v in src[src != ""].value_counts().head(6)
                                   .items()}})
    return {"layers_source": str(getattr(lay, "source", "")),
            "attribution": str(getattr(lay, "attribution", "")),
            "notes": [str(n) for n in (getattr(lay, "notes", None) or [])],
            "dem": str(getattr(lay, "dem_path", "")), "layers": layers}
