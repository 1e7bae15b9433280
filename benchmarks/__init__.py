"""Benchmarks of the console against DESIGN §6, beside real peers and a replica of the seed's pattern.

Run ``python -m benchmarks.run --quick`` (minutes) or ``python -m benchmarks.run`` (the
full suite). Peers: plain aiohttp and the ``websockets`` library (``benchmarks.peers``);
the seed replica with ``--servers ...,baseline``. Nothing here ships in the product: the
console is measured as a real process, with benchmark-only hooks loaded through
``benchmarks.server_entry``.
"""
