"""Memory handed back once a burst of connections is over."""

import asyncio

from monitor.memory import CHURN, give_back_after_bursts, malloc_trim


def test_glibc_trim_is_found_and_runs():
    trim = malloc_trim()
    assert trim is not None and trim() in (0, 1)


async def test_trims_once_after_a_burst_when_things_are_quiet():
    admitted, trims, looked = [0], [], asyncio.Event()

    def count():
        looked.set()
        return admitted[0]

    async def look():  # let the watcher take one look at the counter
        looked.clear()
        await looked.wait()

    task = asyncio.create_task(give_back_after_bursts(count, check_every=0.001, trim=lambda: trims.append(1)))
    await look()
    admitted[0] = CHURN  # a burst: the look that sees it is not quiet yet
    await look()
    await look()
    await look()  # quiet looks since: one trim, not one per look
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert trims == [1]
