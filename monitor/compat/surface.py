"""The compat surface as one object: its settings, its compat clients and its backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from monitor.keys import COMPAT

if TYPE_CHECKING:  # the middlewares import this module: it must not import the handlers
    from monitor.compat.fanout import CompatFanout
    from monitor.compat.proxy import Backend
    from monitor.settings import TacWebbuilderSettings


class CompatSurface:
    """Everything ``[compat.tac_webbuilder]`` adds to one console."""

    def __init__(self, settings: TacWebbuilderSettings, fanout: CompatFanout, backend: Backend) -> None:
        self.prefix = settings.prefix
        self.fanout = fanout
        self.backend = backend
        self._origins = frozenset(origin.rstrip("/").lower() for origin in settings.allowed_origins)

    def owns(self, path: str) -> bool:
        """True for the prefix itself and every path under it."""
        return path == self.prefix or path.startswith(self.prefix + "/")

    def origin_listed(self, origin: str) -> bool:
        """True for one of the client's own origins (``allowed_origins``)."""
        return origin.rstrip("/").lower() in self._origins


def surface_for(request: web.Request) -> CompatSurface | None:
    """The compat surface when ``request`` is for a path under its prefix; None otherwise (or without one)."""
    surface = request.app.get(COMPAT)
    return surface if surface is not None and surface.owns(request.path) else None
