"""The ``[broker] url`` check: which URLs name a Redis the consoles can share."""

from __future__ import annotations

from urllib.parse import urlsplit

from monitor.redact import redact_url

BROKER_URL_FORMS = "redis://host:6379/0, rediss://host:6380/0 or unix:///path/to/redis.sock"


def check_broker_url(url: str) -> str | None:
    """Why ``url`` names no usable Redis (``""`` = the in-process broker is fine), or None."""
    if url == "":
        return None
    problem = f'expected {BROKER_URL_FORMS} (or "" for the in-process broker), got {redact_url(url)!r}'
    if any(char.isspace() or not char.isprintable() for char in url):
        return problem
    try:
        parts = urlsplit(url)
        port = parts.port  # raises unless the port is a number from 0 to 65535
    except ValueError as exc:
        return f"{problem} ({exc})"
    if parts.scheme in ("redis", "rediss"):
        database = parts.path.strip("/")
        if not parts.hostname or port == 0 or (database and not database.isdigit()):
            return f"{problem}; the path, if any, is a database number"
        return None
    if parts.scheme == "unix" and parts.path.startswith("/") and not parts.netloc:
        return None
    return problem
