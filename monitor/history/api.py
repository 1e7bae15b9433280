"""``GET /api/v1/<channel>/history?since=&step=``: a channel's series, bucketed, as JSON.

``since`` is unix seconds or an ISO-8601 time (naive = UTC; default: 24 hours ago),
``step`` the bucket width in seconds (default and least: ``[history] step``; at most a
day). Each bucket holds its series' aggregate of the points in it (``series.py``), or null.
Bad parameters get 400 with ``{"error": "…"}``; so does a range of more than
``MAX_POINTS`` buckets.
"""

from __future__ import annotations

import datetime as dt
import math

from aiohttp import web

from monitor.api import json_response
from monitor.history.buckets import bucket_index, bucket_start
from monitor.keys import HISTORY
from monitor.params import channel_or_404

DEFAULT_SPAN = 86_400.0  # seconds back when ``since`` is not given
MAX_STEP = 86_400.0
MAX_POINTS = 10_000  # per series


class BadParameter(Exception):
    """A query parameter cannot be used; the message says which and what was expected."""


def parse_since(raw: str | None, now: float) -> float:
    """``since`` as unix seconds: a number, or an ISO-8601 time (naive = UTC); 24 hours before ``now`` when absent.

    A negative number counts back from the server's now (``-5400``: the last 90 minutes), so a
    browser whose clock is off still asks for the slots the server has.
    """
    if raw is None or not raw.strip():
        return now - DEFAULT_SPAN
    text = raw.strip()
    try:
        since = float(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise BadParameter(f"since: expected unix seconds or an ISO-8601 time, got {raw[:60]!r}") from None
        since = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    if math.isfinite(since) and since < 0:
        since += now
    if not math.isfinite(since) or since < 0:
        raise BadParameter(f"since: expected a time after 1970, got {raw[:60]!r}")
    if since > now:
        raise BadParameter(f"since: {raw[:60]!r} is in the future")
    return since


def parse_step(raw: str | None, least: float) -> float:
    """``step`` in seconds, from ``least`` (the sampler's step) to a day; ``least`` when absent."""
    if raw is None or not raw.strip():
        return least
    try:
        step = float(raw)
    except ValueError:
        raise BadParameter(f"step: expected seconds, got {raw[:60]!r}") from None
    if not math.isfinite(step) or not least <= step <= MAX_STEP:
        raise BadParameter(f"step: expected seconds from {least:g} (the history's step) to {MAX_STEP:g}, "
                           f"got {raw[:60]!r}")
    return step


def bucket_count(since: float, until: float, step: float) -> int:
    """How many buckets of ``step`` cover ``since`` to ``until``; ``BadParameter`` beyond ``MAX_POINTS``."""
    count = bucket_index(until, step) - bucket_index(since, step) + 1
    if count > MAX_POINTS:
        raise BadParameter(f"{count} points of {step:g} s since {since:g} is more than {MAX_POINTS}; "
                           "use a larger step or a later since")
    return count


async def channel_history(request: web.Request) -> web.Response:
    """``GET /api/v1/<channel>/history``: ``{"channel", "since", "until", "step", "series": {name: …}}``."""
    channel = channel_or_404(request)
    history = request.app[HISTORY]
    until = history.now()
    try:
        since = parse_since(request.query.get("since"), until)
        step = parse_step(request.query.get("step"), history.step)
        bucket_count(since, until, step)
    except BadParameter as exc:
        return json_response({"error": str(exc)}, status=400)
    series = await history.query(channel, since, until, step)
    first = bucket_start(bucket_index(since, step), step)  # the range starts with its first bucket
    return json_response({
        "channel": channel, "since": first, "until": round(until, 3), "step": step,
        "series": {name: {"label": one.label, "format": one.format, "points": one.points}
                   for name, one in series.items()},
    })
