"""Each provider's own model-list shape, as captured from its API, becomes the gateway's list.

The network is faked at the requests boundary with `responses`; the app is the real one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import responses
from responses import matchers

from app.extensions import state
from app.providers.routing import resolve

OPENAI = "https://api.openai.com/v1/models"
GROQ = "https://api.groq.com/openai/v1/models"
GOOGLE = "https://generativelanguage.googleapis.com/v1beta/openai/models"
ANTHROPIC = "https://api.anthropic.com/v1/models"
COHERE = "https://api.cohere.ai/v1/models"
CLOUDFLARE_URL = "https://api.cloudflare.com/client/v4/accounts/0a1b2c3d4e/ai"
CLOUDFLARE = CLOUDFLARE_URL + "/models/search"
OLLAMA = "http://ollama:8080/v1/models"

OPENAI_LIST = {"object": "list", "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"},
]}
GROQ_LIST = {"object": "list", "data": [
    {"id": "meta-llama/llama-4-scout-17b-16e-instruct", "object": "model", "created": 1743874824,
     "owned_by": "Meta", "active": True, "context_window": 131072, "public_apps": None,
     "max_completion_tokens": 8192},
    {"id": "llama-3.3-70b-versatile", "object": "model", "created": 1733447754, "owned_by": "Meta",
     "active": True, "context_window": 131072, "public_apps": None, "max_completion_tokens": 32768},
]}
GOOGLE_LIST = {"object": "list", "data": [
    {"id": "models/gemini-2.5-flash", "object": "model", "owned_by": "google"},
    {"id": "models/gemini-2.0-flash", "object": "model", "owned_by": "google"},
    {"id": "models/text-embedding-004", "object": "model", "owned_by": "google"},
]}
OLLAMA_LIST = {"object": "list", "data": [
    {"id": "phi3:3.8b", "object": "model", "created": 1718031213, "owned_by": "library"},
]}
ANTHROPIC_PAGE_1 = {
    "data": [
        {"type": "model", "id": "claude-opus-4-20250514", "display_name": "Claude Opus 4",
         "created_at": "2025-05-22T00:00:00Z"},
        {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
         "created_at": "2025-05-22T00:00:00Z"},
    ],
    "has_more": True, "first_id": "claude-opus-4-20250514", "last_id": "claude-sonnet-4-20250514",
}
ANTHROPIC_PAGE_2 = {
    "data": [
        {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5",
         "created_at": "2024-10-22T00:00:00Z"},
    ],
    "has_more": False, "first_id": "claude-3-5-haiku-20241022", "last_id": "claude-3-5-haiku-20241022",
}
COHERE_PAGE_1 = {"models": [
    {"name": "command-a-03-2025", "endpoints": ["generate", "chat", "summarize"], "finetuned": False,
     "context_length": 256000, "supports_vision": False, "default_endpoints": ["chat"],
     "tokenizer_url": "https://storage.googleapis.com/cohere-public/tokenizers/command-a-03-2025.json"},
    {"name": "embed-v4.0", "endpoints": ["embed"], "finetuned": False, "context_length": 128000,
     "supports_vision": True, "default_endpoints": ["embed"],
     "tokenizer_url": "https://storage.googleapis.com/cohere-public/tokenizers/embed-v4.0.json"},
], "next_page_token": "eyJvZmZzZXQiOjJ9"}
COHERE_PAGE_2 = {"models": [
    {"name": "command-r7b-12-2024", "endpoints": ["generate", "chat", "summarize"], "finetuned": False,
     "context_length": 132000, "supports_vision": False, "default_endpoints": [],
     "tokenizer_url": "https://storage.googleapis.com/cohere-public/tokenizers/command-r7b-12-2024.json"},
]}
CLOUDFLARE_LIST = {"result": [
    {"id": "bc451aef-f81c-4b26-a6b6-4d7b6b0c4b3a", "name": "@cf/meta/llama-3.1-8b-instruct",
     "description": "Llama 3.1 8B", "task": {"id": "c329a1f9", "name": "Text Generation"},
     "created_at": "2024-04-01 16:07:14.291", "tags": [], "properties": []},
    {"id": "e2b9c4f1-1d27-4a5e-9c0b-0b6d3c1f9a77", "name": "@cf/baai/bge-base-en-v1.5",
     "description": "BGE embeddings", "task": {"id": "0137cdcf", "name": "Text Embeddings"},
     "created_at": "2024-04-01 16:07:14.1", "tags": [], "properties": []},
], "success": True, "errors": [], "messages": [],
    "result_info": {"page": 1, "per_page": 100, "count": 2, "total_count": 2}}

KEYS = {"OPENAI_API_KEY": "sk-openai-test-1", "GROQ_API_KEY": "gsk_groq_test_2", "GOOGLE_API_KEY": "AIza-google-3",
        "ANTHROPIC_API_KEY": "sk-ant-test-4", "COHERE_API_KEY": "co-test-5", "CLOUDFLARE_API_KEY": "cf-test-6",
        "CLOUDFLARE_ACCOUNT_ID": "0a1b2c3d4e", "OLLAMA_API_URL": "http://ollama:8080/v1", "OLLAMA_API_KEY": "never-sent-7"}


def unix(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client(make_app):
    return make_app(KEYS).test_client()


def listed(client, provider: str) -> dict:
    response = client.get(f"/v1/models?provider={provider}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["provider"] == provider and response.json["object"] == "list"
    return response.json


def test_openai_shape_gets_prefixed_ids_and_served_by(client, upstream):
    upstream.get(OPENAI, json=OPENAI_LIST)
    assert listed(client, "openai")["data"] == [
        {"id": "openai/gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system", "served_by": "openai"},
        {"id": "openai/gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system", "served_by": "openai"},
        {"id": "openai/text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system",
         "served_by": "openai"},
    ]
    assert upstream.calls[0].request.headers["Authorization"] == "Bearer sk-openai-test-1"


def test_groq_ids_with_a_slash_keep_their_full_name(client, upstream):
    upstream.get(GROQ, json=GROQ_LIST)
    data = listed(client, "groq")["data"]
    assert [m["id"] for m in data] == ["groq/meta-llama/llama-4-scout-17b-16e-instruct", "groq/llama-3.3-70b-versatile"]
    assert data[0] == {"id": "groq/meta-llama/llama-4-scout-17b-16e-instruct", "object": "model",
                       "created": 1743874824, "owned_by": "Meta", "served_by": "groq"}


def test_google_ids_lose_models_prefix_so_they_work_in_chat(client, upstream):
    upstream.get(GOOGLE, json=GOOGLE_LIST)
    data = listed(client, "google")["data"]
    assert [m["id"] for m in data] == ["google/gemini-2.5-flash", "google/gemini-2.0-flash", "google/text-embedding-004"]
    assert data[0] == {"id": "google/gemini-2.5-flash", "object": "model", "created": 0, "owned_by": "google",
                       "served_by": "google"}
    with client.application.app_context():
        route = resolve(data[0]["id"], None, state().providers)
    assert (route.provider.id, route.model) == ("google", "gemini-2.5-flash")


def test_anthropic_pages_are_followed_with_after_id(client, upstream):
    upstream.get(ANTHROPIC, json=ANTHROPIC_PAGE_2,
                 match=[matchers.query_param_matcher({"limit": "1000", "after_id": "claude-sonnet-4-20250514"})])
    upstream.get(ANTHROPIC, json=ANTHROPIC_PAGE_1, match=[matchers.query_param_matcher({"limit": "1000"})])
    data = listed(client, "anthropic")["data"]
    assert data == [
        {"id": "anthropic/claude-opus-4-20250514", "object": "model", "created": unix("2025-05-22T00:00:00"),
         "owned_by": "anthropic", "served_by": "anthropic"},
        {"id": "anthropic/claude-sonnet-4-20250514", "object": "model", "created": unix("2025-05-22T00:00:00"),
         "owned_by": "anthropic", "served_by": "anthropic"},
        {"id": "anthropic/claude-3-5-haiku-20241022", "object": "model", "created": unix("2024-10-22T00:00:00"),
         "owned_by": "anthropic", "served_by": "anthropic"},
    ]
    assert len(upstream.calls) == 2
    for call in upstream.calls:  # Anthropic's own auth style
        assert call.request.headers["x-api-key"] == "sk-ant-test-4"
        assert call.request.headers["anthropic-version"] == "2023-06-01"
        assert "Authorization" not in call.request.headers


def test_anthropic_that_repeats_a_page_forever_is_not_followed_forever(client, upstream):
    upstream.get(ANTHROPIC, json=ANTHROPIC_PAGE_1)  # always has_more, always the same last_id
    data = listed(client, "anthropic")["data"]
    assert len(upstream.calls) == 2
    assert [m["id"] for m in data] == ["anthropic/claude-opus-4-20250514", "anthropic/claude-sonnet-4-20250514"]


def test_a_model_listed_twice_is_listed_once(client, upstream):
    """Pages that overlap (a provider's paging bug, or a model added while paging) list each id once."""
    overlapping = {**ANTHROPIC_PAGE_2, "data": [ANTHROPIC_PAGE_1["data"][1], *ANTHROPIC_PAGE_2["data"]]}
    upstream.get(ANTHROPIC, json=overlapping,
                 match=[matchers.query_param_matcher({"limit": "1000", "after_id": "claude-sonnet-4-20250514"})])
    upstream.get(ANTHROPIC, json=ANTHROPIC_PAGE_1, match=[matchers.query_param_matcher({"limit": "1000"})])
    upstream.get(OLLAMA, json={"data": [*OLLAMA_LIST["data"], *OLLAMA_LIST["data"]]})
    assert [m["id"] for m in listed(client, "anthropic")["data"]] == [
        "anthropic/claude-opus-4-20250514", "anthropic/claude-sonnet-4-20250514", "anthropic/claude-3-5-haiku-20241022"]
    assert [m["id"] for m in listed(client, "ollama")["data"]] == ["ollama/phi3:3.8b"]


def test_cohere_pages_are_followed_with_page_token(client, upstream):
    upstream.get(COHERE, json=COHERE_PAGE_2,
                 match=[matchers.query_param_matcher({"page_size": "1000", "page_token": "eyJvZmZzZXQiOjJ9"})])
    upstream.get(COHERE, json=COHERE_PAGE_1, match=[matchers.query_param_matcher({"page_size": "1000"})])
    data = listed(client, "cohere")["data"]
    assert data == [
        {"id": "cohere/command-a-03-2025", "object": "model", "created": 0, "owned_by": "cohere", "served_by": "cohere"},
        {"id": "cohere/embed-v4.0", "object": "model", "created": 0, "owned_by": "cohere", "served_by": "cohere"},
        {"id": "cohere/command-r7b-12-2024", "object": "model", "created": 0, "owned_by": "cohere",
         "served_by": "cohere"},
    ]
    assert all(c.request.headers["Authorization"] == "Bearer co-test-5" for c in upstream.calls)


def test_cloudflare_lists_model_names_that_chat_takes(client, upstream):
    upstream.get(CLOUDFLARE, json=CLOUDFLARE_LIST,
                 match=[matchers.query_param_matcher({"per_page": "100", "page": "1"})])
    data = listed(client, "cloudflare")["data"]
    assert data == [
        {"id": "cloudflare/@cf/meta/llama-3.1-8b-instruct", "object": "model",
         "created": unix("2024-04-01T16:07:14"), "owned_by": "cloudflare", "served_by": "cloudflare"},
        {"id": "cloudflare/@cf/baai/bge-base-en-v1.5", "object": "model",
         "created": unix("2024-04-01T16:07:14"), "owned_by": "cloudflare", "served_by": "cloudflare"},
    ]
    assert upstream.calls[0].request.headers["Authorization"] == "Bearer cf-test-6"
    assert upstream.calls[0].request.url.startswith(CLOUDFLARE_URL)  # the account id filled in


def test_cloudflare_search_is_followed_page_by_page(client, upstream):
    def page(number: int, names: list[str]) -> dict:
        return {"success": True, "result": [{"id": f"uuid-{name}", "name": name} for name in names],
                "result_info": {"page": number, "per_page": 100, "count": len(names), "total_count": 102}}

    first = [f"@cf/test/model-{i}" for i in range(100)]
    upstream.get(CLOUDFLARE, json=page(1, first), match=[matchers.query_param_matcher({"per_page": "100", "page": "1"})])
    upstream.get(CLOUDFLARE, json=page(2, ["@cf/a/b", "@cf/c/d"]),
                 match=[matchers.query_param_matcher({"per_page": "100", "page": "2"})])
    ids = [m["id"] for m in listed(client, "cloudflare")["data"]]
    assert len(ids) == 102 and ids[-2:] == ["cloudflare/@cf/a/b", "cloudflare/@cf/c/d"]
    assert len(upstream.calls) == 2


def test_cloudflare_unsuccessful_answer_is_a_bad_gateway_not_an_empty_list(client, upstream):
    upstream.get(CLOUDFLARE, json={"result": None, "success": False, "errors": [{"code": 10000, "message": "x"}],
                                   "messages": []})
    response = client.get("/v1/models?provider=cloudflare")
    assert response.status_code == 502
    assert response.json["error"]["type"] == "upstream_error"


def test_ollama_is_asked_without_a_credential(client, upstream):
    upstream.get(OLLAMA, json=OLLAMA_LIST)
    assert listed(client, "ollama")["data"] == [
        {"id": "ollama/phi3:3.8b", "object": "model", "created": 1718031213, "owned_by": "library",
         "served_by": "ollama"}]
    assert "Authorization" not in upstream.calls[0].request.headers


def test_provider_error_passes_through_with_its_status_and_body(client, upstream):
    body = b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}'
    upstream.get(OPENAI, body=body, status=401, content_type="application/json")
    response = client.get("/v1/models?provider=openai")
    assert response.status_code == 401
    assert response.get_data() == body


def test_a_body_that_is_not_a_model_list_is_a_bad_gateway(client, upstream):
    upstream.get(OPENAI, body=b"<html>maintenance</html>", content_type="text/html")
    upstream.get(GROQ, json={"object": "list", "data": "nope"})
    for provider in ("openai", "groq"):
        response = client.get(f"/v1/models?provider={provider}")
        assert response.status_code == 502
        assert response.json["error"]["type"] == "upstream_error"
        assert provider in response.json["error"]["message"]


def test_all_providers_merge_in_catalog_order_and_name_the_failed(client, upstream):
    for url, payload in ((OPENAI, OPENAI_LIST), (GOOGLE, GOOGLE_LIST), (OLLAMA, OLLAMA_LIST),
                         (ANTHROPIC, ANTHROPIC_PAGE_2), (COHERE, COHERE_PAGE_2), (CLOUDFLARE, CLOUDFLARE_LIST)):
        upstream.get(url, json=payload)
    upstream.get(GROQ, json={"error": {"message": "Service Unavailable"}}, status=503)
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert response.json["object"] == "list" and "provider" not in response.json
    served = [m["served_by"] for m in response.json["data"]]
    assert served == sorted(served, key=["ollama", "openai", "cloudflare", "cohere", "anthropic", "google"].index)
    assert set(served) == {"ollama", "openai", "cloudflare", "cohere", "anthropic", "google"}
    assert response.headers["X-Gateway-Providers-Failed"] == "groq"
    for key in KEYS.values():
        assert key not in response.get_data(as_text=True) and key not in str(response.headers)


def test_an_ollama_nobody_configured_is_not_asked(make_app, upstream):
    client = make_app({"OPENAI_API_KEY": "sk-1"}).test_client()
    upstream.get(OPENAI, json=OPENAI_LIST)
    response = client.get("/v1/models")
    assert response.status_code == 200 and len(response.json["data"]) == 3
    assert "X-Gateway-Providers-Failed" not in response.headers
    assert [call.request.url for call in upstream.calls] == [OPENAI]
    refused = client.get("/v1/models?provider=ollama")
    assert refused.status_code == 400 and "OLLAMA_API_URL" in refused.json["error"]["message"]


def test_every_provider_answering_sends_no_failed_header(make_app, upstream):
    client = make_app({"OPENAI_API_KEY": "sk-1", "OLLAMA_API_URL": "http://ollama:8080/v1"}).test_client()
    upstream.get(OPENAI, json=OPENAI_LIST)
    upstream.get(OLLAMA, json=OLLAMA_LIST)
    response = client.get("/v1/models")
    assert response.status_code == 200 and len(response.json["data"]) == 4
    assert "X-Gateway-Providers-Failed" not in response.headers


@pytest.mark.parametrize(("policy", "expected"), [
    ({"ALLOWED_MODELS": "gpt-4o, ollama/phi3:3.8b"}, ["openai/gpt-4o", "ollama/phi3:3.8b"]),
    ({"DISALLOWED_MODELS": "GPT-4O-MINI,openai/text-embedding-3-small"}, ["openai/gpt-4o", "ollama/phi3:3.8b"]),
    ({"ALLOWED_MODELS": "openai/gpt-4o-mini", "DISALLOWED_MODELS": "gpt-4o-mini"}, ["openai/gpt-4o-mini"]),
])
def test_allow_and_deny_lists_filter_both_forms(make_app, upstream, policy, expected):
    client = make_app({"OPENAI_API_KEY": "sk-1", "OLLAMA_API_URL": "http://ollama:8080/v1", **policy}).test_client()
    upstream.get(OPENAI, json=OPENAI_LIST)
    upstream.get(OLLAMA, json=OLLAMA_LIST)
    assert sorted(m["id"] for m in client.get("/v1/models").json["data"]) == sorted(expected)
    only_openai = [m["id"] for m in client.get("/v1/models?provider=openai").json["data"]]
    assert only_openai == [e for e in expected if e.startswith("openai/")]


def test_cache_serves_repeat_lists_and_never_keeps_a_failure(client, upstream):
    upstream.get(OPENAI, json={"error": {"message": "overloaded"}}, status=529)
    upstream.get(OPENAI, json=OPENAI_LIST)  # responses replays registrations in order
    assert client.get("/v1/models?provider=openai").status_code == 529
    assert len(listed(client, "openai")["data"]) == 3
    assert len(listed(client, "openai")["data"]) == 3
    assert len(upstream.calls) == 2  # the failure was asked again, the success was not (MODELS_CACHE_TTL 60s)


@pytest.mark.parametrize("provider", ["Nope", "openai%2F..", ""])
def test_unknown_provider_is_a_400(client, provider):
    response = client.get(f"/v1/models?provider={provider}x")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unknown_provider"


def test_unconfigured_provider_names_the_variable(make_app):
    response = make_app({}).test_client().get("/v1/models?provider=mistral")
    assert response.status_code == 400
    assert "MISTRAL_API_KEY" in response.json["error"]["message"]
