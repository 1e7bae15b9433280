"""The routes channel: the operations of an OpenAPI document, or this console's own routes.

With ``[sources] openapi_url`` set (by default the ADW backend's document), every
operation under the document's ``paths`` becomes an item with its method, path, name
(``operationId``), summary, description and tags; with it empty the console lists its
own routes (without the HEAD routes aiohttp adds for each GET). Either way an unchanged
source costs no rebuild and no message: the document is recognised by its digest, the
route table by comparison.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from monitor.channels.base import ChannelData
from monitor.channels.spec import ChannelSpec
from monitor.redact import redact_url
from monitor.sources.httpjson import get_body, parse_json
from monitor.sources.resources import Sources

OPENAPI_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The request gets this share of the poll timeout, so its own clear message wins the race.
REQUEST_TIMEOUT_SHARE = 0.8


def route_record(method: str, path: str, name: Any = None, summary: Any = None, tags: Any = None,
                 description: Any = None) -> dict[str, Any]:
    """One routes item; ``name``, ``summary`` and ``description`` are left out when unknown."""
    record: dict[str, Any] = {"method": method.upper(), "path": path}
    for key, value in (("name", name), ("summary", summary), ("description", description)):
        text = str(value).strip() if value is not None else ""
        if text:
            record[key] = text
    record["tags"] = [str(tag) for tag in tags] if isinstance(tags, list) else []
    return record


def build_routes(records: Iterable[dict[str, Any]]) -> ChannelData:
    """Items keyed by ``"METHOD path"`` and the summary: total and counts by method."""
    items = {f"{record['method']} {record['path']}": record for record in records}
    by_method = Counter(record["method"] for record in items.values())
    return ChannelData({"total": len(items), "by_method": dict(by_method)}, items)


def openapi_records(document: Any) -> list[dict[str, Any]]:
    """Every operation of an OpenAPI (or Swagger 2) document as a routes record."""
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise ValueError("not an OpenAPI document: it has no paths object")
    records = []
    for path, path_item in paths.items():
        if not isinstance(path_item, dict):
            continue
        for method in OPENAPI_METHODS:
            operation = path_item.get(method)
            if isinstance(operation, dict):
                records.append(operation_record(method, str(path), operation, path_item))
    return records


def operation_record(method: str, path: str, operation: dict[str, Any], path_item: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI operation as a routes record; summary and description fall back to its path item's."""
    summary = operation.get("summary") or path_item.get("summary")
    description = operation.get("description") or path_item.get("description")
    return route_record(method, path, operation.get("operationId"), summary, operation.get("tags"), description)


def own_route_records(routes: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """This console's routes as records, leaving out the HEAD twin aiohttp adds to each GET."""
    return [route_record(method, path, name) for method, path, name in routes if method.upper() != "HEAD"]


class OpenApiRoutesReader:
    """Reads the routes from an OpenAPI document over HTTP."""

    def __init__(self, sources: Sources, url: str, timeout: float) -> None:
        self.sources = sources
        self.url = url
        self.timeout = timeout
        self._digest: bytes | None = None

    async def read(self) -> ChannelData | None:
        """Fresh routes, or None when the document's bytes are unchanged."""
        body = await get_body(self.sources.session(), self.url, self.timeout)
        digest = hashlib.blake2b(body, digest_size=16).digest()
        if digest == self._digest:
            return None
        try:
            data = build_routes(openapi_records(await parse_json(body, self.url)))
        except ValueError as exc:
            raise ValueError(f"{redact_url(self.url)}: {exc}") from exc
        self._digest = digest
        return data


class OwnRoutesReader:
    """Reads this console's own route table."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self._table: list[tuple[str, str, str]] | None = None

    async def read(self) -> ChannelData | None:
        """Fresh routes, or None when the route table is unchanged."""
        table = sorted(self.sources.own_routes())
        if table == self._table:
            return None
        self._table = table
        return build_routes(own_route_records(table))


def make_reader(sources: Sources) -> OpenApiRoutesReader | OwnRoutesReader:
    """The routes reader: the OpenAPI document when ``openapi_url`` is set, else our own routes."""
    url = sources.settings.sources.openapi_url
    if not url:
        return OwnRoutesReader(sources)
    return OpenApiRoutesReader(sources, url, REQUEST_TIMEOUT_SHARE * sources.settings.channel(SPEC.name).timeout)


SPEC = ChannelSpec(name="routes", title="Routes", make_reader=make_reader, interval=30.0)
