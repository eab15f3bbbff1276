"""What a gunicorn worker does as it starts and as it exits, as the features register it.

    lifecycle.on_start(app, mcp_catalog.start)      # features, from their init_app
    lifecycle.on_exit(app, ledger.close)
    lifecycle.worker_started(app)                   # gunicorn.conf.py: post_worker_init
    lifecycle.worker_exiting(app)                   # gunicorn.conf.py: worker_exit (SIGTERM, HUP)

Start callbacks run in registration order, exit callbacks in reverse; a failing callback is
logged and the others still run (a worker that exits must still write its usage rows). Outside
gunicorn (an app from `create_app` in tests or scripts) call the two functions yourself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("gateway.lifecycle")

EXTENSION_KEY = "gateway.lifecycle"


def _hooks(app: Flask) -> dict[str, list[Callable[[], None]]]:
    return app.extensions.setdefault(EXTENSION_KEY, {"start": [], "exit": []})


def on_start(app: Flask, callback: Callable[[], None]) -> None:
    _hooks(app)["start"].append(callback)


def on_exit(app: Flask, callback: Callable[[], None]) -> None:
    _hooks(app)["exit"].append(callback)


def worker_started(app: Flask) -> None:
    _run(_hooks(app)["start"], "start")


def worker_exiting(app: Flask) -> None:
    _run(list(reversed(_hooks(app)["exit"])), "exit")


def _run(callbacks: list[Callable[[], None]], moment: str) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("a worker %s callback failed: %r", moment, callback)
