"""Request validation and routing decisions, through the Flask test client (no provider is called)."""

import pytest

USER = [{"role": "user", "content": "hi"}]
IMAGE = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]


@pytest.fixture
def gateway(make_app):
    return make_app({"OPENAI_API_KEY": "sk-test", "OPENAI_API_URL": "http://127.0.0.1:9/v1"}).test_client()


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    return response.get_json()["error"]


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"messages": USER}, "model", "Missing data"),
    ({"model": "", "messages": USER}, "model", "non-empty string"),
    ({"model": 42, "messages": USER}, "model", "Not a valid string"),
    ({"model": "openai/gpt-4o"}, "messages", "Missing data"),
    ({"model": "openai/gpt-4o", "messages": []}, "messages", "non-empty list"),
    ({"model": "openai/gpt-4o", "messages": ["hi"]}, "messages.0", "Invalid input type"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "Must be one of"),
    ({"model": "openai/gpt-4o", "messages": [{"content": "x"}]}, "messages.0.role", "Missing data"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages.0.content", "string or a list"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": None}]}, "messages.0.content", "null only"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
     "messages.0.content", "string `type`"),
    ({"model": "openai/gpt-4o", "messages": USER, "stream": "yes"}, "stream", "true or false"),
    ({"model": "openai/gpt-4o", "messages": USER, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"model": "openai/gpt-4o", "messages": USER, "max_tokens": 1.5}, "max_tokens", "integer"),
    ({"model": "openai/gpt-4o", "messages": USER, "max_tokens": True}, "max_tokens", "integer"),
    ({"model": "openai/gpt-4o", "messages": USER, "tools": {"type": "function"}}, "tools", "Not a valid list"),
])
def test_invalid_chat_bodies_name_the_field(gateway, body, field, says):
    error = error_of(gateway.post("/v1/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert f"{field}:" in error["message"] and says in error["message"]


def test_all_problems_are_listed_at_once(gateway):
    error = error_of(gateway.post("/v1/chat/completions", json={"model": "", "messages": [], "stream": 1}), 400)
    assert all(f in error["message"] for f in ("model:", "messages:", "stream:"))


def test_assistant_message_with_tool_calls_may_have_null_content(gateway):
    body = {"model": "nobody/x", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                                "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "sunny"}]}
    # valid: the request gets as far as routing (unknown provider)
    assert error_of(gateway.post("/v1/chat/completions", json=body), 400)["code"] == "unknown_provider"


def test_bad_json_non_json_and_non_object_bodies(gateway):
    bad = error_of(gateway.post("/v1/chat/completions", data='{"model": ', content_type="application/json"), 400)
    assert bad["code"] == "invalid_json" and "not valid JSON" in bad["message"]
    listed = error_of(gateway.post("/v1/chat/completions", json=[1, 2]), 400)
    assert "JSON object" in listed["message"]
    form = error_of(gateway.post("/v1/chat/completions", data={"model": "x"}), 415)
    assert "application/json" in form["message"]
    none = error_of(gateway.post("/v1/chat/completions"), 415)
    assert "Content-Type" in none["message"]


def test_body_over_the_limit_is_413(make_app):
    client = make_app({"SERVER_MAX_REQUEST_BODY_SIZE": "1KiB", "OPENAI_API_KEY": "sk"}).test_client()
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x" * 2000}]}
    error = error_of(client.post("/v1/chat/completions", json=body), 413)
    assert "SERVER_MAX_REQUEST_BODY_SIZE" in error["message"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/completions", {"model": "openai/x"}, "prompt"),
    ("/v1/completions", {"model": "openai/x", "prompt": []}, "prompt"),
    ("/v1/completions", {"model": "openai/x", "prompt": "hi", "stream": "no"}, "stream"),
    ("/v1/embeddings", {"model": "openai/x"}, "input"),
    ("/v1/embeddings", {"input": "x"}, "model"),
])
def test_invalid_completion_and_embedding_bodies(gateway, path, body, field):
    assert f"{field}:" in error_of(gateway.post(path, json=body), 400)["message"]


def test_unknown_and_unconfigured_providers_say_what_to_do(gateway):
    unknown = error_of(gateway.post("/v1/chat/completions", json={"model": "nobody/x", "messages": USER}), 400)
    assert unknown["code"] == "unknown_provider" and "openai" in unknown["message"]
    bare = error_of(gateway.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}), 400)
    assert "provider/model" in bare["message"]
    unset = error_of(gateway.post("/v1/chat/completions", json={"model": "groq/llama", "messages": USER}), 400)
    assert unset["code"] == "provider_not_configured" and "GROQ_API_KEY" in unset["message"]
    param = error_of(gateway.post("/v1/chat/completions?provider=nobody", json={"model": "x", "messages": USER}), 400)
    assert param["code"] == "unknown_provider"


def test_denied_model_is_403_on_every_endpoint(make_app):
    client = make_app({"OPENAI_API_KEY": "sk", "DISALLOWED_MODELS": "gpt-4o,openai/text-embedding-3-small"}).test_client()
    for path, body in [("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": USER}),
                       ("/v1/chat/completions?provider=openai", {"model": "gpt-4o", "messages": USER}),
                       ("/v1/completions", {"model": "openai/gpt-4o", "prompt": "x"}),
                       ("/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"})]:
        error = error_of(client.post(path, json=body), 403)
        assert error["type"] == "permission_error"


def test_endpoint_a_provider_lacks_is_501(make_app):
    client = make_app({"ANTHROPIC_API_KEY": "sk", "GROQ_API_KEY": "gsk"}).test_client()
    error = error_of(client.post("/v1/embeddings", json={"model": "anthropic/claude", "input": "x"}), 501)
    assert error["type"] == "unsupported" and "anthropic" in error["message"]
    error = error_of(client.post("/v1/completions", json={"model": "groq/llama", "prompt": "x"}), 501)
    assert error["type"] == "unsupported" and "completions" in error["message"]


def test_images_refused_when_vision_is_off(gateway):
    error = error_of(gateway.post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": IMAGE}), 400)
    assert error["code"] == "vision_disabled" and "ENABLE_VISION" in error["message"]


def test_images_refused_by_a_provider_without_vision(make_app):
    client = make_app({"ENABLE_VISION": "true", "DEEPSEEK_API_KEY": "sk"}).test_client()
    error = error_of(client.post("/v1/chat/completions", json={"model": "deepseek/chat", "messages": IMAGE}), 400)
    assert error["code"] == "vision_unsupported" and "deepseek" in error["message"]


PLAIN = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("extra", [
    {}, {"stream": True}, {"stream": False, "max_tokens": 5}, {"tools": [{"type": "function"}]},
    {"stream_options": {"include_usage": True}}, {"temperature": 0.2, "top_k": 3}, {"max_tokens": None},
])
def test_fast_path_only_passes_what_the_schema_passes(extra):
    from app.schemas.chat import CHAT, plainly_valid_chat

    payload = {**PLAIN, **extra}
    assert plainly_valid_chat(payload)
    assert CHAT.validate(payload) == {}


@pytest.mark.parametrize("change", [
    {"model": ""}, {"model": 3}, {"messages": []}, {"messages": [{"role": "robot", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}]}, {"messages": ["hi"]}, {"stream": "yes"}, {"stream": None},
    {"max_tokens": 0}, {"max_tokens": True}, {"max_tokens": 2.5}, {"stream_options": []}, {"tools": {}},
    {"tools": ["x"]}, {"messages": [{"role": "user", "content": "x", "tool_calls": "nope"}]},
])
def test_fast_path_leaves_every_invalid_body_to_the_schema(change):
    from app.schemas.chat import CHAT, plainly_valid_chat

    payload = {**PLAIN, **change}
    assert not plainly_valid_chat(payload)
    assert CHAT.validate(payload) != {}
