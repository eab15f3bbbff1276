"""Admin API bodies and queries (marshmallow). Unlike the model endpoints', unknown fields are
refused: a misspelt `budget_usd` must not silently leave a key without a budget.

    load(SCHEMA, payload)  -> the loaded fields, or InvalidRequest naming each bad field
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validates
from marshmallow.validate import Length, OneOf, Range

from app.accounts.models import BUDGET_PERIODS
from app.accounts.reports import GROUPS
from app.schemas import check

MAX_METADATA_BYTES = 16 * 1024


class WholeNumber(fields.Integer):
    """An integer that is really one (no `true`, no `"5"`, no `5.0`)."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Dollars(fields.Float):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (bool, str)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Moment(fields.Field):
    """An ISO 8601 date (`2026-12-01`, midnight UTC) or date-time (UTC when it names no offset)."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": "Not a valid date or date-time (ISO 8601, e.g. 2026-12-01T00:00:00Z)."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise self.make_error("invalid") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class KeyFields(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=Length(min=1, max=200))
    owner = fields.String(allow_none=True, validate=Length(max=200))
    models = fields.List(fields.String(validate=Length(min=1, max=255)), validate=Length(max=1000))
    rpm = WholeNumber(allow_none=True, validate=Range(min=1, max=10_000_000))
    tpm = WholeNumber(allow_none=True, validate=Range(min=1, max=10_000_000_000))
    budget_usd = Dollars(allow_none=True, validate=Range(min=0, max=1e12))
    budget_period = fields.String(validate=OneOf(BUDGET_PERIODS))
    expires_at = Moment(allow_none=True)
    metadata = fields.Dict(keys=fields.String(), allow_none=True, attribute="meta")

    @validates("name")
    def _name_is_not_blank(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")

    @validates("models")
    def _models_are_not_blank(self, value: list[str], **_: Any) -> None:
        if any(not entry.strip() for entry in value):
            raise ValidationError("Entries must not be blank.")

    @validates("metadata")
    def _metadata_is_small(self, value: dict | None, **_: Any) -> None:
        if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValidationError(f"Must be at most {MAX_METADATA_BYTES} bytes of JSON.")


class NewKey(KeyFields):
    name = fields.String(required=True, validate=Length(min=1, max=200))


class UsageArgs(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(validate=Length(min=1, max=64))
    model = fields.String(validate=Length(min=1, max=255))
    since = Moment(data_key="from")
    until = Moment(data_key="to")
    group_by = fields.String(validate=OneOf(GROUPS))
    limit = fields.Integer(validate=Range(min=1, max=10_000))


NEW_KEY, KEY_CHANGES, USAGE_ARGS = NewKey(), KeyFields(), UsageArgs()


def load(schema: Schema, payload: dict[str, Any]) -> dict[str, Any]:
    check(schema, payload)  # InvalidRequest naming every bad field
    loaded = schema.load(payload)
    if "models" in loaded:
        loaded["models"] = list(dict.fromkeys(entry.strip() for entry in loaded["models"]))
    if "name" in loaded:
        loaded["name"] = loaded["name"].strip()
    return loaded
