"""``monitor serve --workers N``: the count checked against the broker, and real worker processes on one port."""

import asyncio
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

import aiohttp
import pytest

from monitor.listener import listening_sockets
from monitor.server import WORKER_HEADER
from monitor.settings import ConfigError, settings_from_mapping
from monitor.worker_config import worker_count, worker_settings
from monitor.workers import START_FAILURE_LIMIT, Supervisor
from tests.support import ProtocolClient
from tests.test_process import ROOT, run_cli

REASON = '2 worker processes need a shared broker: set [broker] url = "redis://…"'
ANSWERS_TO_SEE_EVERY_WORKER = 200  # new connections, each hashed to a worker: missing one of two is ~2^-200


def write_config(tmp_path: Path, db_path: Path, server: str = "", extra: str = "", port: int = 0,
                 broker: str = "") -> Path:
    """A config of a console on any free port, polling hourly, without history (workers would share its file)."""
    extra = (f'[broker]\nurl = "{broker}"\n' if broker else "") + extra
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    # No per-address connection rate: every request of these tests comes from 127.0.0.1 on a new connection.
    path.write_text(f'[server]\nport = {port}\nshutdown_timeout = 2.0\nclose_grace = 1.0\n'
                    f'connections_per_second_per_address = 0.0\n{server}'
                    f'[sources]\ndatabase = "sqlite:///{db_path}"\nagents_dir = "{tmp_path}/agents"\n'
                    f'trees_dir = "{tmp_path}/trees"\nwebhook_url = "http://127.0.0.1:9/webhook-status"\n'
                    'openapi_url = ""\nbackend_url = ""\nwatch = false\n'
                    f'[history]\nenabled = false\n[log]\nformat = "json"\n{extra}')
    return path


class Workers:
    """``monitor serve --workers N`` as a real process; its log read all the time (a full pipe would stall it)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict] = []
        self.lines: list[str] = []
        self._cursor = 0  # events before it were looked at by until()
        self._changed = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())
            async with self._changed:
                if line.startswith(b"{"):
                    self.events.append(json.loads(line))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def until(self, event: str, **fields) -> dict:
        """The next log event named ``event`` with ``fields`` (looking on from where the last call stopped)."""
        async with asyncio.timeout(60), self._changed:
            while True:
                for entry in self.events[self._cursor:]:
                    self._cursor += 1
                    if entry["event"] == event and all(entry.get(k) == v for k, v in fields.items()):
                        return entry
                assert not self._reader.done(), f"the console exited before {event} {fields}: {self.lines[-20:]}"
                await self._changed.wait()

    async def rest(self) -> str:
        """Everything it wrote, once it exited."""
        await asyncio.wait_for(self._reader, timeout=60)
        return "".join(self.lines)


@pytest.fixture
async def start_workers():
    """Starts ``monitor serve --workers N`` and waits until all are ready; kills what is left at the end."""
    started: list[Workers] = []

    async def start(config: Path, count: int = 2, **env: str) -> tuple[Workers, int]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "serve", "--config", str(config), "--workers", str(count), cwd=ROOT,
            env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        workers = Workers(process)
        started.append(workers)
        starting = await workers.until("workers_starting")
        await workers.until("workers_ready")
        return workers, starting["port"]

    yield start
    for workers in started:
        if workers.process.returncode is None:
            workers.process.kill()  # its workers follow it (PR_SET_PDEATHSIG)
            await workers.process.wait()


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    """A NOTIFY_SOCKET that also tells which process sent each datagram (SO_PASSCRED)."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(path)
    sock.setblocking(False)
    return sock, path


async def next_datagram(sock: socket.socket) -> tuple[str, int]:
    """The next sd_notify message and the pid that sent it."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await asyncio.wait_for(readable, timeout=30)
    finally:
        loop.remove_reader(sock.fileno())
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = next(struct.unpack("iII", cdata)[0] for level, kind, cdata in ancillary if kind == socket.SCM_CREDENTIALS)
    return data.decode(), pid


async def next_status(sock: socket.socket) -> str:
    """The next message other than a watchdog ping."""
    message, _ = await next_datagram(sock)
    while message == "WATCHDOG=1":
        message, _ = await next_datagram(sock)
    return message


async def ended(pid: int) -> None:
    """Wait until process ``pid`` (not necessarily a child of ours) has exited."""
    fd = os.pidfd_open(pid)
    loop, gone = asyncio.get_running_loop(), asyncio.Event()
    loop.add_reader(fd, gone.set)  # a pidfd turns readable when its process exits
    try:
        await asyncio.wait_for(gone.wait(), timeout=60)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def answering_workers(port: int, attempts: int = ANSWERS_TO_SEE_EVERY_WORKER, want: int = 2) -> set[str]:
    """The distinct ``X-Monitor-Worker`` values (``<index> <pid>``) of /healthz, one new connection each."""
    seen: set[str] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(attempts):
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                seen.add(response.headers["X-Monitor-Worker"])
            if len(seen) >= want:
                break
    return seen


def test_more_workers_than_one_need_a_broker():
    settings = settings_from_mapping({})
    assert worker_count(settings, None) == 1
    with pytest.raises(ConfigError, match="--workers 2: " + REASON.replace("[", r"\[").replace("]", r"\]")):
        worker_count(settings, 2)
    assert worker_count(settings_from_mapping({"broker": {"url": "redis://127.0.0.1:6379/0"}}), 2) == 2


def test_explicit_caps_are_split_among_workers_and_derived_ones_stay_per_process():
    settings = settings_from_mapping({"server": {"max_connections": 1001, "max_connections_per_address": 10,
                                                 "connections_per_second_per_address": 20.0}})
    server = worker_settings(settings, 2, 8123).server
    assert (server.port, server.max_connections, server.max_connections_per_address) == (8123, 501, 5)
    assert server.connections_per_second_per_address == 10.0
    derived = worker_settings(settings_from_mapping({}), 4, 8123).server
    assert (derived.max_connections, derived.max_connections_per_address) == (0, 0)



async def test_only_workers_listen_with_so_reuseport():
    for reuse_port in (False, True):
        sockets = await listening_sockets("127.0.0.1", 0, 16, reuse_port=reuse_port)
        try:
            assert [sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets] == [int(reuse_port)]
        finally:
            for sock in sockets:
                sock.close()

async def test_serve_with_workers_and_no_broker_is_a_bad_config(tmp_path, db_path):
    code, out, err = await run_cli("serve", "--workers", "2", "--config", str(write_config(tmp_path, db_path)))
    assert code == 2 and out == ""
    assert err.strip() == f"monitor: bad config: --workers 2: {REASON}"


async def test_check_and_serve_refuse_workers_in_the_config_without_a_broker(tmp_path, db_path):
    config = write_config(tmp_path, db_path, server="workers = 2\n")
    for command in ("check", "serve"):
        code, out, err = await run_cli(command, "--config", str(config))
        assert code == 2 and out == ""
        assert err.strip() == f"monitor: bad config: {config}: [server] workers: {REASON}"


def test_the_flag_overrides_the_config():
    with_broker = settings_from_mapping({"server": {"workers": 2}, "broker": {"url": "redis://127.0.0.1:6379/0"}})
    assert worker_count(with_broker, None) == 2 and worker_count(with_broker, 3) == 3
    without = settings_from_mapping({"server": {"workers": 2}})
    assert worker_count(without, 1) == 1  # one process needs no broker, whatever the file says


async def test_a_worker_count_out_of_range_is_refused(tmp_path, db_path):
    for count in ("0", "65", "two"):
        code, _, err = await run_cli("serve", "--workers", count, "--config", str(write_config(tmp_path, db_path)))
        assert code == 2 and "--workers" in err and "from 1 to 64" in err
    code, _, err = await run_cli("check", "--config", str(write_config(tmp_path, db_path, server="workers = 65\n")))
    assert code == 2 and "[server] workers" in err and "65" in err


async def test_two_workers_answer_on_one_port_and_stop_together(tmp_path, db_path, start_workers, redis_url):
    workers, port = await start_workers(write_config(tmp_path, db_path, broker=redis_url))
    pids = {event["pid"] for event in workers.events if event["event"] == "worker_started"}
    answered = await answering_workers(port)
    assert {int(value.split()[1]) for value in answered} == pids and len(pids) == 2
    assert {value.split()[0] for value in answered} == {"0", "1"}
    workers.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(workers.process.wait(), timeout=60) == 0
    log = await workers.rest()
    exits = [json.loads(line) for line in log.splitlines() if '"worker_exited"' in line]
    assert sorted((entry["pid"], entry["code"]) for entry in exits) == sorted((pid, 0) for pid in pids)
    assert '"event": "stopped"' in log and "Traceback" not in log
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_killed_worker_is_restarted_on_the_same_port(tmp_path, db_path, start_workers, redis_url):
    workers, port = await start_workers(write_config(tmp_path, db_path, broker=redis_url))
    victim = next(event for event in workers.events if event["event"] == "worker_started" and event["worker"] == 1)
    os.kill(victim["pid"], signal.SIGKILL)
    exited = await workers.until("worker_exited", pid=victim["pid"])
    assert exited["signal"] == "SIGKILL" and exited["worker"] == 1
    restarted = await workers.until("worker_started", worker=1)
    await workers.until("worker_ready", worker=1, pid=restarted["pid"])
    answered = await answering_workers(port)
    assert f"1 {restarted['pid']}" in answered
    workers.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(workers.process.wait(), timeout=60) == 0



async def serve_to_the_end(config: Path, *args: str) -> tuple[int, str]:
    """Run ``monitor serve`` (a lone console, or workers) that is expected to exit by itself."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", "--config", str(config), *args, cwd=ROOT,
        env=dict(os.environ), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, err.decode()


async def test_a_port_held_by_other_workers_or_anyone_else_is_refused(tmp_path, db_path, start_workers, redis_url):
    _, port = await start_workers(write_config(tmp_path, db_path, broker=redis_url))
    taken = write_config(tmp_path / "second", db_path, port=port, broker=redis_url)
    for args in (("--workers", "2"), ()):  # SO_REUSEPORT would let other workers in quietly: they must not
        code, err = await serve_to_the_end(taken, *args)
        assert code == 2 and f"monitor: cannot listen on 127.0.0.1:{port}: " in err, err
    with socket.create_server(("127.0.0.1", 0)) as plain:
        held = write_config(tmp_path / "third", db_path, port=plain.getsockname()[1], broker=redis_url)
        code, err = await serve_to_the_end(held, "--workers", "2")
        assert code == 2 and "cannot listen" in err and "Address already in use" in err

async def test_the_parent_alone_tells_systemd_ready_once_every_worker_is(tmp_path, db_path, start_workers, redis_url):
    sock, path = notify_socket(tmp_path)
    workers, _ = await start_workers(write_config(tmp_path, db_path, broker=redis_url), NOTIFY_SOCKET=path,
                                     WATCHDOG_USEC="400000")
    try:
        parent = workers.process.pid
        messages = [await next_datagram(sock)]
        while "READY=1" not in messages[-1][0]:
            messages.append(await next_datagram(sock))
        assert messages[0][0] == "STATUS=starting 2 workers"
        assert messages[-1][0] == "READY=1\nSTATUS=serving with 2 workers"
        names = [event["event"] for event in workers.events]
        readies = [at for at, name in enumerate(names) if name == "worker_ready"]
        assert len(readies) == 2 and names.index("workers_ready") > readies[-1]  # both, then READY=1
        assert await next_datagram(sock) == ("WATCHDOG=1", parent)
        victim = next(event["pid"] for event in workers.events if event["event"] == "worker_started")
        os.kill(victim, signal.SIGKILL)
        assert await next_status(sock) == "STATUS=serving with 1 of 2 workers; restarting the others"
        assert await next_status(sock) == "STATUS=serving with 2 workers"
        workers.process.send_signal(signal.SIGTERM)
        assert (await next_status(sock)).startswith("STOPPING=1")
        assert await asyncio.wait_for(workers.process.wait(), timeout=60) == 0
        assert {pid for _, pid in messages} == {parent}
    finally:
        sock.close()


async def test_workers_stop_when_their_parent_is_killed(tmp_path, db_path, start_workers, redis_url):
    workers, _ = await start_workers(write_config(tmp_path, db_path, broker=redis_url))
    pids = [event["pid"] for event in workers.events if event["event"] == "worker_started"]
    workers.process.kill()
    await workers.process.wait()
    for pid in pids:
        await ended(pid)


def test_the_parent_gives_up_on_a_worker_that_fails_before_it_is_ready():
    """Workers forked from this test process that exit with 3 at once: the parent ends with 3."""
    settings = settings_from_mapping({"server": {"port": 0}})
    supervisor = Supervisor(settings, 2, lambda settings, index, pipe: 3)
    assert supervisor.run() == 3
    assert max(slot.start_failures for slot in supervisor.slots) == START_FAILURE_LIMIT
    assert all(slot.pid == 0 for slot in supervisor.slots)


async def test_a_worker_whose_loop_is_stuck_is_killed_and_restarted(tmp_path, db_path, start_workers, redis_url):
    workers, _ = await start_workers(write_config(tmp_path, db_path, broker=redis_url), WATCHDOG_USEC="400000")
    stuck = next(event for event in workers.events if event["event"] == "worker_started" and event["worker"] == 0)
    os.kill(stuck["pid"], signal.SIGSTOP)  # as a blocked event loop: alive, silent
    await workers.until("worker_unresponsive", pid=stuck["pid"])
    assert (await workers.until("worker_exited", pid=stuck["pid"]))["signal"] == "SIGKILL"
    restarted = await workers.until("worker_started", worker=0)
    await workers.until("worker_ready", pid=restarted["pid"])
    workers.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(workers.process.wait(), timeout=60) == 0


async def open_clients_on_every_worker(port: int, channel: str = "queue"):
    """Live clients of ``channel`` on new connections until each of two workers has one.

    The (worker, client) pairs and their session, which the caller closes.
    """
    answered_by: list[str] = []
    trace = aiohttp.TraceConfig()

    async def note_worker(session, context, params) -> None:
        answered_by.append(params.response.headers[WORKER_HEADER].split()[0])

    trace.on_request_end.append(note_worker)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), trace_configs=[trace])
    clients: list[tuple[str, ProtocolClient]] = []
    for _ in range(ANSWERS_TO_SEE_EVERY_WORKER):
        live = ProtocolClient(await session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws/{channel}"))
        await live.receive()  # the snapshot
        clients.append((answered_by[-1], live))
        if {"0", "1"} <= {worker for worker, _ in clients}:
            break
    return clients, session


async def test_workers_sharing_a_redis_broker_bring_a_change_to_clients_of_both(tmp_path, db_path, queue_table,
                                                                                start_workers, redis_url):
    config = write_config(tmp_path, db_path, extra=f'[broker]\nurl = "{redis_url}"\nlock_ttl = 1.0\n'
                                                   '[channels.queue]\ninterval = 0.2\n')
    workers, port = await start_workers(config)
    clients, session = await open_clients_on_every_worker(port)
    async with session:
        assert {worker for worker, _ in clients} == {"0", "1"}
        queue_table.insert("running", "seen through both workers")
        for _, live in clients:
            async with asyncio.timeout(30):
                while "seen through both workers" not in json.dumps(live.state):
                    await live.receive(timeout=30)
        states = {json.dumps(live.state["items"], sort_keys=True) for _, live in clients}
        assert len(states) == 1
        for _, live in clients:
            await live.ws.close()
    workers.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(workers.process.wait(), timeout=60) == 0
    assert "workers_without_broker" not in await workers.rest()
