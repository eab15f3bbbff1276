"""The one layer in front of the chat core: route a model call, check it once, open it, hand it over.

    answer = dispatcher.answer(endpoint, payload, provider=request.args.get("provider"),
                               environ=request.environ)

1. route (`Router.target`, app/providers/routing.py): `?provider=`, an alias of the configuration
   file, the model's `provider/` prefix, else the endpoint's rule for a bare model (`claude-*` on
   /v1/messages) (400 unknown / unconfigured);
2. check ALLOWED_MODELS / DISALLOWED_MODELS (403) and the vision rule (400), once, on every path:
   a plain route by its id; an alias by its own name, then each target (a target that is
   denied, lacks vision for a request with images, or lacks the endpoint is left out; none
   left: 403, 400 or 501);
3. wait for the checks still out (`late_checks.settle`: the rate limits' count), then
   open the call on the targets (`Calls.open`: retries, fallbacks, circuit breakers, all before
   the first byte), then hand over to the plain relay, or to the MCP agent loop when the
   endpoint runs tools and tools are available;
4. record the request facts in the environ for the access log, metrics and the
   X-Gateway-Upstream / X-Gateway-Attempts headers: the deployment and model that served (or
   were tried last), the alias, the tries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.chat import tool_loop
from app.chat.call import Calls
from app.chat.passthrough import passthrough
from app.chat.usage import Meter
from app.errors import InvalidRequest, PermissionDenied, Unsupported
from app.late_checks import settle
from app.providers.routing import Alias, ModelPolicy, Route, Router
from app.signals import ALIAS_KEY, ATTEMPTS_KEY, MODEL_KEY, PROVIDER_KEY, SUBJECT_KEY, UPSTREAM_KEY

if TYPE_CHECKING:
    from flask import Flask

    from app.chat.answer import Answer
    from app.chat.endpoints import Endpoint
    from app.mcp.agent import AgentLoop
    from app.resilience import Resilience

EXTENSION_KEY = "gateway.chat"


class Dispatcher:
    def __init__(self, app: Flask, *, router: Router, policy: ModelPolicy, vision: bool, agent: AgentLoop,
                 resilience: Resilience):
        self.app = app  # the sender of the usage and tool-call signals
        self.router = router
        self.providers = router.providers
        self.policy = policy
        self.vision = vision
        self.agent = agent
        self.resilience = resilience

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self

    def answer(self, endpoint: Endpoint, payload: dict[str, Any], *, provider: str | None,
               environ: dict[str, Any]) -> Answer:
        model = payload["model"]
        target = self.router.target(model, provider, bare=endpoint.provider_for_bare(model))
        if type(target) is Route:  # the common case: one provider/model
            environ[PROVIDER_KEY] = target.provider.id
            environ[MODEL_KEY] = target.model
            self.policy.check(target.model_id)
            if endpoint.images is not None and endpoint.images(payload):
                self.check_vision(target)
            calls = Calls(self.resilience, (target,))
        else:
            environ[ALIAS_KEY] = target.name
            calls = Calls(self.resilience, self.alias_routes(target, endpoint, payload), strategy=target.strategy,
                          name=target.name)
        subject = environ.get(SUBJECT_KEY)
        app = self.app

        def meter_for(route: Route, *, stream: bool) -> Meter:
            return Meter(app, route, subject=subject, stream=stream)

        settle(environ)  # the rate limits' count, sent as the request started (app/late_checks.py)
        try:
            if endpoint.runs_tools and self.agent.applies():  # MCP on and tools available
                return tool_loop.answer(self.agent, calls, payload, meter_for)
            streamed = endpoint.streamed(payload)
            opened = calls.open(endpoint, payload, stream=streamed)
        finally:
            record_facts(calls, environ)
        return passthrough(opened, endpoint, payload, meter_for(opened.route, stream=streamed))

    def alias_routes(self, alias: Alias, endpoint: Endpoint, payload: dict[str, Any]) -> list[Route]:
        """The alias's targets this request may use, in the configured order."""
        self.policy.check(alias.name)
        routes = [route for route in alias.routes if self.policy.allows(route.model_id)]
        if not routes:
            raise PermissionDenied(f"No target of model {alias.name} is allowed on this gateway.",
                                   code="model_not_allowed")
        if endpoint.images is not None and endpoint.images(payload):
            if not self.vision:
                self.check_vision(routes[0])  # refuses: vision is off
            routes = [route for route in routes if route.provider.spec.supports_vision]
            if not routes:
                raise InvalidRequest(f"No target of model {alias.name} accepts images: remove the image parts "
                                     f"or choose a model with vision.", code="vision_unsupported")
        served: list[Route] = []
        unsupported: Unsupported | None = None
        for route in routes:
            try:
                endpoint.path(route.provider)
            except Unsupported as exc:
                unsupported = unsupported or exc
                continue
            served.append(route)
        if not served and unsupported is not None:
            raise Unsupported(f"No target of model {alias.name} has a {endpoint.name} endpoint.",
                              code=unsupported.code)
        return served

    def check_vision(self, route: Route) -> None:
        """Images need ENABLE_VISION=true and a provider whose catalog entry supports vision (else 400)."""
        if not self.vision:
            raise InvalidRequest("Image content is disabled on this gateway: remove the image parts or set "
                                 "ENABLE_VISION=true.", code="vision_disabled")
        if not route.provider.spec.supports_vision:
            raise InvalidRequest(f"Provider {route.provider.id} does not accept images: remove the image parts "
                                 f"or choose a provider with vision.", code="vision_unsupported")


def record_facts(calls: Calls, environ: dict[str, Any]) -> None:
    """Who served (or was tried last) and how many tries it took, for logs, metrics and headers."""
    environ[ATTEMPTS_KEY] = calls.attempts
    route = calls.route
    if route is not None:
        environ[PROVIDER_KEY] = route.provider.id
        environ[MODEL_KEY] = route.model
        environ[UPSTREAM_KEY] = f"{route.provider.id}/{route.model}"
