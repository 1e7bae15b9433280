"""Consoles sharing channels through a real redis-server: one poller each, every client converges."""

import asyncio
import random
from collections import Counter

import pytest
import redis.asyncio

from monitor.app import create_app
from monitor.brokers.mirror import BROKER_DOWN
from monitor.brokers.polls import polled_key
from monitor.brokers.scripts import REFUSED_FENCE, REFUSED_GAP, ChannelKeys
from monitor.brokers.writer import Write
from monitor.keys import BROKER, POLLERS
from monitor.settings import ConfigError, settings_from_mapping
from tests.support import ProtocolClient

LOCK_TTL = 1.0
CONSOLES = 3


@pytest.fixture
def start_console(aiohttp_client, make_settings):
    """Start one console sharing the broker at ``url``."""

    async def start(url):
        return await aiohttp_client(create_app(make_settings({"broker": {"url": url, "lock_ttl": LOCK_TTL}})))

    return start


@pytest.fixture
async def consoles(start_console, redis_url):
    """Three consoles on one Redis; the first one started polls every channel."""
    return [await start_console(redis_url) for _ in range(CONSOLES)]


async def open_client(console, query=""):
    """A protocol client on ``console``'s queue channel, caught up."""
    live = ProtocolClient(await console.ws_connect(f"/api/v1/ws/queue{query}"))
    if not query:
        await live.receive()
    return live


def leader(consoles, channel="queue"):
    """The console polling ``channel`` (None while nobody does)."""
    return next((c for c in consoles if c.app[BROKER].leads(channel)), None)


async def until_one_leads(consoles, channel="queue"):
    """Wait until one of ``consoles`` polls ``channel``; that console."""
    brokers = [c.app[BROKER] for c in consoles]
    waits = [asyncio.ensure_future(b.wait_until(lambda b=b: b.leads(channel))) for b in brokers]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return leader(consoles, channel)


async def change(consoles, queue_table, title):
    """Insert a queue row titled ``title`` and have the leader poll it; the (epoch, seq) it is published at."""
    polling = leader(consoles)
    if polling is None:  # a lock renewal late on a loaded machine (TTL 1 s here): another takes over within 2 TTL
        async with asyncio.timeout(2 * LOCK_TTL):
            polling = await until_one_leads(consoles)
    if title is not None:  # None: the test changed the table itself
        queue_table.insert(title=title)
    await polling.app[POLLERS]["queue"].poll()
    await polling.app[BROKER].flushed()
    view = polling.app[BROKER].authored("queue")
    return view.epoch, view.seq


async def test_a_bad_broker_url_is_a_bad_config():
    with pytest.raises(ConfigError, match=r"\[broker\] url: expected redis://"):
        settings_from_mapping({"broker": {"url": "http://127.0.0.1:6379"}})


async def test_one_console_polls_and_every_client_of_every_console_converges(consoles, queue_table):
    assert [c.app[BROKER].leads("queue") for c in consoles] == [True, False, False]
    clients = [await open_client(c) for c in consoles for _ in range(2)]
    for title in ("first", "second", "third"):
        _, seq = await change(consoles, queue_table, title)
        for live in clients:
            await live.until_seq(seq)
    states = {repr(live.state) for live in clients} | {repr(c.app[BROKER].current("queue").state) for c in consoles}
    assert len(states) == 1
    assert len(clients[0].state["items"]) == 3
    assert sum(c.app[POLLERS]["queue"].polls for c in consoles[1:]) == 0


async def test_a_client_resumes_on_another_console_with_exactly_the_missed_patches(consoles, queue_table):
    staying, leaving = await open_client(consoles[0]), await open_client(consoles[0])
    epoch, seq = leaving.epoch, leaving.seq
    await leaving.ws.close()
    for title in ("missed 1", "missed 2", "missed 3"):
        _, last = await change(consoles, queue_table, title)
    await staying.until_seq(last)
    missed = staying.received[1:]
    back = await open_client(consoles[2], f"?epoch={epoch}&seq={seq}")
    back.epoch, back.seq, back.state = epoch, seq, leaving.state
    await back.until_seq(last)
    assert back.received == missed and [m["type"] for m in missed] == ["patch"] * 3
    assert back.state == staying.state


async def test_a_dead_leader_is_replaced_within_twice_the_lock_lifetime(consoles, queue_table):
    dead = leader(consoles)
    await dead.app[BROKER].close(release=False)  # a crash: its lock stays until it expires
    alive = [c for c in consoles if c is not dead]
    live = await open_client(alive[0])
    loop = asyncio.get_running_loop()
    lost_at = loop.time()
    async with asyncio.timeout(2 * LOCK_TTL):
        await until_one_leads(alive)
    print(f"takeover after {loop.time() - lost_at:.3f} s")
    epoch, seq = await change(alive, queue_table, "after the takeover")
    await live.until_seq(seq)
    assert live.epoch == epoch  # the new poller continued the epoch: no client needed a snapshot
    assert [m["type"] for m in live.received] == ["snapshot", "patch"]


async def test_a_deposed_leaders_late_write_is_refused(consoles, redis_url):
    polling = leader(consoles)
    deposed = polling.app[BROKER]
    lease, view = deposed.lease("queue"), deposed.authored("queue")
    keys = ChannelKeys.of("queue")
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        await client.delete(keys.leader)  # its lock expired while it was paused: another console takes over
        async with asyncio.timeout(5):
            current = (await until_one_leads([c for c in consoles if c is not polling])).app[BROKER]
        length = await client.xlen(keys.ring)
        late = Write("queue", lease, view.epoch, view.seq + 1, b"{}", b"{}")
        assert await deposed.writer.write(late) == REFUSED_FENCE
        out_of_turn = Write("queue", current.lease("queue"), view.epoch, view.seq + 5, b"{}", b"{}")
        assert await current.writer.write(out_of_turn) == REFUSED_GAP
        assert await client.xlen(keys.ring) == length


async def test_a_redis_restart_marks_every_console_stale_then_resynchronises(start_console, make_redis_server,
                                                                             queue_table):
    server = make_redis_server()
    consoles = [await start_console(server.url) for _ in range(CONSOLES)]
    clients = [await open_client(c) for c in consoles]
    server.stop()
    for live in clients:
        down = await live.receive()
        assert down["type"] == "snapshot" and down["data"]["meta"]["error"] == BROKER_DOWN
    page = await (await consoles[1].get("/queue")).text()
    assert 'data-source="error"' in page and "message broker unreachable" in page
    assert (await (await consoles[1].get("/healthz")).json())["broker"]["connected"] is False
    server.start()
    queue_table.insert(title="while redis was away")
    for live in clients:
        async with asyncio.timeout(10):
            while live.state["meta"]["source"] != "ok" or not live.state["items"]:
                await live.receive()
    assert len({(live.epoch, live.seq, repr(live.state)) for live in clients}) == 1
    assert all(c.app[BROKER].status()["connected"] for c in consoles)


async def test_healthz_and_metrics_show_the_broker(consoles):
    polling = leader(consoles)
    follower = next(c for c in consoles if c is not polling)
    health = await (await polling.get("/healthz")).json()
    assert health["broker"]["kind"] == "redis" and health["broker"]["connected"] is True
    assert "queue" in health["broker"]["leader_of"] and health["broker"]["rtt_ms"] >= 0
    assert (await (await follower.get("/healthz")).json())["broker"]["leader_of"] == []
    metrics = await (await polling.get("/metrics")).text()
    assert "monitor_broker_connected 1.0" in metrics
    assert 'monitor_broker_leader{channel="queue"} 1.0' in metrics
    assert "monitor_broker_rtt_seconds_count" in metrics
    assert 'monitor_broker_leader{channel="queue"} 0.0' in await (await follower.get("/metrics")).text()


async def test_a_follower_shows_how_old_the_pollers_last_good_poll_is(consoles, redis_url):
    polling = leader(consoles)
    follower = next(c for c in consoles if c is not polling)
    await polling.app[POLLERS]["queue"].poll()
    async with asyncio.timeout(10):  # the poller's write reaches Redis on its own task
        while "queue" not in await follower.app[BROKER].last_polls():
            await asyncio.sleep(0.01)
    health = await (await follower.get("/healthz")).json()
    assert health["channels"]["queue"]["last_good_poll_age_s"] >= 0
    store = redis.asyncio.Redis.from_url(redis_url)
    await store.set(polled_key("queue"), "nan")  # Redis is shared: whatever is there is checked
    await store.aclose()
    health = await (await follower.get("/healthz")).json()
    assert health["channels"]["queue"]["last_good_poll_age_s"] is None


async def test_without_a_broker_url_the_console_is_alone_and_says_so(client):
    health = await (await client.get("/healthz")).json()
    assert health["broker"] == {"kind": "in-process", "connected": True, "rtt_ms": None,
                                "leader_of": sorted(client.app[POLLERS])}


async def reconnect(live, console):
    """``live`` leaves its console and resumes on ``console`` from the (epoch, seq) it has applied."""
    await live.ws.close()
    back = ProtocolClient(await console.ws_connect(f"/api/v1/ws/queue?epoch={live.epoch}&seq={live.seq}"))
    back.epoch, back.seq, back.state = live.epoch, live.seq, live.state
    return back


async def test_randomized_changes_leader_kills_and_reconnects_converge(start_console, redis_url, queue_table):
    rng = random.Random(18)
    consoles = [await start_console(redis_url) for _ in range(CONSOLES)]
    homes = [rng.randrange(CONSOLES) for _ in range(6)]
    clients = [await open_client(consoles[home]) for home in homes]
    rows, kills = [], 0
    for step in range(40):
        roll = rng.random()
        if step in (13, 27):  # the leader dies, twice
            kills += 1
            dead = consoles.index(leader(consoles))
            await consoles[dead].app[BROKER].close(release=False)
            await consoles[dead].close()
            consoles[dead] = await start_console(redis_url)
            async with asyncio.timeout(2 * LOCK_TTL):
                await until_one_leads(consoles)
            for index, home in enumerate(homes):
                if home == dead:  # its clients lost their sockets: they resume wherever they land
                    homes[index] = rng.randrange(CONSOLES)
                    clients[index] = await reconnect(clients[index], consoles[homes[index]])
        elif roll < 0.6:
            if rows and rng.random() < 0.5:
                queue_table.update(rng.choice(rows), status=rng.choice(["queued", "running", "completed"]))
                await change(consoles, queue_table, None)
            else:
                rows.append(queue_table.insert(title=f"row {len(rows)}"))
                await change(consoles, queue_table, None)
        else:
            index = rng.randrange(len(clients))
            homes[index] = rng.randrange(CONSOLES)
            clients[index] = await reconnect(clients[index], consoles[homes[index]])
    epoch, seq = await change(consoles, queue_table, "the last change")
    for live in clients:
        await live.until_seq(seq)
    truth = leader(consoles).app[BROKER].current("queue")
    mismatches = [live for live in clients if (live.epoch, live.seq, live.state) != (epoch, seq, truth.state)]
    mismatches += [c for c in consoles if c.app[BROKER].current("queue") != truth]
    assert mismatches == [] and kills == 2 and len(truth.state["items"]) == len(rows) + 1
    resumes = sum((Counter(c.app[BROKER].catch_ups) for c in consoles), Counter())
    assert resumes["ring"] > 0 and resumes["fallback"] == 0  # every resume got exactly its missed patches


async def test_a_dropped_connection_marks_stale_then_resumes_the_same_epoch(consoles, redis_url, queue_table):
    clients = [await open_client(c) for c in consoles]
    epoch = clients[0].epoch
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        await client.client_kill_filter(_type="normal", skipme=True)  # every console's connections cut at once
    for live in clients:
        down = await live.receive()
        assert down["type"] == "snapshot" and down["data"]["meta"]["error"] == BROKER_DOWN
        back = await live.receive()
        assert back["type"] == "snapshot" and back["epoch"] == epoch  # Redis kept the state: same epoch
    async with asyncio.timeout(2 * LOCK_TTL):
        await until_one_leads(consoles)
    _, seq = await change(consoles, queue_table, "after the blip")
    for live in clients:
        await live.until_seq(seq)
    assert len({repr(live.state) for live in clients}) == 1 and live.epoch == epoch
