"""Nothing lost: after random source changes, client churn and restarts, every client shows the sources."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.scenario import run_trial
from tests.faults.steps import WEIGHTED_KINDS

steps = st.lists(st.tuples(st.sampled_from(WEIGHTED_KINDS), st.integers(0, 63), st.integers(0, 63)), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
async def test_every_client_converges_to_the_sources(tmp_path_factory, steps):
    report = await run_trial(tmp_path_factory.mktemp("trial"), steps)
    assert report.mismatches == []
