"""Receivers of alert messages for the delivery tests, on loopback: Apprise's json:// posts and mailto:// mail."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage as Mail
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_LOGIN = ("alertbot", "smtp-Pw-7f3e9a")


class JsonReceiver:
    """An HTTP server taking Apprise's ``json://`` posts into ``inbox``; started and stopped by the test."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.port, self.status = port, status
        self.inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.runner: web.AppRunner | None = None

    async def start(self) -> JsonReceiver:
        """Listen on 127.0.0.1 (``port``, or a free one)."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self.receive)
        self.runner = web.AppRunner(app, access_log=None)  # its log lines would show the path: not the console's
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close the server."""
        if self.runner is not None:
            await self.runner.cleanup()

    async def receive(self, request: web.Request) -> web.Response:
        """Keep the post's path and JSON body; answer with ``status``."""
        await self.inbox.put((request.path, await request.json()))
        return web.Response(status=self.status)

    async def next(self) -> tuple[str, dict[str, Any]]:
        """The next post received (bounded, so a lost message fails the test instead of hanging it)."""
        return await asyncio.wait_for(self.inbox.get(), 30)


class Mailbox:
    """An aiosmtpd handler keeping each mail it is sent, after a plain-text login."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[Envelope, Mail]] = asyncio.Queue()
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook)
        """Keep the mail."""
        await self.inbox.put((envelope, message_from_bytes(bytes(envelope.content or b""), policy=policy.default)))
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        """Accept the one login of ``SMTP_LOGIN``."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False)
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == tuple(s.encode() for s in SMTP_LOGIN))

    async def next(self) -> tuple[Envelope, Mail]:
        """The next mail received (bounded)."""
        return await asyncio.wait_for(self.inbox.get(), 30)


async def start_smtp(mailbox: Mailbox) -> asyncio.Server:
    """An SMTP server on 127.0.0.1 on the running loop, without TLS, taking logins."""
    def protocol() -> SMTP:
        return SMTP(mailbox, hostname="mail.test", authenticator=mailbox.authenticate, auth_require_tls=False)

    return await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
