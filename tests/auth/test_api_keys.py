"""Static API keys: both header styles, the keys file, and what is kept in memory."""

from __future__ import annotations

import hashlib

import pytest

from app.auth.api_keys import ApiKeys
from app.config import ConfigError
from tests.auth.conftest import API_KEY, assert_refused, bearer, guard_of

KEY_ID = "key:" + hashlib.sha256(API_KEY.encode()).hexdigest()[:8]


def test_api_key_as_bearer_or_x_api_key_names_the_same_subject(auth_app):
    client = auth_app().test_client()
    for headers in (bearer(API_KEY), {"x-api-key": API_KEY}, {"X-API-Key": API_KEY},
                    {"Authorization": f"bearer  {API_KEY} "}):
        response = client.get("/v1/whoami", headers=headers)
        assert response.status_code == 200, headers
        assert response.get_json() == {"subject": KEY_ID, "environ_subject": KEY_ID}
        assert API_KEY not in response.get_data(as_text=True)


def test_wrong_api_key_is_refused_without_echoing_it(auth_app):
    client = auth_app().test_client()
    for wrong in ("nope", API_KEY + "x", API_KEY[:-1], API_KEY.upper()):
        assert_refused(client.get("/v1/whoami", headers=bearer(wrong)), "invalid credential", credential=wrong)
        assert_refused(client.get("/v1/whoami", headers={"x-api-key": wrong}), "invalid credential",
                       credential=wrong)


def test_keys_file_one_per_line_comments_and_blanks_ignored(auth_app, tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# team keys\n\n  file-key-one-0123456789  \n#file-key-disabled-0123\nfile-key-two-0123456789\n")
    client = auth_app({"AUTH_API_KEYS": "", "AUTH_API_KEYS_FILE": str(keys_file)}).test_client()
    assert client.get("/v1/whoami", headers=bearer("file-key-one-0123456789")).status_code == 200
    assert client.get("/v1/whoami", headers={"x-api-key": "file-key-two-0123456789"}).status_code == 200
    for refused in ("file-key-disabled-0123", "#file-key-disabled-0123", "# team keys", API_KEY):
        assert client.get("/v1/whoami", headers=bearer(refused)).status_code == 401, refused


def test_keys_from_the_list_and_the_file_both_work(auth_app, tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("file-key-0123456789\n")
    client = auth_app({"AUTH_API_KEYS": f"{API_KEY}, second-key-0123456789", "AUTH_API_KEYS_FILE": str(keys_file)}
                      ).test_client()
    for key in (API_KEY, "second-key-0123456789", "file-key-0123456789"):
        assert client.get("/v1/whoami", headers=bearer(key)).status_code == 200, key


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_keys_file_is_a_clear_start_up_error(make_app, tmp_path, kind):
    path = tmp_path / "absent.txt" if kind == "missing" else tmp_path
    with pytest.raises(ConfigError, match=r"^invalid AUTH_API_KEYS_FILE='.*': not a readable file$"):
        make_app({"AUTH_ENABLE": "true", "AUTH_API_KEYS_FILE": str(path)})


def test_unreadable_keys_file_stops_gunicorn_with_one_line(live_gateway, tmp_path):
    path = tmp_path / "absent.txt"
    result = live_gateway.expect_exit({"AUTH_ENABLE": "true", "AUTH_API_KEYS_FILE": str(path)})
    assert result.returncode == 2
    output = (result.stdout + result.stderr).strip()
    assert output.splitlines() == [f"inference-gateway: invalid AUTH_API_KEYS_FILE={str(path)!r}: not a readable file"]


def test_keys_file_ignored_when_auth_is_off(make_app, tmp_path):
    app = make_app({"AUTH_API_KEYS_FILE": str(tmp_path / "absent.txt")})
    assert app.test_client().get("/health").status_code == 200


def test_key_shaped_like_a_jwt_is_refused_at_start_up(make_app):
    with pytest.raises(ConfigError, match="must not have the shape of a JWT") as caught:
        make_app({"AUTH_ENABLE": "true", "AUTH_API_KEYS": "abc.def.ghi"})
    assert "abc.def.ghi" not in str(caught.value)


def test_auth_on_with_neither_issuer_nor_keys_is_a_start_up_error(make_app):
    with pytest.raises(ConfigError, match="set AUTH_OIDC_ISSUER, AUTH_API_KEYS or AUTH_API_KEYS_FILE"):
        make_app({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": ""})


def test_only_digests_are_kept(auth_app):
    keys = guard_of(auth_app()).api_keys
    assert keys.identify(API_KEY) == KEY_ID
    assert API_KEY not in repr(vars(keys))
    assert API_KEY.encode() not in b"".join(digest for digest, _ in keys._digests)


def test_duplicate_keys_count_once_and_ids_are_stable():
    keys = ApiKeys(["a-key-0123456789", "a-key-0123456789", "b-key-0123456789"])
    assert len(keys) == 2
    assert keys.identify("a-key-0123456789") == ApiKeys(["a-key-0123456789"]).identify("a-key-0123456789")
    assert keys.identify("a-key-0123456789") != keys.identify("b-key-0123456789")
    assert keys.identify("") is None
