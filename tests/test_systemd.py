"""sd_notify over a real unix datagram socket given as NOTIFY_SOCKET."""

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

from monitor.systemd import Notifier
from tests.test_process import ROOT, write_config


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock, path


async def next_datagram(sock) -> str:
    return (await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout=30)).decode()


async def test_ready_watchdog_stopping_sequence(tmp_path, db_path):
    sock, path = notify_socket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", "--config", str(write_config(tmp_path, db_path)),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        seen = [await next_datagram(sock)]
        while "READY=1" not in seen[-1]:
            seen.append(await next_datagram(sock))
        assert seen[0].startswith("STATUS=starting")
        assert "STATUS=serving http://127.0.0.1:" in seen[-1]
        assert await next_datagram(sock) == "WATCHDOG=1"
        assert await next_datagram(sock) == "WATCHDOG=1"
        process.send_signal(signal.SIGTERM)
        message = await next_datagram(sock)
        while message == "WATCHDOG=1":
            message = await next_datagram(sock)
        assert message.startswith("STOPPING=1")
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        sock.close()


def test_abstract_socket_and_foreign_watchdog_pid():
    notifier = Notifier({"NOTIFY_SOCKET": "@monitor-test", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert notifier.address == b"\0monitor-test" and notifier.watchdog_interval is None
    assert not Notifier({}).enabled
    assert json.dumps(Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_interval) == "1.0"
