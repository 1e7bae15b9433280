"""Authentication on pages, API and WebSockets, and the Origin check on WebSockets."""

import base64
from urllib.parse import unquote

import pytest
from aiohttp import WSMsgType

TOKEN = "a-token-that-is-long-enough"


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def assert_socket_refused(client, headers):
    ws = await client.ws_connect("/api/v1/ws/queue", headers=headers)
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.CLOSE and msg.data == 1008
    await ws.close()


async def assert_socket_accepted(client, headers):
    ws = await client.ws_connect("/api/v1/ws/queue", headers=headers)
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT and '"snapshot"' in msg.data
    await ws.close()


async def test_token_mode_on_api_pages_and_sockets(make_client):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    good, bad = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer wrong-token-wrong-token"}
    assert (await client.get("/api/v1/queue", headers=good)).status == 200
    assert (await client.get("/api/v1/queue", headers=bad)).status == 401
    assert (await client.get("/api/v1/queue")).status == 401
    assert (await client.get("/metrics")).status == 401
    page = await client.get("/queue", allow_redirects=False)
    assert page.status == 303 and unquote(page.headers["Location"]) == "/login?next=/queue"
    assert (await client.get("/queue", headers=good)).status == 200
    await assert_socket_refused(client, {})
    await assert_socket_refused(client, bad)
    await assert_socket_accepted(client, good)
    assert (await client.get("/healthz")).status == 200


async def test_browser_signs_in_once_and_carries_a_strict_cookie(make_client):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    refused = await client.post("/login", data={"token": "nope", "next": "/queue"}, allow_redirects=False)
    assert refused.status == 401 and "not valid" in await refused.text()
    signed = await client.post("/login", data={"token": TOKEN, "next": "/queue"}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/queue"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert (await client.get("/queue")).status == 200  # the client's cookie jar now carries it
    assert (await client.get("/api/v1/queue")).status == 200
    await assert_socket_accepted(client, {})


OFF_SITE = ["//evil.example/x", "/\\evil.example", "\\\\evil.example", "/\t/evil.example", "/\n/evil.example",
            "/\r/evil.example", "/\x00/evil.example", "https://evil.example", "javascript:alert(1)", "evil.example",
            " //evil.example", "/%09/evil.example", "/%5C/evil.example", "/%2F/evil.example", "/\u3000/evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
async def test_login_never_redirects_off_site(make_client, target):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    signed = await client.post("/login", data={"token": TOKEN, "next": target}, allow_redirects=False)
    assert signed.headers["Location"] == "/"


async def test_next_with_an_encoded_tab_in_the_query_stays_on_site(make_client):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    form = await (await client.get("/login?next=/%09/evil.example")).text()
    assert 'name="next" value="/"' in form
    kept = await client.post("/login", data={"token": TOKEN, "next": "/queue?x=1#top"}, allow_redirects=False)
    assert kept.headers["Location"] == "/queue?x=1#top"


async def test_basic_mode(make_client):
    client = await make_client({"auth": {"mode": "basic", "username": "ops", "password": "correct-horse-battery"}})
    page = await client.get("/", headers=basic("ops", "wrong"))
    assert page.status == 401 and page.headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.get("/")).status == 401
    assert (await client.get("/", headers=basic("ops", "correct-horse-battery"))).status == 200
    assert (await client.get("/api/v1/queue", headers={"Authorization": "Basic !!!"})).status == 401
    await assert_socket_refused(client, basic("ops", "wrong"))
    await assert_socket_accepted(client, basic("ops", "correct-horse-battery"))


async def test_proxy_mode_trusts_the_header_only_from_trusted_addresses(make_client):
    client = await make_client({"auth": {"mode": "proxy", "trusted_proxies": ["127.0.0.0/8"]}})
    assert (await client.get("/api/v1/queue", headers={"X-Forwarded-User": "alice"})).status == 200
    assert (await client.get("/api/v1/queue")).status == 401
    await assert_socket_accepted(client, {"X-Forwarded-User": "alice"})
    await assert_socket_refused(client, {})
    untrusted = await make_client({"auth": {"mode": "proxy", "trusted_proxies": ["10.9.8.7"]}})
    assert (await untrusted.get("/api/v1/queue", headers={"X-Forwarded-User": "alice"})).status == 401


@pytest.mark.parametrize("auth, message", [
    ({"mode": "token", "token": "short"}, "at least 16 characters"),
    ({"mode": "basic", "username": "ops"}, "basic mode needs both"),
    ({"mode": "proxy", "trusted_proxies": ["not-an-ip"]}, "trusted_proxies"),
    ({"mode": "basic", "username": "ops", "password": "hunter22"}, "at least 12 characters"),
    ({"mode": "proxy"}, "proxy mode needs auth.trusted_proxies"),
])
def test_incomplete_auth_config_is_refused(make_settings, auth, message):
    from monitor.settings import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_settings({"auth": auth})


async def test_cross_origin_socket_is_refused_before_the_upgrade(client):
    response = await client.get("/api/v1/ws/queue", headers={
        "Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert response.status == 403


async def test_same_origin_and_allowed_origin_sockets_are_accepted(make_client):
    client = await make_client({"server": {"allowed_origins": ["https://ops.example.com"]}})
    await assert_socket_accepted(client, {"Origin": f"http://{client.host}:{client.port}"})
    await assert_socket_accepted(client, {"Origin": "https://ops.example.com"})
    response = await client.get("/api/v1/ws/queue", headers={
        "Origin": "https://ops.example.com.evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert response.status == 403


async def sign_in(client, headers=None) -> str:
    """Sign in on the form; the Set-Cookie header of the answer."""
    signed = await client.post("/login", data={"token": TOKEN, "next": "/"}, headers=headers, allow_redirects=False)
    assert signed.status == 303
    return signed.headers["Set-Cookie"]


async def test_logout_revokes_the_session_on_the_server(make_client):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    await sign_in(client)
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["monitor_session"].value
    assert (await client.post("/logout", allow_redirects=False)).status == 303
    replayed = {"Cookie": f"monitor_session={session}"}
    assert (await client.get("/api/v1/queue", headers=replayed)).status == 401
    await assert_socket_refused(client, replayed)
    await sign_in(client)
    assert (await client.get("/api/v1/queue")).status == 200  # a new sign-in works again


async def test_cookie_is_secure_behind_a_trusted_tls_proxy(make_client):
    https = {"X-Forwarded-Proto": "https"}
    trusting = await make_client({"auth": {"mode": "token", "token": TOKEN, "trusted_proxies": ["127.0.0.1"]}})
    assert "Secure" in await sign_in(trusting, https)
    assert "Secure" not in await sign_in(trusting)
    untrusting = await make_client({"auth": {"mode": "token", "token": TOKEN, "trusted_proxies": ["10.0.0.1"]}})
    assert "Secure" not in await sign_in(untrusting, https)


async def test_healthz_without_credentials_says_only_each_channels_state(make_client):
    client = await make_client({"auth": {"mode": "token", "token": TOKEN}})
    body = await (await client.get("/healthz")).json()
    assert set(body) == {"status", "channels"} and len(body["channels"]) == 8
    assert all(list(entry) == ["source"] for entry in body["channels"].values())
    assert body["channels"]["queue"]["source"] == "ok"
    wrong = await (await client.get("/healthz", headers={"Authorization": "Bearer not-the-token-at-all"})).json()
    assert wrong == body
    detailed = await (await client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert {"seq", "connections", "last_good_poll_age_s"} <= set(detailed["channels"]["queue"])
    assert "watch" in detailed and "uptime_s" in detailed


def test_proxy_mode_trusts_no_address_by_default(make_settings):
    from monitor.settings import AuthSettings

    assert AuthSettings().trusted_proxies == ()
