"""Witnesses of failures nobody handled: the console's log, the loop's exception handler, stdlib records."""

from __future__ import annotations

import io
import json
import logging

from aiohttp.http_exceptions import HttpProcessingError


class LogCapture:
    """The console's log stream, as JSON events."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        """Everything logged so far."""
        return self.stream.getvalue()

    def events(self) -> list[dict]:
        """Every event logged so far."""
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def named(self, event: str) -> list[dict]:
        """The events called ``event``."""
        return [e for e in self.events() if e.get("event") == event]


def is_malformed_request_record(record: logging.LogRecord) -> bool:
    """aiohttp's own ERROR record (with traceback) for a request it refused with a 4xx."""
    error = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(error, HttpProcessingError) and 400 <= error.code < 500


def error_records(caplog) -> list[str]:
    """Stdlib records at ERROR or above, aiohttp's records of refused malformed requests aside."""
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and not is_malformed_request_record(record)]


def assert_nothing_unhandled(console_log: LogCapture, loop_errors: list[dict], caplog) -> None:
    """No traceback, no exception event, nothing for the loop's handler, no stdlib error record."""
    assert "Traceback" not in console_log.text()
    assert [e for e in console_log.events() if "exception" in e or e.get("level") in ("error", "critical")] == []
    assert loop_errors == []
    assert error_records(caplog) == []
