"""Schemas of images, audio and moderations (POST /v1/images/generations, /v1/audio/speech,
/v1/moderations; the fields of /v1/audio/transcriptions and /translations uploads).

The OpenAI API would pick a default model for some of these; the gateway cannot: it routes by
the model, so `model` is required everywhere (`provider/model`). Everything else is INCLUDED and
forwarded untouched.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from app.schemas.chat import StrictBool, StrictInt, _Passthrough
from app.schemas.responses import MODEL


class ModerationInput(fields.Field):
    """A string, a non-empty list of strings, or a non-empty list of input objects (text, images)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and (all(isinstance(item, str) for item in value)
                                                  or all(isinstance(item, dict) for item in value)):
            return value
        raise ValidationError("Must be a string, or a non-empty list of strings or of input objects.")


class ImageRequest(_Passthrough):
    model = fields.String(**MODEL)
    prompt = fields.String(required=True, validate=validate.Length(min=1, error="Must be a non-empty string."))
    n = StrictInt(validate=validate.Range(min=1), allow_none=True)
    stream = StrictBool()


class SpeechRequest(_Passthrough):
    model = fields.String(**MODEL)
    input = fields.String(required=True, validate=validate.Length(min=1, error="Must be a non-empty string."))
    stream_format = fields.String(validate=validate.OneOf(("sse", "audio")))


class ModerationRequest(_Passthrough):
    model = fields.String(**MODEL)
    input = ModerationInput(required=True)


class UploadFields(_Passthrough):
    """The text fields of a transcription or translation upload (the file is checked apart)."""

    model = fields.String(**MODEL)
    stream = fields.String(validate=validate.OneOf(("true", "false"), error="Must be true or false."))


IMAGE = ImageRequest()
SPEECH = SpeechRequest()
MODERATION = ModerationRequest()
UPLOAD_FIELDS = UploadFields()
