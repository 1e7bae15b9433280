"""The system-status channel: health checks of this console, its sources and configured targets.

Built in are ``console`` (the event loop's lag), ``database`` (its change token),
``webhook`` (``GET webhook_url``: healthy or degraded as the service's own ``status``
says, DESIGN §4) and ``backend`` (``GET {backend_url}/api/v1/health`` answers 2xx); the
last two only when their URL is set. Each ``[[checks]]`` entry adds one, and an entry
named like a built-in replaces it (to give it another timeout, say). A failing check is
this channel's data, never its error: the channel's ``meta`` stays ``ok``.

Every check's deadline is capped below the channel's poll timeout, so a hanging target
is reported as that check's timeout instead of abandoning the whole poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog

from monitor.channels.base import ChannelData, percentage
from monitor.channels.spec import ChannelSpec
from monitor.channels.webhook_status import service_health
from monitor.redact import redact_url
from monitor.settings_table import CheckSettings
from monitor.sources.checks import (
    DEGRADED,
    ERROR,
    HEALTHY,
    SUCCESS_CODES,
    CheckResult,
    CheckSpec,
    Probe,
    probe_database,
    probe_event_loop,
    probe_http,
    probe_process,
    probe_reported_health,
    probe_tcp,
    run_checks,
)
from monitor.sources.resources import Sources

log = structlog.get_logger(__name__)

# Checks get this share of the poll timeout; the rest is headroom to publish their results.
CHECK_BUDGET_SHARE = 0.8
BACKEND_HEALTH_PATH = "/api/v1/health"
# Kinds of the built-in service checks; [[checks]] entries cannot name them (settings allow http, tcp, process).
WEBHOOK_KIND, BACKEND_KIND = "webhook", "backend"
URL_KINDS = ("http", "database", WEBHOOK_KIND, BACKEND_KIND)


def overall_status(statuses: Iterable[str]) -> str:
    """``error`` if any check errs, else ``degraded`` if any is degraded, else ``healthy``."""
    seen = set(statuses)
    if ERROR in seen:
        return ERROR
    return DEGRADED if DEGRADED in seen else HEALTHY


def build_system_status(results: Iterable[CheckResult]) -> ChannelData:
    """Summary and items of the system-status channel from check results."""
    items = {result.name: result.as_item() for result in results}
    statuses = [item["status"] for item in items.values()]
    healthy = statuses.count(HEALTHY)
    summary = {"overall_status": overall_status(statuses), "healthy": healthy, "total": len(items),
               "health_percentage": percentage(healthy, len(items))}
    return ChannelData({key: value for key, value in summary.items() if value is not None}, items)


class SteadyLatency:
    """Publishes each check's latency only when it really moved, so quiet systems stay quiet.

    Latency jitters on every run; published raw, it would send a patch on every poll of
    an otherwise unchanged system. A check's published latency is therefore kept until a
    new measurement differs from it by more than ``relative`` of it and more than
    ``absolute_ms``, or until the check's status changes (then the fresh value goes out
    with the new status). The shown value is always a real measurement, never more than
    that band away from the latest one, and rounded to 0.1 ms.
    """

    def __init__(self, relative: float = 0.25, absolute_ms: float = 5.0) -> None:
        self.relative = relative
        self.absolute_ms = absolute_ms
        self._published: dict[str, tuple[str, float]] = {}

    def publish(self, result: CheckResult) -> CheckResult:
        """``result`` with the latency to publish for it."""
        measured = round(result.latency_ms, 1)
        last = self._published.get(result.name)
        if last is not None and last[0] == result.status:
            shown = last[1]
            if abs(measured - shown) <= max(self.absolute_ms, self.relative * shown):
                return replace(result, latency_ms=shown)
        self._published[result.name] = (result.status, measured)
        return replace(result, latency_ms=measured)


class SystemStatusReader:
    """Runs every check concurrently on each poll."""

    def __init__(self, specs: list[CheckSpec]) -> None:
        self.specs = specs
        self.latency = SteadyLatency()
        self._statuses: dict[str, str] = {}

    async def read(self) -> ChannelData:
        """Fresh check results; the channel diff drops what did not change."""
        results = await run_checks(self.specs)
        self._log_transitions(results)
        return build_system_status(self.latency.publish(result) for result in results)

    def _log_transitions(self, results: list[CheckResult]) -> None:
        # The channel itself stays healthy, so the poller logs nothing: one line per change here.
        for result in results:
            was = self._statuses.get(result.name, HEALTHY)
            self._statuses[result.name] = result.status
            if result.status != was:
                report = log.info if result.status == HEALTHY else log.warning
                report("check_status_changed", check=result.name, kind=result.kind, status=result.status,
                       was=was, message=result.message)


def builtin_checks(sources: Sources) -> list[CheckSettings]:
    """The checks every console runs: itself, its database, and its webhook service and backend when set."""
    config = sources.settings.sources
    checks = [CheckSettings(name="console", kind="console", target="event loop"),
              CheckSettings(name="database", kind="database", target=config.database)]
    if config.webhook_url:
        checks.append(CheckSettings(name="webhook", kind=WEBHOOK_KIND, target=config.webhook_url))
    if config.backend_url:
        checks.append(CheckSettings(name="backend", kind=BACKEND_KIND, target=backend_health_url(config.backend_url)))
    return checks


def backend_health_url(base_url: str) -> str:
    """The ADW backend's health endpoint under its base URL."""
    return base_url.rstrip("/") + BACKEND_HEALTH_PATH


def check_spec(sources: Sources, check: CheckSettings, budget: float) -> CheckSpec:
    """A runnable check from its settings, its deadline capped at ``budget`` seconds."""
    target = redact_url(check.target) if check.kind in URL_KINDS else check.target
    timeout = min(check.timeout, budget)
    return CheckSpec(check.name, check.kind, target, timeout, check.degraded_after, _probe(sources, check, timeout))


def _probe(sources: Sources, check: CheckSettings, timeout: float) -> Probe:
    target = check.target
    # Each probe looks the shared HTTP session up when it runs, never keeps its own.
    probes: dict[str, Probe] = {
        "console": probe_event_loop,
        "database": lambda: probe_database(sources.database),
        "http": lambda: probe_http(sources.session(), target),
        "tcp": lambda: probe_tcp(target),
        "process": lambda: probe_process(target),
        WEBHOOK_KIND: lambda: probe_reported_health(sources.session(), target, timeout, service_health),
        BACKEND_KIND: lambda: probe_http(sources.session(), target, SUCCESS_CODES),
    }
    if check.kind not in probes:
        raise ValueError(f"check {check.name!r}: unknown kind {check.kind!r}")
    return probes[check.kind]


def make_reader(sources: Sources) -> SystemStatusReader:
    """The system-status reader: built-in checks plus ``[[checks]]``, by name."""
    checks: tuple[CheckSettings, ...] = (*builtin_checks(sources), *sources.settings.checks)
    by_name = {check.name: check for check in checks}
    budget = CHECK_BUDGET_SHARE * sources.settings.channel(SPEC.name).timeout
    return SystemStatusReader([check_spec(sources, check, budget) for check in by_name.values()])


SPEC = ChannelSpec(name="system-status", title="System status", make_reader=make_reader, interval=5.0)
