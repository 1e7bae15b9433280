"""URLs fit to show in a panel, a log line or an error: no password, no secret query value."""

from __future__ import annotations

from urllib.parse import urlsplit

# Query parameters whose value is masked: libpq's password/sslpassword, API tokens and keys, signatures.
SECRET_PARAMETER_WORDS = ("pass", "token", "secret", "key", "sig", "auth", "credential")
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its password and any secret-looking query value replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(unreadable URL)"  # showing it could show a secret it was meant to carry
    shown = url  # edited in place: rebuilding it would lose an empty authority (sqlite:///path)
    if password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        shown = shown.replace(parts.netloc, f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}", 1)
    if parts.query:
        query = "&".join(_redact_parameter(item) for item in parts.query.split("&"))
        shown = shown.replace(f"?{parts.query}", f"?{query}", 1)
    return shown


def _redact_parameter(item: str) -> str:
    name, equals, value = item.partition("=")
    if equals and value and any(word in name.lower() for word in SECRET_PARAMETER_WORDS):
        return f"{name}={MASK}"
    return item
