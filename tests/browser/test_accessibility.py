"""axe-core (the pinned npm package) finds no serious or critical violation on the live pages.

axe is run with ``page.evaluate`` rather than a ``<script>`` tag: the console's CSP
(``script-src 'self'``) refuses inline scripts, and DevTools evaluation is exempt from it.
That keeps the CSP in force (no ``bypass_csp``), so axe checks the page exactly as served,
with whatever the policy blocks still blocked; and it runs only once the page's own
scripts have made every panel live, so they never see axe.
"""

import asyncio

import pytest
from playwright.async_api import expect

from monitor.adw import QUEUE_STATUSES
from monitor.keys import POLLERS

FULL_HD = {"width": 1920, "height": 1080}
UHD = {"width": 3840, "height": 2160}
CASES = [
    ("/", FULL_HD, "light"),
    ("/", FULL_HD, "dark"),
    ("/?wall=1", FULL_HD, "light"),
    ("/?wall=1", FULL_HD, "dark"),
    ("/?wall=1", UHD, "light"),
    ("/?wall=1", UHD, "dark"),
    ("/queue", FULL_HD, "light"),
]
BLOCKING_IMPACTS = ("serious", "critical")
RUN_AXE_JS = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map((v) => ({
  id: v.id, impact: v.impact, help: v.help,
  targets: v.nodes.map((node) => node.target.join(' ')),
  summary: v.nodes[0]?.failureSummary ?? '',
}))"""
TARGETS_SHOWN = 4


def described(violations: list[dict]) -> str:
    """Per violation: id, impact, help, its first few target selectors and axe's summary for the first."""
    lines = []
    for violation in violations:
        targets = violation["targets"]
        more = f" (+{len(targets) - TARGETS_SHOWN} more)" if len(targets) > TARGETS_SHOWN else ""
        lines.append(f"{violation['id']} [{violation['impact']}] {violation['help']}: "
                     f"{', '.join(targets[:TARGETS_SHOWN])}{more}")
        lines.append("    " + " ".join(violation["summary"].split()))
    return "\n".join(lines)


@pytest.mark.parametrize(("path", "viewport", "scheme"), CASES,
                         ids=[f"{path} {size['width']}x{size['height']} {scheme}" for path, size, scheme in CASES])
async def test_axe_finds_no_serious_or_critical_violation(client, queue_table, open_page, axe_source,
                                                           path, viewport, scheme):
    for index, status in enumerate(QUEUE_STATUSES):  # every status label, so its colours are checked too
        queue_table.insert(status=status, title=f"phase {status}", queue_position=index)
    await asyncio.gather(*(poller.poll() for poller in client.app[POLLERS].values()))

    async def prepare(page):
        await page.set_viewport_size(viewport)
        await page.emulate_media(color_scheme=scheme)

    watched = await open_page(str(client.make_url(path)), before=prepare)
    for connection in await watched.page.locator("[data-channel] [data-connection]").all():
        await expect(connection).to_have_attribute("data-connection", "live")
    await watched.page.evaluate(axe_source)
    violations = await watched.page.evaluate(RUN_AXE_JS)
    blocking = [violation for violation in violations if violation["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core found serious or critical violations:\n{described(blocking)}"
    assert watched.problems == []
