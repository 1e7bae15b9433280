"""Alert delivery through Apprise to real receivers on loopback: order, retries, bounds, and URLs never shown."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from monitor.alerts.notify import Message, Notifier, NotifierCollector, check_url, redact_url
from monitor.logs import configure_logging
from tests.alert_receivers import SMTP_LOGIN, JsonReceiver, Mailbox, start_smtp
from tests.test_cli import run_monitor

SECRETS = ("hunter2pw", "tok3nPath", "s3cretValue", "smtp-Pw-7f3e9a", "secrettopic")


class Events(structlog.testing.LogCapture):
    """structlog's captured events, with an event set at each ``alert_delivery_failed``."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = asyncio.Event()

    def __call__(self, logger, method_name, event_dict):
        if event_dict.get("event") == "alert_delivery_failed":
            self.failed.set()
        return super().__call__(logger, method_name, event_dict)


@pytest.fixture
def events():
    """Every structlog event, kept in memory; the previous configuration restored afterwards."""
    saved, capture = structlog.get_config(), Events()
    structlog.configure(processors=[capture])
    yield capture
    structlog.configure(**saved)


@pytest.fixture
def log_stream():
    """The console's own log (structlog and stdlib, JSON) at debug, every stdlib record let through."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    root.setLevel(logging.DEBUG)  # worst case: even Apprise's debug lines, which show whole URLs, would reach it
    yield stream
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def notifier():
    """A notifier retrying after 0.05 s, started; stopped after the test."""
    started = Notifier(retry_first=0.05, retry_max=0.2)
    await started.start()
    yield started
    await started.stop(5)


@pytest.fixture
async def receiver():
    """A json:// receiver on a free loopback port."""
    started = await JsonReceiver().start()
    yield started
    await started.stop()


@pytest.fixture
async def mailbox():
    """An SMTP server on a free loopback port, plain text, with login."""
    box = Mailbox()
    server = await start_smtp(box)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


def json_url(port: int, path: str = "alerts") -> str:
    return f"json://127.0.0.1:{port}/{path}"


def mail_url(port: int) -> str:
    user, password = SMTP_LOGIN
    return f"mailto://{user}:{password}@127.0.0.1:{port}?to=ops@example.com&from=monitor@example.com"


def message(text: str, *urls: str) -> Message:
    return Message(title=f"title {text}", body=f"body {text}", urls=urls)


async def test_a_json_receiver_gets_the_title_and_body(notifier, receiver):
    notifier.send(message("1", json_url(receiver.port)))
    path, body = await receiver.next()
    assert (path, body["title"], body["message"]) == ("/alerts", "title 1", "body 1")
    await notifier.drained()
    [stats] = notifier.stats().values()
    assert (stats["sent"], stats["failed"], stats["queued"], stats["last_error"]) == (1, 0, 0, None)


async def test_mail_arrives_over_plain_smtp_after_login(notifier, mailbox):
    notifier.send(message("mail", mail_url(mailbox.port)))
    envelope, mail = await mailbox.next()
    assert envelope.rcpt_tos == ["ops@example.com"] and envelope.mail_from == "monitor@example.com"
    assert mail["Subject"] == "title mail" and mail.get_body(("plain",)).get_content().strip() == "body mail"
    assert mailbox.logins == [tuple(part.encode() for part in SMTP_LOGIN)]


async def test_a_receiver_down_at_first_gets_every_message_in_order_once_back(notifier, closed_port, events):
    url = json_url(closed_port)
    for n in range(5):
        notifier.send(message(str(n), url))
    await events.failed.wait()
    receiver = await JsonReceiver(closed_port).start()
    try:
        received = [(await receiver.next())[1]["message"] for _ in range(5)]
    finally:
        await receiver.stop()
    assert received == [f"body {n}" for n in range(5)]
    await notifier.drained()
    [stats] = notifier.stats().values()
    assert stats["sent"] == 5 and stats["failed"] >= 1 and "Connection error" in stats["last_error"]
    failure = next(event for event in events.entries if event["event"] == "alert_delivery_failed")
    assert failure["url"] == f"json://127.0.0.1:{closed_port}/***" and failure["attempt"] == 1
    assert 0.025 <= failure["retry_in"] <= 0.05


async def test_a_refusing_receiver_is_retried_with_its_reason(notifier, events):
    receiver = await JsonReceiver(status=503).start()
    try:
        notifier.send(message("1", json_url(receiver.port)))
        await receiver.next()
        await receiver.next()  # the retry
    finally:
        await receiver.stop()
    [stats] = notifier.stats().values()
    assert stats["failed"] >= 1 and "503" in stats["last_error"] and stats["failing"]


async def test_a_full_queue_drops_the_oldest_and_counts_it(receiver):
    notifier = Notifier(max_queued=2)
    for n in range(4):
        notifier.send(message(str(n), json_url(receiver.port)))
    [queued] = notifier.stats().values()
    assert (queued["queued"], queued["dropped"]) == (2, 2)
    await notifier.start()
    try:
        assert [(await receiver.next())[1]["message"] for _ in range(2)] == ["body 2", "body 3"]
        await notifier.drained()
    finally:
        await notifier.stop(5)
    assert "monitor_alert_dropped_total{reason=\"queue_full\"} 2.0" in scrape(notifier)


async def test_a_message_is_given_up_after_give_up_after(closed_port, events):
    clock = [1000.0]
    notifier = Notifier(retry_first=0.05, give_up_after=60, now=lambda: clock[0])
    await notifier.start()
    try:
        notifier.send(message("1", json_url(closed_port)))
        await events.failed.wait()
        clock[0] += 61
        await notifier.drained()
    finally:
        await notifier.stop(5)
    [stats] = notifier.stats().values()
    assert (stats["expired"], stats["queued"], stats["sent"]) == (1, 0, 0)
    assert "alert_delivery_abandoned" in [event["event"] for event in events.entries]


async def test_two_urls_are_delivered_and_counted_apart(notifier, receiver, closed_port):
    down, up = json_url(closed_port, "down"), json_url(receiver.port, "up")
    notifier.send(message("1", down, up))
    assert (await receiver.next())[0] == "/up"
    await notifier.stop(5)  # settles the counts: the delivered one is counted, the failing one retries no more
    stats = notifier.stats()
    assert stats[f"json://127.0.0.1:{receiver.port}/***"]["sent"] == 1
    assert stats[f"json://127.0.0.1:{closed_port}/***"]["sent"] == 0


async def test_urls_that_redact_alike_keep_their_own_stats():
    notifier = Notifier()
    notifier.send(message("1", "ntfy://topic-one", "ntfy://topic-two"))
    assert list(notifier.stats()) == ["ntfy://***", "ntfy://*** #2"]


async def test_stop_ends_a_failing_receiver_at_once_and_counts_what_is_left(closed_port, events):
    notifier = Notifier(retry_first=3600, retry_max=3600)
    await notifier.start()
    notifier.send(message("1", json_url(closed_port)))
    await events.failed.wait()
    await notifier.stop(3600)  # the retry waits an hour: stop must not
    assert [event["queued"] for event in events.entries if event["event"] == "alert_delivery_unsent"] == [
        {f"json://127.0.0.1:{closed_port}/***": 1}]


@pytest.mark.parametrize(("url", "shown"), [
    ("ntfy://ops-adw", "ntfy://***"),
    ("ntfy://ntfy.example.com/ops-adw", "ntfy://ntfy.example.com/***"),
    ("mailto://user:pass@smtp.example.com?to=ops@example.com", "mailto://smtp.example.com/***"),
    ("json://127.0.0.1:8080/hook?token=abc", "json://127.0.0.1:8080/***"),
    ("json://[::1]:8080", "json://[::1]:8080"),
    ("tgram://123456789:AAbbCCdd/4242", "tgram://***"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://***"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops", "slack://***"),
    ("json://host.example.com@other.example.com/", "json://other.example.com/***"),
    ("not a url hunter2pw", "(unreadable URL)"),
])
def test_redact_url_shows_the_scheme_and_a_network_host_only(url, shown):
    assert redact_url(url) == shown


def test_check_url_names_what_apprise_does_not_understand_without_the_url():
    assert check_url("ntfy://ops-adw") is None
    assert check_url(mail_url(25)) is None
    unknown = check_url("nosuchservice://hunter2pw@example.com")
    assert unknown == "unsupported URL: no Apprise service speaks nosuchservice://"
    no_sender = check_url("mailto://alertbot:hunter2pw@127.0.0.1:25?to=ops@example.com")
    assert no_sender.startswith("unsupported URL: mailto:// rejects it") and "hunter2pw" not in no_sender
    assert "alertbot" not in no_sender


async def test_test_reports_each_url_delivered_or_why_not(receiver, closed_port):
    results = await Notifier().test([json_url(receiver.port), json_url(closed_port), "nosuchservice://s3cretValue"])
    assert [(label, ok) for label, ok, _ in results] == [
        (f"json://127.0.0.1:{receiver.port}/***", True), (f"json://127.0.0.1:{closed_port}/***", False),
        ("nosuchservice://***", False)]
    assert "Connection error" in results[1][2] and results[2][2].startswith("unsupported URL")
    assert (await receiver.next())[1]["title"] == "monitor: test alert"


async def test_an_unsupported_url_is_refused_without_retries(notifier, events):
    notifier.send(message("1", "json://"))
    await notifier.drained()
    notifier.send(message("2", "json://"))
    [stats] = notifier.stats().values()
    assert (stats["failed"], stats["refused"], stats["queued"]) == (1, 2, 0)
    assert stats["last_error"].startswith("unsupported URL")


async def test_no_secret_of_a_url_reaches_logs_stats_or_metrics(log_stream, receiver, mailbox, closed_port):
    apprise_said = io.StringIO()
    logging.getLogger("apprise").addHandler(witness := logging.StreamHandler(apprise_said))
    urls = (f"json://monitor:hunter2pw@127.0.0.1:{receiver.port}/tok3nPath?key=s3cretValue", mail_url(mailbox.port),
            f"json://monitor:hunter2pw@127.0.0.1:{closed_port}/tok3nPath?key=s3cretValue",
            "nosuchservice://secrettopic")
    notifier = Notifier(retry_first=0.05)
    await notifier.start()
    try:
        notifier.send(message("1", *urls))
        await receiver.next()
        await mailbox.next()
        results = await notifier.test(urls)
    finally:
        await notifier.stop(0)
        logging.getLogger("apprise").removeHandler(witness)
    assert "tok3nPath" in apprise_said.getvalue()  # Apprise does log secrets: the console's log must not show them
    shown = "\n".join([log_stream.getvalue(), repr(notifier.stats()), scrape(notifier), repr(results),
                       repr(message("1", *urls)), repr(list(notifier.receivers.values()))])
    assert '"alert_delivered"' in shown and '"alert_delivery_failed"' in shown
    assert [secret for secret in SECRETS if secret in shown] == []


def test_the_collector_has_no_url_label(receiver):
    notifier = Notifier()
    notifier.send(message("1", json_url(receiver.port, "tok3nPath")))
    metrics = scrape(notifier)
    assert "monitor_alert_queue 1.0" in metrics and 'monitor_alert_deliveries_total{result="delivered"} 0.0' in metrics
    assert "127.0.0.1" not in metrics and "tok3nPath" not in metrics


def scrape(notifier: Notifier) -> str:
    registry = CollectorRegistry()
    registry.register(NotifierCollector(notifier))
    return generate_latest(registry).decode()


def alerts_config(tmp_path, *urls: str) -> str:
    notify = ", ".join(f'"{url}"' for url in urls)
    path = tmp_path / "config.toml"
    path.write_text(f'[[alerts]]\nname = "ADW failed"\nwhen = "workflow_failed"\nnotify = [{notify}]\n'
                    f'[[alerts]]\nname = "source down"\nwhen = "source_down"\nnotify = [{notify}]\n')
    return str(path)


async def test_alerts_test_exits_0_when_every_url_got_its_message(tmp_path, receiver, mailbox):
    config = alerts_config(tmp_path, json_url(receiver.port, "tok3nPath"), mail_url(mailbox.port))
    done = await asyncio.to_thread(run_monitor, "alerts", "test", "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split() for line in done.stdout.splitlines()] == [
        [f"json://127.0.0.1:{receiver.port}/***", "OK"], [f"mailto://127.0.0.1:{mailbox.port}/***", "OK"]]
    assert receiver.inbox.qsize() == 1 and mailbox.inbox.qsize() == 1  # deduplicated: once each, not once per rule
    assert [secret for secret in SECRETS if secret in done.stdout + done.stderr] == []


async def test_alerts_test_exits_1_when_any_url_failed(tmp_path, receiver, closed_port):
    config = alerts_config(tmp_path, json_url(receiver.port), json_url(closed_port, "tok3nPath?key=s3cretValue"))
    done = await asyncio.to_thread(run_monitor, "alerts", "test", "--config", config)
    assert done.returncode == 1, done.stdout + done.stderr
    ok, failed = done.stdout.splitlines()
    assert ok.endswith("  OK") and failed.startswith(f"json://127.0.0.1:{closed_port}/***  FAILED: ")
    assert [secret for secret in SECRETS if secret in done.stdout + done.stderr] == []


def test_alerts_test_exits_2_on_a_bad_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[alerts]]\nname = "x"\nwhen = "no_such_condition"\nnotify = ["ntfy://secrettopic"]\n')
    done = run_monitor("alerts", "test", "--config", str(config))
    assert done.returncode == 2 and "bad config" in done.stderr and "secrettopic" not in done.stderr
