"""The console end to end: the real gunicorn gateway (2 gevent workers, accounts on SQLite), a fake
provider, and Debian's headless Chromium driven by selenium. An operator signs in, creates a key,
a client chats with it through the API, the operator sees the request and its spend appear (the
traffic page updates without a reload), sees a failed call among the recent errors, revokes the
key, and the client is refused. Each page's screenshot goes to docs/console/ (the README shows them).

A missing browser fails this test, never skips it: `.ci/run` installs `chromium` and
`chromium-driver` when they are missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.accounts.live import access_lines, completion_reply
from tests.console.conftest import ADMIN_KEY
from tests.support.fake_provider import Recorded, Reply, json_reply
from tests.support.live_gateway import ROOT
from tests.support.polling import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "docs" / "console"
PROVIDER_KEY = "sk-provider-e2e-secret-987654"
CALL_COST = (1000 * 2.50 + 500 * 10.00) / 1e6  # openai/gpt-4o: 1000 prompt, 500 completion tokens


def browser_paths() -> tuple[str, str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"the console's browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} "
                    f"missing): apt-get install chromium chromium-driver (.ci/run does it)")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                     "--disable-extensions", "--no-first-run", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # script errors, CSP refusals
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def provider_reply(recorded: Recorded) -> Reply:
    """gpt-4o answers; any other model is refused the way OpenAI refuses, quoting a key."""
    if recorded.json().get("model") == "gpt-4o":
        return json_reply(completion_reply())
    return json_reply({"error": {"message": f"The model does not exist (key {PROVIDER_KEY}).",
                                 "type": "invalid_request_error"}}, status=404)


def chat(url: str, secret: str, model: str = "openai/gpt-4o", request_id: str | None = None) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", timeout=20, json={
        "model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {secret}", "Connection": "close",
                 "X-Request-ID": request_id or uuid.uuid4().hex})


def test_an_operator_signs_in_creates_a_key_sees_its_traffic_and_spend_and_revokes_it(
        browser, live_gateway, fake_provider, tmp_path):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fake_provider.on("POST", "/v1/chat/completions", provider_reply)
    gateway = live_gateway({"ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
                            "ADMIN_API_KEY": ADMIN_KEY, "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "",
                            "OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": PROVIDER_KEY,
                            "AUTH_FAILURE_LIMIT": "100/minute"},  # the waits below meet 401s while keys propagate
                           workers=2)
    # a page being replaced by the next one: its elements go stale or are not there yet
    wait = WebDriverWait(browser, 20, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png")), name

    def heading() -> str:
        return browser.find_element(By.TAG_NAME, "h1").text

    def text() -> str:
        return browser.find_element(By.TAG_NAME, "main").text

    # nginx on the same host says the client came over TLS: the cookie is Secure (gunicorn trusts
    # X-Forwarded-Proto from 127.0.0.1 by default: FORWARDED_ALLOW_IPS)
    behind_tls = requests.get(gateway.url + "/console/sign-in", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "; Secure" in behind_tls.headers["Set-Cookie"]
    assert "; Secure" not in requests.get(gateway.url + "/console/sign-in", timeout=10).headers["Set-Cookie"]

    # -- sign in ---------------------------------------------------------------------------------
    browser.get(gateway.url + "/console/")
    wait.until(lambda _: heading() == "Sign in")
    browser.find_element(By.ID, "key").send_keys("not-the-admin-key")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(lambda _: "That is not the admin key" in text())
    shot("sign-in")
    browser.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(lambda _: heading() == "Providers")
    cookie = browser.get_cookie("gateway_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script can read it

    # -- create a key: its secret once, with a copy button ---------------------------------------
    browser.find_element(By.LINK_TEXT, "Keys").click()
    wait.until(lambda _: heading() == "Keys")
    form = browser.find_element(By.CSS_SELECTOR, "#new-key form")
    form.find_element(By.NAME, "name").send_keys("checkout-service")
    form.find_element(By.NAME, "owner").send_keys("payments team")
    form.find_element(By.NAME, "models").send_keys("openai/gpt-4o, openai/gpt-4o-nonexistent")
    form.find_element(By.NAME, "budget_usd").send_keys("0.05")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda _: "shown this once" in text())
    secret = browser.find_element(By.ID, "secret").get_attribute("value")
    assert secret.startswith("sk-gw-")
    copy = browser.find_element(By.CSS_SELECTOR, "[data-copy]")
    copy.click()
    wait.until(lambda _: copy.text == "Copied")
    # the screenshot is committed: it shows the secret's start only
    browser.execute_script("document.getElementById('secret').value = arguments[0]", secret[:10] + "…")
    shot("key-created")

    # -- the traffic page is open while a client calls through the API ---------------------------
    browser.find_element(By.LINK_TEXT, "Traffic").click()
    wait.until(lambda _: heading() == "Traffic")
    assert browser.find_element(By.CSS_SELECTOR, '[data-total="requests"]').text == "0"
    wait_for(lambda: chat(gateway.url, secret).status_code != 401, 10, "the new key to reach every worker")
    served = [chat(gateway.url, secret) for _ in range(2)]
    assert [answer.status_code for answer in served] == [200, 200]
    failed = chat(gateway.url, secret, model="openai/gpt-4o-nonexistent", request_id="req-console-e2e-404")
    assert failed.status_code == 404
    page_url = browser.current_url
    wait.until(lambda _: browser.find_element(By.CSS_SELECTOR, '[data-total="requests"]').text == "4")
    assert browser.current_url == page_url  # updated by its own polling, not reloaded
    assert browser.find_element(By.CSS_SELECTOR, '[data-total="error_rate"]').text == "25.0%"
    assert "openai/gpt-4o" in browser.find_element(By.ID, "by-model").text
    shot("traffic")

    # -- the key's spend against its budget, and usage by key ------------------------------------
    browser.find_element(By.LINK_TEXT, "Keys").click()
    wait.until(lambda _: heading() == "Keys")
    row = browser.find_element(By.CSS_SELECTOR, "#keys tbody tr")
    assert "checkout-service" in row.text and f"${3 * CALL_COST:.4f} of $0.0500" in row.text
    meter = float(row.find_element(By.TAG_NAME, "meter").get_attribute("value"))
    assert meter == pytest.approx(3 * CALL_COST / 0.05)
    shot("keys")

    browser.get(gateway.url + "/console/usage?group_by=key")
    wait.until(lambda _: heading() == "Usage")
    usage_row = browser.find_element(By.CSS_SELECTOR, "#usage tbody tr").text
    assert "checkout-service" in usage_row and f"${3 * CALL_COST:.4f}" in usage_row
    admin = requests.get(gateway.url + "/admin/usage", params={"group_by": "key"}, timeout=10,
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert admin["data"][0]["requests"] == 4 and admin["data"][0]["cost_usd"] == pytest.approx(3 * CALL_COST)
    assert browser.find_element(By.CSS_SELECTOR, 'a[href^="/console/usage.csv"]').is_displayed()
    shot("usage")

    # -- the failed call among the recent errors, the provider's key redacted ---------------------
    browser.find_element(By.LINK_TEXT, "Errors").click()
    wait.until(lambda _: heading() == "Recent errors")
    errors = browser.find_element(By.ID, "errors").text
    assert "req-console-e2e-404" in errors and "provider answered 404" in errors and "[REDACTED]" in errors
    assert PROVIDER_KEY not in browser.page_source
    shot("errors")

    browser.find_element(By.LINK_TEXT, "Providers").click()
    wait.until(lambda _: heading() == "Providers")
    providers = browser.find_element(By.ID, "providers").text
    assert "openai" in providers and "up" in providers
    shot("providers")

    # -- revoke: the client is refused --------------------------------------------------------------
    browser.find_element(By.LINK_TEXT, "Keys").click()
    wait.until(lambda _: heading() == "Keys")
    browser.find_element(By.CSS_SELECTOR, "#keys button.danger").click()
    wait.until(lambda driver: driver.switch_to.alert).accept()
    wait.until(lambda _: "is revoked" in text())
    assert "revoked" in browser.find_element(By.CSS_SELECTOR, "#keys tbody tr").text
    # each worker reloads its keys within 2 s: call (each on its own connection) until both workers
    # have refused it, told apart by the pid on their access lines; a worker that has refused it
    # once refuses it from then on
    refused_by: set[int] = set()

    def refused_by_both_workers() -> bool:
        ids = [uuid.uuid4().hex for _ in range(8)]
        statuses = [chat(gateway.url, secret, request_id=request_id).status_code for request_id in ids]
        lines = access_lines(gateway)
        refused_by.update(lines[i]["pid"] for i, status in zip(ids, statuses, strict=True)
                          if status == 401 and i in lines)
        return len(refused_by) == 2

    wait_for(refused_by_both_workers, 20, "both workers to refuse the revoked key")
    refused = chat(gateway.url, secret)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"

    # -- the same console on a phone -------------------------------------------------------------
    browser.set_window_size(390, 844)
    browser.get(gateway.url + "/console/traffic")
    wait.until(lambda _: heading() == "Traffic")
    shot("traffic-phone")
    browser.get(gateway.url + "/console/keys")
    wait.until(lambda _: heading() == "Keys")
    shot("keys-phone")
    assert PROVIDER_KEY not in gateway.logs() and ADMIN_KEY not in gateway.logs()
    # no script failed and the Content-Security-Policy refused nothing the console ships (the one
    # resource that failed to load is the wrong key's 401 sign-in page)
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
                and "status of 401" not in entry["message"]]
    assert not problems, problems
