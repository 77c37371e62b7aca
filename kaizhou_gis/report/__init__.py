"""The plan scorecard: the plan's main indicators, relocation, roads and industry against the plan.

The report step (:func:`run`) reads the results of the ``access``, ``relocation`` and ``industry``
steps (each may be unavailable or have failed; the affected sections then say so) and the input
layers, and returns three products at the root of the output folder:

``report.json``
    every figure of the report, machine-readable (:func:`build_report` builds this dict);
``report.md``
    the same as Markdown tables, with the charts as PNG files in ``report_files/``;
``report.html``
    one self-contained page (charts embedded as base64 PNG, no external resource), with Chinese
    and English labels, that reads like an annex of the planning document.

Which of the plan's indicators the layers can answer is set in the plan file
(``report.indicator_measures``: indicator id -> measure); every other indicator is reported with
its targets and the reason it is "not derivable from these layers".

Layout: :mod:`.frames` (the tables, limited to the run's township), :mod:`.indicators` (the plan's
main indicators), :mod:`.sections` (relocation, access, industry), :mod:`.townships` (per-township
table), :mod:`.build` (settings and provenance parts), :mod:`.charts` (PNG), :mod:`.blocks`, :mod:`.text`
and :mod:`.render` (HTML and Markdown), :mod:`.step` (the pipeline step :func:`run` and
:func:`build_report`, report.json as a dict: the only module reading the run context).
"""
from kaizhou_gis.report.blocks import _indicator_rows, _sections
from kaizhou_gis.report.build import SOURCE_STEPS, provenance_section, settings_table
from kaizhou_gis.report.charts import make_charts
from kaizhou_gis.report.common import NOT_DERIVABLE, NOT_DERIVABLE_ZH
from kaizhou_gis.report.indicators import MEASURES, indicator_table
from kaizhou_gis.report.render import render_html, render_markdown
from kaizhou_gis.report.sections import access_section, industry_section, relocation_section
from kaizhou_gis.report.step import build_report, inputs_section, run
from kaizhou_gis.report.townships import TOWNSHIP_LABELS_ZH, township_table

__all__ = ["MEASURES", "NOT_DERIVABLE", "NOT_DERIVABLE_ZH", "SOURCE_STEPS", "TOWNSHIP_LABELS_ZH",
           "_indicator_rows", "_sections", "access_section", "build_report", "indicator_table",
           "industry_section", "inputs_section", "make_charts", "provenance_section",
           "relocation_section", "render_html", "render_markdown", "run", "settings_table",
           "township_table"]
