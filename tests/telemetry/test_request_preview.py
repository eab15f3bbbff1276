"""ENVIRONMENT=development: debug previews of JSON bodies POSTed to /v1, cut short, never a secret."""

from __future__ import annotations

import json
import re

from app.request_preview import request_preview
from tests.support.fake_provider import json_reply

LONG = "one two three four five six seven eight nine ten eleven twelve"


def preview_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "request preview" in line]


def test_messages_are_cut_to_words_and_count_with_a_note():
    body = {"model": "openai/gpt-4o", "stream": True, "temperature": 0.2,
            "messages": [{"role": "user", "content": LONG} for _ in range(5)]}
    shown = request_preview(body, words=3, max_messages=2)
    assert shown["messages"] == [{"role": "user", "content": "one two three..."}] * 2
    assert shown["_truncated"] == "showing 2 of 5 messages"
    assert {k: shown[k] for k in ("model", "stream", "temperature")} == \
        {"model": "openai/gpt-4o", "stream": True, "temperature": 0.2}
    assert len(body["messages"]) == 5 and body["messages"][0]["content"] == LONG  # the body itself is untouched


def test_parts_images_and_tool_arguments_are_cut_too():
    body = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": LONG},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "' + LONG + '"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "short"},
    ], "tools": [{"description": "x" * 5000}]}
    shown = request_preview(body, words=2, max_messages=10)
    assert shown["messages"][0]["content"] == [{"type": "text", "text": "one two..."},
                                               {"type": "image_url", "image_url": "[image]"}]
    assert shown["messages"][1]["tool_calls"][0]["function"] == {"name": "search", "arguments": '{"q": "one...'}
    assert shown["messages"][2]["content"] == "short"
    assert "_truncated" not in shown
    assert len(shown["tools"][0]["description"]) == 1024 + 3


def test_development_debug_logs_a_preview_without_credentials(make_app, fake_provider, capsys):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c1", "choices": []}))
    app = make_app({"ENVIRONMENT": "development", "LOG_LEVEL": "debug", "DEBUG_CONTENT_TRUNCATE_WORDS": "2",
                    "DEBUG_MAX_MESSAGES": "1", "OPENAI_API_KEY": "sk-provider-secret-123",
                    "OPENAI_API_URL": fake_provider.url + "/v1"})
    response = app.test_client().post(
        "/v1/chat/completions", headers={"Authorization": "Bearer caller-token-456"},
        json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": LONG},
                                                     {"role": "user", "content": "my key is sk-provider-secret-123"}]})
    assert response.status_code == 200
    assert fake_provider.requests[-1].json()["messages"][0]["content"] == LONG  # previewing took nothing away
    lines = preview_lines(capsys.readouterr().err)
    assert len(lines) == 1
    line = lines[0]
    assert "POST /v1/chat/completions" in line
    assert '"content": "one two..."' in line and "showing 1 of 2 messages" in line
    assert "three" not in line and "caller-token-456" not in line and "sk-provider-secret-123" not in line


def test_secret_inside_a_preview_is_redacted(make_app, capsys):
    app = make_app({"ENVIRONMENT": "development", "LOG_LEVEL": "debug", "OPENAI_API_KEY": "sk-provider-secret-123"})
    app.test_client().post("/v1/not-a-route", json={"input": "sk-provider-secret-123", "model": "openai/x"})
    line = preview_lines(capsys.readouterr().err)[0]
    assert "sk-provider-secret-123" not in line and "[REDACTED]" in line


def test_body_that_is_not_json_is_cut(make_app, capsys):
    app = make_app({"ENVIRONMENT": "development", "LOG_LEVEL": "debug"})
    app.test_client().post("/v1/not-a-route", data="{" + "x" * 3000, content_type="application/json")
    line = preview_lines(capsys.readouterr().err)[0]
    shown = json.loads(re.search(r'preview=("(?:[^"\\]|\\.)*")', line)[1])  # the JSON string logged
    assert shown == "{" + "x" * 1023


def test_no_preview_in_production_or_above_debug(make_app, capsys):
    body = {"messages": [{"role": "user", "content": LONG}]}
    make_app({"LOG_LEVEL": "debug"}).test_client().post("/v1/not-a-route", json=body)
    make_app({"ENVIRONMENT": "development", "LOG_LEVEL": "info"}).test_client().post("/v1/not-a-route", json=body)
    assert preview_lines(capsys.readouterr().err) == []
