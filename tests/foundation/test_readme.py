"""The README cannot go stale: its provider table is the catalog's and says what the gateway
answers, and every setting it names exists."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from app.config import RENAMED, declared_fields
from app.config_docs import PROVIDERS_END, PROVIDERS_START, providers_markdown, readme_text
from app.providers.catalog import CATALOG
from tests.support.fake_provider import FakeProvider, json_reply
from tests.support.live_gateway import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_provider_table_is_generated_from_the_catalog():
    assert readme_text(README) == README, "README.md's provider table is stale: run make docs"
    table = README[README.index(PROVIDERS_START):README.index(PROVIDERS_END)]
    assert providers_markdown() in table


# Names in the README that look like settings (UPPER_CASE with an underscore) but are not the gateway's.
NOT_SETTINGS = {
    "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",  # read from the environment by app/upstream/proxies.py
    "LISTEN_FDS", "GUNICORN_FD", "FORWARDED_ALLOW_IPS",  # gunicorn's and systemd's
    "ANTHROPIC_BASE_URL",  # the Anthropic SDK's (Claude Code's), set on the client
}


def _real_settings() -> set[str]:
    names = {f.metadata["env"] for f in declared_fields()} | set(RENAMED)
    for pid in CATALOG:
        names |= {f"{pid.upper()}_API_KEY", f"{pid.upper()}_API_URL"}
    return names


def test_every_setting_the_readme_names_exists():
    real = _real_settings()
    mentioned = set(re.findall(r"(?<![A-Za-z0-9_{<$/.-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![A-Za-z0-9_}>(])", README))
    unknown = sorted(name for name in mentioned - real - NOT_SETTINGS)
    assert unknown == [], f"README.md names settings that app/config.py does not declare: {unknown}"


def test_every_link_to_a_readme_section_finds_it():
    text = re.sub(r"```.*?```", "", README, flags=re.DOTALL)
    anchors = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")  # GitHub's slugs
               for heading in re.findall(r"^#+ (.*)$", text, flags=re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and sorted(links - anchors) == []


def test_every_file_the_readme_links_exists():
    linked = set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README))
    assert linked and sorted(path for path in linked if not (ROOT / path).exists()) == []


@pytest.fixture(scope="module")
def every_provider(module_live_gateway) -> Iterator[tuple[str, FakeProvider]]:
    """A gateway with every catalog provider configured and pointed at one fake that answers 200 to anything."""
    fake = FakeProvider().start()
    for method in ("GET", "POST"):
        fake.on(method, "*", json_reply({"object": "list", "data": [], "id": "x", "choices": []}))
    env = {"ENABLE_VISION": "true", "CLOUDFLARE_ACCOUNT_ID": "0" * 32}
    for pid in CATALOG:
        env[f"{pid.upper()}_API_URL"] = fake.url + f"/{pid}"
        env[f"{pid.upper()}_API_KEY"] = f"key-{pid}"
    gateway = module_live_gateway(env)
    yield gateway.url, fake
    fake.stop()


CALLS = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    "completions": ("/v1/completions", {"prompt": "hi"}),
    "embeddings": ("/v1/embeddings", {"input": "hi"}),
    "responses": ("/v1/responses", {"input": "hi"}),
    "messages": ("/v1/messages", {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    "images": ("/v1/images/generations", {"prompt": "a cat"}),
    "speech": ("/v1/audio/speech", {"input": "hi", "voice": "alloy"}),
    "transcriptions": ("/v1/audio/transcriptions", None),
    "translations": ("/v1/audio/translations", None),
    "moderations": ("/v1/moderations", {"input": "hi"}),
    "vision": ("/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
}


def _table() -> dict[str, dict[str, str]]:
    lines = [line for line in providers_markdown().splitlines() if line.startswith("| `")]
    header = [cell.strip() for cell in providers_markdown().splitlines()[0].strip("|").split("|")]
    return {cells[0].strip("`"): dict(zip(header[1:], cells[1:], strict=True))
            for cells in ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)}


def test_the_table_says_what_the_gateway_answers(every_provider):
    url, _ = every_provider
    answered: dict[str, dict[str, str]] = {}
    with requests.Session() as session:
        for pid, row in _table().items():
            answered[pid] = {}
            for column in row:
                if column == "model list":
                    status = session.get(f"{url}/v1/models", params={"provider": pid}, timeout=10).status_code
                elif CALLS[column][1] is None:
                    status = session.post(url + CALLS[column][0], data={"model": f"{pid}/m"},
                                          files={"file": ("a.wav", b"RIFF0000WAVE", "audio/wav")}, timeout=10).status_code
                else:
                    path, body = CALLS[column]
                    status = session.post(url + path, json={"model": f"{pid}/m", **body}, timeout=10).status_code
                answered[pid][column] = "501" if status == 501 else "400" if status == 400 else "yes"
    assert answered == _table()
