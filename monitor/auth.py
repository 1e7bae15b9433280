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
import codecs
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

import aiohttp_jinja2
import structlog
from aiohttp import web
from yarl import URL

from monitor.headers import add_security_headers
from monitor.keys import AUTH, AUTH_USER, METRICS, SETTINGS
from monitor.settings import AuthSettings

log = structlog.get_logger(__name__)

COOKIE = "monitor_session"
OPEN_PATHS = ("/healthz", "/login")
OPEN_PREFIXES = ("/static/",)
SESSION_CHARS = re.compile(r"[0-9a-f.]{1,160}")  # what session_value writes; anything else is junk
FIRST_DELAY, MAX_DELAY = 0.1, 5.0  # seconds an address waits after its first failure; the doubling stops here
MAX_TRACKED = 4096  # addresses remembered; more only push out the longest quiet (memory stays bounded)
MAX_SIGNED_OUT = 10_000  # only holders of a valid session can sign out, so this bound is never reached in practice
MAX_NEXT = 2048
MAX_FORM_FIELDS = 8


class Malformed(Exception):
    """A credential that could never be valid: answered 401 (sockets: 1008) and logged once at debug."""


# --- sessions ------------------------------------------------------------------------------

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


def session_is_valid(token: str, value: str, now: float) -> bool:
    """True when ``value`` was signed with ``token`` and has not expired."""
    try:
        return session_expiry(token, value, now) is not None
    except Malformed:
        return False


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


# --- the throttle ----------------------------------------------------------------------------

@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    banned_until: float = 0.0
    waiting: bool = False


def failure_delay(failures: int) -> float:
    """Seconds an address waits before its next guess is checked, after ``failures`` failures."""
    return 0.0 if failures <= 0 else min(FIRST_DELAY * 2 ** min(failures - 1, 20), MAX_DELAY)


class Throttle:
    """Failed guesses per client address: a doubling wait before the next check, then a lockout."""

    class Refused(Exception):
        """The address is locked out or has a guess waiting already: answer 429, check nothing."""

        def __init__(self, retry_after: int) -> None:
            super().__init__(f"retry after {retry_after} s")
            self.retry_after = retry_after

    def __init__(self, failures: int, seconds: float, max_addresses: int = MAX_TRACKED) -> None:
        self.lockout_failures, self.lockout_seconds, self.max_addresses = failures, seconds, max_addresses
        self._table: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._table)

    def admit(self, address: str, now: float) -> float:
        """Seconds to wait before checking a guess from ``address``; raises Refused instead of checking it."""
        record = self._current(address, now)
        if record is None:
            return 0.0
        if record.banned_until > now:
            raise self.Refused(math.ceil(record.banned_until - now))
        wait = failure_delay(record.count)
        if record.waiting:  # one guess at a time: parallel guesses would skip the wait
            raise self.Refused(max(1, math.ceil(wait)))
        record.waiting = True
        return wait

    def release(self, address: str) -> None:
        """The guess admitted for ``address`` has been checked (or abandoned)."""
        if (record := self._table.get(address)) is not None:
            record.waiting = False

    def failed(self, address: str, now: float) -> int:
        """Count a failed guess; the address's failures so far (at lockout_failures it is locked out)."""
        record = self._current(address, now) or _Failures()
        self._table[address] = record
        self._table.move_to_end(address)
        record.count, record.last = record.count + 1, now
        if record.count >= self.lockout_failures:
            record.banned_until = now + self.lockout_seconds
        self._trim(now)
        return record.count

    def succeeded(self, address: str) -> None:
        """A right guess: forget the address's failures."""
        self._table.pop(address, None)

    def banned(self, now: float) -> int:
        """How many addresses are locked out at ``now``."""
        return sum(1 for record in self._table.values() if record.banned_until > now)

    def _current(self, address: str, now: float) -> _Failures | None:
        record = self._table.get(address)
        if record is not None and self._stale(record, now):
            del self._table[address]
            return None
        return record

    def _stale(self, record: _Failures, now: float) -> bool:
        return not record.waiting and record.banned_until <= now and now - record.last >= self.lockout_seconds

    def _trim(self, now: float) -> None:
        while self._table and self._stale(next(iter(self._table.values())), now):
            self._table.popitem(last=False)
        while len(self._table) > self.max_addresses:
            self._table.popitem(last=False)


def throttle_key(address: str) -> str:
    """The unit throttled: an IPv4 address, or an IPv6 /64 (one host commonly owns a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


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
async def auth_middleware(request: web.Request, handler):
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
    if path.startswith("/api/v1/ws/"):
        if found is None:
            log.debug("ws_refused", reason="auth", peer=request.remote, path=path[:200])
        return await refuse_socket(request)
    if isinstance(found, Malformed):
        raise web.HTTPUnauthorized(text="malformed credentials")
    if auth.mode == "basic":
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'},
                                   text="sign in required")
    if path.startswith("/api/") or path == "/metrics" or auth.mode == "proxy":
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
    await ws.close(code=1008, message=b"authentication required")
    return ws


# --- sign-in and sign-out -----------------------------------------------------------------------

def add_login_routes(app: web.Application) -> None:
    """``GET/POST /login`` and ``POST /logout``, and the state authentication keeps (``app[AUTH]``)."""
    state = app[AUTH] = AuthState(app[SETTINGS].auth)
    app[METRICS].watch_lockouts(lambda: state.throttle.banned(time.monotonic()))
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)


def _unsafe(text: str) -> bool:
    # Browsers drop tabs and newlines from URLs and read a backslash as "/": "/<tab>/x" would become "//x".
    return any(char == "\\" or not char.isprintable() for char in text)


def safe_next(target: object) -> str:
    """``target`` when it is a path on this site, as the browser will read it; else ``/``."""
    if not isinstance(target, str) or len(target) > MAX_NEXT:
        return "/"
    decoded = unquote(target)
    if _unsafe(target) or " " in target or _unsafe(decoded):
        return "/"
    if not target.startswith("/") or target.startswith("//") or decoded.startswith("//"):
        return "/"
    try:
        location = str(URL(target))  # what the Location header will carry
    except ValueError:
        return "/"
    return target if location.startswith("/") and not location.startswith("//") else "/"


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    context = {"next": safe_next(request.query.get("next", "/")), "error": "",
               "mode": request.app[SETTINGS].auth.mode}
    return aiohttp_jinja2.render_template("login.html", request, context)


async def read_form(request: web.Request) -> dict[str, str]:
    """The sign-in form's fields (the first of each name); Malformed unless it is a UTF-8 urlencoded form."""
    if request.content_type not in ("", "application/x-www-form-urlencoded"):
        raise Malformed("form")  # multipart would spool uploads to disk for a two-field form
    try:
        if request.charset is not None and codecs.lookup(request.charset).name != "utf-8":
            raise Malformed("form")
        body = (await request.read()).decode()
        pairs = parse_qsl(body, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except (LookupError, UnicodeDecodeError, ValueError):
        raise Malformed("form") from None
    return dict(reversed(pairs))


async def login_submit(request: web.Request) -> web.Response:
    """Check the submitted token; on success set the session cookie and go on."""
    auth = request.app[SETTINGS].auth
    try:
        form = await read_form(request)
    except Malformed as exc:
        log.debug("credential_malformed", credential=str(exc), peer=request.remote, path=request.path)
        raise web.HTTPUnauthorized(text="malformed sign-in form") from None
    target = safe_next(form.get("next", "/"))
    guess, secret = form.get("token", "").encode(), auth.token.encode()
    user = None
    if auth.mode == "token":
        try:
            user = await checked_guess(request, "login", lambda: "ok" if hmac.compare_digest(guess, secret) else None)
        except Throttle.Refused as refused:
            raise too_many_failures(refused) from None
    if user is None:
        context = {"next": target, "error": "That token is not valid.", "mode": auth.mode}
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    raise _signed_in(request, auth, target)


def _signed_in(request: web.Request, auth: AuthSettings, target: str) -> web.HTTPSeeOther:
    seconds = int(auth.session_hours * 3600)
    redirect = web.HTTPSeeOther(target)
    redirect.set_cookie(COOKIE, session_value(auth.token, int(time.time()) + seconds), max_age=seconds,
                        httponly=True, samesite="Strict", secure=came_over_tls(request), path="/")
    log.info("login", peer=client_address(request))
    return redirect


async def logout(request: web.Request) -> web.Response:
    """Sign out: the session is revoked on the server, and the browser told to forget the cookie."""
    auth, now = request.app[SETTINGS].auth, time.time()
    value = request.cookies.get(COOKIE, "")
    try:
        expires = session_expiry(auth.token, value, now) if auth.mode == "token" and value else None
    except Malformed:
        expires = None
    if expires is not None:
        request.app[AUTH].signed_out.add(value, expires, now)
        log.info("logout", peer=client_address(request))
    redirect = web.HTTPSeeOther("/login")
    redirect.del_cookie(COOKIE, path="/", secure=came_over_tls(request), httponly=True, samesite="Strict")
    raise redirect
