"""`make dist`'s product: one .pyz file that serves the console with nothing else installed."""

import asyncio
import configparser
import json
import shutil
import signal
import sys
from pathlib import Path

import aiohttp

from tests.test_process import write_config

ROOT = Path(__file__).resolve().parent.parent


async def run(*args, cwd=ROOT, env=None):
    process = await asyncio.create_subprocess_exec(*args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, out.decode()[-3000:]


async def test_pyz_builds_and_serves_a_page(tmp_path, db_path, queue_table):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=skip_local_clutter)
    pyz = tmp_path / "monitor.pyz"
    await run(sys.executable, "-m", "shiv", "--compressed", "-c", "monitor", "-o", str(pyz), str(source), cwd=source)
    queue_table.insert("running", "served from the pyz")
    # Only the standard library: no virtualenv, no site-packages, nothing from this checkout.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", str(pyz), "serve", "--config", str(write_config(tmp_path, db_path)),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        port = await listening_port(process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/queue") as page:
                assert page.status == 200 and "served from the pyz" in await page.text()
            async with session.get(f"http://127.0.0.1:{port}/static/live.js") as script:
                assert script.status == 200
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert (await health.json())["watch"]["active"]  # asyncinotify works from inside the file
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def skip_local_clutter(directory, names):
    """Build from the sources only: not the checkout's virtualenv, builds or demo workspace."""
    at_top = Path(directory) == ROOT
    return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")
            or (at_top and n in {".venv", ".git", "build", "dist", "demo"})]


async def listening_port(process) -> int:
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=120)
        assert line, "the pyz exited before listening"
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "listening":
            return event["port"]



def test_every_package_of_the_tree_is_in_the_distribution():
    """A package missing from setup.cfg is missing from the wheel and the .pyz, and only they would notice."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "monitor").rglob("__init__.py")}
    assert found == listed
