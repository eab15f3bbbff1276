"""A listed model as the gateway shows it, and reading a provider's model-list pages.

Every provider's list becomes entries of one shape (the spec's `Model`), whatever it sent:

    {"id": "<provider>/<upstream id>", "object": "model", "created": <unix seconds, 0 if unknown>,
     "owned_by": "...", "served_by": "<provider>"}

The id is always prefixed, even when the upstream id has a `/` of its own
(`groq/meta-llama/llama-4-scout`), so it routes as-is in a chat request.

`fetch_page` GETs one page with the provider's credential: an error answer becomes
`UpstreamStatus` (the provider's own status and body), a body that is not the expected JSON an
`UpstreamError`. The OpenAI list shape is read by `openai_models`; other shapes live in
`quirks/<kind>.py` and use the helpers here. `unique` keeps each id once (a provider that
repeats a page, or a model, lists it once).

Readers take any `ModelSource` (what they use of a `Provider`), so neither this module nor
`quirks/` imports `provider.py`, which imports them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from app.errors import UpstreamError, UpstreamStatus
from app.providers.catalog import ProviderSpec

Entry = dict[str, Any]


class ModelSource(Protocol):
    """What a model-list reader uses of a provider."""

    id: str
    spec: ProviderSpec

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                params: Any = None) -> requests.Response: ...

    def read_body(self, response: requests.Response) -> bytes: ...


# A paged list that never ends is the provider's bug; stop after this many pages.
MAX_PAGES = 50

log = logging.getLogger("gateway.models")


def entry(provider_id: str, upstream_id: str, *, created: int = 0, owned_by: str | None = None) -> Entry:
    return {"id": f"{provider_id}/{upstream_id}", "object": "model", "created": created,
            "owned_by": owned_by or provider_id, "served_by": provider_id}


def fetch_page(provider: ModelSource, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET one list page as a JSON object; failures raise the matching UpstreamError."""
    response = provider.request("GET", path, params=params, headers={"Accept": "application/json"})
    body = provider.read_body(response)
    if not 200 <= response.status_code < 300:
        raise UpstreamStatus(response.status_code, body, response.headers.get("Content-Type"))
    try:
        page = json.loads(body)
    except ValueError:
        raise UpstreamError(f"Provider {provider.id} answered the model list with something that is not JSON.") from None
    if not isinstance(page, dict):
        raise unexpected_shape(provider)
    return page


def items(page: dict[str, Any], key: str, provider: ModelSource) -> list[dict[str, Any]]:
    """The list of model objects under `key` (null counts as empty); anything else is a shape error."""
    found = page.get(key)
    if found is None:
        return []
    if not isinstance(found, list):
        raise unexpected_shape(provider)
    return [item for item in found if isinstance(item, dict)]


def unexpected_shape(provider: ModelSource) -> UpstreamError:
    return UpstreamError(f"Provider {provider.id} answered the model list in a shape the gateway does not know.")


def pages(provider: ModelSource, params: dict[str, Any],
          follow: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[dict[str, Any]]:
    """Every page of a paged model list: `follow(page)` gives the next page's params, or None at
    the end. A cursor that repeats ends the list; so do MAX_PAGES pages (logged)."""
    for _ in range(MAX_PAGES):
        page = fetch_page(provider, provider.spec.models_endpoint, params)
        yield page
        following = follow(page)
        if following is None or following == params:
            return
        params = following
    log.warning("model list of %s still had more pages after %d; listing what arrived", provider.id, MAX_PAGES,
                extra={"provider": provider.id})


def unique(entries: Iterable[Entry]) -> list[Entry]:
    """The entries with each id once, the first one kept, in order."""
    seen: set[str] = set()
    return [e for e in entries if not (e["id"] in seen or seen.add(e["id"]))]


def unix_seconds(value: Any) -> int:
    """An upstream `created` number as int seconds; 0 when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def parse_timestamp(value: Any, formats: tuple[str, ...] = ()) -> int:
    """Unix seconds of an RFC 3339 / ISO 8601 time (or one of `formats`, read as UTC); 0 if unreadable."""
    if not isinstance(value, str) or not value:
        return 0
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        for layout in formats:
            try:
                moment = datetime.strptime(value, layout)
                break
            except ValueError:
                continue
    if moment is None:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def openai_models(provider: ModelSource, upstream_id: Callable[[str], str] = str) -> list[Entry]:
    """The OpenAI list shape `{"object": "list", "data": [{id, object, created, owned_by}]}`."""
    page = fetch_page(provider, provider.spec.models_endpoint)
    return [entry(provider.id, upstream_id(model["id"]), created=unix_seconds(model.get("created")),
                  owned_by=model.get("owned_by") if isinstance(model.get("owned_by"), str) else None)
            for model in items(page, "data", provider) if isinstance(model.get("id"), str) and model["id"]]
