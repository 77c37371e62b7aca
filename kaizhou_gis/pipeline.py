"""Chains the analysis steps: the step graph (:data:`STEPS`) and the run context.

Each step is declared once, in :data:`STEPS`: the function that computes it
(``"module:function"``, called as ``run(ctx, needs)``), the other steps whose results it needs,
the layers and plan sections it reads, the type of its result's ``data``
(:mod:`kaizhou_gis.results`) and how a township run derives from the district run. The graph is
checked when this module is imported (:func:`check_steps`): an unknown dependency, a cycle or a
step listed before one it needs is an error.

A step returns a :class:`~kaizhou_gis.results.StepResult`: the files it wants written
(``{path relative to --out: object}``), its typed data for later steps, and a summary of
figures. :meth:`Context.result` runs a step on first use and caches it, so a step that needs
another (relocation needs road access) gets it through its declared ``needs`` whether or not that
step was asked for; only the requested steps' files are written, by :func:`run_steps` through
:mod:`outputs`. docs/architecture.md describes the graph for a newcomer.
"""
from __future__ import annotations

import graphlib
import importlib
import importlib.machinery
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizhou_gis.errors import KaizhouGISError, OptionError, StepError
from kaizhou_gis.results import AccessData, IndustryData, MapsData, RelocationData, ReportData, StepNeeds, StepResult

if TYPE_CHECKING:  # the layers (GeoPandas, rasterio) load with the layers, not with the registry
    from kaizhou_gis.layers import Layers
    from kaizhou_gis.plan import Plan

log = logging.getLogger(__name__)

#: How a step's result for ``--township X`` is made (:attr:`Step.township`).
TOWNSHIP_VIEW = "view"  # the district result, filtered by the module's ``township_view(result, ctx)``
TOWNSHIP_OWN = "own"    # the step function itself handles ``ctx.township``


#: :attr:`Step.plan` of a step that reads every section of the plan.
EVERY_SECTION = "*"
#: The value a step uses for a run option that is not given (the command line's defaults):
#: ``kaizhou-gis run`` and a Context made without the option key the same cached result.
OPTION_DEFAULTS: dict[str, Any] = {"field_coords": "wgs84", "basemap": "offline", "prints": True}


@dataclass(frozen=True)
class Step:
    """One node of the step graph."""

    name: str
    #: ``"module:function"``; the function is called as ``function(ctx, needs)``
    target: str
    #: the line printed for the step (``[1/5] Industry projects / 产业项目 ...``)
    title: str
    #: steps whose results this one reads (through the :class:`StepNeeds` passed in)
    needs: tuple[str, ...] = ()
    #: layers it reads (names of :data:`kaizhou_gis.layers.VECTOR_LAYERS`, ``OPTIONAL_LAYERS``, "dem")
    layers: tuple[str, ...] = ()
    #: plan sections it reads (top-level tables of the plan file, e.g. ``relocation``; ``"*"``:
    #: every section). The step runs on a plan noting what it reads (:meth:`Context.result`): a
    #: cached step that reads a section it does not declare is not cached.
    plan: tuple[str, ...] = ()
    #: the class of its result's ``data``
    returns: type | None = None
    #: :data:`TOWNSHIP_VIEW` or :data:`TOWNSHIP_OWN`
    township: str = TOWNSHIP_OWN
    #: resolve ``needs`` on the district run even in a township run (maps: a township map is
    #: drawn from the district's results)
    district_needs: bool = False
    #: its district result is kept in ``<out>/.cache`` for later commands (the costly analyses)
    cached: bool = False
    #: run options it reads (``ctx.options``; an option not given counts as its
    #: :data:`OPTION_DEFAULTS` value), part of its cache key
    options: tuple[str, ...] = ()
    #: its module has ``prepare(ctx)``, called by :func:`run_steps` before the first step of the
    #: run: work that needs no other step's result is started there in the background (the
    #: maps: the print sheets' reliefs, while access and relocation run); it returns a handle
    #: with ``close()`` (kept in ``ctx.prepared[name]`` for the step) or None
    prepare: bool = False


#: The step graph of the main job, in run order (each step after the steps it needs).
STEPS: list[Step] = [
    Step("industry", "kaizhou_gis.industry.step:run", "Industry projects / 产业项目",
         layers=("townships", "township_seats", "villages"), plan=("industry", "aliases"),
         returns=IndustryData, options=("split",)),
    Step("access", "kaizhou_gis.access.step:run", "Road access / 道路通达通畅",
         layers=("townships", "township_seats", "villages", "settlements", "roads", "dem"),
         plan=("access", "links", "crs", "meta"), returns=AccessData, township=TOWNSHIP_VIEW,
         cached=True),
    Step("relocation", "kaizhou_gis.relocation.step:run", "Relocation / 高山生态扶贫搬迁",
         needs=("access",),
         layers=("boundary", "townships", "township_seats", "villages", "settlements", "roads",
                 "dem", "sites"),
         plan=("relocation", "baseline", "access", "crs", "meta"), returns=RelocationData,
         township=TOWNSHIP_VIEW, cached=True, options=("field_coords",)),
    Step("maps", "kaizhou_gis.maps.step:run", "Maps / 地图",
         needs=("access", "relocation", "industry"),
         layers=("boundary", "townships", "township_seats", "villages", "settlements", "roads",
                 "dem"),
         plan=("maps", "crs", "meta", "access", "relocation"), returns=MapsData,
         district_needs=True, options=("basemap", "tianditu_key", "prints"), prepare=True),
    Step("report", "kaizhou_gis.report.step:run", "Plan scorecard / 规划指标",
         needs=("access", "relocation", "industry"),
         layers=("townships", "villages", "settlements"),
         plan=(EVERY_SECTION,),  # its settings table lists every setting of the plan
         returns=ReportData),
]


def check_steps(steps: list[Step]) -> list[str]:
    """Check a step graph; returns the run order it implies (the list order).

    Raises :class:`StepError` naming the step for a duplicate name, an unknown dependency, a
    cycle, a step listed before a step it needs, or an unknown township mode.
    """
    names = [s.name for s in steps]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StepError(f"STEPS: step name(s) listed twice: {', '.join(dup)}")
    for s in steps:
        unknown = [n for n in s.needs if n not in names]
        if unknown:
            raise StepError(f"STEPS: step '{s.name}' needs {', '.join(unknown)}, which is not a "
                            f"step; steps: {', '.join(names)}")
        if s.township not in (TOWNSHIP_VIEW, TOWNSHIP_OWN):
            raise StepError(f"STEPS: step '{s.name}': township must be '{TOWNSHIP_VIEW}' or "
                            f"'{TOWNSHIP_OWN}', not {s.township!r}")
    try:
        tuple(graphlib.TopologicalSorter({s.name: s.needs for s in steps}).static_order())
    except graphlib.CycleError as e:
        raise StepError(f"STEPS: the steps need each other in a cycle: "
                        f"{' -> '.join(e.args[1])}") from None
    for i, s in enumerate(steps):
        later = [n for n in s.needs if names.index(n) > i]
        if later:
            raise StepError(f"STEPS: step '{s.name}' is listed before {', '.join(later)}, which "
                            f"it needs; list the steps in run order.")
    return names


check_steps(STEPS)


def get_step(name: str) -> Step:
    """The registered step ``name`` (:class:`OptionError` naming the steps when unknown)."""
    for s in STEPS:
        if s.name == name:
            return s
    raise OptionError(f"unknown step '{name}'; steps: {', '.join(s.name for s in STEPS)}")


#: Options that change figures (part of the inputs fingerprint).
ANALYSIS_OPTIONS: tuple[str, ...] = ("split",)
#: Options that change only how files look (recorded beside the fingerprint).
OUTPUT_OPTIONS: tuple[str, ...] = ("header", "basemap", "prints")


@dataclass
class Context:
    """Everything a step may use: the layers, the plan, the options, earlier results."""

    layers: Layers
    plan: Plan
    options: dict[str, Any] = field(default_factory=dict)
    results: dict[str, StepResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    _data_status: dict | None = field(default=None, repr=False)
    #: plan values replaced on the command line (``{"relocation.threshold_m": 1000.0}``)
    overrides: dict[str, Any] = field(default_factory=dict)
    _inputs: dict[str, Any] | None = field(default=None, repr=False)
    #: folder of the district-results cache (``<out>/.cache``), or None for no cache
    cache_dir: Path | None = None
    #: steps whose district result came from the cache: ``{step: fingerprint}``
    reused: dict[str, str] = field(default_factory=dict)
    _district: Context | None = field(default=None, repr=False)
    #: the output folder of the run (set by :func:`run_steps`; the report reads its manifest)
    out_dir: Path | None = None
    #: what :func:`run_steps` started ahead for a step (:attr:`Step.prepare`): ``{step: handle}``
    prepared: dict[str, Any] = field(default_factory=dict)
    #: plan sections each step function read when it ran here (:meth:`Plan.reading`)
    plan_reads: dict[str, frozenset[str]] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict, repr=False)
    #: the plan while a step runs on its noting copy (:meth:`_run_noting_plan_reads`)
    _plan: Plan | None = field(default=None, repr=False)

    def result(self, name: str) -> StepResult:
        """The result of step ``name``, running it now if it has not run.

        The step function gets the results of its declared needs (:meth:`needs_of`). With
        ``--township`` a step declared ``township="view"`` (relocation, access) gives the
        district's result (from :attr:`district`: computed once, or taken from the cache)
        filtered to the township by its module's ``township_view``: a township is a view of the
        district, never a separate analysis.
        """
        if name in self.results:
            return self.results[name]
        if name in self.failed:
            raise StepError(f"step '{name}' failed earlier: {self.failed[name]}")
        fn = step_function(name)
        if fn is None:
            raise StepError(f"step '{name}' is not available in this installation.")
        step = get_step(name)
        try:
            res = self._from_cache(name)
            if res is None:
                log.info("running step %s", name)
                if self.township is not None and step.township == TOWNSHIP_VIEW:
                    view = township_view_function(name)
                    assert view is not None, f"step {name} declares a township view"
                    res = view(self.district.result(name), self)
                else:
                    res = self._run_noting_plan_reads(name, fn)
                self._to_cache(name, res)
        except KaizhouGISError as e:
            self.failed[name] = str(e)
            raise
        self.results[name] = res
        return res

    def _run_noting_plan_reads(self, name: str, fn) -> StepResult:
        """Run step function ``fn`` on a copy of the plan that notes the sections it reads
        (kept in :attr:`plan_reads`; a step nested in it, through its needs, notes its own)."""
        plan = self.plan
        outermost = self._plan is None
        if outermost:
            self._plan = plan  # the plan itself, for a district context made during the step
        self.plan = plan.reading()
        try:
            return fn(self, self.needs_of(name))
        finally:
            self.plan_reads[name] = self.plan.sections_read
            self.plan = plan
            if outermost:
                self._plan = None

    def needs_of(self, name: str) -> StepNeeds:
        """The results step ``name`` declared it needs, computed on first use (on the district
        run for a step with ``district_needs``)."""
        step = get_step(name)
        source = self.district if step.district_needs else self
        registered = {s.name: s for s in STEPS}
        views = frozenset(n for n in step.needs
                          if n in registered and registered[n].township == TOWNSHIP_VIEW)
        return StepNeeds(name, step.needs, source.result, views=views)

    @property
    def district(self) -> Context:
        """The same run for the whole district (the context itself when it has no township);
        shares layers, plan, fingerprints and cache with this one."""
        if self.township is None:
            return self
        if self._district is None:
            opts = dict(self.options)
            opts["township"] = None
            # results given to this context from outside (not made here as township views) and
            # failures hold for the district too
            given = {k: v for k, v in self.results.items() if not v.township_view}
            self._district = Context(layers=self.layers, plan=self._plan or self.plan, options=opts,
                                     results=given, failed=dict(self.failed),
                                     overrides=self.overrides, cache_dir=self.cache_dir,
                                     reused=self.reused, _inputs=self._inputs, out_dir=self.out_dir,
                                     _data_status=self._data_status, _keys=self._keys)
        return self._district

    def cache_key(self, name: str) -> str:
        """Key of step ``name``'s cached district result: what that step reads, and nothing
        else. The code (:func:`kaizhou_gis.manifest.code_fingerprint`), the layers' fingerprints,
        the plan sections the step declares (with the command line's overrides), the run options
        it declares, and the keys of the steps it needs: ``relocation --threshold-m`` changes the
        relocation section, so relocation's key, not access's (access is reused)."""
        if name not in self._keys:
            from kaizhou_gis import manifest

            step = get_step(name)
            data = self.plan.data
            rec = {"step": name, "code": manifest.code_fingerprint(),
                   "layers": self.inputs["layers"],
                   "plan": data if EVERY_SECTION in step.plan else
                   {sec: data.get(sec) for sec in step.plan},
                   "options": {k: OPTION_DEFAULTS.get(k) if self.options.get(k) is None
                               else self.options.get(k) for k in step.options},
                   "needs": {n: self.cache_key(n) for n in step.needs}}
            self._keys[name] = manifest._sha(manifest.canonical_json(rec).encode())
        return self._keys[name]

    def _from_cache(self, name: str) -> StepResult | None:
        if self.cache_dir is None or self.township is not None or not get_step(name).cached:
            return None
        from kaizhou_gis import manifest
        key = self.cache_key(name)
        res = manifest.load_cached(self.cache_dir, name, key)
        if res is not None:
            log.info("step %s: district result reused (same inputs of the step)", name)
            self.reused[name] = key
        return res

    def _to_cache(self, name: str, res: StepResult) -> None:
        step = get_step(name)
        if self.cache_dir is None or self.township is not None or not step.cached:
            return
        read = self.plan_reads.get(name, frozenset())
        undeclared = [] if EVERY_SECTION in step.plan else sorted(read - set(step.plan))
        if undeclared:  # its key would miss them: a later run could reuse a stale result
            log.warning("step %s read plan section(s) %s that it does not declare in "
                        "kaizhou_gis/pipeline.py (STEPS); its result is not cached", name,
                        ", ".join(undeclared))
            return
        from kaizhou_gis import manifest
        try:
            manifest.store_cached(self.cache_dir, name, self.cache_key(name), res)
        except OSError as e:  # the result stands; a later command computes it again
            log.warning("step %s: its result could not be kept in the cache %s (%s)", name,
                        self.cache_dir, e.strerror or e)

    @property
    def data_status(self) -> dict:
        """What of the input is synthesized (:func:`kaizhou_gis.provenance.data_status`), once per run."""
        if self._data_status is None:
            from kaizhou_gis.provenance import data_status
            self._data_status = data_status(self.layers)
        return self._data_status

    @property
    def township(self) -> str | None:
        """The township code the run is limited to (``--township``), or None for the district."""
        return self.options.get("township")

    @property
    def inputs(self) -> dict[str, Any]:
        """What the figures depend on (:func:`kaizhou_gis.manifest.inputs_record`): layer and
        plan fingerprints, overrides, analysis options, and one combined ``fingerprint``."""
        if self._inputs is None and self.township is not None:
            self._inputs = self.district.inputs  # the same inputs: fingerprinted once
        if self._inputs is None:
            from kaizhou_gis import manifest
            self._inputs = manifest.inputs_record(
                self.layers, self.plan, overrides=self.overrides,
                options={k: self.options.get(k) for k in ANALYSIS_OPTIONS})
        return self._inputs

    @property
    def scope(self) -> dict[str, Any]:
        """``{"township_code", "township_name"}`` (both None for the district)."""
        code = self.township
        name = None
        if code is not None and getattr(self.layers, "townships", None) is not None:
            tw = self.layers.townships
            hit = tw.loc[tw["township_code"].astype(str) == str(code), "name"]
            name = str(hit.iloc[0]) if len(hit) else None
        return {"township_code": code, "township_name": name}

    @property
    def output_options(self) -> dict[str, Any]:
        """Options that change how files look, not the figures (recorded in the manifest)."""
        return {k: self.options.get(k) for k in OUTPUT_OPTIONS if self.options.get(k) is not None}


def step_function(name: str) -> Callable[[Context, StepNeeds], StepResult] | None:
    """The function of step ``name``, or None when its module is not installed."""
    mod, fn = get_step(name).target.split(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name == mod or mod.startswith(f"{e.name}."):  # the module or its package: not installed
            return None
        raise  # a library the module imports is missing: say which
    return getattr(module, fn)


def township_view_function(name: str) -> Callable[[StepResult, Context], StepResult] | None:
    """The step's ``township_view(district_result, ctx)``, or None when the step handles
    ``--township`` itself (industry, maps, report)."""
    step = get_step(name)
    if step.township != TOWNSHIP_VIEW:
        return None
    mod = importlib.import_module(step.target.split(":")[0])
    return mod.township_view


def _module_exists(module: str) -> bool:
    """Whether ``module`` is installed, found on the import path without importing it or its
    packages (``kaizhou_gis.maps.step`` would import all of the maps, folium with them)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    parts = module.split(".")
    path = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        pkg = sys.modules.get(name)
        if pkg is not None and i < len(parts) - 1:
            path = getattr(pkg, "__path__", None)
        else:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None:
                return False
            path = spec.submodule_search_locations
        if path is None and i < len(parts) - 1:
            return False
    return True


def step_available(name: str) -> bool:
    """Whether step ``name``'s module is installed (what :func:`step_function` would find), without
    importing it: a step's module, and the libraries it needs, load when the step runs."""
    return _module_exists(get_step(name).target.split(":")[0])


def installed_steps() -> list[str]:
    """The registered steps whose modules are installed, in run order, none imported (each
    loads when it runs): what ``kaizhou-gis run`` runs."""
    return [s.name for s in STEPS if step_available(s.name)]


def available_steps() -> list[str]:
    """The same steps as :func:`installed_steps`, each module imported (a worker's preload wants
    them all in memory before it forks)."""
    return [s.name for s in STEPS if step_function(s.name) is not None]


def resolve_township(layers: Layers, text: str | None) -> str | None:
    """Township code for a name or code given by the user (``大进镇``, ``大进``, ``500154118``)."""
    if text is None or str(text).strip() == "":
        return None
    t = str(text).strip()
    tw = layers.townships
    codes = tw["township_code"].astype(str)
    hit = tw[(codes == t) | (codes == t[:9]) | (tw["name"].astype(str) == t)]
    if hit.empty:
        stem = t.rstrip("镇乡街道")
        hit = tw[tw["name"].astype(str).str.replace(r"(镇|乡|街道)$", "", regex=True) == stem]
    if len(hit) == 1:
        return str(hit["township_code"].iloc[0])
    names = ", ".join(f"{n} ({c})" for c, n in zip(codes, tw["name"]))
    if hit.empty:
        raise OptionError(f"--township {t}: no township with that name or code in the townships "
                          f"layer; use one of: {names}")
    raise OptionError(f"--township {t}: matches several townships "
                      f"({', '.join(hit['name'].astype(str))}); give the 9-digit code instead.")


@dataclass
class StepOutcome:
    name: str
    title: str
    status: str  # "ok", "failed", "skipped"
    seconds: float = 0.0
    peak_mb: float = 0.0
    paths: list[Path] = field(default_factory=list)
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def run_steps(ctx: Context, names: list[str], out_dir: str | Path, *,
              on_start: Callable[[str, str], None] | None = None,
              on_done: Callable[[StepOutcome], None] | None = None,
              track_memory: bool = False, command: str | None = None) -> list[StepOutcome]:
    """Run the named steps in order and write their files under ``out_dir``.

    A failing step is reported and the next steps still run (those that need the failed one fail
    with a message naming it). Files are written atomically, so each file of ``out_dir`` is either
    the complete new one or the complete old one. Each step that wrote its files is recorded in
    ``out_dir/manifest.json`` (:mod:`kaizhou_gis.manifest`): command, time, scope, inputs and
    the files with their hashes; the command goes into the manifest's history. ``out_dir`` is
    locked for the run (a second run into it is refused) and a killed earlier run's temporary
    files are removed first.
    """
    from kaizhou_gis import manifest, outputs

    command = command or manifest.command_line()
    ctx.out_dir = Path(out_dir)

    with outputs.output_folder(out_dir):
        try:
            _prepare_steps(ctx, names)
            return _run_steps(ctx, names, out_dir, on_start=on_start, on_done=on_done,
                              track_memory=track_memory, command=command)
        finally:
            for name, handle in ctx.prepared.items():
                try:
                    handle.close()
                except Exception:  # noqa: BLE001 - the others are closed, the run's error kept
                    log.warning("step %s: closing the work started ahead failed", name, exc_info=True)
            ctx.prepared.clear()


def _prepare_steps(ctx: Context, names: list[str]) -> None:
    """Call ``prepare(ctx)`` of each step in ``names`` that declares one (:attr:`Step.prepare`)
    and keep its handle in ``ctx.prepared``. Only a head start: a prepare that fails is logged
    and the step does all its work itself."""
    declared = {s.name: s for s in STEPS if s.prepare}
    for name in names:
        if name not in declared:
            continue
        try:
            if step_function(name) is None:  # not installed: nothing to prepare
                continue
            handle = sys.modules[declared[name].target.split(":")[0]].prepare(ctx)
        except Exception as e:  # noqa: BLE001 - the step does the work itself
            log.warning("step %s: could not start its work ahead (%s: %s)", name,
                        type(e).__name__, e)
            continue
        if handle is not None:
            ctx.prepared[name] = handle


def _run_steps(ctx, names, out_dir, *, on_start, on_done, track_memory,
               command) -> list[StepOutcome]:
    from kaizhou_gis import manifest, outputs

    status = ctx.data_status
    outcomes = []
    titles = {s.name: s.title for s in STEPS}
    for name in names:
        title = titles.get(name, name)
        if on_start:
            on_start(name, title)
        if step_function(name) is None:
            oc = StepOutcome(name, title, "skipped", message="not available in this installation")
        else:
            t0 = time.perf_counter()
            if track_memory:
                tracemalloc.start()
            try:
                res = ctx.result(name)
                paths = outputs.write_products(out_dir, res.files, header=ctx.options.get("header", "en"),
                                               status=status)
                entry = manifest.step_entry(
                    name, inputs=ctx.inputs, scope=ctx.scope, files=paths, out_dir=out_dir,
                    command=command, output_options=ctx.output_options,
                    reused=dict(ctx.reused))
                entry["data_status"] = status
                manifest.record_step(out_dir, entry)
                oc = StepOutcome(name, title, "ok", paths=paths, summary=res.summary)
            except KaizhouGISError as e:
                oc = StepOutcome(name, title, "failed", message=str(e))
                ctx.failed.setdefault(name, str(e))
            except Exception as e:  # an unexpected bug in one step must not lose the others
                log.debug("step %s crashed", name, exc_info=True)
                oc = StepOutcome(name, title, "failed", message=f"{type(e).__name__}: {e}")
                ctx.failed.setdefault(name, oc.message)
            oc.seconds = time.perf_counter() - t0
            if track_memory:
                oc.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
        outcomes.append(oc)
        if on_done:
            on_done(oc)
    if outcomes:
        try:
            fp = ctx.inputs["fingerprint"]
        except Exception:  # layers too broken to fingerprint: the steps failed already
            fp = None
        manifest.record_command(out_dir, command=command, steps={o.name: o.status for o in outcomes},
                                scope=ctx.scope, fingerprint=fp, data_status=status)
    return outcomes
