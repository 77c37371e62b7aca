"""The plan's industry projects (ch.3 发展产业扶贫) placed on their host villages.

The projects are a hand-built table shipped with the package
(``kaizhou_gis/data/industry_projects.csv``, one row per project with the plan's sentence it comes
from; see ``kaizhou_gis/data/README.md``). :func:`resolve_hosts` finds every host the plan names on
the villages layer by township *and* village name, because a village name alone is ambiguous
(Kaizhou has two 中山村, two 石龙村, two 龙王村, two 双丰村). Old township names (白泉乡, 满月乡,
镇安镇) are mapped through ``township_aliases.csv``; plan spellings that differ from the official
list through ``village_aliases.csv``. A host that cannot be placed is kept in the ``unresolved``
table with the reason and the closest names in its township.

Where the plan gives one total over several villages ("16890头 in 32 poverty villages including A,
B, C"), the total stays on the project and each host's ``scale`` is empty; only with
``split="even"`` is the total divided evenly, and every such host says ``scale_assumed_split``.
"""
from __future__ import annotations

from kaizhou_gis.industry.hosts import host_township_codes, resolve_hosts
from kaizhou_gis.industry.projects import (
    HOST_LABELS_ZH,
    HOST_LEVELS,
    PROJECT_COLUMNS,
    PROJECT_LABELS_ZH,
    SPLIT_MODES,
    TOTAL_LABELS_ZH,
    UNRESOLVED_LABELS_ZH,
    _read_data_csv,
    load_projects,
    load_township_aliases,
    load_village_aliases,
    split_hosts,
)
from kaizhou_gis.industry.step import run
from kaizhou_gis.industry.totals import product_totals, project_status

#: the names other modules, tests and users import from the package
__all__ = [
    'HOST_LABELS_ZH', 'HOST_LEVELS', 'PROJECT_COLUMNS', 'PROJECT_LABELS_ZH', 'SPLIT_MODES',
    'TOTAL_LABELS_ZH', 'UNRESOLVED_LABELS_ZH', '_read_data_csv', 'host_township_codes',
    'load_projects', 'load_township_aliases', 'load_village_aliases', 'product_totals',
    'project_status', 'resolve_hosts', 'run', 'split_hosts'
]
