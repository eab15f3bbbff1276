import pytest
import responses
import yaml

from app.config import Settings
from app.providers.catalog import CATALOG
from app.providers.provider import Providers
from tests.support.live_gateway import ROOT


def spec_providers() -> dict:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    provider = spec["components"]["schemas"]["Provider"]
    assert sorted(provider["enum"]) == sorted(provider["x-provider-configs"])
    return provider["x-provider-configs"]


def test_catalog_matches_the_spec():
    configs = spec_providers()
    assert sorted(CATALOG) == sorted(configs)
    for pid, config in configs.items():
        spec = CATALOG[pid]
        assert spec.url == config["url"], pid
        assert spec.auth_type == config["auth_type"], pid
        assert spec.supports_vision == config["supports_vision"], pid
        assert spec.models_endpoint == config["endpoints"]["models"]["endpoint"], pid
        assert spec.chat_endpoint == config["endpoints"]["chat"]["endpoint"], pid


def test_env_overrides_url_and_key_and_configured():
    providers = Providers(Settings.from_environ({"GROQ_API_URL": "http://127.0.0.1:9/openai/v1/",
                                                "GROQ_API_KEY": "gsk-1"}))
    groq = providers.lookup("groq")
    assert groq.base_url == "http://127.0.0.1:9/openai/v1"
    assert groq.configured
    assert not providers.lookup("openai").configured
    assert not providers.lookup("ollama").configured  # its catalog URL is only an example: OLLAMA_API_URL
    assert [p.id for p in providers.configured()] == ["groq"]
    with_ollama = Providers(Settings.from_environ({"OLLAMA_API_URL": "http://127.0.0.1:9/v1"}))
    assert with_ollama.lookup("ollama").configured  # auth type none needs no key


def test_cloudflare_takes_its_account_id():
    settings = Settings.from_environ({"CLOUDFLARE_API_KEY": "cf-1", "CLOUDFLARE_ACCOUNT_ID": "0a1b2c3d4e5f"})
    assert Providers(settings).lookup("cloudflare").base_url == (
        "https://api.cloudflare.com/client/v4/accounts/0a1b2c3d4e5f/ai")


@pytest.mark.parametrize("pid,expected", [
    ("openai", {"Authorization": "Bearer k-123"}),
    ("anthropic", {"x-api-key": "k-123", "anthropic-version": "2023-06-01"}),
    ("ollama", {}),
])
@responses.activate
def test_each_auth_style_reaches_the_provider(pid, expected):
    providers = Providers(Settings.from_environ({f"{pid.upper()}_API_URL": "http://upstream.test/v1",
                                                f"{pid.upper()}_API_KEY": "k-123"}))
    responses.get("http://upstream.test/v1/models", json={"data": []})
    provider = providers.lookup(pid)
    provider.read_body(provider.request("GET", "/models"))
    sent = responses.calls[0].request.headers
    for name, value in expected.items():
        assert sent[name] == value
    if pid == "ollama":
        assert "Authorization" not in sent and "x-api-key" not in sent


def test_pool_is_sized_from_settings():
    providers = Providers(Settings.from_environ({"CLIENT_MAX_IDLE_CONNS_PER_HOST": "321", "OPENAI_API_KEY": "k"}))
    adapter = providers.lookup("openai").session.get_adapter("https://api.openai.com/v1")
    assert adapter._pool_maxsize == 321
    assert adapter.max_retries.total == 0
