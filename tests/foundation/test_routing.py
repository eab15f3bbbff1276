import pytest

from app.config import Settings
from app.errors import InvalidRequest, PermissionDenied, ProviderNotConfigured, UnknownProvider
from app.providers.provider import Providers
from app.providers.routing import ModelPolicy, resolve


@pytest.fixture
def providers():
    return Providers(Settings.from_environ({"OPENAI_API_KEY": "k", "GROQ_API_KEY": "k",
                                            "OLLAMA_API_URL": "http://127.0.0.1:9/v1"}))


@pytest.mark.parametrize("model,param,pid,upstream", [
    ("openai/gpt-4o", None, "openai", "gpt-4o"),
    ("groq/meta-llama/llama-4", None, "groq", "meta-llama/llama-4"),
    ("OpenAI/gpt-4o", None, "openai", "gpt-4o"),
    ("gpt-4o", "openai", "openai", "gpt-4o"),
    ("meta-llama/llama-4", "groq", "groq", "meta-llama/llama-4"),
    ("groq/llama3", "groq", "groq", "llama3"),
    ("ollama/phi3:3.8b", None, "ollama", "phi3:3.8b"),
])
def test_routes(providers, model, param, pid, upstream):
    route = resolve(model, param, providers)
    assert (route.provider.id, route.model) == (pid, upstream)


def test_bare_model_is_not_guessed(providers):
    with pytest.raises(InvalidRequest) as info:
        resolve("gpt-4o", None, providers)
    assert "provider/model" in info.value.message


def test_an_endpoint_rule_routes_a_bare_model_last(providers):
    anthropic = Providers(Settings.from_environ({"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k"}))
    route = resolve("claude-sonnet-4-5", None, anthropic, bare="anthropic")
    assert (route.provider.id, route.model) == ("anthropic", "claude-sonnet-4-5")
    # the prefix and ?provider= still win over the rule
    assert resolve("openai/gpt-4o", None, anthropic, bare="anthropic").provider.id == "openai"
    assert resolve("claude-x", "openai", anthropic, bare="anthropic").provider.id == "openai"
    with pytest.raises(ProviderNotConfigured):
        resolve("claude-sonnet-4-5", None, providers, bare="anthropic")


def test_unknown_provider(providers):
    with pytest.raises(UnknownProvider):
        resolve("nosuch/model", None, providers)
    with pytest.raises(UnknownProvider):
        resolve("gpt-4o", "nosuch", providers)


def test_unconfigured_provider_names_the_variable(providers):
    with pytest.raises(ProviderNotConfigured) as info:
        resolve("anthropic/claude-3", None, providers)
    assert "ANTHROPIC_API_KEY" in info.value.message


@pytest.mark.parametrize("allowed,disallowed,model,ok", [
    ([], [], "openai/gpt-4o", True),
    (["gpt-4o"], [], "openai/gpt-4o", True),
    (["gpt-4o"], [], "groq/gpt-4o", True),
    ([" OpenAI/GPT-4o "], [], "openai/gpt-4o", True),
    (["openai/gpt-4o"], [], "groq/gpt-4o", False),
    (["openai/gpt-4o"], ["openai/gpt-4o"], "openai/gpt-4o", True),  # allow list wins
    ([], ["gpt-4o"], "openai/gpt-4o", False),
    ([], ["gpt-4o"], "openai/gpt-4o-mini", True),
    ([], ["meta-llama/llama-4"], "groq/meta-llama/llama-4", False),
])
def test_model_policy(allowed, disallowed, model, ok):
    policy = ModelPolicy(allowed, disallowed)
    assert policy.allows(model) is ok
    if not ok:
        with pytest.raises(PermissionDenied):
            policy.check(model)
