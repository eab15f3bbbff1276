"""docs/configuration.md, written from the declarations in app/config.py (`make docs`; a test
fails when the file is stale): one table per section, what is ignored, the old names.

`make docs` also writes README.md's table of what each provider offers, between the markers
`<!-- providers:start -->` and `<!-- providers:end -->` (`readme_text`), from the catalog through
the endpoints the gateway serves (app/chat/endpoints.py): a provider whose catalog entry has no
path for an endpoint answers it with 501, so the table says `501` exactly where the gateway does.

`make docs` also rewrites the two parts of openapi.yaml that the code declares: every setting
(`components.schemas.Config.x-config`) and every provider with its endpoints
(`components.schemas.Provider.x-provider-configs`, from the catalog). The rest of the file is
written by hand; it is loaded and written back in one stable form (`openapi_text`).
"""

from __future__ import annotations

from typing import Any, get_type_hints

import yaml

from app.config import RENAMED, SECTIONS, Settings, declared_fields
from app.providers.catalog import CATALOG, ProviderSpec


def configuration_markdown() -> str:
    """The text of docs/configuration.md."""
    lines = ["# Configuration", "",
             "Generated from `app/config.py` by `make docs`;",
             "a test fails when this file is stale. Every setting is read once at start-up from the",
             "environment, or from a `.env` file in the working directory. Durations take Go-style",
             "values (`30s`, `1m30s`, `500ms`); booleans take true/false, 1/0, yes/no.", "",
             "Every value is checked before gunicorn starts a worker: a bad one (or an old name below)",
             "stops gunicorn's master with one line naming the variable, and exit status 2.", ""]
    by_section: dict[str, list] = {key: [] for key in SECTIONS}
    for f in declared_fields():
        help_text = f.metadata["help"]
        if f.metadata["minimum"] is not None:
            help_text += f" At least `{f.metadata['minimum']}`."
        if f.metadata["choices"]:
            help_text += " One of " + ", ".join(f"`{choice}`" for choice in f.metadata["choices"]) + "."
        if f.metadata["ignored"]:
            help_text = f"**Ignored** (logged at start-up when set): {f.metadata['ignored']}. {help_text}"
        by_section[f.metadata["section"]].append((f.name, f.metadata["env"], f.metadata["default"], help_text))
    for pid, spec in CATALOG.items():
        by_section["providers"].append((f"{pid}_api_url", f"{pid.upper()}_API_URL", spec.url, f"{spec.display_name} API URL."))
        by_section["providers"].append((f"{pid}_api_key", f"{pid.upper()}_API_KEY", "", f"{spec.display_name} API key (secret; never logged or returned)."))
    for key, title in SECTIONS.items():
        lines += [f"## {title}", "", "| Name | Environment variable | Default | Description |",
                  "|---|---|---|---|"]
        for name, env, default, help_text in by_section[key]:
            shown = f"`{default}`" if default != "" else "(empty)"
            lines.append(f"| {name} | `{env}` | {shown} | {help_text} |")
        lines.append("")
    ignored = [f.metadata["env"] for f in declared_fields() if f.metadata["ignored"]]
    lines += ["## Ignored settings", "",
              "These are accepted so that a configuration written for the Go gateway keeps working, but",
              "they change nothing here; when one is set, gunicorn's master logs one warning line saying",
              "why: " + ", ".join(f"`{env}`" for env in ignored) + ".", "",
              "## Old names", "",
              "Names from the SDK-era docs, older Go gateway releases (before v0.23) and newer ones",
              "(`*_ENABLED`) are not read. One that is set stops start-up with a line naming the setting",
              "to use instead, e.g. `inference-gateway: ENABLE_AUTH is not read by this gateway: set",
              "AUTH_ENABLE instead`.", "",
              "| Old name | Use instead |", "|---|---|"]
    lines += [f"| `{old}` | `{new}` |" for old, new in RENAMED.items()]
    lines.append("")
    return "\n".join(lines)


# The catalog's endpoint fields, as x-provider-configs names them: (key, name, method).
_ENDPOINTS = (
    ("models", "list_models", "GET"), ("chat", "chat_completions", "POST"),
    ("completions", "completions", "POST"), ("embeddings", "embeddings", "POST"),
    ("responses", "create_response", "POST"), ("stored_response", "get_or_delete_response", "GET,DELETE"),
    ("messages", "create_message", "POST"), ("messages_count_tokens", "count_message_tokens", "POST"),
    ("image_generations", "create_image", "POST"), ("speech", "create_speech", "POST"),
    ("transcriptions", "create_transcription", "POST"), ("translations", "create_translation", "POST"),
    ("moderations", "create_moderation", "POST"),
)
_SETTING_TYPES = {"bool": "bool", "int": "int", "Duration": "time.Duration"}


PROVIDERS_START = "<!-- providers:start -->"
PROVIDERS_END = "<!-- providers:end -->"


def providers_markdown() -> str:
    """The README's table: per provider, `yes` or what the gateway answers instead."""
    from app.chat import endpoints

    columns = (("chat", endpoints.CHAT), ("completions", endpoints.COMPLETIONS),
               ("embeddings", endpoints.EMBEDDINGS), ("responses", endpoints.RESPONSES),
               ("messages", endpoints.MESSAGES), ("images", endpoints.IMAGE_GENERATIONS),
               ("speech", endpoints.SPEECH), ("transcriptions", endpoints.TRANSCRIPTIONS),
               ("translations", endpoints.TRANSLATIONS), ("moderations", endpoints.MODERATIONS))
    header = ["provider", *(name for name, _ in columns), "vision", "model list"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for pid, spec in CATALOG.items():
        cells = [f"`{pid}`", *("yes" if getattr(spec, endpoint.spec_field) else "501" for _, endpoint in columns),
                 "yes" if spec.supports_vision else "400", "yes" if spec.models_endpoint else "501"]
        lines.append("| " + " | ".join(cells) + " |")
    kept = [f"`{pid}`" for pid, spec in CATALOG.items() if spec.stored_response_endpoint]
    counts = [f"`{pid}`" for pid, spec in CATALOG.items() if spec.messages_count_tokens_endpoint]
    lines += ["", "`yes`: served; `501`: the gateway answers 501 `unsupported` (Anthropic's error shape on",
              "/v1/messages) without calling the provider; vision `400`: a request with images is refused",
              "(with `ENABLE_VISION=true`; with `false` every provider refuses images). Kept responses",
              (f"(`GET`/`DELETE /v1/responses/{{id}}`): {', '.join(kept)}. `POST /v1/messages/count_tokens`: "
              f"{', '.join(counts)}.")]
    return "\n".join(lines) + "\n"


def readme_text(current: str) -> str:
    """README.md with the providers table between its markers written from the catalog."""
    start = current.index(PROVIDERS_START) + len(PROVIDERS_START)
    end = current.index(PROVIDERS_END)
    return current[:start] + "\n" + providers_markdown() + current[end:]


def provider_configs() -> dict[str, Any]:
    def config(spec: ProviderSpec) -> dict[str, Any]:
        endpoints = {key: {"name": name, "method": method, "endpoint": getattr(spec, f"{key}_endpoint")}
                     for key, name, method in _ENDPOINTS if getattr(spec, f"{key}_endpoint") is not None}
        return {"id": spec.id, "url": spec.url, "auth_type": spec.auth_type, "supports_vision": spec.supports_vision,
                "endpoints": endpoints}

    return {pid: config(spec) for pid, spec in CATALOG.items()}


def settings_config() -> dict[str, Any]:
    hints = get_type_hints(Settings)
    sections: dict[str, list[dict[str, Any]]] = {key: [] for key in SECTIONS}
    for f in declared_fields():
        hint = hints[f.name]
        kind = _SETTING_TYPES.get(getattr(hint, "__name__", ""), "string")
        sections[f.metadata["section"]].append({"name": f.name, "env": f.metadata["env"], "type": kind,
                                                "default": f.metadata["default"], "description": f.metadata["help"]})
    for pid, spec in CATALOG.items():
        sections["providers"].append({"name": f"{pid}_api_url", "env": f"{pid.upper()}_API_URL", "type": "string",
                                      "default": spec.url, "description": f"{spec.display_name} API URL"})
        sections["providers"].append({"name": f"{pid}_api_key", "env": f"{pid.upper()}_API_KEY", "type": "string",
                                      "default": "", "secret": True, "description": f"{spec.display_name} API key"})
    return {"sections": [{key: {"title": title, "settings": sections[key]}} for key, title in SECTIONS.items()]}


class _SpecDumper(yaml.SafeDumper):
    """Block style for multi-line text, no anchors: the file stays readable and diffs stay small."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _text)


def openapi_text(current: str) -> str:
    """openapi.yaml with its settings and provider configs written from the code."""
    spec = yaml.safe_load(current)
    schemas = spec["components"]["schemas"]
    schemas["Provider"]["enum"] = list(CATALOG)
    schemas["Provider"]["x-provider-configs"] = provider_configs()
    schemas["Config"]["x-config"] = settings_config()
    return "---\n" + yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=110)
