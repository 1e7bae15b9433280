"""tac-webbuilder's own web client, served by the console under a prefix (``[compat.tac_webbuilder]``).

The client's eight WebSockets get their original message shapes, rendered from the
console's channel state (``documents``, ``fanout``); everything else under the prefix is
passed to the client's backend (``proxy``), with CORS answered for its origins (``cors``).
"""
