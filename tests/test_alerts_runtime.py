"""The alerts at work in the console: rules evaluated against the live channels, messages to a real receiver."""

import pytest

from monitor.app import create_app
from monitor.keys import ALERTS, BROKER, POLLERS
from tests.alert_receivers import JsonReceiver
from tests.browser.support import free_port
from tests.test_cli import run_monitor, write_config

SECRET_PATH = "hooks/s3cr3t-T0ken"


@pytest.fixture
async def receiver():
    """A json:// receiver on a free loopback port."""
    started = await JsonReceiver().start()
    yield started
    await started.stop()


def failures_rule(receiver: JsonReceiver) -> dict:
    return {"name": "queue has failures", "channel": "queue", "field": "by_status.failed", "above": 0,
            "notify": [f"json://127.0.0.1:{receiver.port}/{SECRET_PATH}"]}


async def poll_and_evaluate(client, channel: str = "queue") -> None:
    """A poll and an alerts pass now (the console's own pass, every second, may have come first)."""
    await client.app[POLLERS][channel].poll()
    await client.app[ALERTS].evaluate()


async def nothing_more(client, receiver: JsonReceiver) -> bool:
    """Whether, once every queued message is delivered, the receiver has nothing it has not been asked for."""
    await client.app[ALERTS].notifier.drained()
    return receiver.inbox.empty()


async def test_a_rule_fires_once_links_its_panel_and_resolves_once(make_client, queue_table, receiver):
    client = await make_client({"alerts": [failures_rule(receiver)], "server": {"public_host": "ops.example"}})
    failed = queue_table.insert(status="failed", title="broke")
    await poll_and_evaluate(client)
    path, message = await receiver.next()
    assert path == f"/{SECRET_PATH}" and message["title"].startswith("[FIRING] queue has failures: queue: ")
    assert message["message"].splitlines()[-1] == "http://ops.example/queue"  # where people open the console
    await poll_and_evaluate(client)
    assert await nothing_more(client, receiver)  # still failing: nothing more (repeat = 0)
    queue_table.delete(failed)
    await poll_and_evaluate(client)
    _, message = await receiver.next()
    assert message["title"].startswith("[RESOLVED] queue has failures") and await nothing_more(client, receiver)


async def test_the_api_and_the_pages_show_what_fires_but_never_a_url(make_client, queue_table, receiver):
    client = await make_client({"alerts": [failures_rule(receiver)]})
    queue_table.insert(status="failed", title="broke")
    await poll_and_evaluate(client)
    report = await (await client.get("/api/v1/alerts")).json()
    assert [alert["rule"] for alert in report["firing"]] == ["queue has failures"]
    assert [event["kind"] for event in report["recent"]] == ["firing"]
    dashboard, page = await (await client.get("/")).text(), await (await client.get("/alerts")).text()
    assert 'data-alert="queue has failures/"' in dashboard and 'href="/alerts" aria-current="page"' in page
    metrics = await (await client.get("/metrics")).text()
    assert "monitor_alert_deliveries_total" in metrics
    await client.app[ALERTS].notifier.drained()
    health = await (await client.get("/healthz")).json()
    assert health["alerts"]["firing"] == 1 and [entry["sent"] for entry in health["alerts"]["delivery"].values()] == [1]
    for text in (str(report), dashboard, page, metrics, str(health)):
        assert SECRET_PATH not in text


async def test_a_restart_does_not_send_again_and_still_resolves(make_settings, aiohttp_client, queue_table, receiver):
    settings = make_settings({"alerts": [failures_rule(receiver)]})
    failed = queue_table.insert(status="failed", title="broke")
    first = await aiohttp_client(create_app(settings))
    await poll_and_evaluate(first)
    assert (await receiver.next())[1]["title"].startswith("[FIRING]")
    await first.close()
    again = await aiohttp_client(create_app(settings))
    await poll_and_evaluate(again)
    assert await nothing_more(again, receiver)  # fired before the restart: not sent twice
    queue_table.delete(failed)
    await poll_and_evaluate(again)
    assert (await receiver.next())[1]["title"].startswith("[RESOLVED]") and await nothing_more(again, receiver)


async def test_without_rules_there_is_no_strip_and_the_api_says_so(client):
    assert "data-alerts" not in await (await client.get("/")).text()
    assert (await (await client.get("/api/v1/alerts")).json()) == {"rules": 0, "firing": [], "pending": [],
                                                                   "recent": []}


async def test_a_source_going_down_alerts_by_name(make_client, receiver):
    """The test settings point webhook-status at a closed port: its source is down from the first poll."""
    client = await make_client({"alerts": [{"name": "source down", "when": "source_down", "channel": "webhook-status",
                                            "notify": [f"json://127.0.0.1:{receiver.port}/{SECRET_PATH}"]}]})
    await poll_and_evaluate(client, "webhook-status")
    _, message = await receiver.next()
    assert message["title"].startswith("[FIRING] source down: ") and "connection refused" in message["message"]


def test_monitor_check_never_shows_a_notification_url(tmp_path, db_path, agents, trees):
    rules = (f'[[alerts]]\nname = "ADW failed"\nwhen = "workflow_failed"\n'
             f'notify = ["json://127.0.0.1:9/{SECRET_PATH}"]\n'
             f'[[alerts]]\nname = "bad"\nwhen = "no_such_condition"\nnotify = ["ntfy://{SECRET_PATH}"]\n')
    config = write_config(tmp_path, f"sqlite:///{db_path}", agents, trees, rules)
    done = run_monitor("check", "--config", str(config))
    assert done.returncode == 2 and "no_such_condition" in done.stdout + done.stderr
    assert SECRET_PATH not in done.stdout + done.stderr
    tested = run_monitor("alerts", "test", "--config", str(config))
    assert tested.returncode == 2 and SECRET_PATH not in tested.stdout + tested.stderr


async def test_what_a_stopping_console_could_not_deliver_is_sent_by_the_next(make_settings, aiohttp_client,
                                                                             queue_table, tmp_path):
    port = free_port()  # nothing listens there yet: the receiver is down
    rule = {**failures_rule(JsonReceiver(port)), "notify": [f"json://127.0.0.1:{port}/{SECRET_PATH}"]}
    settings = make_settings({"alerts": [rule], "server": {"shutdown_timeout": 0.5}})
    queue_table.insert(status="failed", title="broke")
    first = await aiohttp_client(create_app(settings))
    await poll_and_evaluate(first)
    await first.close()  # the message is still queued: kept in the history file, without its URL
    assert SECRET_PATH.encode() not in (tmp_path / "history.sqlite").read_bytes()
    receiver = await JsonReceiver(port).start()
    try:
        await aiohttp_client(create_app(settings))
        path, message = await receiver.next()
        assert path == f"/{SECRET_PATH}" and message["title"].startswith("[FIRING] queue has failures")
    finally:
        await receiver.stop()


def test_an_address_apprise_cannot_send_to_is_a_bad_config(tmp_path, db_path, agents, trees):
    rules = f'[[alerts]]\nname = "ADW failed"\nwhen = "workflow_failed"\nnotify = ["nosuchscheme://{SECRET_PATH}"]\n'
    done = run_monitor("check", "--config", str(write_config(tmp_path, f"sqlite:///{db_path}", agents, trees, rules)))
    assert done.returncode == 2 and "notify: entry 1: unsupported URL" in done.stdout + done.stderr
    assert SECRET_PATH not in done.stdout + done.stderr


async def test_consoles_sharing_a_broker_send_each_alert_once_and_all_show_it(make_settings, aiohttp_client,
                                                                             redis_url, queue_table, receiver):
    settings = make_settings({"broker": {"url": redis_url, "lock_ttl": 1.0}, "alerts": [failures_rule(receiver)]})
    consoles = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    poller = next(c for c in consoles if c.app[BROKER].leads("queue"))
    queue_table.insert(status="failed", title="broke")
    await poller.app[POLLERS]["queue"].poll()
    await poller.app[BROKER].flushed()
    seq = poller.app[BROKER].current("queue").seq
    for console in consoles:
        broker = console.app[BROKER]
        await broker.wait_until(lambda broker=broker: broker.current("queue").seq >= seq)
        await console.app[ALERTS].evaluate()
    assert (await receiver.next())[1]["title"].startswith("[FIRING]")
    for console in consoles:
        assert await nothing_more(console, receiver)  # told once, by the console that polls the queue
        firing = (await (await console.get("/api/v1/alerts")).json())["firing"]
        assert [alert["rule"] for alert in firing] == ["queue has failures"]  # shown by every console
