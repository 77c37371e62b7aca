"""A run of the workbench: the analyses for one set of what-if values, and which steps a changed
setting affects."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kaizhou_gis.errors import OptionError

if TYPE_CHECKING:
    from kaizhou_gis.pipeline import Context

#: The analyses a run computes, in order, with their bilingual titles.
RUN_STEPS: list[tuple[str, str]] = [
    ("industry", "产业项目 Industry projects"),
    ("access", "道路通达通畅 Road access"),
    ("relocation", "高山生态扶贫搬迁 Relocation"),
    ("report", "规划指标 Plan scorecard"),
]


def steps_affected(keys) -> set[str]:
    """The steps whose results change when the plan settings ``keys`` change."""
    out = {"industry", "report"}  # industry is cheap; the report shows everything
    for k in keys:
        section = str(k).split(".")[0]
        if section == "relocation":
            out.add("relocation")
        elif section in ("access", "links"):
            out |= {"access", "relocation"}  # relocation reads access (remoteness)
        elif section != "industry":
            out |= {"access", "relocation"}
    return out



@dataclass
class Run:
    """One computation of the analyses for one set of what-if values."""

    key: str
    overrides: dict[str, float]
    plan: Any
    generation: int
    inputs: dict = field(default_factory=dict)  # manifest.inputs_record of the run
    status: str = "queued"  # queued, running, done
    step: int = 0
    current: str = ""
    failures: dict[str, str] = field(default_factory=dict)
    ctx: Context | None = None
    seconds: float = 0.0
    reused: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    locks: dict = field(default_factory=dict)  # one per file built on demand
    mapdata: Any = None

    def progress(self) -> dict:
        n = len(RUN_STEPS)
        return {"key": self.key, "status": self.status, "step": self.step, "steps": n,
                "current": self.current, "percent": round(100.0 * self.step / n),
                "failures": dict(self.failures), "overrides": dict(self.overrides),
                "seconds": round(self.seconds, 1)}


def _run_ctx(run: Run) -> Context:
    """The context of a finished run (files are only made from finished runs)."""
    if run.ctx is None:
        raise OptionError(f"run {run.key[:8]} has no results: "
                          + ("; ".join(run.failures.values()) or f"it is {run.status}"))
    return run.ctx
