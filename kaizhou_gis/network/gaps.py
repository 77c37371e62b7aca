"""Closing digitizing gaps between road lines by moving line ends (never farther than the snap
tolerance), and the ``joins`` table listing every move.

:func:`close_gaps` runs two steps on an index of the line ends (:class:`_EndIndex`):

1. **End to end** (:func:`_end_clusters`, :func:`_move_clusters`): end points of different
   lines within the tolerance are gathered around a seed end and moved onto one point.
2. **End to line** (:func:`_end_to_line_moves`, :func:`_apply_end_to_line`): an end left alone
   that lies within the tolerance of another line moves onto the nearest point of that line,
   where a vertex is inserted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely


def line_ends(coords: np.ndarray, cidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``coords`` of every line's first and last vertex."""
    starts = np.r_[0, np.flatnonzero(np.diff(cidx)) + 1]
    ends = np.r_[starts[1:] - 1, len(coords) - 1]
    return starts, ends


def _insert_vertices(lines: np.ndarray, inserts: dict[int, list[tuple[float, np.ndarray]]]) -> np.ndarray:
    """Lines with extra vertices inserted at given distances along them, in their order along
    the line (whatever the order of ``inserts``), so the line never doubles back."""
    lines = lines.copy()
    for li, items in inserts.items():
        xy = shapely.get_coordinates(lines[li])
        seg = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
        along = np.concatenate([[0.0], np.cumsum(seg)])
        items = sorted(items, key=lambda t: t[0])
        new_d = np.array([d for d, _ in items])
        new_p = np.array([p for _, p in items]).reshape(-1, 2)
        pos = np.searchsorted(along, new_d, side="right")
        pos = np.clip(pos, 1, len(xy) - 1)  # never before the first or after the last vertex
        xy2 = np.insert(xy, pos, new_p, axis=0)
        lines[li] = shapely.linestrings(xy2)
    return lines


@dataclass
class Joins:
    """Line ends moved to close digitizing gaps (one row per moved line end)."""

    line: list[int] = field(default_factory=list)
    end: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    to_lines: list[tuple[int, ...]] = field(default_factory=list)
    old: list[np.ndarray] = field(default_factory=list)
    new: list[np.ndarray] = field(default_factory=list)

    def add(self, line: int, end: int, kind: str, to_lines, old, new) -> None:
        self.line.append(int(line))
        self.end.append("start" if end == 0 else "end")
        self.kind.append(kind)
        self.to_lines.append(tuple(int(x) for x in to_lines))
        self.old.append(np.asarray(old, dtype="float64"))
        self.new.append(np.asarray(new, dtype="float64"))


@dataclass
class _EndIndex:
    """The lines' vertices keyed by their coordinate rounded to ``precision_m`` (a *key*), and
    the line ends at each key. ``coords`` is updated by step 1; the keys stay as they were."""

    coords: np.ndarray          # every vertex of every line
    cidx: np.ndarray            # line of each vertex
    starts: np.ndarray          # position of each line's first / last vertex in coords
    ends: np.ndarray
    keys: np.ndarray            # rounded coordinate of each vertex
    ukeys: np.ndarray           # the distinct keys
    vid: np.ndarray             # key number of each vertex
    key_xy: np.ndarray          # a coordinate of each key (as read)
    key_ends: dict[int, list[tuple[int, int]]]   # line ends (line, 0 = start / -1 = end) at a key
    end_keys: np.ndarray        # keys holding a line end, sorted
    key_lines: dict[int, set[int]]               # every line with a vertex at an end key
    movable: dict[int, bool]    # end key that is no line's interior vertex

    @classmethod
    def build(cls, lines: np.ndarray, precision_m: float) -> _EndIndex:
        coords, cidx = shapely.get_coordinates(lines, return_index=True)
        starts, ends = line_ends(coords, cidx)
        keys = np.round(coords / precision_m).astype(np.int64)
        ukeys, vid = np.unique(keys, axis=0, return_inverse=True)
        vid = vid.ravel()
        nk = len(ukeys)
        key_xy = np.empty((nk, 2))
        key_xy[vid] = coords
        is_end = np.zeros(len(coords), dtype=bool)
        is_end[starts] = True
        is_end[ends] = True
        interior = np.bincount(vid[~is_end], minlength=nk) > 0
        key_ends: dict[int, list[tuple[int, int]]] = {}
        for li, (a, b) in enumerate(zip(starts, ends)):
            key_ends.setdefault(int(vid[a]), []).append((li, 0))
            key_ends.setdefault(int(vid[b]), []).append((li, -1))
        end_keys = np.array(sorted(key_ends), dtype=np.int64)
        # (a move onto a line's own vertex would make a loop)
        key_lines: dict[int, set[int]] = {int(k): set() for k in end_keys}
        at_end_key = np.isin(vid, end_keys)
        for k, li in zip(vid[at_end_key].tolist(), cidx[at_end_key].tolist()):
            key_lines[k].add(li)
        movable = {int(k): not interior[k] for k in end_keys}
        return cls(coords=coords, cidx=cidx, starts=starts, ends=ends, keys=keys, ukeys=ukeys,
                   vid=vid, key_xy=key_xy, key_ends=key_ends, end_keys=end_keys,
                   key_lines=key_lines, movable=movable)


def close_gaps(lines: np.ndarray, tol: float, precision_m: float) -> tuple[np.ndarray, Joins]:
    """Join line ends across digitizing gaps of at most ``tol`` metres.

    Only line ends move, and none farther than ``tol`` from where it was:

    1. **End to end.** End points (of different lines) within ``tol`` of each other are
       gathered around a *seed*: an existing junction (an end shared by several lines, or lying
       on another line's interior vertex) first, then the end with most lines, then the one
       with most ends around it. Around a junction, ends within ``tol`` of it move onto it
       (it never moves). Around a free end, nearest first, ends within ``tol`` of it move onto
       it; an end farther away joins when every member stays within ``tol`` of the members'
       centre, where they all go (four ends on the corners of a 4 m square meet in its centre,
       2.8 m from each). So clusters do not chain;
       an end already taken stays in its cluster. A cluster never takes both ends of one line,
       nor an end of a line with a vertex at a junction seed (a loop).
    2. **End to line.** An end left alone after step 1 that lies within ``tol`` of another line
       moves to the nearest point of that line, where a vertex is inserted (vertices inserted
       into one line are ordered along it). Nearest gaps first; an end that another end has
       already joined, or that has moved, is not moved (again), and no move may make a line
       start and end at one point.
    """
    joins = Joins()
    ix = _EndIndex.build(lines, precision_m)
    clusters, in_cluster = _end_clusters(ix, tol)
    if _move_clusters(ix, clusters, joins):
        lines = shapely.linestrings(ix.coords, indices=ix.cidx)
    inserts, moves = _end_to_line_moves(ix, lines, in_cluster, tol, precision_m, joins)
    if not moves:
        return lines, joins
    return _apply_end_to_line(ix, lines, inserts, moves, precision_m), joins


# --- 1. end to end ----------------------------------------------------------------------------
def _end_clusters(ix: _EndIndex, tol: float) -> tuple[list[tuple[list[int], np.ndarray]], dict[int, int]]:
    """Clusters of end keys within ``tol`` (members, where they go) and each member's seed."""
    pts = shapely.points(ix.key_xy[ix.end_keys])
    ia, ib = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=tol)
    sel = ia != ib
    ia, ib = ix.end_keys[ia[sel]], ix.end_keys[ib[sel]]
    dist = np.hypot(*(ix.key_xy[ia] - ix.key_xy[ib]).T)
    neigh: dict[int, list[tuple[float, int]]] = {}
    for a, b, d in zip(ia.tolist(), ib.tolist(), dist.tolist()):
        neigh.setdefault(a, []).append((d, b))
    in_cluster: dict[int, int] = {}  # key -> seed key
    order = sorted(neigh, key=lambda k: (ix.movable[k], -len(ix.key_ends[k]), -len(neigh[k]), k))
    clusters: list[tuple[list[int], np.ndarray]] = []  # (members, where they go)
    for s in order:
        if s in in_cluster:
            continue
        members, rep = _grow_cluster(ix, s, neigh, in_cluster, tol)
        if len(members) > 1:
            for n in members:
                in_cluster[n] = s
            clusters.append((members, np.asarray(rep, dtype="float64")))
    return clusters, in_cluster


def _cluster_candidates(ix: _EndIndex, s: int, neigh: dict[int, list[tuple[float, int]]]) -> list[int]:
    """Candidates to join seed ``s``: its neighbours, then theirs (a movable seed may move to the
    members' centre, which can bring ends two steps away within reach), nearest first."""
    seen = {s}
    cands = []
    for _d, n in sorted(neigh[s]):
        seen.add(n)
        cands.append(n)
    if ix.movable[s]:
        for n in list(cands):
            for _, m in sorted(neigh.get(n, [])):
                if m not in seen:
                    seen.add(m)
                    cands.append(m)
        cands.sort(key=lambda n: (float(np.hypot(*(ix.key_xy[n] - ix.key_xy[s]))), n))
    return cands


def _grow_cluster(ix: _EndIndex, s: int, neigh: dict[int, list[tuple[float, int]]],
                  in_cluster: dict[int, int], tol: float) -> tuple[list[int], np.ndarray]:
    """The members gathered around seed ``s`` and the point they go to."""
    taken = set(ix.key_lines[s])
    members = [s]
    rep = ix.key_xy[s]
    for n in _cluster_candidates(ix, s, neigh):
        if n in in_cluster or not ix.movable[n] or ix.key_lines[n] & taken:
            continue
        if ix.movable[s]:  # onto the seed if all fit, else to the members' centre
            pts_ = ix.key_xy[members + [n]]
            centre = rep
            if np.hypot(*(pts_ - centre).T).max() > tol:
                centre = pts_.mean(axis=0)
                if np.hypot(*(pts_ - centre).T).max() > tol:
                    continue
        else:  # an existing junction stays where it is
            centre = ix.key_xy[s]
            if np.hypot(*(ix.key_xy[n] - centre)) > tol:
                continue
        members.append(n)
        taken |= ix.key_lines[n]
        rep = centre
    return members, rep


def _move_clusters(ix: _EndIndex, clusters: list[tuple[list[int], np.ndarray]], joins: Joins) -> int:
    """Move the cluster members in ``ix.coords``, list the moves; the number of keys moved."""
    n_moved = 0
    for members, rep in clusters:
        for n in members:
            if np.array_equal(ix.key_xy[n], rep):
                continue
            others = sorted(set().union(*(ix.key_lines[m] for m in members if m != n)))
            for li, e in ix.key_ends[n]:
                joins.add(li, e, "end_to_end", others, ix.key_xy[n], rep)
            ix.coords[ix.vid == n] = rep
            n_moved += 1
    return n_moved


# --- 2. end to line ---------------------------------------------------------------------------
def _end_to_line_moves(ix: _EndIndex, lines: np.ndarray, in_cluster: dict[int, int], tol: float,
                       precision_m: float, joins: Joins
                       ) -> tuple[dict[int, list], list[tuple[int, np.ndarray]]]:
    """The end keys that move onto another line (key, new point), nearest gaps first, and the
    vertices to insert into the target lines (line -> [(distance along, point)])."""
    inserts: dict[int, list] = {}
    moves: list[tuple[int, np.ndarray]] = []
    cand = np.array([k for k in ix.end_keys.tolist() if k not in in_cluster and ix.movable[k]],
                    dtype=np.int64)
    if len(cand) == 0:
        return inserts, moves
    cpts = shapely.points(ix.key_xy[cand])
    qi, ql = shapely.STRtree(lines).query(cpts, predicate="dwithin", distance=tol)
    own = np.array([ln in ix.key_lines[int(k)] for k, ln in zip(cand[qi].tolist(), ql.tolist())],
                   dtype=bool)
    qi, ql = qi[~own], ql[~own]
    if len(qi) == 0:
        return inserts, moves
    d = shapely.distance(cpts[qi], lines[ql])
    along = shapely.line_locate_point(lines[ql], cpts[qi])
    proj = shapely.get_coordinates(shapely.line_interpolate_point(lines[ql], along))
    llen = shapely.length(lines[ql])
    end_key_now = _current_end_keys(ix, precision_m)
    cur_key = {tuple(v): k for k, v in enumerate(ix.ukeys.tolist())}
    done: set[int] = set()      # keys moved in this step
    blocked: set[int] = set()   # keys another end has joined: they stay
    for j in np.lexsort((ql, cand[qi], d)):
        k, ln = int(cand[qi[j]]), int(ql[j])
        if k in done or k in blocked:
            continue
        p = proj[j]
        pkey = tuple(np.round(p / precision_m).astype(np.int64))
        if _makes_loop(ix, k, pkey, end_key_now):
            continue
        at_end = None
        if along[j] <= precision_m or along[j] >= llen[j] - precision_m:
            at_end = cur_key.get(end_key_now[(ln, 0 if along[j] <= precision_m else -1)])
            if at_end is not None and at_end in done:
                continue  # that end has moved away
        done.add(k)
        if at_end is not None:
            blocked.add(at_end)
        blocked.add(cur_key.get(pkey, -1))
        inserts.setdefault(ln, []).append((float(along[j]), p))
        moves.append((k, p))
        for li, e in ix.key_ends[k]:
            joins.add(li, e, "end_to_line", [ln], ix.key_xy[k], p)
    return inserts, moves


def _current_end_keys(ix: _EndIndex, precision_m: float) -> dict[tuple[int, int], tuple]:
    """Keys of the current end points of every line (after step 1)."""
    first = np.round(ix.coords[ix.starts] / precision_m).astype(np.int64).tolist()
    last = np.round(ix.coords[ix.ends] / precision_m).astype(np.int64).tolist()
    end_key_now = {}
    for li, (a, b) in enumerate(zip(first, last)):
        end_key_now[(li, 0)] = tuple(a)
        end_key_now[(li, -1)] = tuple(b)
    return end_key_now


def _makes_loop(ix: _EndIndex, k: int, pkey: tuple, end_key_now: dict[tuple[int, int], tuple]) -> bool:
    """Would moving end key ``k`` to ``pkey`` make one of its lines start and end at one point,
    or put it onto a vertex of its own line?"""
    if any(end_key_now[(li, -1 if e == 0 else 0)] == pkey for li, e in ix.key_ends[k]):
        return True
    pk = np.array(pkey)
    return bool(pkey != tuple(ix.ukeys[k].tolist()) and any(
        (ix.keys[ix.starts[li]:ix.ends[li] + 1] == pk).all(axis=1).any() for li, _ in ix.key_ends[k]))


def _apply_end_to_line(ix: _EndIndex, lines: np.ndarray, inserts: dict[int, list],
                       moves: list[tuple[int, np.ndarray]], precision_m: float) -> np.ndarray:
    """The lines with the vertices inserted into the target lines and the ends moved."""
    # vertices into the target lines first (positions measured on the lines as they are now)
    for ln, items in inserts.items():
        xy = shapely.get_coordinates(lines[ln])
        have = {tuple(x) for x in np.round(xy / precision_m).astype(np.int64).tolist()}
        kept = []
        for a, p in items:  # not onto a vertex the line has, nor twice at one point
            pk = tuple(np.round(p / precision_m).astype(np.int64).tolist())
            if pk not in have:
                have.add(pk)
                kept.append((a, p))
        inserts[ln] = kept
    lines = _insert_vertices(lines, {ln: v for ln, v in inserts.items() if v})
    moved_lines: dict[int, list[tuple[int, np.ndarray]]] = {}
    for k, p in moves:
        for li, e in ix.key_ends[k]:
            moved_lines.setdefault(li, []).append((e, p))
    for li, items in moved_lines.items():
        xy = shapely.get_coordinates(lines[li])
        for e, p in items:
            xy[e] = p
        lines[li] = shapely.linestrings(xy)
    return lines


def joins_table(joins: Joins, roads: gpd.GeoDataFrame, line_row: np.ndarray, crs) -> gpd.GeoDataFrame:
    """The joins as a table: ``join_id``, ``road_id`` and ``end`` (start/end) of the moved line
    end, ``kind`` (end_to_end: onto another road's end; end_to_line: onto another road's line,
    where a vertex was inserted), ``to_road_id`` (the road(s) joined), ``moved_m``, and a
    LineString from the end's old position to its new one."""
    rid = (roads["road_id"].astype(str).to_numpy() if "road_id" in roads.columns
           else np.array([str(i) for i in roads.index]))
    n = len(joins.line)
    old = np.array(joins.old).reshape(n, 2)
    new = np.array(joins.new).reshape(n, 2)
    geom = shapely.linestrings(np.stack([old, new], axis=1)) if n else np.array([], dtype=object)
    return gpd.GeoDataFrame({
        "join_id": np.arange(1, n + 1, dtype=np.int64),
        "road_id": [rid[line_row[li]] for li in joins.line],
        "end": list(joins.end),
        "kind": list(joins.kind),
        "to_road_id": [";".join(dict.fromkeys(rid[line_row[x]] for x in t)) for t in joins.to_lines],
        "moved_m": np.hypot(*(new - old).T) if n else np.array([], dtype="float64"),
    }, geometry=gpd.GeoSeries(geom, crs=crs), crs=crs)
