"""Log formatting: one JSON object per line, or readable text in development; secrets redacted.

`configure_logging(...)` installs one stderr handler on the `gateway` logger, and the same
handler on the root logger for everything else (urllib3's "Connection pool is full", other
libraries' warnings, and Python warnings, captured), so no line leaves in another format or
unredacted. The handler redacts every configured secret (provider keys, API keys, client
secrets) from each finished line — message, extra fields and traceback alike — so a secret that
slips into a message or an exception text never reaches the log. Formatting is on every
request's path (the access line), so it is kept cheap: one dict, one `json.dumps`, one regex scan.

The development text format writes the message and the extra fields with control characters
escaped (`\n` as `\\n`): a client cannot forge a log line with `%0a` in a path. JSON lines
escape them by nature.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    found = record.__dict__
    return {k: found[k] for k in found.keys() - _STANDARD if not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once a second, not once a line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record.created, record.levelname, record.name, record.getMessage(), _extras(record),
                         self.formatException(record.exc_info) if record.exc_info else None)

    def line(self, created: float, level: str, name: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        entry = {"time": self._time(created), "level": level.lower(), "logger": name, "message": message}
        entry.update(fields)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, default=str)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(text: str) -> str:
    """Control characters (and Unicode line separators) as escapes: one record, one line."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return self.line(record.created, record.levelname, record.name, record.getMessage(), _extras(record),
                         self.formatException(record.exc_info) if record.exc_info else None)

    def line(self, created: float, level: str, name: str, message: str, fields: dict[str, Any],
             exception: str | None = None) -> str:
        extras = _escaped(" ".join(f"{k}={v}" for k, v in sorted(fields.items())))
        line = f"{time.strftime('%H:%M:%S', time.localtime(created))} {level:<7} {name}: {_escaped(message)}"
        if extras:
            line += f"  [{extras}]"
        if exception:
            line += "\n" + exception
        return line


class Redactor:
    """Replaces each secret (as written, and as JSON escapes it) with `[REDACTED]`."""

    def __init__(self, secrets: Iterable[str]):
        forms = {form for secret in secrets if secret for form in (secret, json.dumps(secret)[1:-1])}
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("[REDACTED]", text) if self._pattern else text


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (test capture swaps it)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(sys.stderr)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def write_fields(self, created: float, level: str, name: str, message: str, fields: dict[str, Any]) -> None:
        """What `emit` writes for such a record, formatted and redacted alike, without making the record."""
        line = self.redact(self.formatter.line(created, level, name, message, fields)) + self.terminator
        self.acquire()
        try:
            stream = sys.stderr
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: as logging, never fail the request for it
            pass
        finally:
            self.release()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def write_fields(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, message, extra=fields)`, cheaper when the gateway's handler alone would
    write it (the access line, on every request): no LogRecord, no handler machinery, the same line.
    With any other handler or a filter on the way (a test's capture), through logging itself."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_handler(logger, level)
    if handler is None:
        logger.log(level, message, extra=fields)
    else:
        handler.write_fields(time.time(), logging.getLevelName(level), logger.name, message, fields)


def _sole_handler(logger: logging.Logger, level: int) -> StderrHandler | None:
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found += current.handlers
        current = current.parent if current.propagate else None
    if len(found) != 1 or type(found[0]) is not StderrHandler:
        return None
    handler = found[0]
    if handler.filters or not isinstance(handler.formatter, JsonFormatter | TextFormatter) or handler.level > level:
        return None
    return handler


def configure_logging(*, development: bool, level: str, secrets: Iterable[str]) -> None:
    # Nothing here logs the caller's file and line, thread or process name: skip collecting them
    # for every record (the logging HOWTO's "Optimization"); the access line is on every request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = StderrHandler(Redactor(secrets))
    handler.setFormatter(TextFormatter() if development else JsonFormatter())
    logger = logging.getLogger("gateway")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    logger.propagate = False
    # Everything else goes through the same handler, in place of any other writing to stderr (the
    # plain one gunicorn.conf.py gives the root logger); the root logger keeps its level (WARNING)
    # and any other handler (a test's capture).
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not _writes_to_stderr(h)] + [handler]
    logging.captureWarnings(True)


def _writes_to_stderr(handler: logging.Handler) -> bool:
    return isinstance(handler, StderrHandler) or (
        type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.__stderr__))
