"""ALLOWED_MODELS cannot be dodged (issue 20, item 3): an entry with a provider matches that
provider only, and the proxy refuses (403) a body whose model it cannot check while a list is
set, whatever its framing; duplicate keys in a JSON body are a 400 everywhere. Through the real
gunicorn gateway, with a fake provider behind both `openai` and `deepseek`."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from tests.support.fake_provider import json_reply
from tests.support.live_gateway import GatewayLauncher

CHAT = "/v1/chat/completions"
ALLOWED = "openai/gpt-4o-mini"
COMPLETION = {"id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


@pytest.fixture(scope="module")
def gateway(shared_fake, tmp_path_factory):
    launcher = GatewayLauncher(tmp_path_factory.mktemp("allow-list"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                    "DEEPSEEK_API_URL": shared_fake.url + "/deepseek", "DEEPSEEK_API_KEY": "sk-deepseek",
                    "ALLOWED_MODELS": f"{ALLOWED},text-embedding-3-small"})
    launcher.stop_all()


@pytest.fixture
def provider(fake):
    fake.on("POST", "/v1/chat/completions", json_reply(COMPLETION))
    fake.on("POST", "/deepseek/chat/completions", json_reply(COMPLETION))
    return fake


def chat(gateway, model: str, **params) -> requests.Response:
    return requests.post(gateway.url + CHAT, params=params, timeout=10,
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def refused(response: requests.Response, status: int = 403) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["error"]


def test_an_entry_with_a_provider_matches_that_provider_only(gateway, provider):
    assert chat(gateway, ALLOWED).status_code == 200
    assert chat(gateway, "gpt-4o-mini", provider="openai").status_code == 200
    assert refused(chat(gateway, "deepseek/openai/gpt-4o-mini"))["code"] == "model_not_allowed"
    assert refused(chat(gateway, ALLOWED, provider="deepseek"))["code"] == "model_not_allowed"
    assert not any(r.path.startswith("/deepseek") for r in provider.requests)


def test_a_bare_entry_still_matches_any_provider(gateway, provider):
    assert chat(gateway, "deepseek/text-embedding-3-small").status_code == 200
    assert chat(gateway, "text-embedding-3-small", provider="deepseek").status_code == 200
    assert refused(chat(gateway, "deepseek/openai/text-embedding-3-small"))["code"] == "model_not_allowed"


def test_duplicate_keys_are_a_400_on_the_unified_api(gateway, provider):
    body = b'{"model": "openai/gpt-4o-mini", "model": "deepseek/evil", "messages": []}'
    error = refused(requests.post(gateway.url + CHAT, data=body, timeout=10,
                                  headers={"Content-Type": "application/json"}), 400)
    assert error["code"] == "invalid_json" and "model" in error["message"]
    assert not provider.requests


PROXY_CHAT = "/proxy/openai/chat/completions"
DISALLOWED_BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()

DODGES = {
    "JSON as text/plain": ({"Content-Type": "text/plain"}, DISALLOWED_BODY),
    "JSON without a content type": ({}, DISALLOWED_BODY),
    "JSON with a BOM": ({"Content-Type": "application/json"}, b"\xef\xbb\xbf" + DISALLOWED_BODY),
    "BOM and text/plain": ({"Content-Type": "text/plain"}, b"\xef\xbb\xbf" + DISALLOWED_BODY),
    "gzip-encoded JSON": ({"Content-Type": "application/json", "Content-Encoding": "gzip"},
                          gzip.compress(DISALLOWED_BODY)),
    "a JSON array": ({"Content-Type": "application/json"}, b"[" + DISALLOWED_BODY + b"]"),
    "form": ({"Content-Type": "application/x-www-form-urlencoded"}, b"model=gpt-4o&prompt=hi"),
    "multipart": ({"Content-Type": "multipart/form-data; boundary=XyZ"},
                  (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                   b"Content-Type: audio/wav\r\n\r\nRIFF....\r\n--XyZ\r\n"
                   b"Content-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n")),
    "an encoding it cannot read": ({"Content-Type": "application/json", "Content-Encoding": "br"}, b"\x1b\x00"),
    "a model that is not a string": ({"Content-Type": "application/json"},
                                     b'{"model": ["gpt-4o-mini", "gpt-4o"], "messages": []}'),
    "a body that is not JSON": ({"Content-Type": "application/octet-stream"}, b"\x00\x01model=gpt-4o"),
}


@pytest.mark.parametrize("headers,body", DODGES.values(), ids=DODGES.keys())
def test_the_proxy_refuses_a_body_whose_model_it_cannot_pass(gateway, provider, headers, body):
    answer = requests.post(gateway.url + PROXY_CHAT, data=body, headers=headers, timeout=10)
    refused(answer, 403)
    assert not provider.requests  # nothing reached the provider


def test_duplicate_model_keys_are_a_400_on_the_proxy(gateway, provider):
    body = b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": []}'
    error = refused(requests.post(gateway.url + PROXY_CHAT, data=body, timeout=10,
                                  headers={"Content-Type": "application/json"}), 400)
    assert "appears twice" in error["message"]
    assert not provider.requests


@pytest.mark.parametrize("path", ["/proxy/openai/files", "/proxy/openai/batches", "/proxy/openai/uploads",
                                  "/proxy/openai/batches/batch_1/cancel"])
def test_the_proxy_refuses_paths_that_call_a_model_later(gateway, provider, path):
    error = refused(requests.post(gateway.url + path, json={"input_file_id": "f", "endpoint": "/v1/chat/completions"},
                                  timeout=10))
    assert "ALLOWED_MODELS" in error["message"]
    assert not provider.requests


def test_the_proxy_checks_a_model_named_in_the_path(gateway, provider):
    provider.on("POST", "*", json_reply({"ok": True}))
    refused(requests.post(gateway.url + "/proxy/openai/models/gpt-4o:generateContent", json={"contents": []},
                          timeout=10))
    assert requests.post(gateway.url + "/proxy/openai/models/gpt-4o-mini:generateContent", json={"contents": []},
                         timeout=10).status_code == 200


ALLOWED_BODIES = {
    "JSON": ({"Content-Type": "application/json"}, json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()),
    "BOM and text/plain": ({"Content-Type": "text/plain"},
                           b"\xef\xbb\xbf" + json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()),
    "gzip": ({"Content-Type": "application/json", "Content-Encoding": "gzip"},
             gzip.compress(json.dumps({"model": "gpt-4o-mini", "messages": []}).encode())),
    "form": ({"Content-Type": "application/x-www-form-urlencoded"}, b"model=gpt-4o-mini&prompt=hi"),
    "multipart": ({"Content-Type": "multipart/form-data; boundary=XyZ"},
                  (b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-mini\r\n--XyZ\r\n"
                   b"Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                   b"Content-Type: audio/wav\r\n\r\nRIFF\x00\x01--X\r\n--XyZ--\r\n")),
}


@pytest.mark.parametrize("headers,body", ALLOWED_BODIES.values(), ids=ALLOWED_BODIES.keys())
def test_an_allowed_model_passes_and_the_body_goes_upstream_as_sent(gateway, provider, headers, body):
    answer = requests.post(gateway.url + PROXY_CHAT, data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    assert provider.requests[-1].body == body
    if "Content-Encoding" in headers:
        assert provider.requests[-1].headers["content-encoding"] == headers["Content-Encoding"]


def test_bodiless_reads_still_pass(gateway, provider):
    provider.on("GET", "*", json_reply({"object": "list", "data": []}))
    assert requests.get(gateway.url + "/proxy/openai/files", timeout=10).status_code == 200
    assert requests.get(gateway.url + "/proxy/openai/models", timeout=10).status_code == 200
