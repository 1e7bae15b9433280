"""Closed-connection garbage: what a closed WebSocket leaves for a full collection.

The console (``create_app`` served by ``monitor.server.serving``, as ``monitor serve``
serves it) runs in this process on the benchmark's workspace; a client process opens
``--clients`` sockets to the queue channel, reads each snapshot, and ends them all the
same way:

- ``handshake``: a WebSocket close handshake (aiohttp's client ``close()``);
- ``fin``: the socket closed without a close frame;
- ``rst``: the socket reset (``SO_LINGER`` 0), as the benchmark's load generator ends its clients.

Once the hub has let go of every connection and the garbage collection policy has looked
twice, the heap is unfrozen and collected with ``gc.DEBUG_SAVEALL``: the objects found
are what only a full walk of the heap could free (the policy froze the connections while
they lived). Printed per closed connection, with the most common types.

Run: ``python -m benchmarks.closed_garbage [--clients 300] [--close rst]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.servers import console_config
from benchmarks.workspace import create_workspace
from monitor.app import create_app
from monitor.gcpolicy import CHECK_EVERY
from monitor.keys import GC, HUB
from monitor.logs import configure_logging
from monitor.server import serving
from monitor.settings import load_settings

CLIENT = textwrap.dedent('''
    import asyncio, socket, struct, sys
    import aiohttp

    async def main(url, count, how):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            sockets = [await session.ws_connect(url) for _ in range(count)]
            for ws in sockets:
                await ws.receive()  # the snapshot
            await asyncio.sleep(2.5)  # long-lived: the console's collection policy freezes them meanwhile
            for ws in sockets:
                transport = ws._response.connection.transport
                if how == "handshake":
                    await ws.close()
                    continue
                if how == "rst":
                    linger = struct.pack("ii", 1, 0)
                    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                transport.abort()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
''')


async def measure(clients: int, how: str) -> dict:
    """Open and end ``clients`` connections; the cyclic garbage they left, by type."""
    with tempfile.TemporaryDirectory() as tmp:
        workspace = create_workspace(Path(tmp))
        config = Path(tmp) / "config.toml"
        config.write_text(console_config(workspace, ""))
        settings = load_settings(config)
        app = create_app(settings)
        async with serving(settings, app) as runner:
            port = runner.addresses[0][1]
            url = f"http://127.0.0.1:{port}/api/v1/ws/queue"
            client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, url, str(clients), how)
            await client.wait()
            hub = app[HUB]
            await hub.wait_until(lambda hub: hub.count() == 0)
            await asyncio.sleep(2 * CHECK_EVERY + 0.1)  # two looks: the transports are released, if they can be
            releases = getattr(app[GC], "releases", None)  # absent before cycles.py: compare with older code
            gc.unfreeze()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                found = gc.collect()
                kinds = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            return {"clients": clients, "closed": hub.closed, "how": how, "garbage_objects": found,
                    "per_connection": found / max(1, hub.closed), "released": getattr(releases, "released", None),
                    "cyclic": getattr(releases, "cyclic", None), "types": kinds.most_common(12)}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--close", choices=("handshake", "fin", "rst"), default="rst")
    args = parser.parse_args()
    configure_logging("warning", "json")  # not a line per connection
    result = asyncio.run(measure(args.clients, args.close))
    print(f"{result['closed']} connections closed ({result['how']}): {result['garbage_objects']} objects of "
          f"cyclic garbage, {result['per_connection']:.1f} per connection; transports released "
          f"{result['released']}, counted cyclic {result['cyclic']}")
    for kind, count in result["types"]:
        print(f"  {count:7d}  {kind}")


if __name__ == "__main__":
    main()
