"""Which provider a kept response (GET/DELETE /v1/responses/{id}) is asked of, when it cannot be asked."""

from __future__ import annotations


def test_no_configured_provider_keeps_responses(make_app):
    client = make_app({"GROQ_API_KEY": "gsk"}).test_client()  # groq answers new responses but keeps none
    answer = client.get("/v1/responses/resp_1")
    assert answer.status_code == 501
    assert answer.json["error"]["message"] == "No configured provider keeps responses."
    assert client.delete("/v1/responses/resp_1?provider=groq").status_code == 501


def test_a_named_provider_must_be_known_and_configured(make_app):
    client = make_app({"GROQ_API_KEY": "gsk"}).test_client()
    assert client.get("/v1/responses/resp_1?provider=nosuch").json["error"]["code"] == "unknown_provider"
    refused = client.get("/v1/responses/resp_1?provider=openai")
    assert refused.status_code == 400 and "OPENAI_API_KEY" in refused.json["error"]["message"]
