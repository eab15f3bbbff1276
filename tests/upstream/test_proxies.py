"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY as the Go gateway read them, and .netrc never read.

The live proof (a real proxy seeing the gateway's traffic) is in test_live_outbound.py.
"""

from __future__ import annotations

import socket

import pytest

from app.config import Settings
from app.errors import UpstreamUnreachable
from app.providers.provider import Providers
from app.upstream.proxies import ProxyRules
from tests.support.fake_provider import json_reply

PROXY = "http://proxy.internal:3128"


@pytest.mark.parametrize(("environ", "url", "expected"), [
    ({"HTTPS_PROXY": PROXY}, "https://api.openai.com/v1", PROXY),
    ({"https_proxy": PROXY}, "https://api.openai.com/v1", PROXY),
    ({"HTTPS_PROXY": PROXY}, "http://ollama:8080/v1", None),  # http targets use HTTP_PROXY only
    ({"HTTP_PROXY": PROXY}, "http://ollama:8080/v1", PROXY),
    ({"http_proxy": PROXY}, "https://api.openai.com/v1", None),
    ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, "https://a.example", "http://upper:1"),
    ({"HTTPS_PROXY": "", "https_proxy": "http://lower:2"}, "https://a.example", "http://lower:2"),
    ({"HTTPS_PROXY": "proxy.internal:3128"}, "https://a.example", PROXY),  # no scheme: http://
    ({"HTTP_PROXY": PROXY}, "http://localhost:11434/v1", None),  # loopback is never proxied
    ({"HTTP_PROXY": PROXY}, "http://127.0.0.1:11434/v1", None),
    ({"HTTP_PROXY": PROXY}, "http://127.8.9.10/v1", None),
    ({"HTTP_PROXY": PROXY}, "http://[::1]:8080/v1", None),
])
def test_which_proxy_a_target_uses(environ, url, expected):
    assert ProxyRules.from_environ(environ).proxy_for(url) == expected


@pytest.mark.parametrize(("no_proxy", "url", "bypassed"), [
    ("*", "https://api.openai.com/v1", True),
    ("openai.com", "https://api.openai.com/v1", True),  # a name and its subdomains
    ("openai.com", "https://openai.com/v1", True),
    ("openai.com", "https://notopenai.com/v1", False),  # not a bare suffix
    (".openai.com", "https://openai.com/v1", False),  # leading dot: subdomains only
    (".openai.com", "https://api.openai.com/v1", True),
    ("*.openai.com", "https://api.openai.com/v1", True),
    ("API.OpenAI.com", "https://api.openai.com/v1", True),  # case-insensitive
    ("api.openai.com:8443", "https://api.openai.com/v1", False),  # only that port
    ("api.openai.com:443", "https://api.openai.com/v1", True),  # the scheme's default port
    ("10.0.0.0/8", "http://10.1.2.3:8080/v1", True),
    ("10.0.0.0/8", "http://11.1.2.3:8080/v1", False),
    ("10.1.2.3", "http://10.1.2.3:8080/v1", True),
    ("10.1.2.3:9000", "http://10.1.2.3:8080/v1", False),
    (" groq.com , mistral.ai ,", "https://api.mistral.ai/v1", True),  # spaces and empty entries
    ("groq.com", "https://api.mistral.ai/v1", False),
    ("[2001:db8::1]:443", "https://[2001:db8::1]/v1", True),
])
def test_no_proxy(no_proxy, url, bypassed):
    rules = ProxyRules.from_environ({"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY, "no_proxy": no_proxy})
    assert rules.proxy_for(url) == (None if bypassed else PROXY)


def test_each_provider_resolves_its_proxy_once_at_start_up(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "api.groq.com")
    providers = Providers(Settings.from_environ({}))
    monkeypatch.setenv("HTTPS_PROXY", "http://changed-later:1")  # read at start-up only
    assert providers.lookup("openai").upstream.proxies == {"https": PROXY}
    assert providers.lookup("groq").upstream.proxies == {}


def test_netrc_is_never_read(monkeypatch, tmp_path, fake_provider):
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login alice password s3cret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    fake_provider.on("GET", "/v1/models", json_reply({"data": []}))
    ollama = Providers(Settings.from_environ({"OLLAMA_API_URL": fake_provider.url + "/v1"})).lookup("ollama")
    ollama.read_body(ollama.request("GET", "/models"))
    assert "authorization" not in fake_provider.requests[0].headers


def test_a_proxy_that_refuses_is_a_502_that_names_the_provider_not_the_proxy(monkeypatch):
    with socket.socket() as refusing:  # bound, never listening
        refusing.bind(("127.0.0.1", 0))
        proxy_url = f"http://user:proxy-secret@127.0.0.1:{refusing.getsockname()[1]}"
        monkeypatch.setenv("HTTPS_PROXY", proxy_url)
        openai = Providers(Settings.from_environ({"OPENAI_API_KEY": "k"})).lookup("openai")
        with pytest.raises(UpstreamUnreachable) as info:
            openai.request("GET", "/models")
    assert info.value.status == 502
    assert info.value.message == "Provider openai could not be reached through the proxy."

