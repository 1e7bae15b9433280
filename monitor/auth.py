"""Authentication for pages, API and WebSockets: modes none, token, basic and proxy.

Token mode: API clients send ``Authorization: Bearer <token>``; a browser signs in once on
``/login`` and then carries an HttpOnly, SameSite=Strict cookie holding an expiring value
signed with the token (rotating the token signs everyone out). ``/healthz``, ``/login``
and ``/static/`` never need credentials: liveness probes must work without secrets and
reveal only per-channel ok/error; the login page needs its stylesheet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from urllib.parse import quote

import aiohttp_jinja2
import structlog
from aiohttp import web

from monitor.keys import SETTINGS
from monitor.settings import AuthSettings

log = structlog.get_logger(__name__)

COOKIE = "monitor_session"
OPEN_PATHS = ("/healthz", "/login")
OPEN_PREFIXES = ("/static/",)


def session_value(token: str, expires: int) -> str:
    """A cookie value valid until ``expires`` (unix seconds), signed with ``token``."""
    signature = hmac.new(token.encode(), f"session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{signature}"


def session_is_valid(token: str, value: str, now: float) -> bool:
    """True when ``value`` was signed with ``token`` and has not expired."""
    expires, _, _ = value.partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    return hmac.compare_digest(value, session_value(token, int(expires)))


def authenticated_user(request: web.Request, auth: AuthSettings) -> str | None:
    """Who made ``request`` under ``auth``, or None when it carries no valid credentials."""
    if auth.mode == "none":
        return "anonymous"
    header = request.headers.get("Authorization", "")
    if auth.mode == "token":
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), auth.token.encode()):
            return "token"
        cookie = request.cookies.get(COOKIE, "")
        return "browser" if cookie and session_is_valid(auth.token, cookie, time.time()) else None
    if auth.mode == "basic":
        return _basic_user(header, auth)
    return _proxy_user(request, auth)


def _basic_user(header: str, auth: AuthSettings) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    ok = hmac.compare_digest(user.encode(), auth.username.encode()) & hmac.compare_digest(
        password.encode(), auth.password.encode())
    return user if ok else None


def _proxy_user(request: web.Request, auth: AuthSettings) -> str | None:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return None
    if not any(peer in ipaddress.ip_network(net, strict=False) for net in auth.trusted_proxies):
        return None
    return request.headers.get(auth.proxy_header) or None


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Refuse requests without valid credentials, in the way each kind of client understands."""
    auth = request.app[SETTINGS].auth
    path = request.path
    if auth.mode == "none" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return await handler(request)
    if authenticated_user(request, auth) is not None:
        return await handler(request)
    if path.startswith("/api/v1/ws/"):
        return await refuse_socket(request)
    if auth.mode == "basic":
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'},
                                   text="sign in required")
    if path.startswith("/api/") or path == "/metrics" or auth.mode == "proxy":
        raise web.HTTPUnauthorized(text="authentication required")
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")


async def refuse_socket(request: web.Request) -> web.WebSocketResponse:
    """Accept, then close with 1008: a browser learns why, and stops retrying blindly."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close(code=1008, message=b"authentication required")
    log.info("ws_refused", reason="auth", peer=request.remote, path=request.path)
    return ws


def add_login_routes(app: web.Application) -> None:
    """``GET/POST /login`` and ``POST /logout`` (token mode's browser sign-in)."""
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)


def _safe_next(target: str) -> str:
    # Only same-site paths: an open redirect would let a link send a signed-in user anywhere.
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    context = {"next": _safe_next(request.query.get("next", "/")), "error": "",
               "mode": request.app[SETTINGS].auth.mode}
    return aiohttp_jinja2.render_template("login.html", request, context)


async def login_submit(request: web.Request) -> web.Response:
    """Check the submitted token; on success set the session cookie and go on."""
    auth = request.app[SETTINGS].auth
    form = await request.post()
    target = _safe_next(str(form.get("next", "/")))
    token = str(form.get("token", ""))
    if auth.mode != "token" or not hmac.compare_digest(token.encode(), auth.token.encode()):
        log.info("login_failed", peer=request.remote)
        context = {"next": target, "error": "That token is not valid.", "mode": auth.mode}
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    expires = int(time.time() + auth.session_hours * 3600)
    redirect = web.HTTPSeeOther(target)
    redirect.set_cookie(COOKIE, session_value(auth.token, expires), max_age=int(auth.session_hours * 3600),
                        httponly=True, samesite="Strict", secure=request.secure, path="/")
    log.info("login", peer=request.remote)
    raise redirect


async def logout(request: web.Request) -> web.Response:
    """Forget the session cookie."""
    redirect = web.HTTPSeeOther("/login")
    redirect.del_cookie(COOKIE, path="/")
    raise redirect
