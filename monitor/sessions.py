"""Signed session cookies: their values, their expiry, and the ones signed out early."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict

COOKIE = "monitor_session"
SESSION_CHARS = re.compile(r"[0-9a-f.]{1,160}")  # what session_value writes; anything else is junk
MAX_SIGNED_OUT = 10_000  # only holders of a valid session can sign out, so this bound is never reached in practice


class Malformed(Exception):
    """A credential that could never be valid: answered 401 (sockets: 1008) and logged once at debug."""


def session_value(token: str, expires: int, nonce: str | None = None) -> str:
    """A cookie value valid until ``expires`` (unix seconds), signed with ``token``; unique per sign-in."""
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    signature = hmac.new(token.encode(), f"session:{expires}:{nonce}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{nonce}.{signature}"


def session_expiry(token: str, value: str, now: float) -> int | None:
    """When the session ``value`` expires, or None when it is forged or expired; Malformed for junk."""
    if not SESSION_CHARS.fullmatch(value):
        raise Malformed("cookie")
    expires, _, rest = value.partition(".")
    nonce, _, _ = rest.partition(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
        return None
    return int(expires) if hmac.compare_digest(value, session_value(token, int(expires), nonce)) else None



class SignedOut:
    """Sessions signed out before they expire, remembered until they would have (bounded)."""

    def __init__(self, limit: int = MAX_SIGNED_OUT) -> None:
        self.limit = limit
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, value: str) -> bool:
        return value in self._expiry

    def add(self, value: str, expires: float, now: float) -> None:
        """Revoke ``value``; forget revocations whose sessions have expired anyway."""
        for old in [v for v, until in self._expiry.items() if until < now]:
            del self._expiry[old]
        self._expiry[value] = expires
        while len(self._expiry) > self.limit:
            self._expiry.popitem(last=False)
