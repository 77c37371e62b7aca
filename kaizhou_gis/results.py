"""What the pipeline steps give each other: typed results, declared inputs, the run context's face.

This module is the contract between :mod:`kaizhou_gis.pipeline` (which runs the steps) and the
analysis modules (which hold them). The analysis modules import from here, never from the
pipeline:

- :class:`StepResult` — what one step produced: the ``files`` to write under ``--out``, its typed
  ``data`` for later steps (:class:`IndustryData`, :class:`AccessData`, :class:`RelocationData`,
  :class:`MapsData`, :class:`ReportData`) and a ``summary`` of figures for the console.
- :class:`StepNeeds` — the results of the steps a step declared it needs (``needs`` in
  :data:`kaizhou_gis.pipeline.STEPS`), handed to the step function; asking for a step that was
  not declared is an error, so the registry is the whole truth about dependencies.
- :class:`StepContext` — the attributes of the run a step wrapper may read (layers, plan,
  options, scope, fingerprints); :class:`kaizhou_gis.pipeline.Context` provides them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from kaizhou_gis.errors import StepError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from kaizhou_gis.layers import Layers
    from kaizhou_gis.plan import Plan

D = TypeVar("D")


@dataclass
class StepResult(Generic[D]):
    """What one step produced.

    ``files`` maps a path relative to ``--out`` to the object written there (:mod:`outputs`);
    ``data`` is the step's typed result for later steps; ``summary`` the figures printed and
    recorded; ``township_view`` is True for a township's result filtered from the district result
    (steps declared ``township="view"``).
    """

    name: str
    files: dict[str, Any] = field(default_factory=dict)
    data: D = None  # type: ignore[assignment]
    summary: dict[str, Any] = field(default_factory=dict)
    township_view: bool = False


@dataclass
class IndustryData:
    """Step ``industry``: the plan's projects placed on villages."""

    #: one row per plan project (``industry/projects.csv``)
    projects: pd.DataFrame | None = None
    #: one point per placed host village/township (``industry/projects.gpkg``)
    hosts: gpd.GeoDataFrame | None = None
    #: hosts named in the plan that were not found (``industry/unresolved.csv``)
    unresolved: pd.DataFrame | None = None
    #: totals per product against the plan (``industry/totals.csv``)
    totals: pd.DataFrame | None = None


@dataclass
class AccessData:
    """Step ``access``: 通达/通畅 before and after the proposed works."""

    villages: gpd.GeoDataFrame | None = None
    settlements: gpd.GeoDataFrame | None = None
    #: road graph edges (u, v, length_m, ...) of the network before the works
    edges: gpd.GeoDataFrame | None = None
    works: gpd.GeoDataFrame | None = None
    #: ``{"before": ..., "after": ...}`` scorecards (``access/scorecard.json``)
    scorecard: dict[str, Any] | None = None
    cost_curve: pd.DataFrame | None = None
    #: the :class:`kaizhou_gis.network.RoadNetwork` the analysis ran on
    network: Any = None
    unresolved: pd.DataFrame | None = None
    townships: pd.DataFrame | None = None
    #: the district's intermediate tables a township view is filtered from
    parts: dict[str, Any] = field(default_factory=dict)


@dataclass
class RelocationData:
    """Step ``relocation``: candidates, schedule, sites and the household assignment."""

    settlements: gpd.GeoDataFrame | None = None
    sites: gpd.GeoDataFrame | None = None
    assignment: pd.DataFrame | None = None
    unassigned: pd.DataFrame | None = None
    villages: pd.DataFrame | None = None
    townships: pd.DataFrame | None = None
    schedule: pd.DataFrame | None = None
    #: the district's intermediate tables a township view is filtered from
    parts: dict[str, Any] = field(default_factory=dict)


@dataclass
class MapsData:
    """Step ``maps``: the size of each page (the pages themselves are the step's files)."""

    sizes_mb: dict[str, float] = field(default_factory=dict)


@dataclass
class ReportData:
    """Step ``report``: the scorecard (``report.json``) and the per-township table."""

    report: dict[str, Any] = field(default_factory=dict)
    townships: pd.DataFrame | None = None


IndustryResult = StepResult[IndustryData]
AccessResult = StepResult[AccessData]
RelocationResult = StepResult[RelocationData]
MapsResult = StepResult[MapsData]
ReportResult = StepResult[ReportData]


class StepNeeds:
    """The results of the steps one step declared it needs, computed on first use.

    :meth:`result` gives a declared step's result, or raises the error that step failed with
    (each step decides what a missing input means: relocation goes on without remoteness, the
    report marks its sections unavailable). A name the step did not declare is a programming
    error (:class:`~kaizhou_gis.errors.StepError`).
    """

    def __init__(self, step: str, needs: tuple[str, ...],
                 resolve: Callable[[str], StepResult[Any]], *, views: frozenset[str] = frozenset()):
        self.step = step
        self.needs = tuple(needs)
        #: the needed steps whose result in a township run is a view of the district result
        self.views = frozenset(views)
        self._resolve = resolve

    def result(self, name: str) -> StepResult[Any]:
        if name not in self.needs:
            raise StepError(f"step '{self.step}' asked for step '{name}' without declaring it; "
                            f"add it to the step's needs in kaizhou_gis/pipeline.py (STEPS).")
        return self._resolve(name)

    def __repr__(self) -> str:
        return f"StepNeeds({self.step!r}, needs={self.needs!r})"


class StepContext(Protocol):
    """What a step wrapper may read from the run (:class:`kaizhou_gis.pipeline.Context`)."""

    layers: Layers
    plan: Plan
    options: dict[str, Any]
    #: steps that failed in this run: ``{step: message}``
    failed: dict[str, str]
    #: steps whose district result came from the cache: ``{step: fingerprint}``
    reused: dict[str, str]
    out_dir: Path | None

    @property
    def township(self) -> str | None: ...

    @property
    def data_status(self) -> dict: ...

    @property
    def inputs(self) -> dict[str, Any]: ...

    @property
    def scope(self) -> dict[str, Any]: ...

    @property
    def district(self) -> StepContext:
        """The same run for the whole district (itself when it has no township)."""
        ...

    def needs_of(self, name: str) -> StepNeeds:
        """The declared needs of step ``name`` (for callers outside the pipeline's run)."""
        ...
