"""Which models a proxied request calls, checked against ALLOWED_MODELS / DISALLOWED_MODELS.

    names = path_models(path)               # `gemini-pro` from /v1beta/models/gemini-pro:generateContent
    refuse_later_calls(method, path)         # 403 for /files, /batches, /uploads while a list is set

A proxied request may name its model in three places, and every one is checked:

    the body        its `model` (app.proxy.body reads JSON, forms and multipart, gzip too)
    the path        the segment after `models` or `tunedModels` (Google's native API:
                    `models/<model>:generateContent`), up to its `:action`
    later           a batch or an uploaded file makes the provider call models the gateway
                    never sees: while a list is set, POST/PUT/PATCH/DELETE on a path with a
                    `files`, `uploads` or `batches` segment (or any segment with `batch` in it,
                    as Google's `:batchGenerateContent`) is refused with 403. GET and HEAD
                    (listing, reading results) pass.
"""

from __future__ import annotations

from itertools import pairwise
from urllib.parse import unquote

from app.errors import PermissionDenied

MODEL_SEGMENTS = frozenset({"models", "tunedmodels"})
LATER_CALL_SEGMENTS = frozenset({"files", "uploads", "batches"})
READS = frozenset({"GET", "HEAD"})


def _segments(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/") if segment]


def path_models(path: str) -> list[str]:
    """The models a provider path names (`/models/<model>[:action]`), as written."""
    segments = _segments(path)
    return [name.partition(":")[0] for before, name in pairwise(segments)
            if before.lower() in MODEL_SEGMENTS and name.partition(":")[0]]


def calls_model_later(path: str) -> bool:
    return any(segment.lower() in LATER_CALL_SEGMENTS or "batch" in segment.lower() for segment in _segments(path))


def refuse_later_calls(method: str, path: str) -> None:
    """While a list is set: 403 for a write to a files, uploads or batches path (see the module docstring)."""
    if method.upper() not in READS and calls_model_later(path):
        raise PermissionDenied(
            "Batches and uploaded files make the provider call models the gateway cannot check, so they are "
            "refused through the proxy while ALLOWED_MODELS / DISALLOWED_MODELS are set.", code="model_not_checkable")
