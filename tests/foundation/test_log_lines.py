"""The access line takes a short path past logging's machinery (app/logs.py `write_fields`): the line
must be the one logging would have written, redacted alike, in both formats, and any other handler
or filter on the way must still see every record."""

from __future__ import annotations

import json
import logging

import pytest

from app.logs import configure_logging, write_fields

SECRET = "sk-never-in-a-log-0123"


@pytest.fixture
def gateway_logging():
    gateway, root = logging.getLogger("gateway"), logging.getLogger()
    saved = (gateway.handlers[:], gateway.level, gateway.propagate, root.handlers[:])
    yield
    gateway.handlers[:], gateway.level, gateway.propagate, root.handlers[:] = saved


def both_ways(capfd, development: bool) -> tuple[str, str]:
    configure_logging(development=development, level="info", secrets=[SECRET])
    logger = logging.getLogger("gateway.access")
    fields = {"method": "GET", "path": f"/v1/models?key={SECRET}", "status": 200, "usage": {"total_tokens": 7},
              "note": "two\nlines"}
    capfd.readouterr()
    write_fields(logger, logging.INFO, f"GET /v1/models?key={SECRET} 200", fields)
    short = capfd.readouterr().err
    logger.info("GET /v1/models?key=%s 200", SECRET, extra=fields)
    usual = capfd.readouterr().err
    return short, usual


def test_the_json_line_is_the_one_logging_writes(gateway_logging, capfd):
    short, usual = both_ways(capfd, development=False)
    assert short.count("\n") == usual.count("\n") == 1
    assert SECRET not in short and "[REDACTED]" in short
    written, expected = json.loads(short), json.loads(usual)
    written.pop("time"), expected.pop("time")
    assert written == expected
    assert written["logger"] == "gateway.access" and written["level"] == "info"


def test_the_development_line_is_the_one_logging_writes(gateway_logging, capfd):
    short, usual = both_ways(capfd, development=True)
    assert SECRET not in short
    assert short.split(" ", 1)[1] == usual.split(" ", 1)[1]  # all but the time of day
    assert short.count("\n") == 1 and "two\\nlines" in short


def test_a_filter_or_another_handler_still_gets_the_record(gateway_logging, capfd):
    configure_logging(development=False, level="info", secrets=[SECRET])
    logger = logging.getLogger("gateway.access")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logging.getLogger("gateway").addHandler(Keep())
    write_fields(logger, logging.INFO, "GET / 200", {"status": 200})
    assert [record.status for record in seen] == [200]  # type: ignore[attr-defined]
    assert '"status": 200' in capfd.readouterr().err  # and the usual line too

    logger.addFilter(lambda record: False)
    try:
        write_fields(logger, logging.INFO, "GET / 200", {"status": 200})
    finally:
        logger.filters.clear()
    assert len(seen) == 1 and capfd.readouterr().err == ""


def test_a_level_above_info_writes_nothing(gateway_logging, capfd):
    configure_logging(development=False, level="warning", secrets=[])
    capfd.readouterr()
    write_fields(logging.getLogger("gateway.access"), logging.INFO, "GET / 200", {"status": 200})
    assert capfd.readouterr().err == ""
