"""The Host allow-list (DNS rebinding), the Origin check against it, and what a stranger learns from headers."""

import pytest

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
           "Sec-WebSocket-Version": "13"}


async def status(client, path, host, **headers):
    """The status of ``GET path`` sent with Host ``host`` (and ``headers``)."""
    return (await client.get(path, headers={"Host": host, **headers}, allow_redirects=False)).status


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil",
                                  "[::1", "[::1]x", "10.0.0.1", "[::2]:80", "local host"])
async def test_a_foreign_host_is_misdirected_on_every_path(client, host):
    for path in ("/", "/queue", "/api/v1/queue", "/api/v1/ws/queue", "/metrics", "/healthz", "/nope", "/static/x"):
        assert await status(client, path, host) == 421, path


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:9999", "localhost", "LOCALHOST:1", "localhost.", "[::1]",
                                  "[::1]:8080", "::1"])
async def test_loopback_names_are_answered_whatever_the_port(client, host):
    assert await status(client, "/api/v1/queue", host) == 200


async def test_public_host_and_allowed_hosts_are_answered(make_client):
    public = await make_client({"server": {"public_host": "ops.example.com"}})
    assert await status(public, "/api/v1/queue", "ops.example.com:443") == 200
    assert await status(public, "/api/v1/queue", "evil.example") == 421
    listed = await make_client({"server": {"allowed_hosts": ["console.internal", "10.1.2.3"]}})
    assert await status(listed, "/api/v1/queue", "console.internal:8080") == 200
    assert await status(listed, "/api/v1/queue", "10.1.2.3") == 200
    assert await status(listed, "/api/v1/queue", "localhost") == 421


async def test_a_rebinding_page_cannot_open_a_socket(client):
    rebound = {"Host": f"evil.example:{client.port}", "Origin": f"http://evil.example:{client.port}", **UPGRADE}
    assert (await client.get("/api/v1/ws/queue", headers=rebound)).status == 421


async def test_origin_must_name_an_allowed_host(make_client):
    client = await make_client({"server": {"public_host": "ops.example.com"}})
    same = {"Host": "ops.example.com", **UPGRADE}
    assert (await client.get("/api/v1/ws/queue", headers={**same, "Origin": "https://ops.example.com"})).status == 101
    for origin in ("https://evil.example", "null", "https://ops.example.com.evil.example", "file://"):
        assert (await client.get("/api/v1/ws/queue", headers={**same, "Origin": origin})).status == 403, origin


async def test_responses_do_not_name_the_server_software(client):
    for path, host in (("/", "127.0.0.1"), ("/nope", "127.0.0.1"), ("/", "evil.example")):
        response = await client.get(path, headers={"Host": host})
        assert "aiohttp" not in response.headers.get("Server", "").lower(), path
        assert "python" not in response.headers.get("Server", "").lower(), path
