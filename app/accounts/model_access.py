"""A virtual key's `models` list, checked wherever the gateway checks ALLOWED_MODELS.

`KeyModelPolicy` wraps the gateway's `ModelPolicy` (installed by `app.accounts.init_app`): a model
must pass the gateway's lists and, for a request made with a virtual key that names models, the
key's list too. Entries match as ALLOWED_MODELS entries do (`routing.Entries`): one that names a
provider matches that provider's model only, a bare one the model part of any provider's id,
case-insensitively; alias names (issue 15) match by name. `/v1/models`
lists only what the key may call.
"""

from __future__ import annotations

from flask import has_request_context, request

from app.errors import PermissionDenied
from app.providers.routing import Entries, ModelPolicy

KEY_RECORD_KEY = "gateway.virtual_key"  # the request's KeyRecord, set by the accounts' before_request hook


class KeyModelPolicy:
    def __init__(self, gateway: ModelPolicy):
        self.gateway = gateway

    @property
    def active(self) -> bool:
        return self.gateway.active

    def _matches(self, model_id: str, models) -> bool:
        return Entries(models, self.gateway.provider_ids).match(model_id)

    @staticmethod
    def _key_models():
        if not has_request_context():
            return None
        record = request.environ.get(KEY_RECORD_KEY)
        return record if record is not None and record.models else None

    def allows(self, model_id: str) -> bool:
        if not self.gateway.allows(model_id):
            return False
        record = self._key_models()
        return record is None or self._matches(model_id, record.models)

    def check(self, model_id: str) -> None:
        self.gateway.check(model_id)
        record = self._key_models()
        if record is not None and not self._matches(model_id, record.models):
            raise PermissionDenied(f"Model {model_id} is not allowed for key {record.name!r}.",
                                   code="model_not_allowed")
