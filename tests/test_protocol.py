"""The wire protocol module on its own, against DESIGN.md §3: no server, no socket."""

import dataclasses

import orjson
import pytest
from multidict import MultiDict

from monitor import protocol
from monitor.protocol import Close

PING_ONLY = 'the only client message is {"type":"ping"}'


def test_snapshot_frame_is_the_documented_json():
    data = {"summary": {"total": 1}, "items": {"q1": {"status": "running"}}, "meta": {"source": "ok"}}
    frame = protocol.snapshot_frame("queue", "9f3c", 41, data)
    assert orjson.loads(frame) == {"type": "snapshot", "channel": "queue", "epoch": "9f3c", "seq": 41, "data": data}


def test_patch_frame_is_the_documented_json():
    patch = {"items": {"q1": {"status": "running"}, "q7": None}}
    frame = protocol.patch_frame("queue", "9f3c", 42, patch)
    assert orjson.loads(frame) == {"type": "patch", "channel": "queue", "epoch": "9f3c", "seq": 42, "patch": patch}


@pytest.mark.parametrize("value", [object(), "\ud800", {"a": [[[[]]]]}])
def test_a_patch_that_cannot_be_encoded_is_a_value_error_naming_why(value):
    if isinstance(value, dict):  # nested deeper than the encoder follows
        for _ in range(300):
            value = {"a": value}
    with pytest.raises(ValueError, match=protocol.UNPUBLISHABLE):
        protocol.patch_frame("queue", "9f3c", 1, {"items": {"q1": {"at": value}}})


def test_pong_and_error_frames():
    assert orjson.loads(protocol.PONG) == {"type": "pong"}
    assert orjson.loads(protocol.error_frame("nope")) == {"type": "error", "error": "nope"}


def test_rate_error_names_the_limit():
    message = orjson.loads(protocol.rate_error(20.0, 40))
    assert message == {"type": "error", "error": "message rate over 20 a second (bursts of 40); closing"}


def test_close_table_keeps_the_codes_and_reasons_on_the_wire():
    table = {(close.code, close.reason) for close in protocol.CLOSES}
    assert table == {
        (1001, b"server shutting down"),
        (1013, b"too slow: resume with epoch and seq"),
        (1008, b"too many client messages"),
        (1008, b"authentication required"),
    }
    assert protocol.SHUTDOWN == Close(1001, b"server shutting down")
    assert protocol.TOO_SLOW.code == 1013 and protocol.RATE_LIMITED.code == protocol.UNAUTHENTICATED.code == 1008


def test_close_reasons_fit_a_control_frame():
    # RFC 6455: a control frame's payload is at most 125 bytes, two of them the code.
    assert all(len(close.reason) <= 123 and close.reason.decode("utf-8") for close in protocol.CLOSES)


def test_a_close_cannot_be_changed():
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.SHUTDOWN.code = 1000


@pytest.mark.parametrize("query, expected", [
    ({"epoch": "9f3c", "seq": "41"}, ("9f3c", 41)),
    ({"epoch": "9f3c", "seq": "0"}, ("9f3c", 0)),
    ({"epoch": "a" * 64, "seq": "007"}, ("a" * 64, 7)),
    ({"epoch": "9f3c", "seq": "9" * 18}, ("9f3c", 10 ** 18 - 1)),
])
def test_resume_position_is_read(query, expected):
    assert protocol.parse_resume(query) == expected


@pytest.mark.parametrize("query", [
    {},
    {"seq": "41"},
    {"epoch": "9f3c"},
    {"epoch": "", "seq": "41"},
    {"epoch": "9F3C", "seq": "41"},  # epochs are lowercase hex
    {"epoch": "xyz", "seq": "41"},
    {"epoch": "9f3c\n", "seq": "41"},
    {"epoch": "a" * 65, "seq": "41"},
    {"epoch": "9f3c", "seq": ""},
    {"epoch": "9f3c", "seq": "-1"},
    {"epoch": "9f3c", "seq": "+1"},
    {"epoch": "9f3c", "seq": " 1"},
    {"epoch": "9f3c", "seq": "1.0"},
    {"epoch": "9f3c", "seq": "1e3"},
    {"epoch": "9f3c", "seq": "0x10"},
    {"epoch": "9f3c", "seq": "1_000"},
    {"epoch": "9f3c", "seq": "9" * 19},
    {"epoch": "9f3c", "seq": "١٢"},  # Arabic-Indic digits: isdigit() says yes
    {"epoch": "9f3c", "seq": "²"},  # a superscript: isdigit() says yes, int() says no
    {"epoch": "٩f3c", "seq": "1"},
])
def test_a_malformed_resume_position_counts_as_absent(query):
    assert protocol.parse_resume(query) == (None, None)


def test_resume_reads_the_first_of_repeated_parameters():
    query = MultiDict([("epoch", "9f3c"), ("seq", "4"), ("seq", "junk")])
    assert protocol.parse_resume(query) == ("9f3c", 4)


# A repeated key counts once, as its last value (JSON parsers agree on nothing better).
@pytest.mark.parametrize("text", ['{"type":"ping"}', '{"type": "ping", "extra": 1}', ' {"type":"ping"} ',
                                  '{"type":"pong","type":"ping"}'])
def test_a_ping_gets_a_pong(text):
    assert protocol.reply_to(text) == protocol.PONG


@pytest.mark.parametrize("text", ["", "ping", "{", '{"type":"ping"', "\x00", "NaN", '"\ud800"',
                                  "[" * 2000 + "]" * 2000])
def test_text_that_is_not_json_gets_an_error(text):
    reply = orjson.loads(protocol.reply_to(text))
    assert reply["type"] == "error" and reply["error"].startswith("not JSON") and PING_ONLY in reply["error"]


@pytest.mark.parametrize("text", ['"ping"', "[]", '["ping"]', "null", "1", "{}", '{"type":"pong"}',
                                  '{"type":"PING"}', '{"type":null}', '{"kind":"ping"}'])
def test_json_that_is_not_a_ping_gets_an_error(text):
    reply = orjson.loads(protocol.reply_to(text))
    assert reply["type"] == "error" and reply["error"].startswith("unknown message") and PING_ONLY in reply["error"]


@pytest.mark.parametrize("data", [b"", b'{"type":"ping"}', b"\xff\x00"])
def test_a_binary_frame_gets_an_error_even_when_it_holds_a_ping(data):
    reply = orjson.loads(protocol.reply_to(data))
    assert reply == {"type": "error", "error": "binary frames are not accepted; send JSON text"}
