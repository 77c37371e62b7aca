"""Gap closing: the cheapest road works that bring villages and settlements to the plan's targets.

Options for a point (village or settlement) that is not 通畅
------------------------------------------------------------
(a) **Upgrade**: harden the unpaved edges on its cheapest path to its township seat's paved
    network. Edge weights are the upgrade cost (``links.cost_upgrade_yuan_per_km`` by the edge's
    terrain class; paved edges cost nothing but a token 0.001 yuan/m that prefers short paths).
    One Dijkstra call from all seats gives every point's cheapest path; the paths of one township
    form a shortest-path tree, so points along the same track share its upgrade. The point's own
    edge is upgraded whole if it is unpaved. Only possible when the point is already 通达.
(b) **New link**: a new hardened road from the point to the nearest (cheapest) point of its
    seat's paved network, by a least-cost path over the DEM under ``links.max_grade_pct``: the
    :mod:`kaizhou_gis.network.costpath` cell graph (with hairpins, below) and ONE multi-source Dijkstra
    (:func:`kaizhou_gis.network.costpath.search`) from points every ``access.grade_sample_m`` along the
    paved network, for all points whose seats share a paved network, over the DEM window of
    their bounding box plus ``links.max_new_link_km`` (a large window is searched tile by tile,
    with the same links: :func:`kaizhou_gis.access.linksearch._search_tiled`). When the point's own cell cannot be
    reached, the link may stop at the nearest reachable cell within ``links.link_end_max_m``
    (the rest is a village path, ``path_m``). No feasible path, or one longer than
    ``max_new_link_km``, means no link ("no new link under 12 % grade within 15 km").
    Cost = length × ``links.cost_new_yuan_per_km`` for the link's terrain class.
    A settlement that only needs 通达 (target group, not yet 通达) and has no feasible link to the
    paved network may instead be linked to the nearest road of any surface connected to its seat
    (one small search per settlement; ``connects_to`` says which).

Choosing the works (a Steiner-tree-like covering problem, solved by a documented heuristic)
--------------------------------------------------------------------------------------------
1. *Targets of 100 %* force a work for every administrative village not 通畅 and every
   settlement of the target group not 通达. These are taken cheapest first; each is given the
   cheaper of its new link and the **marginal** cost of its upgrade path (edges already chosen
   for an earlier point cost nothing, so shared works are counted once). A point whose whole
   upgrade path has been chosen for others is covered for free.
2. *Target of 80 %* (settlements 通畅): the remaining target-group settlements that are 通达 but
   not 通畅 are added greedily by lowest marginal cost (recomputed after every choice, so
   sharing is accounted for) until the share reaches the target. Since every settlement counts
   the same towards the share, taking the cheapest marginal first is the natural greedy rule for
   covering a count at least cost.
3. *Clean-up*: a point given a new link early whose upgrade path has since become cheaper
   (because later choices upgraded most of it) is switched to the upgrade, and the decisions
   are replayed in order so that steps, shares and cumulative cost stay consistent.
New links share too. When a new link is built, its DEM cells join the network it leads to: a
later link whose cell path passes through them starts at the last such cell (a vertex of both
lines) instead of running beside the earlier link to the road; its km and cost are those of the
rest of its path (a part of a path that met the grade limit meets it too). A later point that
has no upgrade option (not 通达) is also searched a link to the nearest earlier link of the same
network (a small search within its own link's length, sources every ``grade_sample_m`` along
the earlier links) and takes it when cheaper. Points that can be served by upgrading their road
do not hop onto other new links, so a chain of new links is never built beside an unpaved road
whose upgrade they could share.
The cost curve lists every choice with the cumulative km and cost and the shares reached.
Points with no feasible option are reported as unresolved with the reason.

Hairpins: a 3-arc-second DEM cell is ~90 m, too coarse to draw the hairpin bends by which
mountain roads climb slopes steeper than their grade. A cell step over terrain steeper than
``links.max_grade_pct`` (up to ``links.switchback_terrain_max_pct``) therefore counts as a road
at the maximum grade, lengthened by terrain grade / maximum grade (``hairpin_km`` of the work);
the road grade never exceeds the maximum. The drawn line follows the corridor, ``km`` and the
cost include the lengthening.

:func:`apply_works` turns the works into road changes (new links become paved roads, upgraded
edges are cut out of their road lines and made paved) so the analysis can be re-run on them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely

from kaizhou_gis.access.options import add_point, add_vertex, candidates, join_link, link_options, upgrade_options
from kaizhou_gis.access.scoring import admin_village_mask
from kaizhou_gis.errors import format_ids
from kaizhou_gis.figures import pct
from kaizhou_gis.network import DemGrid

log = logging.getLogger(__name__)


WORK_LABELS_ZH = {"work_id": "工程编号", "type": "类型", "km": "里程(公里)", "cost_yuan": "投资(元)",
                  "beneficiaries": "受益村/自然村", "terrain": "地形", "road_id": "道路编号",
                  "phase": "阶段", "step": "顺序", "max_grade_pct": "最大纵坡(%)",
                  "township_code": "乡镇代码", "max_terrain_grade_pct": "最大地形坡度(%)",
                  "hairpin_km": "回头弯加长(公里)", "path_m": "村社便道(米)", "edge_id": "路段编号(网络)",
                  "connects_to": "接入"}
CURVE_LABELS_ZH = {"step": "顺序", "phase": "阶段", "work_ids": "工程编号", "cumulative_km": "累计里程(公里)",
                   "cumulative_cost_yuan": "累计投资(元)", "village_tongchang_pct": "行政村通畅率(%)",
                   "settlement_tongda_pct": "集中居住地通达率(%)",
                   "settlement_tongchang_pct": "集中居住地通畅率(%)"}


@dataclass
class WorksPlan:
    """Proposed works and how they were chosen."""

    works: gpd.GeoDataFrame
    cost_curve: pd.DataFrame
    unresolved: pd.DataFrame
    totals: dict
    work_ids: pd.Series  # point id → "U0001;N0002"
    choices: pd.DataFrame


# --------------------------------------------------------------------------------------------
# Choice
# --------------------------------------------------------------------------------------------
def plan_works(before, vt: pd.DataFrame, st: pd.DataFrame, *, plan, dem: DemGrid | None) -> WorksPlan:
    """Choose the works that meet the 100 % targets and the 80 % target at least cost.

    Parameters
    ----------
    before : access.AccessResult
        The analysis on the current roads.
    vt, st : GeoDataFrame
        Villages and settlements in scope (``tongda``, ``tongchang``, ``township_code``,
        settlements ``target_group``), index aligned with ``before``. Only administrative
        villages (``kind`` 村) count for the village target; 社区 are left out.
    plan : Plan
    dem : DemGrid or None
    """
    p, q = plan.section("access"), plan.section("links")
    net, seats = before.net, before.seats
    vt = vt[admin_village_mask(vt).to_numpy()]  # the village target concerns 行政村, not 社区
    cand = candidates(before, vt, st)
    tgt = st[st["target_group"].astype(bool)]

    std, paths, ecost = upgrade_options(net, seats, cand, q["cost_upgrade_yuan_per_km"])
    links, relink = link_options(net, seats, cand, dem, max_grade_pct=float(q["max_grade_pct"]),
                          max_link_km=float(q["max_new_link_km"]), slope_weight=float(q["slope_weight"]),
                          sample_m=float(p["grade_sample_m"]), end_max_m=float(q["link_end_max_m"]),
                          switchback_terrain_max_pct=float(q["switchback_terrain_max_pct"]),
                          snap_tolerance_m=float(p["snap_tolerance_m"]),
                          fallback_any_surface=(cand["kind"].eq("settlement") & cand["mandatory"]).to_numpy(),
                          reach_distance_m=float(p["reach_distance_m"]), cost_per_km=q["cost_new_yuan_per_km"],
                          terrain_slope_deg=q["terrain_slope_deg"])
    sel = _Selection(cand, paths, ecost, links, relink, net.edges["length_m"].to_numpy(),
                     n_v=len(vt), n_t=len(tgt), v_ok0=int(vt["tongchang"].sum()), t_da0=int(tgt["tongda"].sum()),
                     t_ch0=int(tgt["tongchang"].sum()), cost_per_km=q["cost_new_yuan_per_km"],
                     terrain_slope_deg=q["terrain_slope_deg"])
    unresolved, step = sel.meet_full_targets()
    need_t = math.ceil(float(p["settlement_tongchang_target_pct"]) / 100.0 * len(tgt) - 1e-9)
    unresolved += sel.meet_share_target(need_t, step)
    sel.prefer_shared_upgrades()

    works, work_ids = _works_table(sel, net.edges)
    unresolved_df = _unresolved_table(unresolved, cand, links)
    choices = _choices_table(sel, std)
    return WorksPlan(works=works, cost_curve=_cost_curve(sel.curve, works, cand), unresolved=unresolved_df,
                     totals=_totals(works, unresolved_df, p, len(cand)),
                     work_ids=pd.Series({k: ";".join(v) for k, v in work_ids.items()}, dtype=object),
                     choices=choices)


class _Selection:
    """The choice of works over the candidate points.

    Fixed: every candidate's upgrade path (``paths``, edge costs ``ecost``) and new link
    (``links``, cost ``lcost``). Chosen so far (reset by :meth:`reset` for a replay): the chosen
    edges with their step and phase (``chosen``, ``edge_step``, ``edge_phase``), each point's
    remaining marginal upgrade cost ``rem``, ``covered`` (通畅) / ``covered_da`` (通达 only),
    ``option`` and ``cand_step`` per point, cumulative ``km`` and ``cost``, the new links in
    order (``new_links``), the cost ``curve``, the ``decisions`` in order, the links built
    (``used``, by point), their DEM cells by network (``taken``) and which earlier link a link
    starts on (``via``).
    """

    def __init__(self, cand: pd.DataFrame, paths: list, ecost: np.ndarray, links: list, relink,
                 length_m: np.ndarray, *, n_v: int, n_t: int, v_ok0: int, t_da0: int, t_ch0: int,
                 cost_per_km: dict, terrain_slope_deg) -> None:
        self.cand, self.paths, self.ecost, self.links, self.relink = cand, paths, ecost, links, relink
        self.L_e = length_m
        self.n_v, self.n_t, self.v_ok0, self.t_da0, self.t_ch0 = n_v, n_t, v_ok0, t_da0, t_ch0
        self.cost_per_km, self.terrain_slope_deg = cost_per_km, terrain_slope_deg
        self.lcost = np.array([lk["cost"] if lk and "cost" in lk else np.inf for lk in links])
        self.K, self.E = len(cand), len(length_m)
        self.has_up = np.array([pth is not None for pth in paths], dtype=bool)
        ri = np.concatenate([np.full(len(pth), i) for i, pth in enumerate(paths) if pth] or [np.zeros(0, int)])
        ci = np.concatenate([np.asarray(pth, dtype=np.int64) for pth in paths if pth] or [np.zeros(0, int)])
        P = sp.csr_matrix((np.ones(len(ri)), (ri, ci)), shape=(self.K, self.E))
        self.Pc = P.tocsc()
        self.rem0 = np.where(self.has_up, P @ ecost, np.inf)
        self.is_v = (cand["kind"] == "village").to_numpy()
        self.is_t = ~self.is_v
        self.was_da = cand["tongda"].to_numpy()
        self.relink_cache: dict = {}
        self.reset()

    def shares(self) -> dict:
        cv = self.covered
        da = cv | self.covered_da
        return {"village_tongchang_pct": pct(self.v_ok0 + int((cv & self.is_v).sum()), self.n_v),
                "settlement_tongda_pct": pct(self.t_da0 + int((da & self.is_t & ~self.was_da).sum()), self.n_t),
                "settlement_tongchang_pct": pct(self.t_ch0 + int((cv & self.is_t).sum()), self.n_t)}

    def reset(self) -> None:
        K, E = self.K, self.E
        self.rem = self.rem0.copy()
        self.chosen = np.zeros(E, dtype=bool)
        self.edge_step = np.full(E, -1)
        self.edge_phase = np.empty(E, dtype=object)
        self.covered = np.zeros(K, dtype=bool)
        self.option = np.full(K, "", dtype=object)
        self.cand_step = np.full(K, -1)
        self.km, self.cost = 0.0, 0.0
        self.covered_da = np.zeros(K, dtype=bool)
        self.new_links: list[tuple[int, int, str]] = []
        self.curve: list[dict] = []
        self.decisions: list[tuple[int, str]] = []
        self.used: dict[int, dict] = {}
        self.taken: dict = {}
        self.via: dict[int, int] = {}
        self.curve.append({"step": 0, "phase": "before", "cand": None, "cumulative_km": 0.0,
                           "cumulative_cost_yuan": 0.0, **self.shares()})

    def add_edges(self, k: int, step: int, phase: str) -> None:
        """Choose the edges of point k's upgrade path not chosen yet."""
        chosen = self.chosen
        new_e = np.array([x for x in self.paths[k] if not chosen[x]], dtype=np.int64)
        if len(new_e):
            chosen[new_e] = True
            self.edge_step[new_e] = step
            self.edge_phase[new_e] = phase
            self.km += float(self.L_e[new_e].sum()) / 1000.0
            self.cost += float(self.ecost[new_e].sum())
            self.rem[:] = np.where(self.has_up, self.rem - self.Pc[:, new_e] @ self.ecost[new_e], np.inf)

    def relink_if_cheaper(self, k: int, lk: dict, on):
        """The cheaper of link ``lk`` and a link to the nearest link already chosen (same network)."""
        owners = [j for j, u_ in self.used.items() if u_.get("network") == lk.get("network")]
        if not owners:
            return lk, on
        lines = np.array([self.used[j]["geometry"] for j in owners], dtype=object)
        pt = self.cand.geometry.iloc[k]
        # a link is never shorter than the straight line: skip when every earlier link is farther
        if float(shapely.distance(pt, lines).min()) >= lk["km"] * 1000.0:
            return lk, on
        key = (k, tuple(owners), tuple(shapely.to_wkb(lines).tolist()))
        if key not in self.relink_cache:
            self.relink_cache[key] = self.relink(k, lines, lk["km"])
        got = self.relink_cache[key]
        if got is None or got["cost"] >= lk["cost"] - 1e-6:
            return lk, on
        return {**got, "starts_on_line": True}, owners[got["source_line"]]

    def take(self, k: int, phase: str, step: int, force: str | None = None) -> None:
        """Give point k a work (upgrade path or new link), then mark everyone it covers."""
        rem, covered, option = self.rem, self.covered, self.option
        lk, on = None, None
        if np.isfinite(self.lcost[k]):
            # a link may start on an earlier link that leads to the same network
            lk, on = join_link(self.links[k], self.taken.get(self.links[k].get("network"), {}),
                               cost_per_km=self.cost_per_km, terrain_slope_deg=self.terrain_slope_deg)
        # a point that can be served by upgrading its road may not hop onto other new links: a
        # chain of new links beside an unpaved road would undercut that road's shared upgrade
        if lk is not None and force != "upgrade" and self.relink is not None and not self.has_up[k]:
            lk, on = self.relink_if_cheaper(k, lk, on)
        up = (force == "upgrade") if force else bool(self.has_up[k] and rem[k] <= (lk["cost"] if lk else np.inf))
        if up:
            self.add_edges(k, step, phase)
            option[k] = "upgrade"
        else:
            assert lk is not None  # no finite link cost means an upgrade was taken
            option[k] = "new"
            self.new_links.append((k, step, phase))
            self._build_link(k, lk, on)
        if up or self.links[k].get("to_paved", True):
            covered[k] = True
        else:  # a link to an unpaved road: 通达 only
            self.covered_da[k] = True
        self.cand_step[k] = step
        free = ~covered & self.has_up & (rem <= 1e-6)
        option[free] = "free"
        self.cand_step[free] = step
        covered[free] = True
        self.decisions.append((k, phase))
        self.curve.append({"step": step, "phase": phase, "cand": int(k), "cumulative_km": self.km,
                           "cumulative_cost_yuan": self.cost, **self.shares()})

    def _build_link(self, k: int, lk: dict, on) -> None:
        """Record point k's new link ``lk`` (starting on the link of point ``on`` if not None)."""
        if on is not None and lk.get("starts_on_line"):  # its start becomes a vertex of the other
            self.via[k] = on
            add_point(self.used[on], shapely.get_coordinates(lk["geometry"])[0])
        elif on is not None:  # the shared cell becomes a vertex of the earlier link too
            self.via[k] = on
            cell = int(lk["cells"][0])
            dkm, dcost = add_vertex(self.used[on], int(np.flatnonzero(
                self.used[on]["cells"] == cell)[0]), cost_per_km=self.cost_per_km)
            self.km += dkm
            self.cost += dcost
        lk = self.used[k] = dict(lk)  # own copy: a later link may add a vertex to it
        net_cells = self.taken.setdefault(lk.get("network"), {})
        for c in np.asarray(lk.get("cells", []), dtype=np.int64).tolist():
            net_cells.setdefault(c, k)
        self.km += lk["km"]
        self.cost += lk["cost"]

    def meet_full_targets(self) -> tuple[list[int], int]:
        """Pass 1, the 100 % targets: forced points cheapest first. Returns (unresolved, last step)."""
        self.reset()
        unresolved: list[int] = []
        best0 = np.minimum(self.rem0, self.lcost)
        step = 0
        mand = np.flatnonzero(self.cand["mandatory"].to_numpy())
        for k in mand[np.argsort(best0[mand], kind="stable")]:
            if self.covered[k] or self.covered_da[k]:
                continue
            if not np.isfinite(min(self.rem[k], self.lcost[k])):
                unresolved.append(int(k))
                continue
            step += 1
            self.take(int(k), "100% targets", step)
        return unresolved, step

    def meet_share_target(self, need_t: int, step: int) -> list[int]:
        """Pass 2, the 80 % target: greedy by marginal cost until ``need_t`` target settlements are
        通畅. Returns the points left unresolved."""
        opt = np.flatnonzero(self.is_t & self.was_da)
        while self.t_ch0 + int((self.covered & self.is_t).sum()) < need_t:
            left = opt[~self.covered[opt]]
            if len(left) == 0:
                break
            c = np.minimum(self.rem[left], self.lcost[left])
            j = int(np.argmin(c))
            if not np.isfinite(c[j]):
                return left.tolist()
            step += 1
            self.take(int(left[j]), "80% target", step)
        return []

    def prefer_shared_upgrades(self) -> None:
        """Pass 3: a point given a new link early may have become cheaper to serve through upgrades
        chosen later for others: switch it (cheapest remaining upgrade first), then replay the
        decisions in their order so the works' steps and the cost curve match the final choice."""
        force = {k: ("new" if self.option[k] == "new" else "upgrade") for k, _ in self.decisions}
        rem_f = self.rem.copy()
        chosen_f = self.chosen.copy()
        switched = 0
        for k, _, _ in sorted(self.new_links, key=lambda t: rem_f[t[0]]):
            if self.has_up[k] and rem_f[k] <= self.used[k]["cost"]:
                force[k] = "upgrade"
                switched += 1
                new_e = np.array([x for x in self.paths[k] if not chosen_f[x]], dtype=np.int64)
                if len(new_e):
                    chosen_f[new_e] = True
                    rem_f = np.where(self.has_up, rem_f - self.Pc[:, new_e] @ self.ecost[new_e], np.inf)
        if switched:
            decisions = list(self.decisions)
            self.reset()
            step = 0
            for k, ph in decisions:
                if self.covered[k]:
                    continue
                step += 1
                self.take(k, ph, step, force=force[k])
            log.info("links: %d new link(s) replaced by shared upgrades", switched)


# --------------------------------------------------------------------------------------------
# Tables of the choice
# --------------------------------------------------------------------------------------------
_WORK_COLUMNS = ["work_id", "type", "km", "cost_yuan", "beneficiaries", "terrain", "road_id", "edge_id",
                 "max_grade_pct", "max_terrain_grade_pct", "hairpin_km", "path_m", "connects_to",
                 "township_code", "phase", "step", "geometry"]


def _upgrade_chains(edges: pd.DataFrame, chosen: np.ndarray, edge_step: np.ndarray) -> list[list[int]]:
    """Upgrades: contiguous edges of one road chosen at one step form one work (a stretch)."""
    up_idx = np.flatnonzero(chosen)
    road_idx = edges["road_index"].to_numpy()
    eu, ev = edges["u"].to_numpy(), edges["v"].to_numpy()
    by_group: dict = {}
    for ei in up_idx[np.argsort(edge_step[up_idx], kind="stable")]:
        by_group.setdefault((int(edge_step[ei]), road_idx[ei]), []).append(int(ei))
    chains: list[list[int]] = []
    for eis in by_group.values():
        parent: dict[int, int] = {}

        def find(x: int, parent: dict[int, int] = parent) -> int:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x
        for ei in eis:
            parent[find(int(eu[ei]))] = find(int(ev[ei]))
        groups_: dict[int, list[int]] = {}
        for ei in eis:
            groups_.setdefault(find(int(eu[ei])), []).append(ei)
        chains.extend(groups_.values())
    return chains


def _upgrade_rows(sel: _Selection, edges: pd.DataFrame, chains: list[list[int]],
                  work_ids: dict[str, list[str]]) -> list[dict]:
    """One works row per upgrade stretch; adds each beneficiary's work ids to ``work_ids``."""
    cand = sel.cand
    wid_of_edge = {}
    for n_, chain in enumerate(chains, 1):
        for ei in chain:
            wid_of_edge[ei] = f"U{n_:04d}"
    benef: dict[str, list[str]] = {}
    pids = cand["pid"].to_numpy()
    for k in np.flatnonzero(np.isin(sel.option, ["upgrade", "free"])).tolist():
        pid = pids[k]
        for wid in dict.fromkeys(wid_of_edge[int(ei)] for ei in sel.paths[k]):
            benef.setdefault(wid, []).append(pid)
            work_ids.setdefault(pid, []).append(wid)
    town_of = dict(zip(cand["pid"], cand["township_code"], strict=True))
    length_m = edges["length_m"].to_numpy()
    terr = edges["terrain"].to_numpy()
    egrade = edges["max_grade_pct"].to_numpy(dtype="float64")
    egeom = edges.geometry.to_numpy()
    road_id = edges["road_id"].to_numpy()
    main_terrain = _main_terrain(chains, length_m, terr)
    rows = []
    for chain, terrain in zip(chains, main_terrain, strict=True):
        wid = wid_of_edge[chain[0]]
        towns = sorted({town_of[b] for b in benef.get(wid, [])})
        geom = shapely.line_merge(shapely.multilinestrings(list(egeom[chain])))
        if geom.geom_type != "LineString":  # not a simple stretch: keep the edges' union
            geom = shapely.multilinestrings(list(egeom[chain]))
        g = egrade[chain]
        rows.append({"work_id": wid, "type": "upgrade", "km": float(length_m[chain].sum()) / 1000.0,
                     "cost_yuan": float(sel.ecost[chain].sum()), "beneficiaries": ";".join(benef.get(wid, [])),
                     "terrain": terrain, "road_id": road_id[chain[0]],
                     "edge_id": ";".join(map(str, chain)),
                     "max_grade_pct": float(np.nanmax(g)) if np.isfinite(g).any() else np.nan,
                     "max_terrain_grade_pct": np.nan, "hairpin_km": 0.0, "path_m": 0.0,
                     "connects_to": "paved network",
                     "township_code": ";".join(towns), "phase": sel.edge_phase[chain[0]],
                     "step": int(sel.edge_step[chain[0]]), "geometry": geom})
    return rows


def _main_terrain(chains: list[list[int]], length_m: np.ndarray, terr: np.ndarray) -> list[str]:
    """The terrain class with the most km of each chain of edges (equal km: the first class in
    sorted order): one grouped sum over all chains (per chain and class, the edges in chain
    order, as a groupby of each chain alone sums them)."""
    if not chains:
        return []
    cid = np.repeat(np.arange(len(chains)), [len(c) for c in chains])
    flat = np.concatenate([np.asarray(c, dtype=np.int64) for c in chains])
    sums = pd.Series(length_m[flat]).groupby([cid, terr[flat]]).sum()
    best = sums.groupby(level=0).idxmax()
    return [str(t) for _, t in best.reindex(np.arange(len(chains))).tolist()]


def _link_rows(sel: _Selection, work_ids: dict[str, list[str]]) -> list[dict]:
    """One works row per new link; adds each beneficiary's work ids to ``work_ids``. A link that
    starts on an earlier link needs that one (and what it starts on) built too."""
    cand = sel.cand
    town_of = dict(zip(cand["pid"], cand["township_code"], strict=True))
    wid_of_link = {k: f"N{n_:04d}" for n_, (k, _, _) in enumerate(sel.new_links, 1)}
    link_benef: dict[int, list[str]] = {k: [] for k in wid_of_link}
    for k in wid_of_link:
        j: int | None = k
        while j is not None:
            link_benef[j].append(cand["pid"].iloc[k])
            work_ids.setdefault(cand["pid"].iloc[k], []).append(wid_of_link[j])
            j = sel.via.get(j)
    rows = []
    for k, stp, ph in sel.new_links:
        lk = sel.used[k]
        rows.append({"work_id": wid_of_link[k], "type": "new", "km": lk["km"], "cost_yuan": float(lk["cost"]),
                     "beneficiaries": ";".join(link_benef[k]), "terrain": lk["terrain"], "road_id": "", "edge_id": "",
                     "max_grade_pct": lk["max_grade_pct"], "max_terrain_grade_pct": lk["max_terrain_grade_pct"],
                     "hairpin_km": lk["hairpin_km"], "path_m": lk["path_m"],
                     "connects_to": "paved network" if lk.get("to_paved", True) else "road network (通达 only)",
                     "township_code": ";".join(sorted({town_of[b] for b in link_benef[k]})),
                     "phase": ph, "step": stp, "geometry": lk["geometry"]})
    return rows


def _works_table(sel: _Selection, edges: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, list[str]]]:
    """The works (upgrade stretches, then new links) and each point's work ids."""
    work_ids: dict[str, list[str]] = {}
    rows = _upgrade_rows(sel, edges, _upgrade_chains(edges, sel.chosen, sel.edge_step), work_ids)
    rows += _link_rows(sel, work_ids)
    works = gpd.GeoDataFrame(pd.DataFrame(rows, columns=_WORK_COLUMNS), geometry="geometry", crs=edges.crs)
    works = works.sort_values(["step", "work_id"], kind="stable").reset_index(drop=True)
    works["km"] = works["km"].round(3)
    works["cost_yuan"] = works["cost_yuan"].round(0)
    works.attrs["labels_zh"] = WORK_LABELS_ZH
    return works, work_ids


def _cost_curve(curve: list[dict], works: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """The cost curve with the work ids of every step."""
    step_works: dict[int, list[str]] = {}
    for w, s_ in zip(works["work_id"], works["step"], strict=True):
        step_works.setdefault(int(s_), []).append(w)
    for r in curve:
        r["work_ids"] = ";".join(step_works.get(r["step"], []))
        k = r.pop("cand", None)
        r["beneficiary"] = "" if k is None else cand["pid"].iloc[k]
    cc = pd.DataFrame(curve, columns=["step", "phase", "beneficiary", "work_ids", "cumulative_km",
                                      "cumulative_cost_yuan", "village_tongchang_pct",
                                      "settlement_tongda_pct", "settlement_tongchang_pct"])
    cc["cumulative_km"] = cc["cumulative_km"].round(3)
    cc["cumulative_cost_yuan"] = cc["cumulative_cost_yuan"].round(0)
    cc.attrs["labels_zh"] = CURVE_LABELS_ZH | {"beneficiary": "受益村/自然村"}
    return cc


def _unresolved_table(unresolved: list[int], cand: pd.DataFrame, links: list) -> pd.DataFrame:
    """Points with no feasible work, with the reason."""
    ur = []
    for k in sorted(set(unresolved)):
        lk = links[k] or {}
        why_up = ("not 通达 (no upgrade possible)" if not cand["tongda"].iloc[k]
                  else "no upgrade path to the seat's paved network")
        ur.append({"id": cand["pid"].iloc[k], "kind": cand["kind"].iloc[k],
                   "township_code": cand["township_code"].iloc[k],
                   "need": "100% target" if cand["mandatory"].iloc[k] else "80% target",
                   "reason": f"{why_up}; {lk.get('reason', 'no new link')}; a case for relocation "
                             f"(ch.5: places where infrastructure is hard to provide)"})
    unresolved_df = pd.DataFrame(ur, columns=["id", "kind", "township_code", "need", "reason"])
    if len(unresolved_df):
        log.info("%d point(s) have no feasible work: %s", len(unresolved_df),
                    format_ids(unresolved_df["id"]))
    return unresolved_df


def _totals(works: pd.DataFrame, unresolved_df: pd.DataFrame, p: dict, n_points: int) -> dict:
    """The works' totals against the plan's road km."""
    new_km = float(works.loc[works["type"] == "new", "km"].sum())
    up_km = float(works.loc[works["type"] == "upgrade", "km"].sum())
    plan_km = float(p["roads_km_2020"])
    return {
        "new_links": int((works["type"] == "new").sum()), "new_km": round(new_km, 3),
        "upgrades": int((works["type"] == "upgrade").sum()), "upgrade_km": round(up_km, 3),
        "total_km": round(new_km + up_km, 3), "cost_yuan": float(works["cost_yuan"].sum()),
        "cost_100pct_targets_yuan": float(works.loc[works["phase"] == "100% targets", "cost_yuan"].sum()),
        "cost_80pct_target_yuan": float(works.loc[works["phase"] == "80% target", "cost_yuan"].sum()),
        "plan_roads_km": plan_km,
        "share_of_plan_km_pct": pct(new_km + up_km, plan_km, 1),
        "plan_poverty_village_roads_km": float(p["poverty_village_roads_km"]),
        "unresolved": int(len(unresolved_df)),
        "points_considered": int(n_points),
        "method": "100% targets: every forced point cheapest first, cheaper of new link and marginal "
                  "upgrade cost; 80% target: greedy lowest marginal cost; shared upgrades counted once; "
                  "a new link starts on an earlier one where their paths meet or, for points not "
                  "通达, where that is cheaper",
    }


def _choices_table(sel: _Selection, std: np.ndarray) -> pd.DataFrame:
    """Every candidate with its option, step, costs and the access expected after the works."""
    option = sel.option
    to_paved = np.array([bool(lk.get("to_paved", True)) if lk else True for lk in sel.links], dtype=bool)
    is_new = np.asarray(option == "new", dtype=bool)
    expect_ch = np.isin(option, ["upgrade", "free"]) | (is_new & to_paved)
    return sel.cand.drop(columns="geometry").assign(option=option, step=sel.cand_step,
                                                    upgrade_cost=std, link_cost=sel.lcost,
                                                    expect_tongchang=expect_ch,
                                                    expect_tongda=expect_ch | is_new)
