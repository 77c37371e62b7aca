"""Small value helpers shared by the report's modules (numbers, flags, plain JSON values)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

NOT_DERIVABLE = "not derivable from these layers"
NOT_DERIVABLE_ZH = "无法由现有图层计算"

#: Errors that mean another step's result lacks a column or key the report reads.
_RESULT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _num(x: Any) -> float | None:
    """A finite float or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bool(s: pd.Series) -> pd.Series:
    """A boolean Series from bool/0-1/text flags (NaN counts as False)."""
    if s.dtype == bool:
        return s
    return s.map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "y", "是")
                 if not (v is None or (isinstance(v, float) and math.isnan(v))) else False
                 ).astype(bool)


def _unavailable(step: str, why: str) -> dict:
    return {"status": "unavailable",
            "message": f"step '{step}' did not produce results: {why}",
            "message_zh": f"“{step}”步骤未能产生结果：{why}"}


def _with_layer_columns(df: pd.DataFrame, layer: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """``df`` with the columns ``cols`` taken from ``layer`` (same index) where ``df`` lacks them."""
    df = df.copy()
    for c in cols:
        if c not in df and c in layer:
            df[c] = layer[c].reindex(df.index)
    return df


def _records(df: pd.DataFrame) -> list[dict]:
    plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
    out = []
    for row in plain.to_dict(orient="records"):
        out.append({str(k): _plain_value(v) for k, v in row.items()})
    return out


def _plain_value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
