"""POST /v1/responses (stream and not) and GET/DELETE /v1/responses/{id}, through the real gunicorn
gateway, with the real `openai` SDK, against fake providers that check what they receive."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import openai
import pytest
import requests

from tests.api.conftest import GATEWAY_KEY, PROVIDER_KEYS, access_line, request_id
from tests.api.shapes import named_sse_reply, response_events, response_object
from tests.support.fake_provider import Recorded, Reply, json_reply


@pytest.fixture
def sdk(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=20) as client:
        yield client


def test_create_routes_by_prefix_and_forwards_the_body(sdk, gateway, fakes):
    fakes.openai.on("POST", "/v1/responses", json_reply(response_object("Hi there")))
    rid = request_id()
    response = sdk.responses.create(model="openai/gpt-4o", input="Say hi", instructions="be brief",
                                    temperature=0.2, store=False, reasoning={"effort": "low"},
                                    extra_body={"provider_specific": {"kept": True}},
                                    extra_headers={"X-Request-ID": rid})
    assert response.output_text == "Hi there"
    sent = fakes.openai.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEYS['openai']}"  # never the gateway's key
    assert sent.json() == {"model": "gpt-4o", "input": "Say hi", "instructions": "be brief", "temperature": 0.2,
                           "store": False, "reasoning": {"effort": "low"}, "provider_specific": {"kept": True}}
    line = access_line(gateway, rid)
    assert (line["provider"], line["model"], line["status"]) == ("openai", "gpt-4o", 200)
    assert line["usage"]["prompt_tokens"] == 12 and line["usage"]["completion_tokens"] == 5
    assert line["usage"]["total_tokens"] == 17


def test_stream_keeps_event_lines_and_counts_usage_from_response_completed(sdk, gateway, fakes):
    events = response_events(["Hel", "lo", "!"])
    fakes.groq.on("POST", "/openai/v1/responses", named_sse_reply(events))
    rid = request_id()
    with sdk.responses.create(model="groq/llama-3.3-70b", input="hi", stream=True,
                              extra_headers={"X-Request-ID": rid}) as stream:
        seen = list(stream)
    assert [event.type for event in seen] == [name for name, _ in events]
    assert "".join(event.delta for event in seen if event.type == "response.output_text.delta") == "Hello!"
    assert seen[-1].response.usage.total_tokens == 17
    sent = fakes.groq.requests[-1]
    assert sent.json()["model"] == "llama-3.3-70b" and sent.json()["stream"] is True
    assert "stream_options" not in sent.json()  # chat's usage request does not apply to this API
    assert sent.headers["accept"] == "text/event-stream"
    assert access_line(gateway, rid)["usage"]["total_tokens"] == 17


def test_stream_bytes_reach_the_client_as_the_provider_sent_them(gateway, fakes):
    events = response_events(["a", "b"])
    gate = threading.Event()
    fakes.openai.on("POST", "/v1/responses", named_sse_reply(events, pauses=[0, 0, gate, 0]))
    with requests.post(gateway.url + "/v1/responses", stream=True, timeout=20,
                       headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
                       json={"model": "openai/gpt-4o", "input": "hi", "stream": True}) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert answer.headers["X-Accel-Buffering"] == "no"
        chunks = answer.iter_content(chunk_size=None)
        received = b""
        while received.count(b"\n\n") < 2:  # the first two events arrive while the third is held back
            received += next(chunks)
        gate.set()
        received += b"".join(chunks)
    expected = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    assert received == expected


def test_a_provider_without_the_responses_api_answers_501(sdk, fakes):
    with pytest.raises(openai.APIStatusError) as info:
        sdk.responses.create(model="mistral/mistral-large-latest", input="hi")
    assert info.value.status_code == 501
    assert info.value.body["type"] == "unsupported" and "no responses endpoint" in info.value.body["message"]
    assert fakes.mistral.requests == []


def test_denied_models_and_images_are_refused_before_any_call(sdk, fakes):
    with pytest.raises(openai.PermissionDeniedError):
        sdk.responses.create(model="openai/forbidden", input="hi")
    image = [{"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
                                          {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model="openai/gpt-4o", input=image)
    assert info.value.body["code"] == "vision_disabled"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model="openai/gpt-4o", input=42)  # type: ignore[arg-type]
    assert "input" in info.value.body["message"]
    assert fakes.openai.requests == []


def test_the_providers_own_error_passes_through(sdk, fakes):
    body = {"error": {"message": "Invalid 'input'.", "type": "invalid_request_error", "param": "input",
                      "code": "invalid_value"}}
    fakes.openai.on("POST", "/v1/responses", json_reply(body, status=400))
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model="openai/gpt-4o", input="hi")
    assert info.value.body == body["error"]


def test_a_stream_cut_mid_way_ends_with_the_responses_error_event(gateway, fakes):
    first = response_events(["partial"])[:2]
    chunks = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in first]
    # the provider stops sending: CLIENT_TIMEOUT (3 s) ends the stream with an error event
    fakes.openai.on("POST", "/v1/responses", Reply(headers={"Content-Type": "text/event-stream"},
                                                   chunks=[*chunks, b""], pauses=[0, 0, 8]))
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=20) as sdk:
        stream = sdk.responses.create(model="openai/gpt-4o", input="hi", stream=True)
        types = []
        with pytest.raises(openai.APIError) as info:
            for event in stream:
                types.append(event.type)
    assert types == ["response.created", "response.output_text.delta"]
    assert "stopped sending" in info.value.message


def test_get_and_delete_a_kept_response_at_the_one_provider_that_keeps_them(sdk, fakes):
    kept = response_object("Stored answer", response_id="resp_kept_1")
    seen: list[Recorded] = []

    def answer(recorded: Recorded) -> Reply:
        seen.append(recorded)
        if recorded.method == "DELETE":
            return json_reply({"id": "resp_kept_1", "object": "response", "deleted": True})
        return json_reply(kept)

    fakes.openai.on("GET", "*", answer).on("DELETE", "*", answer)
    fetched = sdk.responses.retrieve("resp_kept_1", include=["message.output_text.logprobs"])
    assert fetched.output_text == "Stored answer"
    sdk.responses.delete("resp_kept_1")
    assert [(r.method, r.raw_path.split("?")[0]) for r in seen] == [
        ("GET", "/v1/responses/resp_kept_1"), ("DELETE", "/v1/responses/resp_kept_1")]
    assert ("include[]", "message.output_text.logprobs") in seen[0].query
    assert seen[0].headers["authorization"] == f"Bearer {PROVIDER_KEYS['openai']}"
    # a provider named with ?provider= that keeps no responses: 501, nothing sent
    with pytest.raises(openai.APIStatusError) as info:
        sdk.responses.retrieve("resp_kept_1", extra_query={"provider": "groq"})
    assert info.value.status_code == 501
    assert fakes.groq.requests == []
