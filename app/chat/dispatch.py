"""The one layer in front of the chat core: route a model call, check it once, hand it over.

    answer = dispatcher.answer(endpoint, payload, provider=request.args.get("provider"),
                               environ=request.environ)

1. route: `?provider=` or the model's `provider/` prefix, else the endpoint's rule for a bare
   model (`claude-*` on /v1/messages) (400 unknown / unconfigured);
2. record the request facts (provider, model) in the environ, for the access log and metrics;
3. check ALLOWED_MODELS / DISALLOWED_MODELS (403) and the vision rule (400), once, on every path;
4. hand over: to the MCP agent loop when the endpoint runs tools and tools are available, else
   to the plain relay.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from app.chat import tool_loop
from app.chat.passthrough import passthrough
from app.chat.usage import Meter
from app.errors import InvalidRequest
from app.providers.routing import ModelPolicy, Route, resolve
from app.signals import MODEL_KEY, PROVIDER_KEY, SUBJECT_KEY

if TYPE_CHECKING:
    from flask import Flask

    from app.chat.answer import Answer
    from app.chat.endpoints import Endpoint
    from app.mcp.agent import AgentLoop
    from app.providers.provider import Providers

EXTENSION_KEY = "gateway.chat"


class Dispatcher:
    def __init__(self, app: Flask, *, providers: Providers, policy: ModelPolicy, vision: bool, agent: AgentLoop):
        self.app = app  # the sender of the usage and tool-call signals
        self.providers = providers
        self.policy = policy
        self.vision = vision
        self.agent = agent

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self

    def answer(self, endpoint: Endpoint, payload: dict[str, Any], *, provider: str | None,
               environ: dict[str, Any]) -> Answer:
        model = payload["model"]
        route = resolve(model, provider, self.providers, bare=endpoint.provider_for_bare(model))
        environ[PROVIDER_KEY] = route.provider.id
        environ[MODEL_KEY] = route.model
        self.policy.check(route.model_id)
        if endpoint.images is not None and endpoint.images(payload):
            self.check_vision(route)
        subject = environ.get(SUBJECT_KEY)
        if endpoint.runs_tools and self.agent.applies():  # MCP on and tools available
            return tool_loop.answer(self.agent, route, payload, partial(Meter, self.app, route, subject=subject))
        return passthrough(route, endpoint, payload,
                           Meter(self.app, route, subject=subject, stream=endpoint.streamed(payload)))

    def check_vision(self, route: Route) -> None:
        """Images need ENABLE_VISION=true and a provider whose catalog entry supports vision (else 400)."""
        if not self.vision:
            raise InvalidRequest("Image content is disabled on this gateway: remove the image parts or set "
                                 "ENABLE_VISION=true.", code="vision_disabled")
        if not route.provider.spec.supports_vision:
            raise InvalidRequest(f"Provider {route.provider.id} does not accept images: remove the image parts "
                                 f"or choose a provider with vision.", code="vision_unsupported")
