"""The broker and the one state it keeps per channel: diff, apply and encode once, resume from the ring."""

import orjson
import pytest

from monitor.broker import InProcessBroker
from monitor.channels.base import ChannelData
from monitor.state import ChannelState


def rows(**items) -> ChannelData:
    """Data whose summary counts ``items``."""
    return ChannelData({"total": len(items)}, items)


@pytest.fixture
def broker():
    """A broker of two channels keeping the last three patches of each."""
    return InProcessBroker(("queue", "workflows"), ring_size=3)


def test_a_new_broker_starts_every_channel_pending_at_seq_0(broker):
    for name in ("queue", "workflows"):
        view = broker.current(name)
        assert (view.epoch, view.seq, view.source) == (broker.epoch, 0, "pending")
        assert view.state["items"] == {} and view.state["summary"] == {}


def test_publish_applies_once_and_hands_listeners_the_encoded_patch(broker):
    heard = []
    broker.listen(lambda channel, frame: heard.append((channel, orjson.loads(frame))))
    broker.publish("queue", rows(a={"x": 1}))
    [(channel, message)] = heard
    assert channel == "queue" and message["type"] == "patch" and message["seq"] == 1
    assert message["patch"]["items"] == {"a": {"x": 1}} and message["patch"]["meta"]["source"] == "ok"
    assert broker.current("queue").state["items"] == {"a": {"x": 1}}
    assert broker.current("workflows").seq == 0, "other channels are untouched"
    assert broker.published == {"queue": 1, "workflows": 0}


def test_an_unchanged_read_publishes_nothing(broker):
    heard = []
    broker.listen(lambda channel, frame: heard.append(frame))
    broker.publish("queue", rows(a={"x": 1}))
    broker.publish("queue", rows(a={"x": 1}))
    broker.publish("queue", None)
    assert len(heard) == 1 and broker.current("queue").seq == 1


def test_an_error_keeps_the_last_good_data_and_repeats_only_when_its_text_changes(broker):
    broker.publish("queue", rows(a={"x": 1}))
    broker.publish_error("queue", "disk on fire")
    broker.publish_error("queue", "disk on fire")
    view = broker.current("queue")
    assert view.seq == 2 and view.source == "error" and view.state["meta"]["error"] == "disk on fire"
    assert view.state["items"] == {"a": {"x": 1}}


def test_data_that_cannot_be_encoded_is_the_channels_error_and_nothing_moves(broker):
    broker.publish("queue", rows(a={"x": 1}))
    broker.publish("queue", rows(a={"x": "\ud800"}))  # an unpaired surrogate: no UTF-8 for it
    view = broker.current("queue")
    assert view.source == "error" and "cannot be sent" in view.state["meta"]["error"]
    assert view.state["items"] == {"a": {"x": 1}}
    broker.publish("queue", None)  # "unchanged" is still the bad read: no recovery from it
    assert broker.current("queue").source == "error"


def test_catch_up_without_a_position_is_one_snapshot_of_the_current_state(broker):
    broker.publish("queue", rows(a={"x": 1}))
    [frame] = broker.catch_up("queue", None, None)
    message = orjson.loads(frame)
    assert message["type"] == "snapshot" and message["seq"] == 1
    assert message["data"] == broker.current("queue").state
    assert broker.catch_ups["snapshot"] == 1


def test_catch_up_from_the_ring_is_exactly_the_missed_patches(broker):
    for n in range(3):
        broker.publish("queue", rows(a={"x": n}))
    frames = broker.catch_up("queue", broker.epoch, 1)
    assert [orjson.loads(f)["seq"] for f in frames] == [2, 3]
    assert broker.catch_up("queue", broker.epoch, 3) == []
    assert broker.catch_ups == {"snapshot": 0, "fallback": 0, "ring": 1, "current": 1}


@pytest.mark.parametrize("epoch, seq, outcome", [
    ("0123456789abcdef", 1, "fallback"),  # another epoch
    (None, 2, "snapshot"),  # no position: a first connection
    ("EPOCH", None, "fallback"),  # an epoch without a seq
    ("EPOCH", 9, "fallback"),  # a seq from the future
    ("EPOCH", 0, "fallback"),  # older than the ring holds: patch 1 is gone
])
def test_catch_up_falls_back_to_a_snapshot_when_the_ring_cannot_serve(broker, epoch, seq, outcome):
    for n in range(4):  # seq 1..4; the ring holds 2..4
        broker.publish("queue", rows(a={"x": n}))
    [frame] = broker.catch_up("queue", broker.epoch if epoch == "EPOCH" else epoch, seq)
    assert orjson.loads(frame)["type"] == "snapshot"
    assert broker.catch_ups[outcome] == 1 and sum(broker.catch_ups.values()) == 1


def test_catch_up_from_the_oldest_patch_the_ring_still_holds(broker):
    for n in range(4):  # seq 1..4; the ring holds 2..4, so a client at 1 misses nothing
        broker.publish("queue", rows(a={"x": n}))
    frames = broker.catch_up("queue", broker.epoch, 1)
    assert [orjson.loads(f)["seq"] for f in frames] == [2, 3, 4] and broker.catch_ups["ring"] == 1


def test_a_catch_up_from_the_ring_encodes_no_snapshot():
    state = ChannelState("queue", "e", ring_size=4)
    state.accept(rows(a={"x": 1}))
    state.accept(rows(a={"x": 2}))
    assert state.catch_up("e", 1)[0] == "ring"
    assert state._snapshot_frame is None, "a snapshot was encoded only to be thrown away"


def test_the_snapshot_is_encoded_once_per_change():
    state = ChannelState("queue", "e", ring_size=2)
    state.accept(rows(a={"x": 1}))
    assert state.snapshot_frame() is state.snapshot_frame()
    before = state.snapshot_frame()
    state.accept(rows(a={"x": 2}))
    assert state.snapshot_frame() is not before and orjson.loads(state.snapshot_frame())["seq"] == 2


def test_a_one_shot_state_keeps_no_ring():
    state = ChannelState("queue", "e")
    state.accept(rows(a={"x": 1}))
    state.accept(rows(a={"x": 2}))
    assert len(state.ring) == 0
    assert [orjson.loads(f)["type"] for f in state.catch_up("e", 1)[1]] == ["snapshot"]
