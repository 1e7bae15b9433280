"""Every channel of the wire contract, in dashboard order, and what is asked of them as a set."""

from __future__ import annotations

from types import MappingProxyType

from monitor.channels import (
    adw_monitor,
    planned_features,
    queue,
    routes,
    system_status,
    webhook_status,
    workflow_history,
    workflows,
)
from monitor.channels.base import Reader
from monitor.channels.spec import WATCH_KINDS, ChannelSpec
from monitor.sources.resources import Sources

CHANNELS: tuple[ChannelSpec, ...] = (
    queue.SPEC,
    adw_monitor.SPEC,
    system_status.SPEC,
    workflows.SPEC,
    routes.SPEC,
    workflow_history.SPEC,
    planned_features.SPEC,
    webhook_status.SPEC,
)
CHANNEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in CHANNELS)
# Each channel's name for the modules that must name one (the history's series, the alerts'
# fields); written only by its own module, as every name is.
(QUEUE, ADW_MONITOR, SYSTEM_STATUS, WORKFLOWS, ROUTES, WORKFLOW_HISTORY, PLANNED_FEATURES,
 WEBHOOK_STATUS) = CHANNEL_NAMES


def _unique(names: list[str], what: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what} declared twice: {', '.join(repeated)}")


_unique(list(CHANNEL_NAMES), "channel names")
_unique([query for spec in CHANNELS for query in spec.queries], "query names")
_BY_NAME = MappingProxyType({spec.name: spec for spec in CHANNELS})


def channel_spec(name: str) -> ChannelSpec:
    """The spec of channel ``name``; KeyError when there is no such channel."""
    return _BY_NAME[name]


def is_channel(name: str) -> bool:
    """Whether ``name`` is a channel of the wire contract."""
    return name in _BY_NAME


def query_names() -> tuple[str, ...]:
    """Every query name that ``[queries]`` may override, channel by channel."""
    return tuple(query for spec in CHANNELS for query in spec.queries)


def channels_watching(kind: str) -> tuple[str, ...]:
    """The channels, in dashboard order, that poll at once when the file source ``kind`` changes."""
    if kind not in WATCH_KINDS:
        raise ValueError(f"unknown watch kind {kind!r}; expected one of {sorted(WATCH_KINDS)}")
    return tuple(spec.name for spec in CHANNELS if kind in spec.watches)


def make_readers(sources: Sources) -> dict[str, Reader]:
    """Every channel's reader on ``sources``, by name in dashboard order."""
    return {spec.name: spec.make_reader(sources) for spec in CHANNELS}
