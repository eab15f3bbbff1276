"""The admin API through the app (SQLite and PostgreSQL): who may call it, what bad input gets,
and a secret that is shown once and never logged."""

from __future__ import annotations

import re

import pytest

from tests.accounts.conftest import ADMIN, ADMIN_KEY

STATIC_KEY = "static-key-0123456789abcdef"


def create(client, **fields):
    response = client.post("/admin/keys", json={"name": "team-a", **fields}, headers=ADMIN)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_create_shows_the_secret_once_and_reading_never_does(accounts_app, capsys):
    client = accounts_app().test_client()
    created = create(client, owner="ana@example.com", models=["openai/gpt-4o", "fast"], rpm=60, tpm=10000,
                     budget_usd=25, budget_period="day", expires_at="2099-01-01T00:00:00Z",
                     metadata={"team": "search"})
    secret = created["secret"]
    assert secret.startswith("sk-gw-")
    assert created["status"] == "active" and created["models"] == ["openai/gpt-4o", "fast"]
    assert created["budget_usd"] == 25 and created["budget_period"] == "day"
    assert created["expires_at"] == "2099-01-01T00:00:00Z" and created["metadata"] == {"team": "search"}
    assert created["spend"]["spent_usd"] == 0 and created["spend"]["remaining_usd"] == 25
    assert "warning" not in created  # auth is on

    listed = client.get("/admin/keys", headers=ADMIN)
    one = client.get(f"/admin/keys/{created['id']}", headers=ADMIN)
    assert listed.status_code == one.status_code == 200
    assert [k["id"] for k in listed.get_json()["data"]] == [created["id"]]
    for body in (listed.get_data(as_text=True), one.get_data(as_text=True)):
        assert secret not in body and '"secret"' not in body
    assert one.get_json()["secret_hint"] == f"{secret[:9]}...{secret[-4:]}"
    logs = capsys.readouterr()
    assert secret not in logs.out + logs.err and ADMIN_KEY not in logs.out + logs.err
    assert created["id"] in logs.err  # the creation is logged, by id


def test_patch_changes_fields_null_clears_and_delete_revokes(accounts_app):
    client = accounts_app().test_client()
    key = create(client, rpm=5, budget_usd=1)
    changed = client.patch(f"/admin/keys/{key['id']}", json={"rpm": None, "name": "renamed", "budget_usd": 2},
                           headers=ADMIN)
    assert changed.status_code == 200
    assert (changed.get_json()["rpm"], changed.get_json()["name"], changed.get_json()["budget_usd"]) == (None, "renamed", 2)
    revoked = client.delete(f"/admin/keys/{key['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert revoked.get_json()["revoked_at"]
    again = client.patch(f"/admin/keys/{key['id']}", json={"rpm": 1}, headers=ADMIN)
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "key_revoked"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "a", "rpm": 0}, "rpm"),
    ({"name": "a", "rpm": "10"}, "rpm"),
    ({"name": "a", "tpm": True}, "tpm"),
    ({"name": "a", "budget_usd": -1}, "budget_usd"),
    ({"name": "a", "budget_usd": "5"}, "budget_usd"),
    ({"name": "a", "budget_period": "week"}, "budget_period"),
    ({"name": "a", "models": "openai/gpt-4o"}, "models"),
    ({"name": "a", "models": [""]}, "models"),
    ({"name": "a", "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "a", "expires_at": "2001-01-01"}, "expires_at"),
    ({"name": "a", "metadata": [1]}, "metadata"),
    ({"name": "a", "budget": 5}, "budget"),  # unknown fields are refused, not dropped
])
def test_bad_bodies_get_400_naming_the_field(accounts_app, body, field):
    client = accounts_app().test_client()
    response = client.post("/admin/keys", json=body, headers=ADMIN)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request_error" and re.search(rf"\b{field}(\.\d+)?:", error["message"])
    assert client.get("/admin/keys", headers=ADMIN).get_json()["data"] == []


def test_not_json_and_unknown_ids(accounts_app):
    client = accounts_app().test_client()
    assert client.post("/admin/keys", data="name=a", headers=ADMIN).status_code == 415
    bad_json = client.post("/admin/keys", data="{", headers={**ADMIN, "Content-Type": "application/json"})
    assert bad_json.status_code == 400
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)("/admin/keys/key_nope", json={"rpm": 1}, headers=ADMIN)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "key_not_found"
    assert client.get("/admin/usage?group_by=week", headers=ADMIN).status_code == 400
    assert "unknown" in client.get("/admin/usage?colour=red", headers=ADMIN).get_json()["error"]["message"].lower()


def test_admin_routes_need_the_admin_key(accounts_app):
    client = accounts_app({"AUTH_API_KEYS": STATIC_KEY}).test_client()
    virtual = create(client)["secret"]
    for method, path in (("get", "/admin/keys"), ("post", "/admin/keys"), ("get", "/admin/usage"),
                         ("delete", "/admin/keys/key_x")):
        call = getattr(client, method)
        assert call(path).status_code == 401
        assert call(path, headers={"Authorization": "Bearer wrong-key"}).status_code == 401
        for ordinary in (STATIC_KEY, virtual):
            refused = call(path, headers={"Authorization": f"Bearer {ordinary}"})
            assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "admin_key_required"
    # ...and the admin key is no key for the model endpoints
    assert client.get("/v1/models", headers=ADMIN).status_code == 401


def test_the_admin_api_is_off_without_an_admin_key(accounts_app):
    client = accounts_app({"ADMIN_API_KEY": ""}).test_client()
    response = client.get("/admin/keys", headers=ADMIN)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "admin_api_disabled"
    assert "ADMIN_API_KEY" in response.get_json()["error"]["message"]


def test_keys_made_while_auth_is_off_come_with_a_warning(accounts_app):
    client = accounts_app({"AUTH_ENABLE": "false"}).test_client()
    created = create(client)
    assert "AUTH_ENABLE=false" in created["warning"]
    assert client.get("/admin/keys", headers={"Authorization": f"Bearer {created['secret']}"}).status_code == 403
    assert client.get("/admin/keys").status_code == 401
