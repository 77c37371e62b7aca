"""Joins along the administrative codes of the layer contract: settlement → village → township.

The layer contract gives each settlement its ``village_code`` and each village its
``township_code``; a settlement's township is its village's ``township_code`` and nothing else.
The first nine digits of a 12-digit village code are not used as a stand-in: the contract does
not require a village's code to start with its township's (data from other sources or renamed
units need not), so a guess could put a settlement into a township it is not in.

A settlement (or industry host) whose village is not in the villages layer gets
:data:`NO_TOWNSHIP` (``""``): it keeps its row in every table, with an empty township code and,
where the output has one, a status that says why (e.g. the access tables' ``reason``). The layer
loader already refuses such references (``settlements.village_code: ... point to unknown
villages``); this rule matters for layers given to the analysis functions directly.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from kaizhou_gis.errors import format_ids

log = logging.getLogger(__name__)

#: Township code of a settlement whose village is not in the villages layer.
NO_TOWNSHIP = ""


def village_townships(villages: pd.DataFrame) -> dict[str, str]:
    """``village_code`` → ``township_code`` of the villages layer ({} when a column is missing)."""
    if "village_code" not in villages or "township_code" not in villages:
        return {}
    return dict(zip(villages["village_code"].astype(str), villages["township_code"].astype(str)))


def townships_of_villages(village_codes: pd.Series,
                          villages: pd.DataFrame | Mapping[str, str]) -> pd.Series:
    """Township code of each village code (same index): the village's ``township_code`` from the
    villages layer (or a ``village_code → township_code`` mapping), :data:`NO_TOWNSHIP` where the
    code is missing or not a village of the layer."""
    v2t = villages if isinstance(villages, Mapping) else village_townships(villages)
    known = village_codes.notna()
    out = pd.Series(NO_TOWNSHIP, index=village_codes.index, dtype=object)
    out[known] = village_codes[known].astype(str).map(v2t).fillna(NO_TOWNSHIP).astype(str)
    return out


def settlement_townships(settlements: pd.DataFrame, villages: pd.DataFrame | Mapping[str, str],
                         *, warn: bool = True) -> pd.Series:
    """Township code of each settlement (same index), through its village.

    Settlements whose ``village_code`` is not in the villages layer (or that have none) get
    :data:`NO_TOWNSHIP` and keep their rows; with ``warn`` one warning names them and the fix
    (the steps that own the settlement tables warn; views built on them pass ``warn=False``).
    """
    if "village_code" not in settlements:
        return pd.Series(NO_TOWNSHIP, index=settlements.index, dtype=object)
    out = townships_of_villages(settlements["village_code"], villages)
    lost = (out == NO_TOWNSHIP).to_numpy()
    if warn and lost.any():
        ids = (settlements["settlement_id"] if "settlement_id" in settlements
               else pd.Series(settlements.index, index=settlements.index))[lost].astype(str).tolist()
        log.warning("settlements: %d settlement(s) whose village_code is not in the villages layer "
                    "keep their rows without a township (%s); add their villages to the villages "
                    "layer or correct settlements.village_code.", int(lost.sum()), format_ids(ids))
    return out
