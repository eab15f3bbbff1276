"""openapi.yaml against the live gateway: every route it serves is described, every setting is
listed, and a schemathesis run over the document (a live gunicorn gateway, every provider a fake
that answers in the real APIs' shapes) finds no server error and no answer the document does not
describe. The run is bounded (about 15 s): a fixed seed, the examples the document gives and 15
generated cases per operation, valid and invalid; no coverage or stateful phase (a run with them
and 100 cases per operation found nothing more, in two minutes).

A 501 is not counted as a server error here: it is the documented answer for a provider whose
catalog entry lacks the endpoint (`?provider=anthropic` on /v1/responses), chosen by the input.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from app.config_docs import openapi_text
from app.providers.catalog import CATALOG
from tests.api.contract_fake import contract_fake
from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import ROOT, GatewayLauncher, LiveGateway

ADMIN_KEY = "admin-contract-0123456789abcdef"
SPEC = ROOT / "openapi.yaml"

CONFIG = SchemathesisConfig.from_dict({
    "seed": 20260117,
    "generation": {"mode": "all", "max-examples": 15},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": False}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
    "checks": {
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]},
        # fields the gateway does not check go upstream as sent: data the document calls invalid may be served
        "negative_data_rejection": {"enabled": False},
        "positive_data_acceptance": {"enabled": False},
    },
    "request-timeout": 20,
})
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)


@pytest.fixture(scope="module")
def contract_provider() -> Iterator[FakeProvider]:
    fake = contract_fake()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def contract_gateway(contract_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    directory = tmp_path_factory.mktemp("contract")
    providers = {}
    for pid in CATALOG:
        providers[f"{pid.upper()}_API_URL"] = f"{contract_provider.url}/{pid}"
        providers[f"{pid.upper()}_API_KEY"] = f"key-{pid}"
    launcher = GatewayLauncher(directory)
    # one credential for every route: the admin key, also listed as an API key for model calls
    yield launcher({**providers, "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": ADMIN_KEY,
                    "ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{directory / 'ledger.db'}",
                    "ADMIN_API_KEY": ADMIN_KEY, "CLIENT_TIMEOUT": "5s", "SERVER_WRITE_TIMEOUT": "1s",
                    "MODELS_CACHE_TTL": "0"})
    launcher.stop_all()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_the_gateway_keeps_its_contract(case, contract_gateway):
    response = case.call(base_url=contract_gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                         timeout=20)
    case.validate_response(response)


def test_every_route_is_described(make_app, tmp_path):
    app = make_app({"ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
                    "ADMIN_API_KEY": ADMIN_KEY})
    described = {(path, method.upper()) for path, item in yaml.safe_load(SPEC.read_text())["paths"].items()
                 for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue  # the web console (app/console/) is HTML pages for people, not part of the API
        path = rule.rule.replace("<proxy_tail:tail>", "{path}").replace("<", "{").replace(">", "}")
        path = path.replace("{response_id}", "{response_id}").replace("{key_id}", "{id}")
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"} | (
            {"HEAD", "OPTIONS"} & rule.methods if path.startswith("/proxy/") else set())}
    missing = served - described
    assert not missing, f"routes the gateway serves that openapi.yaml does not describe: {sorted(missing)}"
    assert not described - served, f"described but not served: {sorted(described - served)}"


def test_the_settings_and_providers_in_the_document_are_the_codes():
    text = SPEC.read_text()
    assert openapi_text(text) == text, "openapi.yaml's x-config or x-provider-configs is stale: run make docs"
