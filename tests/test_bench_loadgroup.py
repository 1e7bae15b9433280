"""Two load generator processes driven as one: clients split, answers merged, arrivals on one clock."""

from benchmarks.hooks import add_bench_routes
from benchmarks.loadgroup import LoadGroup, merge, split
from monitor.app import create_app
from tests.support import connections


def test_clients_split_evenly_and_answers_merge():
    assert split(5, 2) == [3, 2] and split(1, 2) == [1, 0] and sum(split(19_999, 3)) == 19_999
    merged = merge([{"upgraded": 3, "ready_s": 1.5, "arrivals": [1.0], "close_codes": {"1000": 1}, "armed": "m"},
                    {"upgraded": 2, "ready_s": 2.5, "arrivals": [2.0], "close_codes": {"1000": 2, "1013": 1},
                     "armed": "m"}])
    assert merged == {"upgraded": 5, "ready_s": 2.5, "arrivals": [1.0, 2.0], "close_codes": {"1000": 3, "1013": 1},
                      "armed": "m"}


async def test_two_load_generators_receive_one_fan_out(aiohttp_client, make_settings, tmp_path):
    app = create_app(make_settings())
    add_bench_routes(app)
    client = await aiohttp_client(app)
    group = await LoadGroup.start(2, "127.0.0.1", client.port, tmp_path, "console")
    try:
        opened = await group.call("open", path="/api/v1/ws/queue", count=9, tag="fresh")
        assert opened["upgraded"] == 9 and opened["open"] == 9
        await connections(client, "queue", 9)
        await group.call("arm", marker="m-group", tag="fresh")
        await client.post("/_bench/patch?channel=queue&marker=m-group&size=1024")
        collected = await group.call("collect", timeout=30)
        assert len(collected["arrivals"]) == 9 and collected["missing"] == 0 and collected["bad_json"] == 0
        assert (await group.call("stats"))["by_tag"]["fresh"]["clients"] == 9
        assert group.cpu_seconds() > 0
    finally:
        await group.stop()
