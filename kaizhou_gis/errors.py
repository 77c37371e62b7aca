"""Exception hierarchy.

Every error the library raises on bad input derives from :class:`KaizhouGISError` and mixes in
the matching built-in, so callers may catch either. The CLI maps these to exit code 2 and prints
the message, never a traceback.
"""
from __future__ import annotations


class KaizhouGISError(Exception):
    """Root of every error raised by kaizhou-gis on bad input or configuration."""


class LayerError(KaizhouGISError, ValueError):
    """An input layer is missing, unreadable or breaks the layer contract."""


class PlanError(KaizhouGISError, ValueError):
    """The plan file is unreadable, has unknown or missing keys, or holds invalid values."""


class OptionError(KaizhouGISError, ValueError):
    """A command option has an invalid value (unknown township, negative distance, ...)."""


class DatabaseError(KaizhouGISError, ConnectionError):
    """A database (PostGIS) is unreachable, refuses the credentials or rights, or lacks PostGIS
    or the schema; the message says which and how to fix it."""


class StepError(KaizhouGISError, RuntimeError):
    """An analysis step failed; the message names the step and the cause."""


def format_ids(ids, limit: int = 5) -> str:
    """Up to ``limit`` ids as text, with the count of the rest: ``a, b, c (+12 more)``."""
    ids = [str(i) for i in ids]
    head = ", ".join(ids[:limit])
    if len(ids) > limit:
        head += f" (+{len(ids) - limit} more)"
    return head
