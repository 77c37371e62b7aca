"""How a share is computed and rounded, the same way in every table, JSON file and report.

A percentage shown in two places (``access/scorecard.json`` and ``report.json``, a township
table and the district one) must be the same number, so every share goes through :func:`pct`.
"""
from __future__ import annotations


def pct(part: float, whole: float, digits: int = 2) -> float | None:
    """``part`` as a percentage of ``whole``, rounded to ``digits``; None when ``whole`` is 0
    (a share of nothing is unknown, not 0 %)."""
    return round(100.0 * part / whole, digits) if whole else None
