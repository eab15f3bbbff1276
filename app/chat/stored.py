"""Kept responses (GET and DELETE /v1/responses/{id}): a call that names a response, not a model.

    answer = kept_response(dispatcher, endpoints.STORED_RESPONSE, dict(request.args), response_id=...,
                           provider=request.args.get("provider"), environ=request.environ)

A response id carries no provider, so the provider is `?provider=`; without it, the one
configured provider whose catalog entry keeps responses (`stored_response_endpoint`). With
several such providers the gateway cannot tell (400: name one with ?provider=); with none, 501.
A provider named with ?provider= that keeps no responses answers 501 too. There is no model to
route or check: the allow and deny lists applied when the response was created. Then the call
goes through the same core as any other (`Calls.open`: retries; `passthrough`: the relay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.chat.call import Calls
from app.chat.dispatch import record_facts
from app.chat.passthrough import passthrough
from app.chat.usage import Meter
from app.errors import InvalidRequest, Unsupported
from app.providers.routing import Route
from app.signals import PROVIDER_KEY, SUBJECT_KEY

if TYPE_CHECKING:
    from app.chat.answer import Answer
    from app.chat.dispatch import Dispatcher
    from app.chat.endpoints import Endpoint
    from app.providers.provider import Provider, Providers


def keeper(providers: Providers, endpoint: Endpoint, provider_param: str | None) -> Provider:
    """The provider that keeps the response (see the module docstring)."""
    if provider_param:
        provider = providers.lookup(provider_param.strip().lower())
        provider.require_configured()
        return provider
    keepers = [p for p in providers.configured() if getattr(p.spec, endpoint.spec_field) is not None]
    if not keepers:
        raise Unsupported("No configured provider keeps responses.", code="unsupported_endpoint")
    if len(keepers) > 1:
        raise InvalidRequest(f"Several providers keep responses ({', '.join(p.id for p in keepers)}): name the "
                             f"one that made it with ?provider=<id>.", code="unknown_provider")
    return keepers[0]


def kept_response(dispatcher: Dispatcher, endpoint: Endpoint, query: dict[str, Any], *, response_id: str,
                  provider: str | None, environ: dict[str, Any]) -> Answer:
    route = Route(keeper(dispatcher.providers, endpoint, provider), "")
    environ[PROVIDER_KEY] = route.provider.id
    bound = endpoint.called_with(resource=response_id)
    calls = Calls(dispatcher.resilience, (route,))  # GET and DELETE are safe to retry
    stream = endpoint.streamed(query)
    try:
        opened = calls.open(bound, query, stream=stream)
    finally:
        record_facts(calls, environ)
    return passthrough(opened, bound, query, Meter(dispatcher.app, route, subject=environ.get(SUBJECT_KEY), stream=stream))
