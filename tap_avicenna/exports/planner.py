"""The planner: cut what is owed into exports of (date window x participant batch).

Windows lie on a fixed grid anchored at `start_date` (origin + k * window), so two
runs that start from different bookmarks still ask for the same windows; that is
what lets a resumed run adopt the exports a killed run left pending.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedExport:
    start: dt.datetime
    end: dt.datetime
    participant_ids: tuple[int, ...]


def grid_windows(
    start: dt.datetime, end: dt.datetime, origin: dt.datetime, size: dt.timedelta
) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut at the grid points origin + k*size (the first and last clipped)."""
    windows = []
    k = (start - origin) // size  # floor division, also before the origin
    cursor = start
    while cursor < end:
        k += 1
        stop = min(origin + k * size, end)
        windows.append((cursor, stop))
        cursor = stop
    return windows


Period = tuple[dt.datetime | None, dt.datetime | None]
"""A participant's participation [start, end); None means unbounded on that side."""


def _overlaps(period: Period | None, start: dt.datetime, end: dt.datetime) -> bool:
    if period is None:
        return True
    since, until = period
    return (since is None or since < end) and (until is None or until > start)


def plan_exports(
    starts: t.Mapping[int, dt.datetime],
    end: dt.datetime,
    *,
    origin: dt.datetime,
    window: dt.timedelta,
    batch_size: int,
    periods: t.Mapping[int, Period] | None = None,
) -> list[PlannedExport]:
    """Exports covering [starts[p], end) for every participant p.

    Participants whose start falls in the same grid window share exports from the
    earliest of their starts (the stream drops each participant's rows before its
    own start), so a handful of differing bookmarks does not multiply exports. With
    `periods`, a window only exports the participants whose participation overlaps it.
    """
    groups: dict[int, list[int]] = {}
    for participant, start in starts.items():
        if start < end:
            groups.setdefault((start - origin) // window, []).append(participant)
    plans: list[PlannedExport] = []
    for members in groups.values():
        group_start = min(starts[p] for p in members)
        ordered = sorted(members)
        for window_start, window_end in grid_windows(group_start, end, origin, window):
            active = [
                p for p in ordered if _overlaps((periods or {}).get(p), window_start, window_end)
            ]
            plans.extend(
                PlannedExport(window_start, window_end, tuple(active[i : i + batch_size]))
                for i in range(0, len(active), batch_size)
            )
    plans.sort(key=lambda p: (p.start, p.participant_ids))
    return plans
