"""Images and audio: POST /v1/images/generations, /v1/audio/speech, /v1/audio/transcriptions and
/v1/audio/translations, for the providers whose catalog entry has them (501 otherwise).

Speech comes back as the provider sends it, chunk by chunk. A transcription or translation is a
multipart upload: it is scanned for its text fields (`model` is routed and checked like any
model) and passed on from the server edge's spool, never held whole in memory (`app.chat.multipart`).
"""

from __future__ import annotations

from typing import IO

from flask import Blueprint, Response, request

from app.api.answers import answer
from app.chat import endpoints
from app.chat.endpoints import Endpoint
from app.chat.multipart import MultipartUpload
from app.errors import InvalidRequest
from app.late_checks import settles_late
from app.schemas import check, json_object
from app.schemas.media import IMAGE, SPEECH, UPLOAD_FIELDS

bp = Blueprint("media", __name__)


@bp.post("/v1/images/generations")
@settles_late
def image_generations() -> Response:
    payload = json_object(request)
    check(IMAGE, payload)
    return answer(endpoints.IMAGE_GENERATIONS, payload)


@bp.post("/v1/audio/speech")
@settles_late
def speech() -> Response:
    payload = json_object(request)
    check(SPEECH, payload)
    return answer(endpoints.SPEECH, payload)


@bp.post("/v1/audio/transcriptions")
def transcriptions() -> Response:
    return upload(endpoints.TRANSCRIPTIONS)


@bp.post("/v1/audio/translations")
def translations() -> Response:
    return upload(endpoints.TRANSLATIONS)


def upload(endpoint: Endpoint) -> Response:
    scanned = MultipartUpload.scan(_body_stream(), request.content_type)
    check(UPLOAD_FIELDS, scanned.fields)
    if "file" not in scanned.files:
        raise InvalidRequest("Invalid request: file: Missing data for required field (an audio file part).",
                             code="invalid_request")
    return answer(endpoint.called_with(upload=scanned), dict(scanned.fields))


def _body_stream() -> IO[bytes]:
    """The body as the server edge spooled it (it can be read again), else werkzeug's stream."""
    raw = request.environ.get("wsgi.input")
    try:
        if raw is not None and raw.seekable():
            return raw
    except (AttributeError, ValueError):
        pass
    return request.stream
