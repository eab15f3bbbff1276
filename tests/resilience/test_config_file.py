"""GATEWAY_CONFIG: the issue's file works as written; every mistake is one line naming the file,
the key path and the problem, refused by gunicorn's master (exit 2) before any worker starts."""

from __future__ import annotations

import json

import pytest

from app.config import ConfigError, Settings
from tests.resilience.conftest import write_config

ISSUE_EXAMPLE = """\
    deployments:
      openai-b:                      # a second upstream of a known kind
        kind: openai
        base_url: http://127.0.0.1:9000/v1
        api_key: ${OPENAI_API_KEY_B}
    aliases:
      fast:
        strategy: fallback           # fallback | round_robin | least_busy
        targets: [openai/gpt-4o-mini, openai-b/gpt-4o-mini]
    retry:
      attempts: 3                    # upstream tries per target, the first included
      backoff: 250ms                 # first wait; doubles, with jitter
      max_retry_after: 10s
    circuit_breaker:
      failures: 5
      cooldown: 30s
"""
ENV = {"OPENAI_API_KEY": "sk-a-0123456789", "OPENAI_API_KEY_B": "sk-b-0123456789"}


def settings_for(tmp_path, text: str, **env: str) -> Settings:
    path = write_config(tmp_path, text)
    return Settings.from_environ({**ENV, "GATEWAY_CONFIG": str(path), **env})


def refusal(tmp_path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        settings_for(tmp_path, text, **env)
    return str(info.value)


def test_the_issues_example_works_as_written(tmp_path):
    settings = settings_for(tmp_path, ISSUE_EXAMPLE)
    [deployment] = settings.deployments
    assert (deployment.name, deployment.kind, deployment.base_url) == ("openai-b", "openai", "http://127.0.0.1:9000/v1")
    assert deployment.api_key == "sk-b-0123456789"
    fast = settings.aliases["fast"]
    assert fast.strategy == "fallback"
    assert fast.targets == (("openai", "gpt-4o-mini"), ("openai-b", "gpt-4o-mini"))
    assert (settings.retry.attempts, settings.retry.backoff, settings.retry.max_retry_after) == (3, 0.25, 10.0)
    assert (settings.circuit_breaker.failures, settings.circuit_breaker.cooldown) == (5, 30.0)
    # the key read through ${...} is a secret: redacted from logs, never in repr
    assert "sk-b-0123456789" in settings.secret_values()
    assert "sk-b-0123456789" not in repr(settings)


def test_without_a_file_the_defaults_apply():
    settings = Settings.from_environ({})
    assert settings.deployments == () and dict(settings.aliases) == {}
    assert (settings.retry.attempts, settings.retry.backoff, settings.retry.max_retry_after) == (3, 0.25, 10.0)
    assert (settings.circuit_breaker.failures, settings.circuit_breaker.cooldown) == (5, 30.0)
    assert (settings.retry.budget, settings.retry.budget_min) == (0.2, 10)


def test_a_deployment_named_like_a_catalog_provider_replaces_its_settings(tmp_path):
    settings = settings_for(tmp_path, """\
        deployments:
          openai:
            base_url: http://127.0.0.1:9/v1
          anthropic-2:
            kind: anthropic
            api_key: literal-inline-key-0123
            headers: {anthropic-beta: tools-2024}
        prices:
          openai/gpt-4o-mini: {input: 0.1, output: 0.2}
          house-model: {input: 1}
    """)
    openai, second = settings.deployments
    assert openai.replaces and openai.kind == "openai" and openai.api_key == "sk-a-0123456789"  # the env key
    assert second.base_url == "https://api.anthropic.com/v1" and dict(second.headers) == {"anthropic-beta": "tools-2024"}
    assert "literal-inline-key-0123" in settings.secret_values()
    assert dict(settings.prices["openai/gpt-4o-mini"]) == {"input": 0.1, "output": 0.2}


BAD = [
    # (file text, the one line's tail after "invalid GATEWAY_CONFIG='<path>': ")
    ("aliases:\n  fast:\n    targets: [openai/gpt-4o-mini, openai-c/gpt-4o-mini]\n",
     "aliases.fast.targets[1]: unknown deployment 'openai-c'"),
    ("aliases:\n  fast:\n    strategy: random\n    targets: [openai/x]\n",
     "aliases.fast.strategy: expected one of fallback, round_robin, least_busy"),
    ("aliases:\n  fast:\n    targets: [gpt-4o]\n", "aliases.fast.targets[0]: expected deployment/model"),
    ("aliases:\n  fast:\n    targets: [groq/llama]\n", "aliases.fast.targets[0]: provider groq is not configured"),
    ("retyr:\n  attempts: 2\n", "retyr: unknown key (expected one of: deployments, aliases, retry, circuit_breaker"),
    ("deployments:\n  b:\n    kind: openai\n    apikey: x\n", "deployments.b.apikey: unknown key"),
    ("deployments:\n  b:\n    kind: openia\n", "deployments.b.kind: unknown kind 'openia'"),
    ("deployments:\n  b:\n    api_key: x\n", "deployments.b.kind: missing"),
    ("deployments:\n  openai:\n    kind: anthropic\n", "deployments.openai.kind: a deployment named like the catalog"),
    ("deployments:\n  b:\n    kind: openai\n    base_url: ftp://x\n", "deployments.b.base_url: expected an http://"),
    ("deployments:\n  b:\n    kind: openai\n    api_key: ${NOT_SET_ANYWHERE}\n",
     "deployments.b.api_key: ${NOT_SET_ANYWHERE} refers to NOT_SET_ANYWHERE, which is not set"),
    ("retry:\n  attempts: 0\n", "retry.attempts: expected 1 to 10"),
    ("retry:\n  backoff: 250\n", "retry.backoff: expected a duration such as 250ms"),
    ("circuit_breaker:\n  cooldown: soon\n", "circuit_breaker.cooldown: expected a duration"),
    ("prices:\n  openai/x: {input: -1}\n", "prices.openai/x.input: must be at least 0"),
    ("aliases:\n  a:\n    targets: [openai/x]\n  a:\n    targets: [openai/y]\n", "line 4, column 3: not valid YAML (the key 'a' is given twice)"),
    ("aliases: [\n", "not valid YAML"),
    ("- 1\n", "expected a mapping of sections"),
]


@pytest.mark.parametrize("text,problem", BAD, ids=[problem.split(":")[0] for _, problem in BAD])
def test_a_bad_file_is_one_line_naming_the_file_the_key_and_the_problem(tmp_path, text, problem):
    line = refusal(tmp_path, text)
    assert line.startswith(f"invalid GATEWAY_CONFIG={str(tmp_path / 'gateway.yaml')!r}: ")
    assert problem in line
    assert "\n" not in line


def test_a_secret_is_never_echoed(tmp_path):
    line = refusal(tmp_path, "deployments:\n  b:\n    kind: openai\n    api_key: ' sk-secret-with-space'\n")
    assert "deployments.b.api_key" in line and "sk-secret" not in line


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"GATEWAY_CONFIG": str(tmp_path / "nowhere.yaml")})
    assert str(info.value) == f"invalid GATEWAY_CONFIG={str(tmp_path / 'nowhere.yaml')!r}: not a readable file"


def test_health_check_interval_is_off_or_at_least_a_second():
    assert Settings.from_environ({}).health_check_interval == 0
    with pytest.raises(ConfigError, match="HEALTH_CHECK_INTERVAL"):
        Settings.from_environ({"HEALTH_CHECK_INTERVAL": "100ms"})


@pytest.mark.parametrize("text,problem", [BAD[0], BAD[4], BAD[10]], ids=["target", "typo", "variable"])
def test_gunicorn_refuses_a_bad_file_with_its_one_line(live_gateway, tmp_path, text, problem):
    path = write_config(tmp_path, text)
    result = live_gateway.expect_exit({"OPENAI_API_KEY": "sk-a", "GATEWAY_CONFIG": str(path)})
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    [line] = output.splitlines()
    assert line.startswith(f"inference-gateway: invalid GATEWAY_CONFIG={str(path)!r}: ") and problem in line


def test_an_inline_secret_never_reaches_the_log(live_gateway, tmp_path):
    secret = "sk-inline-literal-0123456789"
    path = write_config(tmp_path, f"""\
        deployments:
          local:
            kind: openai
            base_url: http://127.0.0.1:9/v1
            api_key: {secret}
    """)
    gateway = live_gateway({"GATEWAY_CONFIG": str(path), "LOG_LEVEL": "debug", "SERVER_WRITE_TIMEOUT": "1s"})
    import requests

    answer = requests.post(gateway.url + "/v1/chat/completions", timeout=20, headers={"Connection": "close"},
                           json={"model": "local/m", "messages": [{"role": "user", "content": secret}]})
    assert answer.status_code == 502
    assert secret not in answer.text
    gateway.stop()
    logs = gateway.logs()
    assert secret not in logs
    assert any(json.loads(line).get("upstream") == "local/m" for line in logs.splitlines() if '"gateway.access"' in line)


def test_the_readmes_example_file_is_valid(tmp_path):
    from tests.support.live_gateway import ROOT

    readme = (ROOT / "README.md").read_text()
    start = readme.index("```yaml\ndeployments:") + len("```yaml\n")
    text = readme[start:readme.index("```", start)]
    (tmp_path / "gateway.yaml").write_text(text)
    settings = Settings.from_environ({
        "GATEWAY_CONFIG": str(tmp_path / "gateway.yaml"), "OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2",
        "OPENAI_API_KEY_B": "sk-3", "OPENAI_EU_KEY": "sk-4", "ANTHROPIC_API_KEY_2": "sk-5"})
    assert [d.name for d in settings.deployments] == ["openai-b", "openai-eu", "vllm", "claude-2"]
    assert set(settings.aliases) == {"fast", "smart"} and settings.retry.max_backoff == 5.0
    assert dict(settings.prices["gpt-4o-mini"]) == {"input": 0.15, "output": 0.6}


def test_the_files_prices_reach_the_price_table(make_app, tmp_path):
    path = write_config(tmp_path, """\
        prices:
          openai/house-model: {input: 2.0, output: 4.0}
          gpt-4o-mini: {input: 9, output: 9}
    """)
    app = make_app({"ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
                    "OPENAI_API_KEY": "sk-a", "GATEWAY_CONFIG": str(path)})
    prices = app.extensions["gateway.accounts"].prices
    assert prices.cost("openai", "house-model", 1_000_000, 1_000_000).usd == 6.0
    assert prices.cost("openai-b", "gpt-4o-mini", 1_000_000, 0).usd == 9.0  # a bare name: every deployment
