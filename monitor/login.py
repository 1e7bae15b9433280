"""Sign-in and sign-out pages: ``GET/POST /login`` and ``POST /logout`` (routed by ``urls``)."""

from __future__ import annotations

import codecs
import hmac
import time
from urllib.parse import parse_qsl, unquote

import aiohttp_jinja2
import structlog
from aiohttp import web
from yarl import URL

from monitor.auth import AuthState, came_over_tls, checked_guess, client_address, too_many_failures
from monitor.keys import AUTH, METRICS, SETTINGS
from monitor.sessions import COOKIE, Malformed, session_expiry, session_value
from monitor.settings import AuthSettings
from monitor.throttle import Throttle

log = structlog.get_logger(__name__)

MAX_NEXT = 2048
MAX_FORM_FIELDS = 8


def setup_auth(app: web.Application) -> None:
    """Give ``app`` the state sign-in and authentication share (``app[AUTH]``), its lockouts counted."""
    state = app[AUTH] = AuthState(app[SETTINGS].auth)
    app[METRICS].watch_lockouts(lambda: state.throttle.banned(time.monotonic()))


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
