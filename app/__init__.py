"""The Inference Gateway's Flask application factory.

Importing this package is cheap on purpose: gunicorn's master imports `app.config` to check the
settings before forking, and must not import `requests`/`ssl` users before the gevent worker
patches them. Everything heavy is imported inside `create_app`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, str] | None = None) -> Flask:
    """Build the app: settings -> extensions -> providers -> blueprints -> errors.

    `overrides` are environment variables (e.g. {"OPENAI_API_KEY": "..."}) laid over the
    process environment and `.env`; tests use them instead of touching os.environ.
    """
    from flask import Flask, g, request

    from app import accounts, cli, console, mcp, request_preview, resilience, telemetry
    from app.access_log import REQUEST_ID_ENVIRON_KEY, AccessLog, request_id_from
    from app.api import chat, health, mcp_tools, media, messages, models, proxy, responses, spec
    from app.auth import guard
    from app.chat.dispatch import Dispatcher
    from app.config import ConfigError, Settings, environment_with_dotenv
    from app.errors import register_error_handlers
    from app.extensions import GatewayState
    from app.logs import configure_logging
    from app.providers.provider import Providers
    from app.providers.routing import ModelPolicy, Router, aliases_from
    from app.rate_limits import RateLimits

    environ = environment_with_dotenv()
    environ.update(overrides or {})
    try:
        settings = Settings.from_environ(environ)
    except ConfigError as exc:
        cli.refuse_in_command(exc)  # a `flask` command: the master's one line, exit 2
        raise
    configure_logging(development=settings.development, level=settings.log_level,
                      secrets=settings.secret_values())

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.server_max_request_body_size)
    app.json.sort_keys = False
    app.json.compact = True

    gateway = GatewayState(
        settings=settings,
        providers=Providers(settings),
        model_policy=ModelPolicy(settings.allowed_models, settings.disallowed_models),
    )
    gateway.init_app(app)
    guard.init_app(app)  # before any other before_request hook: later ones may read the subject
    # virtual keys: after the guard, before the access log middleware; prices from GATEWAY_CONFIG
    if accounts.init_app(app, settings, price_overrides=settings.prices):
        from app.api import admin

        app.register_blueprint(admin.bp)
    cli.init_app(app)

    mcp.init_app(app, settings)
    router = Router(gateway.providers, aliases_from(settings.aliases, gateway.providers))
    Dispatcher(app, router=router, policy=gateway.model_policy, vision=settings.enable_vision,
               agent=app.extensions[mcp.EXTENSION_KEY],
               resilience=resilience.init_app(app, settings, gateway.providers)).init_app(app)

    console.init_app(app, settings)  # ADMIN_API_KEY set: /console (after accounts, auth and resilience)

    app.register_blueprint(health.bp)
    app.register_blueprint(spec.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(responses.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(mcp_tools.bp)
    app.register_blueprint(proxy.bp)

    @app.before_request
    def remember_request_id() -> None:
        g.request_id = request.environ.get(REQUEST_ID_ENVIRON_KEY) or request_id_from(None)

    if settings.rate_limit_enable:  # after auth's hook: the limit counts the subject auth names
        RateLimits(settings).init_app(app)
    if settings.development:
        request_preview.install(app, words=settings.debug_content_truncate_words,
                                max_messages=settings.debug_max_messages)

    register_error_handlers(app)
    app.wsgi_app = AccessLog(app.wsgi_app)
    telemetry.init_app(app, settings)  # outermost: times everything, the access log included
    return app
