"""Failed sign-ins (form, Bearer, Basic) are logged, slowed down per address, then locked out for a while."""

import base64

import pytest
from structlog.testing import capture_logs

from monitor.keys import METRICS
from monitor.throttle import Throttle, throttle_key
from tests.test_metrics import sample

TOKEN = "a-token-that-is-long-enough"
LOCKOUT = {"lockout_failures": 3, "lockout_seconds": 60.0}


def token_mode(**auth):
    return {"auth": {"mode": "token", "token": TOKEN, **LOCKOUT, **auth}}


async def test_failed_sign_ins_are_logged_without_the_secret_then_locked_out(make_client):
    client = await make_client(token_mode())
    with capture_logs() as events:
        for _ in range(3):
            assert (await client.post("/login", data={"token": "guess-guess-guess"})).status == 401
        locked = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert locked.status == 429 and 1 <= int(locked.headers["Retry-After"]) <= 60
    failed = [e for e in events if e["event"] == "auth_failed"]
    assert [(e["peer"], e["mode"], e["failures"]) for e in failed] == [("127.0.0.1", "login", n) for n in (1, 2, 3)]
    assert [e["log_level"] for e in events if e["event"] == "auth_locked_out"] == ["warning"]
    assert "guess-guess-guess" not in repr(events) and TOKEN not in repr(events)


async def test_bearer_and_basic_failures_are_counted_and_bans_reported(make_client):
    client = await make_client(token_mode())
    wrong = {"Authorization": "Bearer guess-guess-guess"}
    assert [(await client.get("/api/v1/queue", headers=wrong)).status for _ in range(3)] == [401, 401, 401]
    assert (await client.get("/api/v1/queue", headers={"Authorization": f"Bearer {TOKEN}"})).status == 429
    metrics = client.app[METRICS].render().decode()
    assert sample(metrics, "monitor_auth_failures_total", mode="bearer") == 3
    assert sample(metrics, "monitor_auth_failures_total", mode="login") == 0
    assert sample(metrics, "monitor_auth_banned_addresses") == 1
    basic = await make_client({"auth": {"mode": "basic", "username": "ops", "password": "correct-horse-battery"}})
    guess = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
    assert (await basic.get("/metrics", headers=guess)).status == 401
    assert sample(basic.app[METRICS].render().decode(), "monitor_auth_failures_total", mode="basic") == 1


async def test_a_socket_with_a_wrong_token_counts_as_a_failure(make_client):
    client = await make_client(token_mode())
    for _ in range(3):
        ws = await client.ws_connect("/api/v1/ws/queue", headers={"Authorization": "Bearer guess-guess-guess"})
        assert (await ws.receive(timeout=5)).data == 1008
        await ws.close()
    assert (await client.get("/api/v1/ws/queue", headers={"Authorization": f"Bearer {TOKEN}"})).status == 429


async def test_a_signed_in_browser_is_not_locked_out_with_its_address(make_client):
    client = await make_client(token_mode())
    await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["monitor_session"].value
    client.session.cookie_jar.clear()
    for _ in range(4):
        await client.get("/api/v1/queue", headers={"Authorization": "Bearer guess-guess-guess"})
    assert (await client.get("/api/v1/queue", headers={"Cookie": f"monitor_session={session}"})).status == 200


async def test_a_success_forgets_earlier_failures(make_client):
    client = await make_client(token_mode())
    for _ in range(2):
        for _ in range(2):
            assert (await client.get("/metrics", headers={"Authorization": "Bearer guess-guess-guess"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


def test_each_failure_doubles_the_wait_up_to_a_cap():
    throttle = Throttle(failures=100, seconds=60.0)
    waits = []
    for _ in range(12):
        waits.append(throttle.admit("198.51.100.7", now=0.0))
        throttle.failed("198.51.100.7", now=0.0)
        throttle.release("198.51.100.7")
    assert waits[:4] == [0.0, 0.1, 0.2, 0.4]
    assert waits == sorted(waits) and waits[-1] == waits[-2] < 0.1 * 2 ** 10


def test_an_attempt_while_one_is_waiting_is_refused_unchecked():
    throttle = Throttle(failures=5, seconds=60.0)
    throttle.failed("198.51.100.7", now=0.0)
    assert throttle.admit("198.51.100.7", now=1.0) > 0
    with pytest.raises(Throttle.Refused) as refused:
        throttle.admit("198.51.100.7", now=1.0)
    assert refused.value.retry_after >= 1
    assert throttle.admit("203.0.113.9", now=1.0) == 0.0  # other addresses are not slowed down


def test_a_lockout_ends_and_old_failures_are_forgotten():
    throttle = Throttle(failures=2, seconds=60.0)
    throttle.failed("198.51.100.7", now=0.0)
    throttle.failed("198.51.100.7", now=0.0)
    assert throttle.banned(now=30.0) == 1
    with pytest.raises(Throttle.Refused) as refused:
        throttle.admit("198.51.100.7", now=30.0)
    assert refused.value.retry_after == 30
    assert throttle.banned(now=61.0) == 0 and throttle.admit("198.51.100.7", now=61.0) == 0.0


def test_the_table_of_addresses_is_bounded():
    throttle = Throttle(failures=5, seconds=60.0, max_addresses=100)
    for n in range(10_000):
        throttle.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now=0.0)
    assert len(throttle) == 100


def test_one_ipv6_network_counts_as_one_address():
    assert throttle_key("2001:db8:1:2::1") == throttle_key("2001:db8:1:2:ffff::9")
    assert throttle_key("2001:db8:1:3::1") != throttle_key("2001:db8:1:2::1")
    assert throttle_key("198.51.100.7") == "198.51.100.7"
