"""docs/configuration.md, written from the declarations in app/config.py (`make docs`; a test
fails when the file is stale): one table per section, what is ignored, the old names."""

from __future__ import annotations

from app.config import RENAMED, SECTIONS, declared_fields
from app.providers.catalog import CATALOG


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
