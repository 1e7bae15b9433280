"""GET a JSON document with the shared HTTP session; failures carry a message fit for an operator.

Each request has its own deadline (``asyncio.timeout``), so a slow service is reported as
"timed out after N s" by the reader rather than as a bare poll timeout. Credentials in a
URL never reach a message: they are masked first. Redirects are not followed: a source
that answers 3xx is in error, naming where it pointed (a redirect to anything that
answers JSON, the console's own ``/healthz`` included, would otherwise pass for the service).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from monitor.redact import redact_url

MAX_BODY_BYTES = 8 * 1024 * 1024
# Parsing a document bigger than this would hold the event loop for milliseconds.
PARSE_IN_THREAD_BYTES = 256 * 1024
PREVIEW_CHARS = 60
LOCATION_CHARS = 200


class HttpSourceError(Exception):
    """An HTTP source could not be read; the message names the URL and the reason."""


def describe_client_error(url: str, exc: aiohttp.ClientError) -> str:
    """A short description of why a request to ``url`` failed."""
    shown = redact_url(url)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused to {shown}"
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {shown}: {reason}"
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return f"not a usable http(s) URL: {shown!r}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"connection closed by {shown} before it answered"
    return f"request to {shown} failed: {str(exc) or type(exc).__name__}"


def describe_redirect(url: str, response: aiohttp.ClientResponse) -> str:
    """Why a 3xx answer is an error: its status and where it pointed."""
    location = response.headers.get("Location")
    shown = "no Location" if location is None else f"Location {redact_url(location)[:LOCATION_CHARS]!r}"
    return f"HTTP {response.status} redirect from {redact_url(url)} ({shown}); redirects are not followed"


async def get_body(http: aiohttp.ClientSession, url: str, timeout: float,
                   max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body of a 2xx answer to ``GET url``, read within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            async with http.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as response:
                if 300 <= response.status < 400:
                    raise HttpSourceError(describe_redirect(url, response))
                if not 200 <= response.status < 300:
                    raise HttpSourceError(f"HTTP {response.status} from {redact_url(url)}")
                return await _read_bounded(response, url, max_bytes)
    except TimeoutError as exc:  # our deadline, or aiohttp's own socket timeouts
        raise HttpSourceError(f"timed out after {timeout:g} s waiting for {redact_url(url)}") from exc
    except aiohttp.ClientError as exc:
        raise HttpSourceError(describe_client_error(url, exc)) from exc


async def _read_bounded(response: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
    too_big = HttpSourceError(f"{redact_url(url)} sent more than {max_bytes} bytes")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_big
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise too_big
    return bytes(body)


async def parse_json(body: bytes, url: str) -> Any:
    """``body`` decoded as JSON; large documents are decoded off the event loop."""
    try:
        if len(body) > PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(orjson.loads, body)
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        preview = body[:PREVIEW_CHARS].decode("utf-8", "replace")
        raise HttpSourceError(f"not JSON: {redact_url(url)} sent {preview!r}") from exc


async def get_json(http: aiohttp.ClientSession, url: str, timeout: float) -> Any:
    """The JSON document at ``url``; raises ``HttpSourceError`` with an operator-facing message."""
    return await parse_json(await get_body(http, url, timeout), url)
