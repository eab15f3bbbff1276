"""Deployments of the configuration file work on every endpoint like a catalog provider: chat,
completions, embeddings, /v1/models, /proxy/<deployment>/..., ?provider=, and the MCP loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.resilience.conftest import CHAT, QUICK, USER, calls_to, chat, completion, write_config
from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply
from tests.support.live_gateway import GatewayLauncher, LiveGateway
from tests.support.mcp_process import MCPServerProcess
from tests.support.polling import wait_for

KEY = "sk-deployment-local-0123456789"


@pytest.fixture(scope="module")
def gateway(module_fake_provider, tmp_path_factory) -> Iterator[LiveGateway]:
    fake = module_fake_provider
    directory = tmp_path_factory.mktemp("deployments")
    config = write_config(directory, f"""\
        deployments:
          local:
            kind: openai
            base_url: {fake.url}/v1
            api_key: ${{LOCAL_KEY}}
          keyless:
            kind: openai
            base_url: {fake.url}/keyless
          anth-2:
            kind: anthropic
            base_url: {fake.url}/anth
            api_key: sk-ant-inline-0123456789
    """)
    launcher = GatewayLauncher(directory)
    yield launcher({"GATEWAY_CONFIG": str(config), "LOCAL_KEY": KEY, **QUICK})
    launcher.stop_all()


@pytest.fixture
def fake(module_fake_provider) -> FakeProvider:
    return module_fake_provider.reset()


def test_chat_through_a_deployment(gateway, fake):
    fake.on("POST", CHAT, json_reply(completion("local")))
    answer = chat(gateway.url, "local/my-model")
    assert answer.status_code == 200 and answer.headers["X-Gateway-Upstream"] == "local/my-model"
    [seen] = calls_to(fake)
    assert seen.json()["model"] == "my-model" and seen.headers["authorization"] == f"Bearer {KEY}"


def test_provider_parameter_names_a_deployment(gateway, fake):
    fake.on("POST", CHAT, json_reply(completion()))
    answer = requests.post(gateway.url + CHAT + "?provider=local", json={"model": "bare-model", "messages": USER},
                           timeout=20)
    assert answer.status_code == 200 and calls_to(fake)[0].json()["model"] == "bare-model"


def test_completions_and_embeddings_through_a_deployment(gateway, fake):
    fake.on("POST", "/v1/completions", json_reply({"id": "c", "object": "text_completion", "choices": []}))
    fake.on("POST", "/v1/embeddings", json_reply({"object": "list", "data": []}))
    completed = requests.post(gateway.url + "/v1/completions", json={"model": "local/text", "prompt": "hi"}, timeout=20)
    embedded = requests.post(gateway.url + "/v1/embeddings", json={"model": "local/embed", "input": "hi"}, timeout=20)
    assert completed.status_code == 200 and embedded.status_code == 200
    assert embedded.headers["X-Gateway-Upstream"] == "local/embed"
    assert [r.path for r in fake.requests] == ["/v1/completions", "/v1/embeddings"]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)


def test_a_deployment_of_an_anthropic_kind_authenticates_its_way(gateway, fake):
    fake.on("POST", "/anth/chat/completions", json_reply(completion()))
    answer = chat(gateway.url, "anth-2/claude-x")
    assert answer.status_code == 200
    [seen] = fake.requests
    assert seen.headers["x-api-key"] == "sk-ant-inline-0123456789" and "anthropic-version" in seen.headers
    assert "authorization" not in seen.headers
    missing = requests.post(gateway.url + "/v1/embeddings", json={"model": "anth-2/e", "input": "x"}, timeout=20)
    assert missing.status_code == 501  # its kind has no embeddings endpoint


def test_a_deployment_without_a_key_is_configured_and_sends_none(gateway, fake):
    fake.on("POST", "/keyless/chat/completions", json_reply(completion()))
    answer = chat(gateway.url, "keyless/m")
    assert answer.status_code == 200 and "authorization" not in fake.requests[0].headers


def test_models_of_one_deployment_and_of_all(gateway, fake):
    fake.on("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "my-model", "owned_by": "me"}]}))
    one = requests.get(gateway.url + "/v1/models?provider=local", timeout=20).json()
    assert one == {"provider": "local", "object": "list",
                   "data": [{"id": "local/my-model", "object": "model", "created": 0, "owned_by": "me",
                             "served_by": "local"}]}
    every = requests.get(gateway.url + "/v1/models", timeout=20).json()
    assert "local/my-model" in [entry["id"] for entry in every["data"]]


def test_the_proxy_reaches_a_deployment_with_its_credential(gateway, fake):
    fake.on("GET", "/v1/files", json_reply({"data": ["f"]}))
    answer = requests.get(gateway.url + "/proxy/local/files?limit=2", timeout=20)
    assert answer.status_code == 200 and answer.json() == {"data": ["f"]}
    [seen] = fake.requests
    assert seen.path == "/v1/files" and seen.query == [("limit", "2")]
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    unknown = requests.get(gateway.url + "/proxy/nowhere/files", timeout=20)
    assert unknown.status_code == 400 and "local" in unknown.json()["error"]["message"]


# -- the MCP loop through an alias of deployments ----------------------------------------------------

def tools_then_text(request: Recorded) -> Reply:
    messages = request.json()["messages"]
    if messages[-1]["role"] != "tool":
        call = {"id": "call_1", "type": "function", "function": {"name": "mcp_add", "arguments": '{"a": 2, "b": 3}'}}
        reply = completion()
        reply["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        return json_reply(reply)
    return json_reply(completion("sum: " + messages[-1]["content"]))


def test_the_mcp_loop_runs_on_a_deployment_and_falls_back(live_gateway, make_fake_provider, tmp_path):
    down, up = make_fake_provider(), make_fake_provider()
    down.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 503))
    up.on("POST", CHAT, tools_then_text)
    server = MCPServerProcess(log_dir=tmp_path).start()
    try:
        config = write_config(tmp_path, f"""\
            deployments:
              primary: {{kind: openai, base_url: "{down.url}/v1"}}
              secondary: {{kind: openai, base_url: "{up.url}/v1"}}
            aliases:
              tools: {{targets: [primary/m, secondary/m]}}
            retry: {{attempts: 1}}
        """)
        gateway = live_gateway({"GATEWAY_CONFIG": str(config), "MCP_ENABLE": "true", "MCP_EXPOSE": "true",
                                "MCP_SERVERS": server.url, **QUICK})
        wait_for(lambda: requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"], 20, "the MCP tools")
        answer = chat(gateway.url, "tools")
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "sum: 5"
        assert answer.headers["X-Gateway-Upstream"] == "secondary/m"
        assert len(calls_to(up)) == 2 and len(calls_to(down)) == 2  # each model call of the loop fell back
        assert "mcp_add" in [t["function"]["name"] for t in calls_to(up)[0].json()["tools"]]
    finally:
        server.stop()
