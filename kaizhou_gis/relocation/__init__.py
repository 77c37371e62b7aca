"""High-mountain ecological poverty relocation (高山生态扶贫搬迁, plan ch.5).

For every settlement (自然村) the step measures the terrain from the DEM, takes road access from
the ``access`` step when it is available, and flags the plan's criteria as separate columns:

``above_threshold``
    ``elevation_m > relocation.threshold_m`` (strictly greater: a settlement at exactly 800 m is
    not above 800 m). The plan's own count (340 natural villages above 800 m) uses this criterion.
``steep_terrain``
    mean slope within ``relocation.slope_window_m`` greater than ``relocation.steep_slope_deg``.
``deep_valley``
    the ground within ``relocation.relief_window_m`` rises at least
    ``relocation.deep_valley_relief_m`` above the settlement (深山峡谷).
``remote``
    no hardened road (not 通畅), or a hardened road but more than ``relocation.remote_km_to_seat``
    km by road to the township seat (高寒边远). Unknown (NA) when the access step is unavailable.
``in_poverty_village``
    the settlement's administrative village is a poverty village.

A settlement is a **relocation candidate** when it is above the threshold, or (when
``relocation.include_terrain_remote`` is true) when it is on steep ground *and* in a deep valley
*and* remote (the plan's 深山峡谷 where infrastructure is hard to provide); with
``relocation.require_poverty_village`` it must also lie in a poverty village. A settlement
without elevation (outside the DEM or on nodata) is never a candidate and has status
``no_elevation``.

The **priority** (0-100) is a weighted sum (``relocation.priority_weights``) of four parts in
[0, 1]: elevation (0 at the threshold, 1 at ``priority_elevation_span_m`` above it), terrain (the
larger of slope / steep_slope_deg and valley depth / deep_valley_relief_m), remoteness (1 without a
hardened road, else road km to the seat / remote_km_to_seat) and poverty (1 in a poverty village).

Candidates are **scheduled** to the plan's years (``relocation.yearly_people``) in priority order,
whole settlements only, so that the people of each year stay within its quota; what does not fit
is the remainder (with ``--township`` the district's quotas apply to that township alone).
**Resettlement sites** are points of a grid (``relocation.sites``) inside the
district, vetoed when above the elevation threshold, steeper than ``max_slope_deg`` or outside the
boundary, and ranked by a weighted suitability (gentle slope, near a hardened road, near the
township seat, near villages: low, accessible places such as township seats and central
villages). They are **sized to the demand where the demand is**: each township gets
``ceil(households / capacity_households)`` sites (households of all candidates, or of the
scheduled ones with ``size_to = "scheduled"``), best suitability first, ``min_site_spacing_m``
apart; a township short of feasible ground then uses its remaining feasible points (closer
together, ``own_points_before_neighbours``), and what it still lacks is covered by the feasible
points of neighbouring townships nearest to its settlements (``site_role = "cover"``,
``serves_township_code``/``for_township`` name the township served). The township table and the
summary say which townships have no feasible site of their own. A user ``sites`` layer replaces
the generated sites. Candidate **households are assigned** to sites by a transportation linear
program (HiGHS dual simplex): minimum total distance (straight line, km, plus
``other_township_penalty_km`` for a site neither in the household's township nor chosen to cover
it) subject to site capacity, only pairs within ``max_distance_km``. Households of one
settlement may be split over several sites. Leaving a household unplaced costs more than any
placement, so as many households as possible are placed; when capacity is short the households of
unscheduled, then of lower-priority settlements are left out first. Unplaced households are
listed with the reason. Distances are straight lines, not road distances.

The package, by concern: ``inputs`` (settlements with village and township, road access, poor
population), ``criteria`` (flags, candidate, priority, reasons), ``schedule`` (years against the
quotas), ``sites`` (grid, vetoes, suitability, selection), ``assignment`` (the transportation
problem, road distances), ``rollups`` (villages, townships, plan comparison), ``labels`` (Chinese
headers and values), ``tables`` and ``summary`` (the step's output tables and summary) and
``step`` (``run(ctx, needs)`` and ``township_view``, the only code that reads the context).
"""

from kaizhou_gis.relocation.assignment import assign_households, network_distance_km
from kaizhou_gis.relocation.criteria import SIZE_TO, check_settings, flag_settlements
from kaizhou_gis.relocation.inputs import access_columns, settlement_table, with_poor_population
from kaizhou_gis.relocation.labels import BEYOND_QUOTAS_EN, BEYOND_QUOTAS_ZH, LABELS_ZH, VALUES_ZH
from kaizhou_gis.relocation.rollups import plan_comparison, rollup_townships, rollup_villages
from kaizhou_gis.relocation.schedule import schedule_status, schedule_years
from kaizhou_gis.relocation.sites import SPACING_TOL_M, _spaced, evaluate_sites, grid_sites, select_sites
from kaizhou_gis.relocation.step import run, township_view

__all__ = [
    "BEYOND_QUOTAS_EN", "BEYOND_QUOTAS_ZH", "LABELS_ZH", "SIZE_TO", "SPACING_TOL_M", "VALUES_ZH",
    "_spaced", "access_columns", "assign_households", "check_settings", "evaluate_sites",
    "flag_settlements", "grid_sites", "network_distance_km", "plan_comparison", "rollup_townships",
    "rollup_villages", "run", "schedule_status", "schedule_years", "select_sites",
    "settlement_table", "township_view", "with_poor_population",
]
