"""Routing with deployments and aliases (no network): the order is ?provider=, an alias, the prefix."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.errors import InvalidRequest, UnknownProvider
from app.providers.provider import Providers
from app.providers.routing import Alias, Route, Router, aliases_from
from tests.resilience.conftest import write_config


@pytest.fixture
def router(tmp_path) -> Router:
    path = write_config(tmp_path, """\
        deployments:
          openai-b: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-b}
          vllm: {kind: openai, base_url: "http://127.0.0.1:9/vllm"}
        aliases:
          fast: {strategy: round_robin, targets: [openai/gpt-4o-mini, openai-b/gpt-4o-mini]}
          openai/gpt-4o: {targets: [vllm/llama]}
    """)
    settings = Settings.from_environ({"OPENAI_API_KEY": "sk-a", "GATEWAY_CONFIG": str(path)})
    providers = Providers(settings)
    return Router(providers, aliases_from(settings.aliases, providers))


def test_an_alias_is_its_targets_in_order(router):
    fast = router.target("fast", None)
    assert isinstance(fast, Alias) and fast.strategy == "round_robin"
    assert [route.model_id for route in fast.routes] == ["openai/gpt-4o-mini", "openai-b/gpt-4o-mini"]
    assert fast.routes[1].provider.spec.id == "openai" and fast.routes[1].provider.base_url == "http://127.0.0.1:9/v1"


def test_the_order_is_provider_parameter_then_alias_then_prefix(router):
    assert isinstance(router.target("openai/gpt-4o", None), Alias)  # the alias takes the id over
    direct = router.target("openai/gpt-4o", "openai")
    assert isinstance(direct, Route) and direct.model_id == "openai/gpt-4o"
    assert router.target("openai-b/gpt-4o", None).model_id == "openai-b/gpt-4o"
    assert router.target("fast", "vllm").model_id == "vllm/fast"  # ?provider= wins over an alias too
    assert router.target("vllm/meta/llama-3", None).model == "meta/llama-3"


def test_alias_names_are_exact_and_bare_names_are_refused(router):
    with pytest.raises(InvalidRequest, match="provider/model"):
        router.target("FAST", None)
    with pytest.raises(UnknownProvider, match="openai-b"):  # the message lists the deployments too
        router.target("nowhere/m", None)


def test_deployments_are_configured_and_listed_after_the_catalog(router):
    providers = router.providers
    ids = [p.id for p in providers.configured()]
    assert ids[-2:] == ["openai-b", "vllm"] and "openai" in ids
    assert providers.lookup("vllm").configured and providers.lookup("vllm").declared
