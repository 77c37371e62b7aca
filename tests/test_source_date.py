"""The date on a print sheet: today, or the UTC day of SOURCE_DATE_EPOCH (reproducible outputs)."""
from __future__ import annotations

import datetime as dt
import logging

from kaizhou_gis.maps import printmap


def test_source_date_epoch_sets_the_sheet_date(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547199")  # 2025-11-30 23:59:59 UTC
    assert printmap.sheet_date() == "2025-11-30"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")  # a second later: the next UTC day
    assert printmap.sheet_date() == "2025-12-01"


def test_without_it_or_with_a_bad_value_the_sheet_shows_today(monkeypatch, caplog):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert printmap.sheet_date() == dt.date.today().isoformat()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.maps.printmap"):
        assert printmap.sheet_date() == dt.date.today().isoformat()
    assert "SOURCE_DATE_EPOCH='yesterday' is not a whole number" in caplog.text
