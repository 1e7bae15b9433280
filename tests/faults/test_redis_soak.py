"""The many-consoles soak in small: one seeded trial of three console processes on a real redis-server."""

import shutil

from soak.redis_convergence import run
from tests.redis_server import unavailable


async def test_one_seeded_trial_of_changes_leader_kills_and_resumes_converges():
    if shutil.which("redis-server") is None:
        unavailable("redis-server not found; install it (apt-get install redis-server)")
    report = await run(trials=1, steps=10, first_seed=1, consoles=3)
    assert report["mismatches"] == 0 and report["failed_seeds"] == []
    assert report["leader_kills"] > 0 and report["resumes"]["ring"] > 0 and report["moved_to_another_console"] > 0
    assert report["tracebacks_in_console_logs"] == 0
