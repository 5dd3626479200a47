"""Room: warehouse/vintages. Every vintage of some facts of one table, and what was in force when:
the data structure under the point-in-time view (``view.py``).

``Vintages`` holds all vintages (ordered by known_at, recorded_at) and gives the data as known at
any time (full as-of vintages, DESIGN section 1); ``vintage_events`` and
``vintage_events_lagged`` replay one entity's vintages in knowledge order and give the value in
force after each.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Vintages:
    """Every vintage of some entities of one table, ordered by (known_at, recorded_at).

    ``keys``: the columns naming one fact (entity, valid time, and the action of a corporate
    action); ``values``: the columns a vintage carries. ``at(e)`` gives the data as known at
    time ``e`` under full as-of vintages (DESIGN section 1): one row per fact, carrying the
    ``known_at`` of its first print (when the fact itself became known) and the value of its
    latest vintage known at ``e``.
    """

    frame: pd.DataFrame  # entity, valid, value columns, known_at, recorded_at (every vintage)
    entity: str
    valid: str
    keys: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    ident: tuple = ()  # (table, ids, extra) and whether this is an as-of copy
    versions: dict | None = None  # as-of copy: entity -> the revisions applied to it
    _split: tuple | None = field(default=None, repr=False)
    _at: dict = field(default_factory=dict, repr=False)
    _rows: dict | None = field(default=None, repr=False)
    _base: Vintages | None = field(default=None, repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # derived frames (members)

    def rows(self, entity: str) -> pd.DataFrame:
        """The rows of one entity, in frame order."""
        if self._rows is None:
            f = self.frame
            self._rows = {} if f.empty else {
                k: f.iloc[v] for k, v in f.groupby(self.entity, sort=False).indices.items()}
        return self._rows.get(entity, self.frame.iloc[:0])

    def version(self, entity: str) -> tuple:
        return () if self.versions is None else self.versions.get(entity, ())

    def _vintages(self) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        """(first prints, later vintages, position of each later vintage's fact in the first
        prints, known_at and entity of each later vintage). A first print is the last row recorded with the fact's earliest known_at (a
        correction at the same known_at replaces it); every row known later is a revision."""
        if self._split is None:
            f = self.frame.reset_index(drop=True)
            if f.empty:
                self._split = (f, f, np.zeros(0, dtype=np.int64), np.zeros(0, dtype="datetime64[ns]"),
                               np.zeros(0, dtype=object))
                return self._split
            g = f.groupby(list(self.keys or (self.entity, self.valid)), sort=False, dropna=False).ngroup().to_numpy()
            k = f["known_at"].to_numpy(dtype="datetime64[ns]") if f["known_at"].dt.tz is None else \
                f["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
            first_known = pd.Series(k).groupby(g).transform("min").to_numpy(dtype="datetime64[ns]")
            revision = k > first_known
            base_rows = np.flatnonzero(~revision)
            # last row of each fact among its first prints (frame order: known_at, recorded_at)
            _, last = np.unique(g[base_rows][::-1], return_index=True)
            base_rows = np.sort(base_rows[::-1][last])
            base = f.iloc[base_rows].reset_index(drop=True)
            where = np.full(g.max() + 1, -1, dtype=np.int64)
            where[g[base_rows]] = np.arange(len(base_rows))
            revs = f.loc[revision].reset_index(drop=True)
            self._split = (base, revs, where[g[revision]], k[revision],
                           revs[self.entity].to_numpy(dtype=object))
        return self._split

    def revision_times(self) -> np.ndarray:
        """known_at of every revision (a vintage known after its fact's first print), sorted."""
        return np.unique(self._vintages()[3])

    def at(self, epoch: np.datetime64) -> Vintages:
        """The data as known at ``epoch``, one row per fact (see the class docstring)."""
        if epoch not in self._at:
            base, revs, pos, known, entities = self._vintages()
            take = np.flatnonzero(known <= epoch)
            if not len(take):
                # no revision known yet: one shared copy, so whatever is derived from it is reused
                if self._base is None:
                    self._base = Vintages(base, self.entity, self.valid, self.keys, self.values,
                                       (*self.ident, "as-of"), {})
                child = self._base
            else:
                # revisions are in (known_at, recorded_at) order: the last one per fact wins
                _, last = np.unique(pos[take][::-1], return_index=True)
                take = take[::-1][last]
                frame = base.copy()
                for col in self.values:
                    column = frame[col].to_numpy(copy=True)
                    column[pos[take]] = revs[col].to_numpy()[take]
                    frame[col] = column
                touched: dict[str, list[int]] = {}
                for e, t in zip(entities[take], take.tolist(), strict=True):
                    touched.setdefault(e, []).append(t)
                child = Vintages(frame, self.entity, self.valid, self.keys, self.values,
                              (*self.ident, "as-of"), {e: tuple(sorted(v)) for e, v in touched.items()})
            self._at = {epoch: child} | (self._at if len(self._at) < 4 else {})
        return self._at[epoch]


def vintage_events(rows: pd.DataFrame, valid: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Replay every vintage in knowledge order; after each, the value of the latest observation.

    Returns (event known_at, value in force) with known_at non-decreasing: a revision of an older
    observation does not change what the latest observation is; a revision or correction of the
    latest one replaces its value from its own known_at (ties: the later recorded_at wins).
    """
    ordered = rows.sort_values(["known_at", "recorded_at"], kind="mergesort")
    obs = ordered[valid].to_numpy()
    vals = ordered[field].to_numpy(dtype="float64")
    kts = ordered["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    latest_obs, latest_val = None, np.nan
    out_k, out_v = [], []
    for o, v, k in zip(obs, vals, kts, strict=True):
        if latest_obs is None or o >= latest_obs:
            latest_obs, latest_val = o, v
        out_k.append(k)
        out_v.append(latest_val)
    return np.asarray(out_k, dtype="datetime64[ns]"), np.asarray(out_v)


def vintage_events_lagged(rows: pd.DataFrame, valid: str, field: str, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Like ``vintage_events``, but after each vintage the value of the observation ``lag``
    places before the latest known one (NaN while fewer than ``lag`` + 1 are known)."""
    ordered = rows.sort_values(["known_at", "recorded_at"], kind="mergesort")
    obs = ordered[valid].to_numpy()
    vals = ordered[field].to_numpy(dtype="float64")
    kts = ordered["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    known_obs: list = []
    value_of: dict = {}
    out_v = np.full(len(obs), np.nan)
    for i, (o, v) in enumerate(zip(obs, vals, strict=True)):
        if o not in value_of:
            bisect.insort(known_obs, o)
        value_of[o] = v  # a revision or correction replaces the value in force from its known_at
        if len(known_obs) > lag:
            out_v[i] = value_of[known_obs[-1 - lag]]
    return kts, out_v
