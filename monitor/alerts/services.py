"""The Apprise side of alert delivery: whether a URL is understood, one blocking send, and the URL kept secret.

A notification URL carries secrets anywhere in it: a user and password, a token standing
where a host would (``ntfy://topic``, ``tgram://bot-token/chat``), the path, the query. Only
its scheme and a real network host are ever shown. Apprise logs URLs, some whole, through
the ``apprise`` logger, and the HTTP client under it (urllib3) logs each request's path: their
records stay with Apprise (which keeps each attempt's warnings for the result) and never
reach the console's log. Nothing else in the console uses those HTTP libraries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from apprise import Apprise

MASK = "***"
UNSUPPORTED = "unsupported URL"
UNREADABLE = "(unreadable URL)"
APPRISE_LOGGER = "apprise"
# Apprise's own logger and those of the HTTP libraries its plugins send with.
SILENCED_LOGGERS = (APPRISE_LOGGER, "urllib3", "requests", "requests_oauthlib", "oauthlib")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
AUTHORITY = re.compile(r"([^/?#]*)(.*)", re.DOTALL)
HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::\d{1,5})?")
DNS_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# Apprise's "privacy" form of a secret keeps its first and last character (``p...s``): two too many.
ABBREVIATED = re.compile(r"[^\s/:@]\.\.\.[^\s/:@.]")
PIECE_SEPARATORS = re.compile(r"[/?#&;]")


def split_url(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme, userinfo, host[:port], rest)`` of ``scheme://...``, or None for anything else."""
    scheme, separator, remainder = url.partition("://")
    if not separator or not SCHEME.fullmatch(scheme):
        return None
    found = AUTHORITY.fullmatch(remainder)
    authority, rest = found.groups() if found else (remainder, "")
    userinfo, _, host_port = authority.rpartition("@")
    return scheme, userinfo, host_port, rest


def is_network_host(host_port: str) -> bool:
    """Whether ``host[:port]`` names a machine (an IP address, localhost, a DNS name), not a token or topic."""
    found = HOST_PORT.fullmatch(host_port)
    if found is None:
        return False
    host = found.group(1).strip("[]").lower()
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return DNS_NAME.fullmatch(host) is not None
    return True


def redact_url(url: str) -> str:
    """``url`` fit to log or show: its scheme and network host only (``ntfy://***``, ``mailto://smtp.example.com/***``)."""
    parts = split_url(url)
    if parts is None:
        return UNREADABLE
    scheme, _, host_port, _ = parts
    if not is_network_host(host_port):
        return f"{scheme}://{MASK}"
    shown = f"{scheme}://{host_port}"
    return shown if url.rstrip("/") == shown else f"{shown}/{MASK}"


def url_secrets(url: str) -> set[str]:
    """Every part of ``url`` that ``redact_url`` hides, as written and percent-decoded."""
    parts = split_url(url)
    if parts is None:
        return {url}
    _, userinfo, host_port, rest = parts
    pieces = {url, userinfo, *userinfo.split(":", 1)}
    for piece in PIECE_SEPARATORS.split(rest):
        pieces.update((piece, piece.partition("=")[2]))
    if not is_network_host(host_port):
        pieces.update((host_port, *host_port.split(":")))
    pieces |= {unquote(piece) for piece in pieces}
    return {piece for piece in pieces if piece.strip()}


def scrub(text: str, url: str) -> str:
    """``text`` (a message from Apprise, an exception) with every secret part of ``url`` masked."""
    text = ABBREVIATED.sub(MASK, text)
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        # Bounded by non-word characters, so a short secret ("no") does not mask inside words ("notification").
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    return text


def quiet_apprise_log() -> None:
    """Keep the log records of Apprise and its HTTP client (they show URLs) out of the console's log; idempotent."""
    for name in SILENCED_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            # Without a handler of its own, logging's last resort would print its warnings to stderr.
            logger.addHandler(logging.NullHandler())


class WarningsOfThisThread(logging.Handler):
    """Collects the warnings Apprise logs in the current thread while it reads a URL."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's message when it was logged by this thread."""
        if record.thread == self.thread:
            with contextlib.suppress(Exception):  # a malformed record must not break reading the URL
                self.messages.append(record.getMessage())


@contextlib.contextmanager
def apprise_warnings() -> Iterator[list[str]]:
    """The messages Apprise logs at warning or above in this thread during the ``with`` block."""
    quiet_apprise_log()
    logger, handler = logging.getLogger(APPRISE_LOGGER), WarningsOfThisThread()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def open_service(url: str) -> tuple[Apprise | None, str | None]:
    """An Apprise object for ``url`` alone, or None and why not (blocking: the first call loads Apprise's plugins)."""
    quiet_apprise_log()  # before the import: Apprise logs as it loads
    from apprise import Apprise
    from apprise.manager_plugins import NotificationManager

    parts = split_url(url)
    if parts is None:
        return None, f"{UNSUPPORTED}: not of the form scheme://..."
    if parts[0].lower() not in NotificationManager():  # type: ignore[no-untyped-call]
        return None, f"{UNSUPPORTED}: no Apprise service speaks {parts[0]}://"
    service = Apprise()
    with apprise_warnings() as warnings:
        added = service.add(url)
    if added:
        return service, None
    # Apprise's last word names the URL itself ("Could not load ..."); the one before says what is wrong.
    details = [scrub(message, url) for message in warnings if not message.startswith(("Could not load", "Unparse"))]
    return None, f"{UNSUPPORTED}: {parts[0]}:// " + (f"rejects it: {details[-1]}" if details else "does not accept it")


def check_url(url: str) -> str | None:
    """None when Apprise understands ``url``, else why not, showing nothing of the URL but its scheme (blocking)."""
    return open_service(url)[1]


def send(service: Apprise, url: str, title: str, body: str) -> str | None:
    """Send one message through ``service`` (blocking): None when the service took it, else why not (scrubbed)."""
    quiet_apprise_log()
    try:
        with service.notify(body=body, title=title) as result:
            if result:
                return None
            warnings = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
            status = result.status.name.lower()
    except Exception as exc:  # a plugin's bug must not end the worker; it is this URL's failure
        return scrub(f"{type(exc).__name__}: {exc}", url)
    return scrub(warnings[-1], url) if warnings else f"not delivered ({status})"
