"""The alerts on the web: ``GET /api/v1/alerts`` and the ``/alerts`` page; handlers only (``urls.py`` maps them)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from monitor.api import json_response
from monitor.keys import ALERTS
from monitor.pages import page_context


async def alerts_json(request: web.Request) -> web.Response:
    """``GET /api/v1/alerts``: the firing and pending alerts and the newest events."""
    return json_response(await request.app[ALERTS].report())


async def alerts_page(request: web.Request) -> web.Response:
    """``GET /alerts``: what is firing, what is pending, and what happened lately."""
    context = await page_context(request, ())
    context.update(report=await request.app[ALERTS].report(), current="alerts")
    return aiohttp_jinja2.render_template("alerts.html", request, context)
