"""deploy/nginx.conf as shipped, in a real nginx in front of the real gateway (gunicorn + gevent).

Each test starts nginx from the shipped file with only its addresses swapped (tests/support/
nginx_proxy.py); a test that needs a variant names the one directive it changes.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import threading
from pathlib import Path

import requests

from app.config import Settings
from app.config_values import parse_byte_size
from tests.support.fake_provider import json_reply, sse_event
from tests.support.gated_stream import GatedStream
from tests.support.gateway_log import access_lines
from tests.support.nginx_proxy import ROOT, SHIPPED_CONF, nginx_binary
from tests.support.polling import wait_for
from tests.support.tcp_table import client_ports

CHAT = {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"id": "c1", "object": "chat.completion", "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}


def provider_env(fake) -> dict[str, str]:
    return {"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-test"}


def token_events(count: int) -> list[bytes]:
    return [sse_event({"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]}) for i in range(count)] + [
        b"data: [DONE]\n\n"]


class StreamReader(threading.Thread):
    """Reads an event stream as a client would (requests asks for gzip, like the OpenAI SDKs)."""

    def __init__(self, url: str, body: dict):
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.events: list[bytes] = []
        self.first_event = threading.Event()
        self.status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with requests.post(self.url, json=self.body, stream=True, timeout=30) as response:
                self.status = response.status_code
                pending = b""
                for chunk in response.iter_content(None):
                    pending += chunk
                    *complete, pending = pending.split(b"\n\n")
                    self.events.extend(event for event in complete if event.strip())
                    if self.events:
                        self.first_event.set()
        except requests.RequestException as exc:  # the test reports it
            self.error = exc


def stream_through(proxy_url: str, path: str, fake, gate: GatedStream) -> StreamReader:
    fake.on("POST", "/v1/chat/completions", gate.reply)
    reader = StreamReader(proxy_url + path, {**CHAT, "stream": True})
    reader.start()
    assert gate.head_sent.wait(15), "the provider never got the request"
    return reader


# -- streaming --------------------------------------------------------------------------------

def test_streams_pass_event_by_event_through_nginx(live_gateway, fake_provider, nginx):
    gateway = live_gateway(provider_env(fake_provider))
    proxy = nginx(gateway.port)
    for path in ("/v1/chat/completions", "/proxy/openai/chat/completions"):
        fake_provider.reset()
        gate = GatedStream(token_events(5), hold_from=-2)  # the last token and [DONE] wait
        reader = stream_through(proxy.url, path, fake_provider, gate)
        # The client holds the first event while the provider has not sent the last one.
        assert reader.first_event.wait(15), f"{path}: nginx held the stream back"
        assert not gate.tail_sent.is_set()
        assert 1 <= len(reader.events) <= 4
        gate.release()
        reader.join(15)
        assert reader.error is None and reader.status == 200
        assert len(reader.events) == 6 and reader.events[-1] == b"data: [DONE]"


def test_x_accel_buffering_from_the_gateway_is_what_unbuffers_streams(live_gateway, fake_provider, nginx):
    """The shipped file buffers ordinary answers (and compresses them); a stream flows because
    nginx obeys the gateway's `X-Accel-Buffering: no`. The same file told to ignore that header
    holds the stream back until it ends, which the shipped one, above, does not."""
    gateway = live_gateway(provider_env(fake_provider))
    ignoring = nginx(gateway.port, changes={
        "proxy_read_timeout 1h;": "proxy_read_timeout 1h; proxy_ignore_headers X-Accel-Buffering;"})
    gate = GatedStream(token_events(5), hold_from=-2)
    reader = stream_through(ignoring.url, "/v1/chat/completions", fake_provider, gate)
    # Far longer than an event takes to cross loopback (milliseconds): nothing has come.
    assert not reader.first_event.wait(2)
    gate.release()
    reader.join(15)
    assert reader.error is None and len(reader.events) == 6  # all at once, at the end


def test_client_hanging_up_through_nginx_stops_the_provider_stream(live_gateway, fake_provider, nginx):
    gateway = live_gateway(provider_env(fake_provider))
    proxy = nginx(gateway.port)
    gate = GatedStream(token_events(200), hold_from=2, delay=0.02)
    fake_provider.on("POST", "/v1/chat/completions", gate.reply)
    with requests.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, stream=True,
                       timeout=15) as response:
        assert next(response.iter_content(None))
    # The client is gone: nginx closes its gateway connection, the gateway its provider's.
    gate.release()
    assert fake_provider.aborted.wait(15), "the provider kept streaming to nobody"
    assert not gate.tail_sent.is_set()


# -- who the client is ------------------------------------------------------------------------

def get_from(source: str, port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """GET from a given loopback source address (two "clients" on one machine)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def limited_env(**extra: str) -> dict[str, str]:
    # memory:// with one worker counts exactly; a window that cannot roll over during the test
    return {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "3/hour", "RATE_LIMIT_STORAGE_URI": "memory://",
            **extra}


def test_each_client_behind_nginx_has_its_own_limit_when_trusted_proxies_names_nginx(live_gateway, nginx):
    gateway = live_gateway(limited_env(TRUSTED_PROXIES="127.0.0.1"))
    proxy = nginx(gateway.port)
    first = [get_from("127.0.0.2", proxy.port, "/openapi.yaml") for _ in range(3)]
    assert [r.status for r in first] == [200, 200, 200]
    assert [r.getheader("X-RateLimit-Remaining") for r in first] == ["2", "1", "0"]
    assert get_from("127.0.0.2", proxy.port, "/openapi.yaml").status == 429
    # Another client behind the same nginx starts with its own full limit.
    second = get_from("127.0.0.3", proxy.port, "/openapi.yaml")
    assert second.status == 200 and second.getheader("X-RateLimit-Remaining") == "2"
    # A forged X-Forwarded-For changes nothing: nginx appends the real peer, which the gateway reads.
    assert get_from("127.0.0.2", proxy.port, "/openapi.yaml", {"X-Forwarded-For": "198.51.100.7"}).status == 429
    forged = get_from("127.0.0.3", proxy.port, "/openapi.yaml", {"X-Forwarded-For": "127.0.0.2"})
    assert forged.status == 200 and forged.getheader("X-RateLimit-Remaining") == "1"


def test_without_trusted_proxies_every_client_behind_nginx_shares_one_limit(live_gateway, nginx):
    gateway = live_gateway(limited_env())
    proxy = nginx(gateway.port)
    assert [get_from("127.0.0.2", proxy.port, "/openapi.yaml").status for _ in range(3)] == [200, 200, 200]
    assert get_from("127.0.0.3", proxy.port, "/openapi.yaml").status == 429  # counted as nginx's address


# -- request ids ------------------------------------------------------------------------------

def test_request_ids_reach_the_gateway_log_nginx_log_and_response(live_gateway, nginx):
    gateway = live_gateway()
    proxy = nginx(gateway.port)

    def ids_for(headers: dict[str, str]) -> tuple[str, str, str]:
        response = requests.get(proxy.url + "/openapi.yaml", headers=headers, timeout=10)
        assert response.status_code == 200
        sent = response.headers["X-Request-ID"]
        gateway_line = wait_for(lambda: [e for e in access_lines(gateway.logs()) if e["request_id"] == sent],
                                10, "the gateway's access line")[0]
        nginx_line = wait_for(lambda: [e for e in proxy.access_log() if e["request_id"] == sent],
                              10, "nginx's access line")[0]
        return sent, gateway_line["path"], nginx_line["uri"]

    # The client's own id goes all the way.
    assert ids_for({"X-Request-ID": "client-trace-42"}) == ("client-trace-42", "/openapi.yaml", "/openapi.yaml")
    # None sent: nginx's $request_id (32 hex) is the one the gateway logs and answers with.
    minted, _, _ = ids_for({})
    assert re.fullmatch(r"[0-9a-f]{32}", minted)
    # One the gateway would refuse (a space): nginx replaces it, so both logs still agree.
    replaced, _, _ = ids_for({"X-Request-ID": "not a sane id"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


# -- keep-alive -------------------------------------------------------------------------------

def test_nginx_reuses_one_keepalive_connection_to_the_gateway(live_gateway, nginx):
    gateway = live_gateway()
    proxy = nginx(gateway.port)
    before = set(client_ports(gateway.port))
    open_during: list[frozenset[int]] = []
    for _ in range(5):  # five clients, each on its own connection to nginx
        response = requests.get(proxy.url + "/health", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
        open_during.append(frozenset(port for port, state in client_ports(gateway.port).items()
                                     if state == "ESTABLISHED"))
    # One connection from nginx to the gateway, open after each request, the same every time ...
    assert len(set(open_during)) == 1 and len(open_during[0]) == 1
    # ... and no other one was opened and closed meanwhile.
    assert set(client_ports(gateway.port)) - before - open_during[0] == set()


# -- errors -----------------------------------------------------------------------------------

def test_nginx_and_the_gateway_refuse_a_body_over_the_limit_with_the_same_413(live_gateway, fake_provider, nginx):
    limit = Settings.from_environ({}).server_max_request_body_size  # the default nginx.conf matches
    fake_provider.on("POST", "/v1/chat/completions", json_reply(COMPLETION))
    gateway = live_gateway(provider_env(fake_provider))
    proxy = nginx(gateway.port)

    def body_of(size: int) -> bytes:
        skeleton = json.dumps({**CHAT, "messages": [{"role": "user", "content": ""}]}).encode()
        padded = skeleton.replace(b'"content": ""', b'"content": "' + b"x" * (size - len(skeleton)) + b'"')
        assert len(padded) == size
        return padded

    headers = {"Content-Type": "application/json"}
    at_limit = requests.post(proxy.url + "/v1/chat/completions", data=body_of(limit), headers=headers, timeout=60)
    assert at_limit.status_code == 200  # both let exactly SERVER_MAX_REQUEST_BODY_SIZE through

    from_nginx = requests.post(proxy.url + "/v1/chat/completions", data=body_of(limit + 1), headers=headers,
                               timeout=60)
    from_gateway = requests.post(gateway.url + "/v1/chat/completions", data=body_of(limit + 1),
                                 headers={**headers, "Connection": "close"}, timeout=60)
    assert from_nginx.status_code == from_gateway.status_code == 413
    assert from_nginx.headers["Content-Type"] == from_gateway.headers["Content-Type"] == "application/json"
    assert from_nginx.json() == from_gateway.json()
    assert from_nginx.json()["error"]["type"] == "invalid_request_error"
    assert from_nginx.headers["X-Request-ID"]
    # nginx refused it itself: only the direct request reached the gateway.
    assert len([e for e in access_lines(gateway.logs()) if e["status"] == 413]) == 1


def assert_envelope(response: requests.Response, status: int, error_type: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["type"] == error_type and error["message"]
    assert response.headers["X-Request-ID"]


def test_nginx_answers_its_own_errors_in_the_gateway_envelope(nginx):
    # Nothing listens on a bound but not listening port: the gateway is down.
    with socket.socket() as down:
        down.bind(("127.0.0.1", 0))
        proxy = nginx(down.getsockname()[1])
        assert_envelope(requests.get(proxy.url + "/v1/models", timeout=10), 502, "upstream_unreachable")
        assert_envelope(requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10), 502,
                        "upstream_unreachable")
        too_big_headers = {"X-Padding": "x" * 20000}
        assert_envelope(requests.get(proxy.url + "/health", headers=too_big_headers, timeout=10), 400,
                        "invalid_request_error")


def test_nginx_answers_a_gateway_that_never_answers_with_a_json_504(nginx):
    # A gateway that accepts connections and never answers, and nginx giving up after 1 s
    # instead of the shipped 1 h (the only change to the file).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        proxy = nginx(silent.getsockname()[1], changes={"proxy_read_timeout 1h;": "proxy_read_timeout 1s;"})
        assert_envelope(requests.get(proxy.url + "/v1/models", timeout=20), 504, "upstream_timeout")


# -- the file itself --------------------------------------------------------------------------

def test_readme_shows_the_shipped_nginx_conf():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", readme, flags=re.DOTALL)
    assert "(deploy/nginx.conf)" in readme  # the README links the file ...
    assert all(block == SHIPPED_CONF.read_text() for block in blocks)  # ... and shows no other config
    assert "TRUSTED_PROXIES" in readme.split("## Deployment", 1)[1]


def test_shipped_body_limit_matches_the_gateway_default():
    match = re.search(r"client_max_body_size (\d+)([km]?);", SHIPPED_CONF.read_text())
    assert match
    size = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2}[match.group(2)]
    assert size == Settings.from_environ({}).server_max_request_body_size == parse_byte_size("10MiB")


def test_nginx_accepts_the_shipped_file_as_is(tmp_path: Path):
    """`nginx -t` on the file exactly as shipped (port 80 and /var/log/nginx untouched)."""
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{ include {SHIPPED_CONF}; }}\n")
    result = subprocess.run([nginx_binary(), "-t", "-e", str(tmp_path / "error.log"), "-p", str(tmp_path),
                             "-c", str(main)], check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
