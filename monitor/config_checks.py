"""Value checks the settings table references as ``check=``: URLs, origins, header names, check targets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from monitor.redact import redact_url
from monitor.sources.database import validate_database_url

Check = Callable[[Any], str | None]  # a value's problem ("expected ..."), None when it is usable

DATABASE_FORMS = "sqlite:////abs/path.db or postgresql://user@host:5432/db"
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_database_url(url: str) -> str | None:
    """Why ``url`` is no usable database URL (with the spelling likely meant), or None."""
    try:
        parts = urlsplit(url)
        problem = validate_database_url(url)
        if problem is None and parts.scheme in ("postgresql", "postgres"):
            _ = parts.port  # raises unless the port is a number from 0 to 65535
    except ValueError as exc:  # e.g. an unclosed [IPv6] host, a port of "x"
        return f"expected {DATABASE_FORMS}, got {redact_url(url)!r} ({exc})"
    if problem is None:
        return None
    if url.strip() and not parts.scheme:
        # A bare file path is the likeliest mistake: show how to spell it.
        return f'expected {DATABASE_FORMS}; for the file {url} write "sqlite:///{url}"'
    hint = ("; a sqlite URL is sqlite:/// then the path, so four slashes before an absolute path"
            if parts.scheme == "sqlite" else "")
    return f"expected {DATABASE_FORMS}, got {redact_url(url)!r}{hint}"


def http_url_check(empty_means: str | None = None) -> Check:
    """A check for an http(s) URL with a host; ``""`` passes too when ``empty_means`` says what it means."""
    allowed = f' (or "" for {empty_means})' if empty_means else ""

    def check(url: str) -> str | None:
        if (url == "" and empty_means) or is_http_url(url):
            return None
        return f"expected an http:// or https:// URL with a host{allowed}, got {redact_url(url)!r}"
    return check


def is_http_url(url: str) -> bool:
    """True for an http(s) URL with a host, a valid port if any, and no spaces or control characters."""
    if any(char.isspace() or not char.isprintable() for char in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def nonempty_check(what: str) -> Check:
    """A check that refuses empty or blank text, saying ``what`` was expected."""
    def check(value: str) -> str | None:
        return None if value.strip() else f"expected {what}, got {value!r}"
    return check


def check_tcp_target(target: str) -> str | None:
    """Why ``target`` is no ``host:port`` (or ``[v6]:port``) to connect to, or None."""
    host, _, port = target.rpartition(":")
    # A URL (scheme://, a path, user@) is the likely mistake here: its host:port would look fine.
    if (host.strip("[]") and not any(char.isspace() or char in "/@" for char in host)
            and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return None
    return f"expected host:port with a port from 1 to 65535 (e.g. 127.0.0.1:5432 or [::1]:5432), got {target!r}"


def check_header_name(name: str) -> str | None:
    """Why ``name`` is no HTTP header name, or None."""
    if HEADER_NAME.fullmatch(name):
        return None
    return f"expected an HTTP header name such as X-Forwarded-User, got {name!r}"


def check_origins(origins: tuple[str, ...]) -> str | None:
    """Why one of ``origins`` is no browser origin (scheme://host[:port]), or None."""
    for origin in origins:
        # Origins are compared as text: one with a path or query would silently never match.
        if not is_http_url(origin) or urlsplit(origin).path not in ("", "/") or "?" in origin or "#" in origin:
            return f"expected origins such as https://ops.example.com (scheme://host[:port]), got {origin!r}"
    return None


PATH_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")
# The console's own first path segments: a prefix there would hide its pages and endpoints.
RESERVED_SEGMENTS = ("api", "static", "login", "logout", "healthz", "metrics")


def check_path_prefix(prefix: str) -> str | None:
    """Why ``prefix`` is no path prefix of the console's own (``/tac``, ``/ops/tac``), or None."""
    first = prefix.split("/")[1] if prefix.startswith("/") else ""
    if not PATH_PREFIX.fullmatch(prefix) or any(part in (".", "..") for part in prefix.split("/")):
        return f"expected a path such as /tac (a slash, then letters, digits, '.', '_', '~' or '-'), got {prefix!r}"
    if first in RESERVED_SEGMENTS:
        return f"expected a path the console does not serve itself; /{first} is its own, got {prefix!r}"
    return None


def check_backend_base(url: str) -> str | None:
    """Why ``url`` is no base URL to pass requests to (http(s), a host, no credentials, query or fragment)."""
    if url == "":
        return None
    if not is_http_url(url):
        return f'expected an http:// or https:// URL with a host (or "" for no pass-through), got {redact_url(url)!r}'
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment or "#" in url:
        return f"expected a base URL without credentials, query or fragment, e.g. http://127.0.0.1:8002, " \
               f"got {redact_url(url)!r}"
    return None


CHECK_TARGETS: dict[str, Check] = {
    "http": http_url_check(),
    "tcp": check_tcp_target,
    "process": nonempty_check("text to find in a process command line"),
}
