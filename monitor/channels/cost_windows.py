"""workflow-history's cost windows, kept sorted between builds so a commit parses only what it read anew.

The 7/30-day sums and trends look at the costed runs of the last 61 days: tens of
thousands of rows on a busy installation. Parsing each start time on every build cost
~45 ms a commit at 50k history rows. Rows come in *segments* (the history tail's base,
which stands still between rebases, and the tail read on each commit), and a segment
that is the same list object as at the last build keeps its parsed, sorted starts: a
window is then two bisections and a slice per segment. Sums use ``math.fsum`` over the
slices, which is exactly rounded, so the figures equal those of a row-by-row pass.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.channels.base import finite_number, parse_time
from monitor.sources.database import Rows

LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class SortedCosts:
    """One segment's costed runs, (start, cost) sorted by start; rows without a readable start or cost left out."""

    starts: list[dt.datetime]
    costs: list[float]

    @classmethod
    def of(cls, rows: Rows) -> SortedCosts:
        """Parse and sort ``rows`` (``start_time``, ``actual_cost_total``)."""
        dated = []
        for row in rows:
            started, cost = parse_time(row.get("start_time")), row.get("actual_cost_total")
            if started is not None and finite_number(cost):
                dated.append((started, float(cost)))
        dated.sort(key=lambda pair: pair[0])
        return cls([started for started, _ in dated], [cost for _, cost in dated])

    def between(self, since: dt.datetime, before: dt.datetime | None) -> list[float]:
        """Costs of the runs started from ``since`` and before ``before`` (no end when None)."""
        low = bisect.bisect_left(self.starts, since)
        high = len(self.starts) if before is None else bisect.bisect_left(self.starts, before)
        return self.costs[low:high]

    def first_from(self, moment: dt.datetime) -> dt.datetime | None:
        """The earliest start at or after ``moment``; None when there is none."""
        index = bisect.bisect_left(self.starts, moment)
        return self.starts[index] if index < len(self.starts) else None


class CostWindows:
    """The costed runs of one build, in sorted segments."""

    def __init__(self, segments: Sequence[SortedCosts]) -> None:
        self.segments = tuple(segments)

    @classmethod
    def of_rows(cls, rows: Rows) -> CostWindows:
        """One segment parsed from ``rows``."""
        return cls([SortedCosts.of(rows)])

    def costs_between(self, since: dt.datetime, before: dt.datetime | None = None) -> list[float]:
        """Costs of the runs started from ``since`` (and before ``before``, when given).

        A current window has no end: a run whose start reads as later than now (naive
        local times east of UTC, a skewed clock) is in it, not left out until its start
        comes round.
        """
        return [cost for segment in self.segments for cost in segment.between(since, before)]

    def total(self, since: dt.datetime) -> float:
        """The exactly rounded sum of the costs of runs started from ``since``."""
        return math.fsum(self.costs_between(since))

    def next_age_out(self, now: dt.datetime, edges: Iterable[dt.timedelta]) -> dt.datetime | None:
        """The last moment a run is still inside a window (``edges``) it will leave after ``now``; None = never.

        A run started at ``s`` counts in a window until ``s + window`` inclusive, so the
        summary can change only once the clock has passed that moment.
        """
        moments = []
        for window in edges:
            for segment in self.segments:
                started = segment.first_from(now - window)
                if started is not None and started < LATEST - window:
                    moments.append(started + window)
        return min(moments, default=None)


class CostIndex:
    """Sorted segments kept from one build to the next, by the identity of their row lists."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Rows, SortedCosts]] = {}

    def windows(self, segments: Sequence[Rows]) -> CostWindows:
        """The windows over ``segments``; a segment seen at the last build is not parsed again."""
        kept: dict[int, tuple[Rows, SortedCosts]] = {}
        parsed = []
        for rows in segments:
            known = self._kept.get(id(rows)) or kept.get(id(rows))
            # the list is kept alive with its parse, so an id is never another list's while it is here
            entry = known if known is not None and known[0] is rows else (rows, SortedCosts.of(rows))
            kept[id(rows)] = entry
            parsed.append(entry[1])
        self._kept = kept
        return CostWindows(parsed)
