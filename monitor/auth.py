"""Authentication for pages, API and WebSockets: modes none, token, basic and proxy.

Token mode: API clients send ``Authorization: Bearer <token>``; a browser signs in once on
``/login`` and then carries an HttpOnly, SameSite=Strict cookie holding an expiring value
signed with the token (rotating the token signs everyone out; ``/logout`` revokes one).
``/healthz``, ``/login`` and ``/static/`` never need credentials: liveness probes must work
without secrets and then see only per-channel states; the login page needs its stylesheet.

Every guess at a secret (the sign-in form, a Bearer token, a Basic password) passes a
per-address throttle: each failure makes that address wait longer before its next guess
is even checked, and ``auth.lockout_failures`` failures lock it out for
``auth.lockout_seconds``. A credential that could never be valid (junk bytes, a cookie of
thousands of digits, a form in another charset) is a plain 401 and one debug line.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import time
from collections.abc import Callable
from urllib.parse import quote

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from monitor.compat.surface import surface_for
from monitor.headers import add_security_headers, is_websocket
from monitor.keys import AUTH, AUTH_USER, METRICS, SETTINGS
from monitor.protocol import UNAUTHENTICATED
from monitor.sessions import COOKIE, Malformed, SignedOut, session_expiry
from monitor.settings import AuthSettings
from monitor.throttle import Throttle, throttle_key

log = structlog.get_logger(__name__)

OPEN_PATHS = ("/healthz", "/login")
OPEN_PREFIXES = ("/static/",)


class AuthState:
    """What authentication shares between requests: the throttle, signed-out sessions, trusted proxies."""

    def __init__(self, auth: AuthSettings) -> None:
        self.throttle = Throttle(auth.lockout_failures, auth.lockout_seconds)
        self.signed_out = SignedOut()
        self.proxies = tuple(ipaddress.ip_network(entry, strict=False) for entry in auth.trusted_proxies)

    def trusts(self, address: str | None) -> bool:
        """True when ``address`` is one of ``auth.trusted_proxies``."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or the one a trusted proxy says it forwarded for."""
    peer, state = request.remote or "", request.app[AUTH]
    if not state.trusts(peer):
        return peer
    for hop in reversed(request.headers.get("X-Forwarded-For", "").split(",")):
        hop = hop.strip()
        if not state.trusts(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                break  # a forged or garbled chain: the proxy itself is all we know
    return peer


def came_over_tls(request: web.Request) -> bool:
    """True when the browser used https: directly, or as a trusted proxy's X-Forwarded-Proto says."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and request.app[AUTH].trusts(request.remote)


async def checked_guess(request: web.Request, mode: str, check: Callable[[], str | None]) -> str | None:
    """Run ``check`` of a guessed secret under the throttle; log and count a failure (never the secret)."""
    state, address = request.app[AUTH], client_address(request)
    key = throttle_key(address)
    wait = state.throttle.admit(key, time.monotonic())
    try:
        if wait:
            await asyncio.sleep(wait)  # the throttle itself: each failure slows this address's next guess
        user = check()
    finally:
        state.throttle.release(key)
    if user is not None:
        state.throttle.succeeded(key)
        return user
    failures = state.throttle.failed(key, time.monotonic())
    request.app[METRICS].note_auth_failure(mode)
    log.info("auth_failed", peer=address, mode=mode, failures=failures)
    if failures == state.throttle.lockout_failures:
        log.warning("auth_locked_out", peer=address, failures=failures, seconds=state.throttle.lockout_seconds)
    return None


# --- credentials -----------------------------------------------------------------------------

def _as_bytes(text: str, what: str) -> bytes:
    # Header bytes that are not UTF-8 arrive as lone surrogates: no secret can match them.
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise Malformed(what) from None


async def request_user(request: web.Request) -> str | None:
    """Who made ``request``, or None without valid credentials; raises Malformed or Throttle.Refused."""
    auth = request.app[SETTINGS].auth
    if auth.mode == "none":
        return "anonymous"
    if auth.mode == "token":
        return await _token_user(request, auth)
    if auth.mode == "basic":
        return await _basic_user(request, auth)
    return _proxy_user(request, auth)


async def _token_user(request: web.Request, auth: AuthSettings) -> str | None:
    junk_cookie = None
    try:
        if _session_user(request, auth):
            return "browser"
    except Malformed as exc:
        junk_cookie = exc  # a good Bearer token still counts
    header = request.headers.get("Authorization")
    if header is None:
        if junk_cookie is not None:
            raise junk_cookie
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Malformed("authorization")
    guess, secret = _as_bytes(value, "bearer"), auth.token.encode()
    return await checked_guess(request, "bearer", lambda: "token" if hmac.compare_digest(guess, secret) else None)


def _session_user(request: web.Request, auth: AuthSettings) -> bool:
    value = request.cookies.get(COOKIE)
    if not value:
        return False
    return session_expiry(auth.token, value, time.time()) is not None and value not in request.app[AUTH].signed_out


async def _basic_user(request: web.Request, auth: AuthSettings) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError("not Basic")
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # not ASCII, not base64, not UTF-8 inside
        raise Malformed("basic") from None
    if not colon:
        raise Malformed("basic")

    def check() -> str | None:
        ok = hmac.compare_digest(user.encode(), auth.username.encode()) & hmac.compare_digest(
            password.encode(), auth.password.encode())
        return user if ok else None
    return await checked_guess(request, "basic", check)


def _proxy_user(request: web.Request, auth: AuthSettings) -> str | None:
    if not request.app[AUTH].trusts(request.remote):
        return None
    return request.headers.get(auth.proxy_header) or None


# --- the middleware ----------------------------------------------------------------------------

async def identify(request: web.Request) -> str | Malformed | Throttle.Refused | None:
    """Who made ``request``; None without valid credentials, or why its credentials went unchecked."""
    try:
        return await request_user(request)
    except Malformed as exc:
        log.debug("credential_malformed", credential=str(exc), peer=request.remote, path=request.path[:200])
        return exc
    except Throttle.Refused as exc:
        return exc


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests without valid credentials, in the way each kind of client understands."""
    auth = request.app[SETTINGS].auth
    path = request.path
    if auth.mode == "none" or path == "/login" or path.startswith(OPEN_PREFIXES):
        return await handler(request)
    found = await identify(request)
    request[AUTH_USER] = found if isinstance(found, str) else None
    if isinstance(found, str) or path in OPEN_PATHS:  # /healthz answers anyone, with details only for users
        return await handler(request)
    if isinstance(found, Throttle.Refused):
        raise too_many_failures(found)
    if path.startswith("/api/v1/ws/") or is_websocket(request):
        if found is None:
            log.debug("ws_refused", reason="auth", peer=request.remote, path=path[:200])
        return await refuse_socket(request)
    if isinstance(found, Malformed):
        raise web.HTTPUnauthorized(text="malformed credentials")
    if auth.mode == "basic":
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'},
                                   text="sign in required")
    # Under the compat prefix is the tac-webbuilder client's API: it reads a 401, not a sign-in page.
    if path.startswith("/api/") or path == "/metrics" or auth.mode == "proxy" or surface_for(request) is not None:
        raise web.HTTPUnauthorized(text="authentication required")
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")


def too_many_failures(refused: Throttle.Refused) -> web.HTTPTooManyRequests:
    """429 for an address that is locked out, or whose last guess is still being slowed down."""
    seconds = refused.retry_after
    return web.HTTPTooManyRequests(headers={"Retry-After": str(seconds)},
                                   text=f"too many failed sign-ins from this address; try again in {seconds} s")


async def refuse_socket(request: web.Request) -> web.WebSocketResponse:
    """Accept, then close with 1008: a browser learns why, and stops retrying blindly."""
    ws = web.WebSocketResponse()
    add_security_headers(ws.headers, request.path)  # prepared here: the middleware would come too late
    await ws.prepare(request)
    await ws.close(code=UNAUTHENTICATED.code, message=UNAUTHENTICATED.reason)
    return ws
