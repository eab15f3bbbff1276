"""Signals between features (app/signals.py): every receiver hears, whatever another one does."""

from __future__ import annotations

import logging

from flask import Flask

from app import signals


def test_a_failing_receiver_is_logged_and_the_others_still_hear_the_signal(caplog):
    app, other_app = Flask("sender"), Flask("other")
    heard: list[tuple[str, dict]] = []

    def failing(sender, **kwargs):
        raise RuntimeError("receiver bug")

    def counting(sender, **kwargs):
        heard.append((sender.name, kwargs))

    def elsewhere(sender, **kwargs):
        heard.append(("elsewhere", kwargs))

    signals.tool_called.connect(failing, sender=app, weak=False)
    signals.tool_called.connect(counting, sender=app, weak=False)
    signals.tool_called.connect(elsewhere, sender=other_app, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.signals"):
            signals.send(signals.tool_called, app, provider="openai", model="m", tool_type="mcp", tool_name="t")
    finally:
        for receiver in (failing, counting, elsewhere):
            signals.tool_called.disconnect(receiver)
    assert heard == [("sender", {"provider": "openai", "model": "m", "tool_type": "mcp", "tool_name": "t"})]
    assert "a tool-called receiver failed" in caplog.text and "receiver bug" in caplog.text
