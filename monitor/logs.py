"""Structured logging: one event name and key-value pairs; JSON unless on a terminal.

Records from stdlib loggers (aiohttp's, asyncio's, APScheduler's) go through the same
renderer, so in JSON mode every record is one line, its traceback inside ``exception``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.typing import Processor


class SafeLogger:
    """Writes rendered lines to a stream; a failing destination drops lines, never raises.

    A full disk or a vanished pipe must not take the console down with it: the line is
    lost, counted, and a note goes to stderr at most once per failure streak.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.dropped = 0

    def msg(self, message: str) -> None:
        """Write one line."""
        try:
            self._stream.write(message + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            self.dropped += 1
            if self.dropped == 1 and self._stream is not sys.stderr:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write("monitor: log destination failing; dropping log lines\n")
            return
        self.dropped = 0

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class StdlibHandler(logging.Handler):
    """Hands stdlib records, rendered by structlog's ``ProcessorFormatter``, to a ``SafeLogger``."""

    def __init__(self, stream: TextIO, level: int) -> None:
        super().__init__(level)
        self.lines = SafeLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as one rendered line (a failing destination drops it)."""
        try:
            line = self.format(record)
        except Exception:  # logging must never raise into the code that logs
            self.handleError(record)
            return
        self.lines.msg(line)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging) to ``stream`` as JSON or key-value lines."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.getLevelName(level.upper())
    stamp: list[Processor] = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamp, structlog.processors.StackInfoRenderer(),
                    structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *args: SafeLogger(stream),
        cache_logger_on_first_use=False,
    )
    handler = StdlibHandler(stream, numeric)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, *stamp, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    # Configuring again (tests, `monitor demo`) replaces the previous handler rather than adding a second.
    for old in [h for h in root.handlers if isinstance(h, StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries' INFO records (aiohttp's access log) would be one line per request.
    root.setLevel(max(numeric, logging.WARNING))


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for a refused malformed request into a DEBUG line.

    The client already got its 400; logging each one as an error would let anyone on the
    network flood the error log (and page an operator) with garbage requests.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Downgrade records caused by an HTTP parsing error; keep everything else."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args = f"malformed request refused: {exc}", ()
            record.exc_info = record.exc_text = None
        return True


def quiet_malformed_requests() -> None:
    """Install ``MalformedRequestFilter`` on aiohttp's server logger, once per process."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
