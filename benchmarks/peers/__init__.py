"""Peer servers for the benchmarks: the same queue channel served the plain way by other stacks.

``aiohttp_peer`` is plain aiohttp (``WebSocketResponse(heartbeat=30)``, a set of sockets,
``send_str`` in a loop); ``websockets_peer`` is the ``websockets`` library (``serve`` with
``ping_interval=30``, ``broadcast()``). Both send the same kind of first frame as the
console (a JSON snapshot of the 500 queue rows) and answer the control hooks the phases use.
"""
